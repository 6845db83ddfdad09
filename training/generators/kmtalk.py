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
from torch import nn

from training.config import GeneratorConfig
from training.generators.audio_encoder import (VERTEX_VALUES, EncoderBlock, SpeechEncoder, VertexHead,
                                               periodic_positional_encoding)
from training.generators.faceformer import FaceFormerDecoder

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


class KMTalkStyle(nn.Module):
    """audio (B, N), template (B, 5023, 3), style (B, S), optional key_mask (B, T) ->
    {"vertices", "key_vertices" (B, T, 5023, 3), "key_mask" (B, T), "boundary_logits" (B, T) or absent}.
    Without key_mask (inference) the mask comes from the boundary head or the uniform rule."""

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__()
        width, heads = config.width, config.heads
        self.config = config
        block = config.attention_block
        self.speech_encoder = SpeechEncoder(width, heads, config.encoder_blocks, config.mel_bins, config.period, block)
        backbone = FaceFormerDecoder if config.backbone == "faceformer" else TransformerBackbone
        self.key_decoder = backbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.boundary_head = nn.Linear(width, 1) if config.key_frames == "timeline" else None
        self.key_embedding = nn.Linear(VERTEX_VALUES, width)
        self.key_indicator = nn.Linear(1, width)
        self.speech_guidance = nn.Linear(width, width) if config.audio_guidance else None
        self.completion = TransformerBackbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.head = VertexHead(width)

    def forward(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> dict:
        speech = self.speech_encoder(audio)
        outputs = {}
        if self.boundary_head is not None:
            outputs["boundary_logits"] = self.boundary_head(speech)[..., 0]
        if key_mask is None:
            key_mask = self.inferred_key_mask(speech, outputs.get("boundary_logits"))
        key_hidden = self.key_decoder(speech, style)
        tokens = self.embedded_key_motion(key_hidden) * key_mask[..., None] + self.key_embedding.bias \
            + self.key_indicator(key_mask[..., None])
        if self.speech_guidance is not None:
            tokens = tokens + self.speech_guidance(speech)
        motion = self.completion(tokens, style)
        outputs.update(vertices=template[:, None] + self.head(motion),
                       key_vertices=template[:, None] + self.head(key_hidden), key_mask=key_mask)
        return outputs

    def embedded_key_motion(self, key_hidden: torch.Tensor) -> torch.Tensor:
        """key_embedding(head(key_hidden)) without its bias, with the two linear maps composed into one
        W x W map: the same numbers as embedding the 15069 displacement values, at 1/15069th of the cost
        (what keeps KMTalk's ONNX graph as fast as FaceFormer's)."""
        embedding, head = self.key_embedding.weight, self.head.linear
        return nn.functional.linear(key_hidden, embedding @ head.weight, embedding @ head.bias)

    def inferred_key_mask(self, speech: torch.Tensor, boundary_logits: torch.Tensor | None) -> torch.Tensor:
        if boundary_logits is None:
            mask = uniform_key_mask(speech.shape[1], self.config.uniform_spacing, speech.device)
            return mask[None].expand(speech.shape[0], -1)
        return boundary_peaks(boundary_logits)
