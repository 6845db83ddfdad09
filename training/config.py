"""Every hyper-parameter of the speech-mesh representation, and its presets, in one place.

Presets: `tiny` (CI: trains in seconds on 2 CPU cores), `small` (the shipped CPU model: minutes on
2 cores), `full` (the published size: width 512, 8 heads, 10 blocks per encoder; for a GPU).
"""

from dataclasses import asdict, dataclass, field, replace

from backend.errors import BackendError


@dataclass(frozen=True)
class ModelConfig:
    """Encoder sizes. Speech tokens: Conv2d (1, 16) patches of the 20x128 fbank (160 tokens); video
    tokens: video_patch x video_patch patches of each of the 5 mouth frames; mesh tokens: one per frame."""

    width: int = 512
    heads: int = 8
    blocks: int = 10              # per unimodal encoder (speech, video, mesh)
    fusion_blocks: int = 2        # stage 1 cross-attention fusion
    decoder_width: int = 256      # stage 1 masked-reconstruction decoders
    decoder_blocks: int = 2
    video_size: int = 64          # mouth crops are video_size x video_size grey pixels
    video_patch: int = 8
    syncnet_channels: int = 256   # 3D SyncNet-style baseline conv width


@dataclass(frozen=True)
class StageConfig:
    """One training stage: optimiser schedule (AdamW, linear warm-up then cosine decay) and batch size."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    log_every: int = 50


@dataclass(frozen=True)
class Config:
    """A preset. temperature: InfoNCE temperature (published 0.07); mask_ratio: stage-1 masked tokens;
    contrastive_weight: stage-1 loss = reconstruction + contrastive_weight * InfoNCE."""

    name: str
    model: ModelConfig
    stage1: StageConfig
    stage2: StageConfig
    temperature: float = 0.07
    mask_ratio: float = 0.75
    contrastive_weight: float = 0.1
    windows_per_clip: int = 8     # a batch = batch_size / windows_per_clip clips x that many time offsets
    seed: int = 0
    ablation: StageConfig = field(default=None)  # "no 2D prior" and SyncNet runs; None = stage2's schedule

    @property
    def ablation_stage(self) -> StageConfig:
        return self.ablation or self.stage2

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict) -> "Config":
        stages = {key: StageConfig(**values[key]) if values.get(key) else None
                  for key in ("stage1", "stage2", "ablation")}
        rest = {key: value for key, value in values.items() if key not in ("model", *stages)}
        return Config(model=ModelConfig(**values["model"]), **stages, **rest)


PRESETS = {
    "tiny": Config(
        name="tiny",
        model=ModelConfig(width=32, heads=2, blocks=1, fusion_blocks=1, decoder_width=32, decoder_blocks=1,
                          video_size=16, video_patch=8, syncnet_channels=32),
        stage1=StageConfig(steps=30, batch_size=32, learning_rate=1e-3, warmup_steps=5, log_every=10),
        stage2=StageConfig(steps=60, batch_size=64, learning_rate=1e-3, warmup_steps=5, log_every=20),
    ),
    "small": Config(
        name="small",
        model=ModelConfig(width=64, heads=4, blocks=3, fusion_blocks=1, decoder_width=32, decoder_blocks=1,
                          video_size=32, video_patch=8, syncnet_channels=64),
        stage1=StageConfig(steps=800, batch_size=64, learning_rate=1e-3, warmup_steps=40, log_every=100),
        stage2=StageConfig(steps=800, batch_size=64, learning_rate=1e-3, warmup_steps=40, log_every=100),
    ),
    "full": Config(
        name="full",
        model=ModelConfig(),
        stage1=StageConfig(steps=100_000, batch_size=256, learning_rate=1e-4, warmup_steps=2000, log_every=500),
        stage2=StageConfig(steps=50_000, batch_size=256, learning_rate=1e-4, warmup_steps=1000, log_every=500),
    ),
}


def preset(name: str, **overrides) -> Config:
    """A preset by name; keyword overrides replace top-level fields (e.g. seed=1)."""
    if name not in PRESETS:
        raise BackendError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
