"""KMTalk-style generator (Xu et al. 2024): linguistic key motions, then audio-guided motion completion.

(i) Key-motion acquisition: the key frames are the phones the frozen speech front end recognises: hama's CTC
    emits each phone as a spike of its non-blank posterior, so a key frame is a local maximum of
    1 - p(blank) above KEY_POSTERIOR (the paper's linguistic key motions, with the recogniser it calls for,
    computed from the graph's own input at training and at inference alike), or, as the ablation, every
    `uniform_spacing` frames. A key-motion decoder predicts the face at every frame; only the key frames are
    kept. Its backbone is a bidirectional transformer ("transformer", KMTalk) or the FaceFormer-style decoder
    ("faceformer": KMTalk's scheme as a plug-in on FaceFormer, as the paper reports).
(ii) Cross-modal motion completion: a transformer sees the key motions at the key frames (zeros elsewhere), a
    key/non-key indicator, the style, the periodic positional encoding and, unless `audio_guidance` is off
    (ablation), the speech features; it outputs the whole sequence.
Both stages predict coefficients of the model's motion basis through one head (keeps the shipped model small).
"""

import torch
from torch import nn

from backend.speech_frontend import BLANK_TOKEN
from training.generators.audio_encoder import (CoefficientHead, EncoderBlock, SpeechEncoder,
                                               periodic_positional_encoding)
from training.generators.config import GeneratorConfig
from training.generators.faceformer import FaceFormerDecoder
from training.generators.protocol import Family, GeneratorOutput, LossTerm, TrainingClip

KEY_POSTERIOR = 0.5   # a phone spike: the non-blank posterior's local maximum above this


def uniform_key_mask(frames, spacing: int, device=None) -> torch.Tensor:
    """(T,) float 0/1: every `spacing`-th frame, starting at frame 0."""
    return (torch.remainder(torch.arange(frames, device=device), spacing) == 0).float()


def local_peaks(values: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T) 0/1 at local maxima (above the previous frame, not below the next)."""
    previous = nn.functional.pad(values[:, :-1], (1, 0), value=float("-inf"))
    following = nn.functional.pad(values[:, 1:], (0, 1), value=float("-inf"))
    return ((values > previous) & (values >= following)).float()


def phone_key_mask(features: torch.Tensor) -> torch.Tensor:
    """(B, T, 447) front-end features -> (B, T) 0/1 key frames: the recognised phones' CTC spikes."""
    speech = 1.0 - torch.exp(features[..., BLANK_TOKEN])
    return local_peaks(speech) * (speech > KEY_POSTERIOR).float()


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
    """speech_features (B, T, 447), template (B, 5023, 3), style (B, S) -> GeneratorOutput with coefficients,
    key_coefficients (B, T, K) and key_mask (B, T). Training loss: the key-motion MSE at key frames (mm^2,
    kmtalk.key_weight)."""

    title = "KMTalk-style"

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__(config)
        width, heads, block = config.width, config.heads, config.attention_block
        section = config.kmtalk
        self.speech_encoder = SpeechEncoder.from_config(config)
        backbone = FaceFormerDecoder if section.backbone == "faceformer" else TransformerBackbone
        self.key_decoder = backbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.key_embedding = nn.Linear(config.basis_size, width)
        self.key_indicator = nn.Linear(1, width)
        self.speech_guidance = nn.Linear(width, width) if section.audio_guidance else None
        self.completion = TransformerBackbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.head = CoefficientHead(width, config.basis_size)

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ("key_mse",)

    def key_mask(self, features: torch.Tensor) -> torch.Tensor:
        if self.config.kmtalk.key_frames == "phonemes":
            return phone_key_mask(features)
        mask = uniform_key_mask(features.shape[1], self.config.kmtalk.uniform_spacing, features.device)
        return mask[None].expand(features.shape[0], -1)

    def forward(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> GeneratorOutput:
        speech = self.speech_encoder(features)
        key_mask = self.key_mask(features)
        key_coefficients = self.head(self.key_decoder(speech, style))
        tokens = self.key_embedding(key_coefficients * key_mask[..., None]) + self.key_indicator(key_mask[..., None])
        if self.speech_guidance is not None:
            tokens = tokens + self.speech_guidance(speech)
        coefficients = self.head(self.completion(tokens, style))
        return GeneratorOutput(coefficients, key_coefficients=key_coefficients, key_mask=key_mask)

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        output = self(clip.features, clip.template[None], clip.style[None])
        mask = output.key_mask[0]
        key_error = self.motion_basis.vertex_mse(output.key_coefficients[0], clip.coefficients,
                                                 mask * clip.weights)
        output.losses["key_mse"] = LossTerm(key_error, self.config.kmtalk.key_weight)
        return output
