"""Blocks shared by the generators: the speech encoder over the frozen front end's features, attention with
ALiBi-like distance biases, FaceFormer's periodic positional encoding, and the coefficient head; plus the
fixed log-mel (`LogMel`) that the front-end probe compares against.

Shapes: speech_features (B, T, 447) at 30 fps (backend.generators' contract v2) -> (B, T, W) -> coefficients
(B, T, K) of the model's MotionBasis (training.generators.motion_basis).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.generators import SAMPLE_RATE
from backend.speech_frontend import FEATURE_DIM

WINDOW = 400        # 25 ms analysis window at 16 kHz
HOP = 160           # 10 ms hop: 100 spectral frames per second
FFT_BINS = WINDOW // 2 + 1
LOG_FLOOR = 1e-6


def mel_filterbank(mel_bins: int, low_hz: float = 20.0, high_hz: float = SAMPLE_RATE / 2) -> np.ndarray:
    """(FFT_BINS, mel_bins) triangular filters equally spaced on the HTK mel scale."""
    def mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz) / 700.0)

    edges = np.linspace(mel(low_hz), mel(high_hz), mel_bins + 2)
    bin_mels = mel(np.arange(FFT_BINS) * SAMPLE_RATE / WINDOW)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_mels[None] - lower) / (centre - lower)
    falling = (upper - bin_mels[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


class LogMel(nn.Module):
    """Fixed log-mel front end as a strided convolution with Hann-windowed DFT kernels (exports to plain
    ONNX Conv/MatMul): (B, N) -> (B, N // HOP + 1, mel_bins), centred frames (zero padding)."""

    def __init__(self, mel_bins: int):
        super().__init__()
        times = np.arange(WINDOW)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * times / WINDOW)
        angles = 2 * np.pi * np.outer(np.arange(FFT_BINS), times) / WINDOW
        kernels = np.concatenate([np.cos(angles), -np.sin(angles)]) * window
        self.register_buffer("kernels", torch.tensor(kernels[:, None, :], dtype=torch.float32))
        self.register_buffer("filters", torch.tensor(mel_filterbank(mel_bins)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        padded = F.pad(audio[:, None, :], (WINDOW // 2, WINDOW // 2))
        spectrum = F.conv1d(padded, self.kernels, stride=HOP)            # (B, 2 * FFT_BINS, F)
        real, imaginary = spectrum[:, :FFT_BINS], spectrum[:, FFT_BINS:]
        power = (real * real + imaginary * imaginary).transpose(1, 2)   # (B, F, FFT_BINS)
        return torch.log(power @ self.filters + LOG_FLOOR)


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi head slopes 2^(-8 h / H), h = 1..H."""
    return torch.tensor([2.0 ** (-8.0 * (head + 1) / heads) for head in range(heads)])


def block_bias(heads: int, block: int, period: int, causal: bool) -> torch.Tensor:
    """(H, L, 3L) bias of query i of a block against the keys of the previous, same and next block:
    -slope_h * floor(|offset| / period) (FaceFormer's biased attention), offset = i + L - j; causal
    also forbids keys after the query (-inf)."""
    offset = torch.arange(block)[:, None] + block - torch.arange(3 * block)[None, :]
    bias = -alibi_slopes(heads)[:, None, None] * torch.div(offset.abs(), period, rounding_mode="floor").float()
    return bias.masked_fill((offset < 0)[None], float("-inf")) if causal else bias


def periodic_positional_encoding(frames, width: int, period: int, device=None) -> torch.Tensor:
    """FaceFormer's PPE: (T, W) sinusoidal encoding of (t mod period)."""
    rates = torch.exp(torch.arange(0, width, 2, device=device).float() * (-math.log(10000.0) / width))
    base = torch.arange(period, device=device).float()[:, None]
    encoding = torch.stack([torch.sin(base * rates), torch.cos(base * rates)], dim=-1).reshape(period, width)
    return encoding[torch.remainder(torch.arange(frames, device=device), period)]


class BiasedSelfAttention(nn.Module):
    """Multi-head self-attention with ALiBi-like distance biases, local in blocks of L frames: each query
    sees the keys of its own block and of the two neighbouring blocks (at least L frames either side).
    Cost is O(T L) instead of O(T^2); training clips (< 2 L frames) see exactly full attention, and long
    inputs never meet distances that training never showed."""

    def __init__(self, width: int, heads: int, period: int, causal: bool, block: int):
        super().__init__()
        self.heads, self.block = heads, block
        self.project_in = nn.Linear(width, 3 * width)
        self.project_out = nn.Linear(width, width)
        self.register_buffer("bias", block_bias(heads, block, period, causal)[:, None])  # (H, 1, L, 3L)

    def _neighbourhoods(self, values: torch.Tensor, padding) -> torch.Tensor:
        """(B, H, T, D) -> (B, H, nb, 3L, D): per block, the previous, own and next block's rows."""
        batch, heads, _, depth = values.shape
        padded = F.pad(values, (0, 0, self.block, padding + self.block))
        blocks = padded.reshape(batch, heads, -1, self.block, depth)
        return torch.cat([blocks[:, :, :-2], blocks[:, :, 1:-1], blocks[:, :, 2:]], dim=3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, frames, width = tokens.shape
        queries, keys, values = self.project_in(tokens).reshape(batch, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        padding = (self.block - frames % self.block) % self.block
        queries = F.pad(queries, (0, 0, 0, padding)).reshape(batch, self.heads, -1, self.block, width // self.heads)
        valid = self._neighbourhoods(torch.ones_like(tokens[:1, None, :, :1]), padding)[..., 0]  # (1, 1, nb, 3L)
        outside = torch.zeros_like(valid).masked_fill(valid == 0, float("-inf"))[:, :, :, None]
        scores = (queries @ self._neighbourhoods(keys, padding).transpose(-1, -2) / math.sqrt(width // self.heads)
                  + self.bias + outside)                                   # (B, H, nb, L, 3L)
        mixed = torch.softmax(scores, dim=-1) @ self._neighbourhoods(values, padding)
        mixed = mixed.reshape(batch, self.heads, -1, width // self.heads)[:, :, :frames]
        return self.project_out(mixed.transpose(1, 2).reshape(batch, frames, width))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: biased (local) self-attention then a GELU feed-forward."""

    def __init__(self, width: int, heads: int, period: int, causal: bool, block: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = BiasedSelfAttention(width, heads, period, causal, block)
        self.feed_norm = nn.LayerNorm(width)
        self.feed = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attention(self.attention_norm(tokens))
        return tokens + self.feed(self.feed_norm(tokens))


class SpeechEncoder(nn.Module):
    """speech_features (B, T, 447) -> (B, T, W): z-scored with the training data's statistics (buffers set once by
    `set_statistics`), a linear projection, `conv_layers` residual dilated convolutions (kernel 3, dilations 1, 2,
    4, ...: a receptive field of +-(2^L - 1) frames, +-0.5 s for L = 4, enough to look past the front end's
    bilabial delay), then `blocks` bidirectional biased-attention blocks. Non-causal, like the front end."""

    def __init__(self, width: int, heads: int, blocks: int, conv_layers: int, period: int, block: int):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))
        self.project = nn.Linear(FEATURE_DIM, width)
        self.convolutions = nn.ModuleList(nn.Conv1d(width, width, 3, padding=2 ** layer, dilation=2 ** layer)
                                          for layer in range(conv_layers))
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, period, False, block) for _ in range(blocks))

    @classmethod
    def from_config(cls, config) -> "SpeechEncoder":
        """The encoder of a GeneratorConfig's sizes (every speech-driven family has one)."""
        return cls(config.width, config.heads, config.encoder_blocks, config.conv_layers, config.period,
                   config.attention_block)

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.feature_mean.copy_(torch.from_numpy(mean))
        self.feature_std.copy_(torch.from_numpy(std))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.project((features - self.feature_mean) / self.feature_std).transpose(1, 2)   # (B, W, T)
        for convolution in self.convolutions:
            hidden = hidden + F.gelu(convolution(hidden))
        hidden = hidden.transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden)
        return hidden


class CoefficientHead(nn.Module):
    """(B, T, W) -> (B, T, K) motion-basis coefficients; zero-initialised so training starts at the training
    data's mean displacement (as FaceFormer starts at the template)."""

    def __init__(self, width: int, size: int):
        super().__init__()
        self.linear = nn.Linear(width, size)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)
