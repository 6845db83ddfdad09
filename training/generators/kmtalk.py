"""KMTalk-style generator (Xu et al. 2024): linguistic key motions, then audio-guided motion completion.

(i) Key-motion acquisition: key frames are phoneme boundaries (training: the clip's timeline; inference:
    the local maxima of a boundary head trained on the timelines; this stands in for a phoneme
    recogniser or forced aligner at inference) or, as the ablation, every `uniform_spacing`
    frames. A key-motion decoder predicts the face at every frame; only the key frames are kept.
    Its backbone is a bidirectional transformer ("transformer", KMTalk) or the FaceFormer-style decoder
    ("faceformer": KMTalk's scheme as a plug-in on FaceFormer, as the paper reports).
(ii) Cross-modal motion completion: a transformer sees the key motions at the key frames (zeros
    elsewhere), a key/non-key indicator, the style, the periodic positional encoding and, unless
    `audio_guidance` is off (ablation), the speech features; it outputs the whole sequence.
Both stages share one vertex head (keeps the shipped model small).
"""

import torch
import torch.nn.functional as F
from torch import nn

from backend.flame import VERTEX_VALUES
from training.generators.audio_encoder import EncoderBlock, SpeechEncoder, VertexHead, periodic_positional_encoding
from training.generators.config import GeneratorConfig
from training.generators.faceformer import FaceFormerDecoder
from training.generators.protocol import MM2_PER_M2, Family, GeneratorOutput, LossTerm, TrainingClip


def timeline_key_mask(timeline, frames: int) -> torch.Tensor:
    """(T,) float 0/1: frames nearest to each phoneme boundary (segment starts and the last end)."""
    mask = torch.zeros(frames)
    times = [start for start, _, _ in timeline] + ([timeline[-1][1]] if timeline else [])
    for seconds in times:
        mask[min(max(int(round(seconds * 30)), 0), frames - 1)] = 1.0
    return mask


def uniform_key_mask(frames, spacing: int, device=None) -> torch.Tensor:
    """(T,) float 0/1: every `spacing`-th frame, starting at frame 0."""
    return (torch.remainder(torch.arange(frames, device=device), spacing) == 0).float()


def boundary_peaks(logits: torch.Tensor) -> torch.Tensor:
    """(B, T) boundary logits -> (B, T) 0/1 at local maxima (above the previous frame, not below the next):
    one key frame per predicted boundary, whatever the head's calibration."""
    previous = nn.functional.pad(logits[:, :-1], (1, 0), value=float("-inf"))
    following = nn.functional.pad(logits[:, 1:], (0, 1), value=float("-inf"))
    return ((logits > previous) & (logits >= following)).float()


