"""Speech-mesh representation networks (REFERENCE §3): transformer encoders for speech, lip video and
FLAME meshes, the stage-1 audio-visual pre-trainer (masked reconstruction + cross-attention fusion),
and a 3D SyncNet-style convolutional baseline.

Shapes: speech either front-end features (B, 5, 447) (backend.speech_frontend at 30 fps: the default speech
side, `model.speech_input = "frontend"`) or the published fbank (B, 20, 128) normalised log-mel (`"fbank"`);
video (B, 5, S, S) grey mouth frames in [0, 1]; vertices (B, 5, 15069) absolute positions in metres. Every
encoder returns an L2-normalised (B, width) embedding (mean-pooled tokens), so cosine similarity is a dot
product. Each speech encoder says what it takes in `input_name` / `input_shape` (the PLRS contract's names).
"""

import torch
import torch.nn.functional as F
from torch import nn

from backend.features import FBANK_BINS, FBANK_FRAMES, WINDOW_FRAMES
from backend.flame import VERTEX_VALUES
from backend.metrics.plrs import FBANK_INPUT, FRONTEND_DIM, FRONTEND_INPUT
from training.representation.config import ModelConfig

SPEECH_PATCH = 16                                           # fbank bins per speech token
SHORT_CONTEXT = 16                                          # attention over at most this many tokens: plain maths
SPEECH_TOKENS = FBANK_FRAMES * (FBANK_BINS // SPEECH_PATCH)  # 160


class Attention(nn.Module):
    """Multi-head attention of `queries` (B, N, W) over `context` (B, M, W) -> (B, N, W)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        def split(tensor):  # (B, N, W) -> (B, heads, N, W / heads)
            return tensor.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        key, value = self.key_value(context).chunk(2, dim=-1)
        query, key, value = split(self.query(queries)), split(key), split(value)
        if key.shape[2] <= SHORT_CONTEXT:   # plain softmax attention: for a few tokens (a 5-frame window) the fused
            weights = (query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5).softmax(-1)   # CPU kernel is 3x dearer
            mixed = weights @ value
        else:
            mixed = F.scaled_dot_product_attention(query, key, value)
        return self.out(mixed.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention to `context`, MLP (4x)."""

    def __init__(self, width: int, heads: int, cross: bool = False):
        super().__init__()
        self.self_norm, self.self_attention = nn.LayerNorm(width), Attention(width, heads)
        self.cross_norm = nn.LayerNorm(width) if cross else None
        self.cross_attention = Attention(width, heads) if cross else None
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, tokens: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.self_norm(tokens)
        tokens = tokens + self.self_attention(normed, normed)
        if self.cross_attention is not None:
            tokens = tokens + self.cross_attention(self.cross_norm(tokens), context)
        return tokens + self.mlp(self.mlp_norm(tokens))


class TokenEncoder(nn.Module):
    """Learned positions + `blocks` transformer blocks + LayerNorm over (B, N, W) tokens.

    `keep` (B, K) token indices encodes only those tokens (masked pre-training); None keeps all.
    """

    def __init__(self, tokens: int, width: int, heads: int, blocks: int):
        super().__init__()
        self.position = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        tokens = tokens + self.position
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def pooled_embedding(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, W) tokens -> (B, W) mean-pooled, L2-normalised embedding."""
    return F.normalize(tokens.mean(dim=1), dim=-1)


class SpeechEncoder(nn.Module):
    """fbank (B, 20, 128) -> embedding (B, width). Tokens: Conv2d(1, width, (1, 16), stride (1, 16))."""

    input_name, input_shape = FBANK_INPUT, (FBANK_FRAMES, FBANK_BINS)
    token_count, patch_values = SPEECH_TOKENS, SPEECH_PATCH

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.tokenizer = nn.Conv2d(1, config.width, (1, SPEECH_PATCH), stride=(1, SPEECH_PATCH))
        self.encoder = TokenEncoder(SPEECH_TOKENS, config.width, config.heads, config.blocks)

    def tokens(self, fbank: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 20, 128) -> encoded tokens (B, 160 or K, width)."""
        return self.encoder(self.tokenizer(fbank[:, None]).flatten(2).transpose(1, 2), keep)

    def patches(self, fbank: torch.Tensor) -> torch.Tensor:
        """(B, 20, 128) -> (B, 160, 16): the masked-reconstruction targets, in token order."""
        return fbank.unflatten(2, (-1, SPEECH_PATCH)).flatten(1, 2)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return pooled_embedding(self.tokens(fbank))


class FeatureStandardiser(nn.Module):
    """(..., D) features -> per-value standardised, mean/std buffers set from training frames (`fit`), so
    exported models still take the raw features."""

    def __init__(self, values: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(values))
        self.register_buffer("std", torch.ones(values))

    @torch.no_grad()
    def fit(self, frames: torch.Tensor, min_std: float = 1e-3) -> None:
        """frames: (N, D) training feature rows."""
        self.mean.copy_(frames.mean(0))
        self.std.copy_(frames.std(0).clamp_min(min_std))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std


class FrontendSpeechEncoder(nn.Module):
    """Front-end features (B, 5, 447) at 30 fps -> embedding (B, width): standardised, one token per frame
    (Linear(447 -> width)), transformer blocks, mean-pool. The features come from a recogniser pretrained on real
    speech and level-normalised per clip (backend.speech_frontend), so only these small layers learn here."""

    input_name, input_shape = FRONTEND_INPUT, (WINDOW_FRAMES, FRONTEND_DIM)
    token_count, patch_values = WINDOW_FRAMES, FRONTEND_DIM

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.standardise = FeatureStandardiser(FRONTEND_DIM)
        self.tokenizer = nn.Linear(FRONTEND_DIM, config.width)
        self.encoder = TokenEncoder(WINDOW_FRAMES, config.width, config.heads, config.blocks)

    def tokens(self, speech: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 5, 447) -> encoded tokens (B, 5 or K, width)."""
        return self.encoder(self.tokenizer(self.standardise(speech)), keep)

    def patches(self, speech: torch.Tensor) -> torch.Tensor:
        """(B, 5, 447) -> (B, 5, 447) standardised: the masked-reconstruction targets, one per token."""
        return self.standardise(speech)

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        return pooled_embedding(self.tokens(speech))


def build_speech_encoder(config: ModelConfig) -> nn.Module:
    """The transformer speech encoder for `config.speech_input`."""
    return FrontendSpeechEncoder(config) if config.speech_input == FRONTEND_INPUT else SpeechEncoder(config)


class VideoEncoder(nn.Module):
    """Mouth video (B, 5, S, S) -> embedding (B, width). Tokens: Conv3d with (1, p, p) tubelets."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.video_size % config.video_patch:
            raise ValueError(f"video_size {config.video_size} must be a multiple of video_patch {config.video_patch}")
        patch = config.video_patch
        self.tokenizer = nn.Conv3d(1, config.width, (1, patch, patch), stride=(1, patch, patch))
        self.token_count = WINDOW_FRAMES * (config.video_size // patch) ** 2
        self.encoder = TokenEncoder(self.token_count, config.width, config.heads, config.blocks)

    def tokens(self, video: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 5, S, S) -> encoded tokens (B, 5 * (S / p)^2 or K, width)."""
        return self.encoder(self.tokenizer(video[:, None] - 0.5).flatten(2).transpose(1, 2), keep)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return pooled_embedding(self.tokens(video))


class VertexStandardiser(FeatureStandardiser):
    """(B, 5, 15069) absolute positions -> per-value standardised, with mean/std buffers set from
    training frames (`fit`), so exported models still take absolute positions in metres."""

    def __init__(self, values: int = VERTEX_VALUES):
        super().__init__(values)

    @torch.no_grad()
    def fit(self, frames: torch.Tensor, min_std: float = 1e-4) -> None:
        """frames: (N, 15069) training frames (or within-window displacements) in metres; std is floored at
        `min_std` metres."""
        super().fit(frames, min_std)


def standardised_linear(linear: nn.Linear, standardise: FeatureStandardiser, values: torch.Tensor) -> torch.Tensor:
    """linear(standardise(values)) with the standardiser folded into the weights (W / std, b - W mean / std): the
    same map without two passes over the (..., 15069) input, which cost more than the projection (per-step time of
    the perceptual loss)."""
    weight = linear.weight / standardise.std
    return F.linear(values, weight, linear.bias - weight @ standardise.mean)


class MeshValues(nn.Module):
    """The mesh values an encoder reads, standardised: all 15069 (`count` 0, as published) or the `count` values
    that move most in training (`fit`: lips and jaw on a rig-animated corpus; reading fewer values makes the
    per-frame projection, the dearest part of the perceptual loss, that much cheaper)."""

    def __init__(self, count: int = 0):
        super().__init__()
        count = count or VERTEX_VALUES
        self.register_buffer("index", torch.arange(count))
        self.standardise = VertexStandardiser(count)

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> None:
        """frames: (N, 15069) training frames or within-window displacements (m)."""
        if len(self.index) < VERTEX_VALUES:
            self.index.copy_(frames.std(0).topk(len(self.index)).indices.sort().values)
        self.standardise.fit(frames[:, self.index])

    def full(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """(count,) values -> (15069,) with `fill` at the values not read (for example inputs)."""
        return torch.full((VERTEX_VALUES,), fill).index_copy(0, self.index, values)

    def project(self, linear: nn.Linear, frames: torch.Tensor) -> torch.Tensor:
        """linear(standardised read values) of (..., 15069) frames."""
        if len(self.index) < VERTEX_VALUES:
            frames = frames.index_select(-1, self.index)
        return standardised_linear(linear, self.standardise, frames)


class MeshEncoder(nn.Module):
    """vertices (B, 5, 15069) -> embedding (B, width). One token per frame: Linear(15069 -> width) (or of the
    `mesh_values` values read, see MeshValues).

    `centred` (config.mesh_centring): each window's tokens lose their window mean, which is exactly the
    tokens of the window's displacements from its own mean shape (the tokenizer is affine), so the subject's
    face shape (its identity) and the pose held through the window never reach the transformer: only motion
    does. Frames are still tokenised once each (the perceptual loss shares them between windows)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.centred = config.mesh_centring
        self.values = MeshValues(config.mesh_values)
        self.tokenizer = nn.Linear(len(self.values.index), config.width)
        self.encoder = TokenEncoder(WINDOW_FRAMES, config.width, config.heads, config.blocks)

    def frame_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 15069) frames -> (..., width) tokens; per frame, so overlapping windows can share them."""
        return self.values.project(self.tokenizer, frames)

    def encode_windows(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 5, width) frame tokens -> (B, width) embedding."""
        if self.centred:
            tokens = tokens - tokens.mean(dim=1, keepdim=True) + self.tokenizer.bias
        return pooled_embedding(self.encoder(tokens))

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        return self.encode_windows(self.frame_tokens(vertices))


def random_keep(batch: int, tokens: int, keep: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random token subsets: (kept indices (B, keep) sorted, masked indices (B, tokens - keep))."""
    order = torch.rand(batch, tokens, device=device).argsort(dim=1)
    return order[:, :keep].sort(dim=1).values, order[:, keep:]


class MaskedDecoder(nn.Module):
    """Reconstructs all tokens' patches from the kept, fused tokens: Linear -> scatter into mask tokens
    -> positions -> self-attention blocks with cross-attention to the other modality -> LN -> Linear."""

    def __init__(self, tokens: int, width: int, config: ModelConfig, patch_values: int):
        super().__init__()
        decoder_width = config.decoder_width
        self.embed = nn.Linear(width, decoder_width)
        self.context = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.position = nn.Parameter(torch.randn(1, tokens, decoder_width) * 0.02)
        heads = max(1, decoder_width // 32)
        self.blocks = nn.ModuleList(Block(decoder_width, heads, cross=True) for _ in range(config.decoder_blocks))
        self.norm = nn.LayerNorm(decoder_width)
        self.head = nn.Linear(decoder_width, patch_values)

    def forward(self, kept: torch.Tensor, keep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """kept (B, K, W) fused tokens at indices keep (B, K); context (B, M, W) -> patches (B, N, P)."""
        batch, tokens = kept.shape[0], self.position.shape[1]
        full = self.mask_token.expand(batch, tokens, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, full.shape[-1]), self.embed(kept))
        full = full + self.position
        context = self.context(context)
        for block in self.blocks:
            full = block(full, context)
        return self.head(self.norm(full))


class AudioVisualPretrainer(nn.Module):
    """Stage 1: speech and lip-video encoders, cross-attention fusion, masked reconstruction of both.

    forward(speech (B, 20, 128) fbank or (B, 5, 447) front-end features, video (B, 5, S, S), mask_ratio,
    speech_mask_ratio (default mask_ratio)) returns
    (speech embedding (B, W), video embedding (B, W), reconstruction loss): the unimodal encoders'
    pooled embeddings of the visible tokens (for the contrastive term, as CAV-MAE does, so one masked
    pass serves both terms) and the reconstruction MSE on the masked patches.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.speech_encoder = build_speech_encoder(config)
        self.video_encoder = VideoEncoder(config)
        width = config.width
        self.speech_fusion = nn.ModuleList(Block(width, config.heads, cross=True) for _ in range(config.fusion_blocks))
        self.video_fusion = nn.ModuleList(Block(width, config.heads, cross=True) for _ in range(config.fusion_blocks))
        self.patch = config.video_patch
        speech = self.speech_encoder
        self.speech_decoder = MaskedDecoder(speech.token_count, width, config, speech.patch_values)
        self.video_decoder = MaskedDecoder(self.video_encoder.token_count, width, config, self.patch ** 2)

    def video_patches(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 5, S, S) -> (B, 5 * (S / p)^2, p * p), in the Conv3d token order (frame, row, column)."""
        p = self.patch
        grid = video.unflatten(2, (-1, p)).unflatten(4, (-1, p))  # (B, 5, rows, p, cols, p)
        return (grid.permute(0, 1, 2, 4, 3, 5) - 0.5).flatten(1, 3).flatten(2)

    def forward(self, fbank: torch.Tensor, video: torch.Tensor, mask_ratio: float,
                speech_mask_ratio: float | None = None):
        batch, speech_tokens = fbank.shape[0], self.speech_encoder.token_count
        speech_ratio = mask_ratio if speech_mask_ratio is None else speech_mask_ratio
        speech_keep, speech_masked = random_keep(batch, speech_tokens, _kept(speech_tokens, speech_ratio), fbank.device)
        video_tokens = self.video_encoder.token_count
        video_keep, video_masked = random_keep(batch, video_tokens, _kept(video_tokens, mask_ratio), fbank.device)
        speech = self.speech_encoder.tokens(fbank, speech_keep)
        video_kept = self.video_encoder.tokens(video, video_keep)
        speech_embedding, video_embedding = pooled_embedding(speech), pooled_embedding(video_kept)
        for speech_block, video_block in zip(self.speech_fusion, self.video_fusion):
            speech, video_kept = speech_block(speech, video_kept), video_block(video_kept, speech)
        speech_error = _masked_error(self.speech_decoder(speech, speech_keep, video_kept),
                                     self.speech_encoder.patches(fbank), speech_masked)
        video_error = _masked_error(self.video_decoder(video_kept, video_keep, speech),
                                    self.video_patches(video), video_masked)
        return speech_embedding, video_embedding, speech_error + video_error


def _kept(tokens: int, mask_ratio: float) -> int:
    return max(1, int(round(tokens * (1.0 - mask_ratio))))


def _masked_error(predicted: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens only. predicted/target (B, N, P), masked (B, M)."""
    index = masked[..., None].expand(-1, -1, target.shape[-1])
    return F.mse_loss(torch.gather(predicted, 1, index), torch.gather(target, 1, index))


class SyncNetSpeechEncoder(nn.Module):
    """3D SyncNet-style baseline, speech side: fbank (B, 20, 128) -> (B, channels) via a 2D conv stack."""

    input_name, input_shape = FBANK_INPUT, (FBANK_FRAMES, FBANK_BINS)

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.syncnet_channels
        self.layers = nn.Sequential(
            _conv2d(1, c // 4, (3, 3), (1, 2)), _conv2d(c // 4, c // 2, (3, 3), (2, 2)),
            _conv2d(c // 2, c, (3, 3), (2, 2)), _conv2d(c, c, (3, 3), (2, 2)),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, c))

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layers(fbank[:, None]), dim=-1)


class SyncNetFrontendSpeechEncoder(nn.Module):
    """3D SyncNet-style baseline on the front end: features (B, 5, 447) -> (B, channels): standardised,
    a per-frame linear projection, temporal 1D convolutions (as the mesh side), pool, Linear."""

    input_name, input_shape = FRONTEND_INPUT, (WINDOW_FRAMES, FRONTEND_DIM)

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.syncnet_channels
        self.standardise = FeatureStandardiser(FRONTEND_DIM)
        self.project = nn.Linear(FRONTEND_DIM, c)
        self.temporal = _temporal_stack(c)

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        frames = F.relu(self.project(self.standardise(speech)))
        return F.normalize(self.temporal(frames.transpose(1, 2)), dim=-1)


def _temporal_stack(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.BatchNorm1d(c), nn.ReLU(),
                         nn.Conv1d(c, c, 3, padding=1), nn.BatchNorm1d(c), nn.ReLU(),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, c))


class SyncNetMeshEncoder(nn.Module):
    """3D SyncNet-style baseline, mesh side: vertices (B, 5, 15069) -> (B, channels): a per-frame
    linear projection followed by temporal 1D convolutions (SyncNet's video stream, on meshes); `centred` as
    MeshEncoder (the window mean of the projections is removed before the ReLU)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.syncnet_channels
        self.centred = config.mesh_centring
        self.values = MeshValues(config.mesh_values)
        self.project = nn.Linear(len(self.values.index), c)
        self.temporal = _temporal_stack(c)

    def frame_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 15069) frames -> (..., channels) per-frame projections."""
        return self.values.project(self.project, frames)

    def encode_windows(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 5, channels) frame projections -> (B, channels) embedding."""
        if self.centred:
            tokens = tokens - tokens.mean(dim=1, keepdim=True) + self.project.bias
        return F.normalize(self.temporal(F.relu(tokens).transpose(1, 2)), dim=-1)

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        return self.encode_windows(self.frame_tokens(vertices))


def _conv2d(channels_in: int, channels_out: int, kernel, stride) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, kernel, stride, padding),
                         nn.BatchNorm2d(channels_out), nn.ReLU())


def build_encoders(variant: str, config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """(speech encoder, mesh encoder) for a representation variant: 'two-stage' and 'no-2d-prior' use
    the transformers, 'syncnet' the convolutional baseline; the speech side hears `config.speech_input`."""
    if variant == "syncnet":
        speech = SyncNetFrontendSpeechEncoder if config.speech_input == FRONTEND_INPUT else SyncNetSpeechEncoder
        return speech(config), SyncNetMeshEncoder(config)
    return build_speech_encoder(config), MeshEncoder(config)


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())

