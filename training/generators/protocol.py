"""The generator family protocol: what every generator family offers the trainer, the evaluator and the comparison, so
none of them asks "which family am I?" by name.

A family is an `nn.Module` subclass of `Family`, built as `Family(config, num_styles)`:
- forward(audio (B, N) 16 kHz, template (B, 5023, 3), style (B, S) one-hot) -> GeneratorOutput with vertices
  (B, T, 5023, 3), T = backend.generators.frame_count(N): the graph that is exported to ONNX;
- `clip_inputs(config, clip_id, clip, frames)` (class method): what it needs from a corpus clip beyond audio, vertices,
  template and style (KMTalk: the key-frame mask; SelfTalk: the phoneme labels), checked when clips load;
- `training_output(clip)`: the forward pass that training runs on one TrainingClip, with the family's own loss
  terms (`GeneratorOutput.losses`, in the order they enter the total after the vertex MSE);
- `predict(audio, template, style, timeline)`: inference; a family may use the clip's phoneme timeline;
- `prepare_training(clips)`: data-dependent set-up before the first step (codebook, frozen prior, lip region).
Class facts: `title` (for tables), `animates_speech` (False for a motion prior), `prior_family` (the family
whose checkpoint must be trained first and passed as its prior), `loss_names(config)` (the logged terms).
"""

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import nn

from backend.flame import MM_PER_M
from training.checkpoints import load_checkpoint
from training.generators.config import GeneratorConfig

CHECKPOINT_KEYS = ("model", "config", "styles", "step")
MM2_PER_M2 = MM_PER_M ** 2   # generator losses are in mm^2: vertex errors in m^2 x 1e6


@dataclass
class LossTerm:
    """One loss term of a family: its value (logged) and its weight in the total."""

    value: torch.Tensor
    weight: float = 1.0


@dataclass
class GeneratorOutput:
    """What every family's forward returns. vertices (B, T, 5023, 3) absolute, metres. Family extras: key_vertices
    (B, T, 5023, 3), key_mask (B, T) and boundary_logits (B, T) (KMTalk-style), code_indices (B, T, G)
    (CodeTalker-style). losses: the family's loss terms on the training targets (empty at inference);
    details: unweighted parts of a composite term, for inspection."""

    vertices: torch.Tensor
    key_vertices: Optional[torch.Tensor] = None
    key_mask: Optional[torch.Tensor] = None
    boundary_logits: Optional[torch.Tensor] = None
    code_indices: Optional[torch.Tensor] = None
    losses: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


@dataclass
class TrainingClip:
    """One clip ready for a forward pass: audio (1, N) 16 kHz, vertices (T, 5023, 3), template (5023, 3), style
    one-hot (S,), inputs: the family's own tensors (`Family.clip_inputs`), speech_target (T - 4, D) for the
    perceptual loss or None."""

    clip_id: str
    audio: torch.Tensor
    vertices: torch.Tensor
    template: torch.Tensor
    style: torch.Tensor
    inputs: dict = field(default_factory=dict)
    speech_target: Optional[torch.Tensor] = None

    def to(self, device) -> "TrainingClip":
        """The clip's tensors on `device` (the speech target too, when there is one)."""
        return TrainingClip(self.clip_id, self.audio.to(device), self.vertices.to(device), self.template.to(device),
                            self.style.to(device), {key: value.to(device) for key, value in self.inputs.items()},
                            None if self.speech_target is None else self.speech_target.to(device))


class Family(nn.Module):
    """The protocol every generator family implements (see the module docstring); defaults suit a family that
    needs only audio, template and style."""

    title: ClassVar[str] = ""
    animates_speech: ClassVar[bool] = True
    prior_family: ClassVar[Optional[str]] = None

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ()

    @classmethod
    def clip_inputs(cls, config: GeneratorConfig, clip_id: str, clip, frames: int) -> dict:
        return {}

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        return self(clip.audio, clip.template[None], clip.style[None])

    def predict(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                timeline=None) -> GeneratorOutput:
        return self(audio, template, style)

    def prepare_training(self, clips: list) -> None:
        """Nothing to set up by default."""


def load_generator_checkpoint(path) -> dict:
    """A generator checkpoint (written by `python -m training train`); ModelError if unusable."""
    return load_checkpoint(path, CHECKPOINT_KEYS, "python -m training train")