class TransformerBackbone(nn.Module):
    """Bidirectional biased-attention blocks over speech features + style + PPE."""

    def __init__(self, width: int, heads: int, blocks: int, num_styles: int, period: int, block: int):
        super().__init__()
        self.style = nn.Linear(num_styles, width, bias=False)
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, period, False, block) for _ in range(blocks))
        self.period, self.width = period, width

    def forward(self, speech: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        frames = speech.shape[1]
        tokens = (speech + self.style(style)[:, None]
                  + periodic_positional_encoding(frames, self.width, self.period, speech.device)[None])
        for block in self.blocks:
            tokens = block(tokens)
        return tokens


class KMTalkStyle(Family):
    """audio (B, N), template (B, 5023, 3), style (B, S), optional key_mask (B, T) -> GeneratorOutput with
    vertices, key_vertices (B, T, 5023, 3), key_mask (B, T) and boundary_logits (B, T) (None for uniform key
    frames). Without key_mask (inference) the mask comes from the boundary head or the uniform rule.
    Training losses: the key-motion MSE at key frames (mm^2) and the boundary head's BCE (kmtalk.* weights)."""

    title = "KMTalk-style"

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__()
        width, heads = config.width, config.heads
        self.config = config
        section = config.kmtalk
        block = config.attention_block
        self.speech_encoder = SpeechEncoder(width, heads, config.encoder_blocks, config.mel_bins, config.period, block)
        backbone = FaceFormerDecoder if section.backbone == "faceformer" else TransformerBackbone
        self.key_decoder = backbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.boundary_head = nn.Linear(width, 1) if section.key_frames == "timeline" else None
        self.key_embedding = nn.Linear(VERTEX_VALUES, width)
        self.key_indicator = nn.Linear(1, width)
        self.speech_guidance = nn.Linear(width, width) if section.audio_guidance else None
        self.completion = TransformerBackbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.head = VertexHead(width)

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ("key_mse", "boundary") if config.kmtalk.key_frames == "timeline" else ("key_mse",)

    @classmethod
    def clip_inputs(cls, config: GeneratorConfig, clip_id: str, clip, frames: int) -> dict:
        """key_mask (T,): the clip's phoneme boundaries, or every uniform_spacing frames (also for a clip
        without a timeline)."""
        if config.kmtalk.key_frames == "timeline" and clip.timeline:
            return {"key_mask": timeline_key_mask(clip.timeline, frames)}
        return {"key_mask": uniform_key_mask(frames, config.kmtalk.uniform_spacing)}

    def forward(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> GeneratorOutput:
        speech = self.speech_encoder(audio)
        boundary_logits = None if self.boundary_head is None else self.boundary_head(speech)[..., 0]
        if key_mask is None:
            key_mask = self.inferred_key_mask(speech, boundary_logits)
        key_hidden = self.key_decoder(speech, style)
        tokens = self.embedded_key_motion(key_hidden) * key_mask[..., None] + self.key_embedding.bias \
            + self.key_indicator(key_mask[..., None])
        if self.speech_guidance is not None:
            tokens = tokens + self.speech_guidance(speech)
        motion = self.completion(tokens, style)
        return GeneratorOutput(template[:, None] + self.head(motion), key_vertices=template[:, None] + self.head(key_hidden),
                               key_mask=key_mask, boundary_logits=boundary_logits)

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        key_mask = clip.inputs["key_mask"]
        output = self(clip.audio, clip.template[None], clip.style[None], key_mask[None])
        frames = min(output.vertices.shape[1], len(clip.vertices))
        key_error = ((output.key_vertices[0, :frames] - clip.vertices[:frames]) ** 2).mean(dim=(1, 2))
        mask = key_mask[:frames]
        output.losses["key_mse"] = LossTerm((key_error * mask).sum() / mask.sum().clamp(min=1) * MM2_PER_M2,
                                            self.config.kmtalk.key_weight)
        if output.boundary_logits is not None:
            logits = output.boundary_logits[0, :len(clip.vertices)]
            output.losses["boundary"] = LossTerm(F.binary_cross_entropy_with_logits(logits, key_mask[:len(logits)]),
                                                 self.config.kmtalk.boundary_weight)
        return output

    def predict(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                timeline=None) -> GeneratorOutput:
        """With a phoneme timeline, its boundaries are the key frames; otherwise the model's own."""
        if not timeline:
            return self(audio, template, style)
        frames = self.speech_encoder(audio).shape[1]
        return self(audio, template, style, timeline_key_mask(timeline, frames)[None].to(audio.device))

    def embedded_key_motion(self, key_hidden: torch.Tensor) -> torch.Tensor:
        """key_embedding(head(key_hidden)) without its bias, with the two linear maps composed into one
        W x W map: the same numbers as embedding the 15069 displacement values, at 1/15069th of the cost
        (what keeps KMTalk's ONNX graph as fast as FaceFormer's)."""
        embedding, head = self.key_embedding.weight, self.head.linear
        return nn.functional.linear(key_hidden, embedding @ head.weight, embedding @ head.bias)

    def inferred_key_mask(self, speech: torch.Tensor, boundary_logits: torch.Tensor | None) -> torch.Tensor:
        if boundary_logits is None:
            mask = uniform_key_mask(speech.shape[1], self.config.kmtalk.uniform_spacing, speech.device)
            return mask[None].expand(speech.shape[0], -1)
        return boundary_peaks(boundary_logits)
