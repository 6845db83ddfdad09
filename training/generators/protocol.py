"""The generator family protocol: what every generator family offers the trainer, the evaluator and the comparison, so
none of them asks "which family am I?" by name.

A family is an `nn.Module` subclass of `Family`, built as `Family(config, num_styles)`:
- forward(speech_features (B, T, 447) at 30 fps, template (B, 5023, 3), style (B, S) one-hot) -> GeneratorOutput
  with coefficients (B, T, K) of the family's fixed motion basis (`motion_basis`, training.generators.motion_basis);
- `animate(speech_features, template, style)` -> vertices (B, T, 5023, 3): forward decoded through the basis,
  the graph that is exported to ONNX (backend.generators contract v2);
- `check_clip(config, clip_id, clip)` (class method): refuse a corpus clip the family cannot learn from (SelfTalk:
  one without a phoneme timeline), checked when clips load;
- `training_output(clip)`: the forward pass that training runs on one TrainingClip, with the family's own loss
  terms (`GeneratorOutput.losses`, in the order they enter the total after the vertex and lip-gap terms);
- `predict(speech_features, template, style)`: inference, with `vertices` decoded;
- `set_statistics(statistics)`: the data statistics fitted at train start (feature z-scoring, the basis);
- `prepare_training(clips)`: data-dependent set-up before the first step (codebook, frozen prior, lip region).
Class facts: `title` (for tables), `animates_speech` (False for a motion prior), `prior_family` (the family
whose checkpoint must be trained first and passed as its prior), `loss_names(config)` (the logged terms).
"""

from dataclasses import dataclass, field, replace
from typing import ClassVar, Optional

import torch
from torch import nn

from backend.flame import MM_PER_M
from backend.frame_rate import MESH_FPS
from training.checkpoints import load_checkpoint
from training.generators.audio_encoder import SpeechEncoder
from training.generators.config import GeneratorConfig
from training.generators.motion_basis import DataStatistics, MotionBasis

CHECKPOINT_KEYS = ("model", "config", "styles", "step")
MM2_PER_M2 = MM_PER_M ** 2   # generator losses are in mm^2: vertex errors in m^2 x 1e6


@dataclass
class LossTerm:
    """One loss term of a family: its value (logged) and its weight in the total."""

    value: torch.Tensor
    weight: float = 1.0


@dataclass
class GeneratorOutput:
    """What every family's forward returns. coefficients (B, T, K) of the motion basis; vertices (B, T, 5023, 3)
    absolute, metres, only from `predict`. Family extras: key_coefficients (B, T, K) and key_mask (B, T)
    (KMTalk-style), code_indices (B, T, G) (CodeTalker-style). losses: the family's loss terms on the training
    targets (empty at inference); details: unweighted parts of a composite term, for inspection."""

    coefficients: torch.Tensor
    vertices: Optional[torch.Tensor] = None
    key_coefficients: Optional[torch.Tensor] = None
    key_mask: Optional[torch.Tensor] = None
    code_indices: Optional[torch.Tensor] = None
    losses: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


@dataclass
class TrainingClip:
    """One clip (or one augmented copy of it) ready for a forward pass, everything at 30 fps over T frames:
    features (1, T, 447) front-end features; coefficients (T, K) the target motion in the basis; lip_gap (T,)
    the target's lip gap (metres, from its vertices); weights (T,) per-frame loss weights (bilabials heavier);
    template (5023, 3); style one-hot (S,); timeline [(start_s, end_s, label)] or None; speech_target (T - 4, D)
    for the perceptual loss or None; closure_mask (T,) 1.0 on the /p b m/ frames where the target's lips are shut
    (the closure term's frames) or None."""

    clip_id: str
    features: torch.Tensor
    coefficients: torch.Tensor
    lip_gap: torch.Tensor
    weights: torch.Tensor
    template: torch.Tensor
    style: torch.Tensor
    timeline: Optional[list] = None
    speech_target: Optional[torch.Tensor] = None
    closure_mask: Optional[torch.Tensor] = None

    @property
    def frames(self) -> int:
        return len(self.coefficients)

    def to(self, device) -> "TrainingClip":
        """The clip's tensors on `device` (the speech target too, when there is one)."""
        return replace(self, features=self.features.to(device), coefficients=self.coefficients.to(device),
                       lip_gap=self.lip_gap.to(device), weights=self.weights.to(device),
                       template=self.template.to(device), style=self.style.to(device),
                       speech_target=None if self.speech_target is None else self.speech_target.to(device),
                       closure_mask=None if self.closure_mask is None else self.closure_mask.to(device))

    def crop(self, start: int, length: int) -> "TrainingClip":
        """Frames start .. start + length - 1 (the timeline shifted and cut to them; no perceptual target, which
        covers the whole clip)."""
        end = start + length
        timeline = None
        if self.timeline is not None:
            begin, finish = start / MESH_FPS, end / MESH_FPS
            timeline = [(max(s, begin) - begin, min(e, finish) - begin, label) for s, e, label in self.timeline
                        if e > begin and s < finish]
        return replace(self, features=self.features[:, start:end], coefficients=self.coefficients[start:end],
                       lip_gap=self.lip_gap[start:end], weights=self.weights[start:end], timeline=timeline,
                       speech_target=None,
                       closure_mask=None if self.closure_mask is None else self.closure_mask[start:end])


class Family(nn.Module):
    """The protocol every generator family implements (see the module docstring); defaults suit a family that
    needs only speech features, template and style. The base holds the motion basis."""

    title: ClassVar[str] = ""
    animates_speech: ClassVar[bool] = True
    prior_family: ClassVar[Optional[str]] = None

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.basis = MotionBasis(config.basis_size)

    @property
    def motion_basis(self) -> MotionBasis:
        return self.basis

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ()

    @classmethod
    def check_clip(cls, config: GeneratorConfig, clip_id: str, clip) -> None:
        """Every clip is usable by default."""

    def animate(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.motion_basis.vertices(self(features, template, style).coefficients, template)

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        return self(clip.features, clip.template[None], clip.style[None])

    def predict(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> GeneratorOutput:
        output = self(features, template, style)
        output.vertices = self.motion_basis.vertices(output.coefficients, template)
        return output

    def set_statistics(self, statistics: DataStatistics) -> None:
        """Feature z-scoring into every speech encoder, the basis into `motion_basis`."""
        for module in self.modules():
            if isinstance(module, SpeechEncoder):
                module.set_statistics(statistics.feature_mean, statistics.feature_std)
        self.motion_basis.set(statistics.motion_mean, statistics.components, statistics.explained)

    def prepare_training(self, clips: list) -> None:
        """Nothing to set up by default."""


def load_generator_checkpoint(path) -> dict:
    """A generator checkpoint (written by `python -m training train`); ModelError if unusable."""
    return load_checkpoint(path, CHECKPOINT_KEYS, "python -m training train")

