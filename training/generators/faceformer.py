"""FaceFormer-style generator (Fan et al. 2022), non-autoregressive variant.

Speech encoder (over the frozen front end's features) -> decoder blocks, each: causal self-attention with FaceFormer's biased mask
(-slope_h * floor((i - j) / period), no future frames; local in blocks, see BiasedSelfAttention), cross-attention to the speech features under
FaceFormer's alignment mask (frame t sees only speech frame t, which makes the softmax exactly 1, so
it reduces to the value/output projections of that frame), and a feed-forward; the decoder input is
the speech features + a subject-style embedding + the periodic positional encoding. The output is the
coefficients of the model's fixed motion basis (training.generators.motion_basis), decoded to vertices inside
the exported graph.

Deviation from the paper: the decoder input does not feed back past predicted motions
(teacher forcing / autoregression). That keeps inference one parallel pass (O(T) per clip in the
backend, > 200x real time on one core) and one ONNX graph.
"""

import torch
from torch import nn

from training.generators.audio_encoder import (CoefficientHead, EncoderBlock, SpeechEncoder,
                                               periodic_positional_encoding)
from training.generators.config import GeneratorConfig
from training.generators.protocol import Family, GeneratorOutput


class AlignedCrossAttention(nn.Module):
    """Cross-attention under the diagonal alignment mask: frame t attends to speech frame t only."""

    def __init__(self, width: int):
        super().__init__()
        self.value = nn.Linear(width, width)
        self.project_out = nn.Linear(width, width)

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.value(speech))


class DecoderBlock(nn.Module):
    """Biased causal self-attention, aligned cross-attention to speech, feed-forward (pre-norm)."""

    def __init__(self, width: int, heads: int, period: int, block: int):
        super().__init__()
        self.self_block = EncoderBlock(width, heads, period, True, block)
        self.cross_norm, self.cross = nn.LayerNorm(width), AlignedCrossAttention(width)

    def forward(self, tokens: torch.Tensor, speech: torch.Tensor) -> torch.Tensor:
        attended = tokens + self.self_block.attention(self.self_block.attention_norm(tokens))
        attended = attended + self.cross(self.cross_norm(speech))
        return attended + self.self_block.feed(self.self_block.feed_norm(attended))


class FaceFormerDecoder(nn.Module):
    """(B, T, W) speech features + (B, S) one-hot style -> (B, T, W) motion features."""

    def __init__(self, width: int, heads: int, blocks: int, num_styles: int, period: int, block: int):
        super().__init__()
        self.input = nn.Linear(width, width)
        self.style = nn.Linear(num_styles, width, bias=False)
        self.blocks = nn.ModuleList(DecoderBlock(width, heads, period, block) for _ in range(blocks))
        self.period, self.width = period, width

    def forward(self, speech: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        frames = speech.shape[1]
        tokens = (self.input(speech) + self.style(style)[:, None]
                  + periodic_positional_encoding(frames, self.width, self.period, speech.device)[None])
        for block in self.blocks:
            tokens = block(tokens, speech)
        return tokens


class FaceFormerStyle(Family):
    """speech_features (B, T, 447), template (B, 5023, 3), style (B, S) -> GeneratorOutput(coefficients (B, T, K))."""

    title = "FaceFormer-style"

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__(config)
        self.speech_encoder = SpeechEncoder.from_config(config)
        self.decoder = FaceFormerDecoder(config.width, config.heads, config.decoder_blocks, num_styles,
                                         config.period, config.attention_block)
        self.head = CoefficientHead(config.width, config.basis_size)

    def forward(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> GeneratorOutput:
        return GeneratorOutput(self.head(self.decoder(self.speech_encoder(features), style)))

