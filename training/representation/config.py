"""Every hyper-parameter of the speech-mesh representation, and its presets, in one place (checked by
training.configuration.build: presets with overrides, `--set` and saved checkpoints alike).

Presets: `tiny` (CI: trains in seconds on 2 CPU cores), `small` (the shipped CPU models: 2-7 minutes a variant on
2 cores, models/speech_mesh/MODEL_CARD.md), `full` (the published size: width 512, 8 heads, 10 blocks per encoder,
every mesh value; for a GPU). All hear the speech front end unless `model.speech_input=fbank`.
"""

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from backend.errors import BackendError
from training.configuration import at_least, build, with_overrides


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
    # What the speech side hears: "frontend" (backend.speech_frontend features at 30 fps, pretrained on real
    # speech) or "fbank" (the published 20x128 log-mel, learned from scratch: the first release's speech side).
    speech_input: str = "frontend"
    # Mesh windows lose their own mean shape (identity and held pose): the encoder sees displacements only.
    mesh_centring: bool = True
    # Mesh values read (0 = all 15069, as published): the small preset reads the 3000 that move most in training
    # (lips, jaw), which makes the perceptual loss's per-frame projection 5x cheaper.
    mesh_values: int = 0
    WHAT: ClassVar[str] = "representation model"

    def check(self) -> list:
        sizes = {key: value for key, value in asdict(self).items()
                 if key not in ("speech_input", "mesh_centring", "mesh_values")}
        problems = at_least({"model." + key: value for key, value in sizes.items()}, 1)
        if not 0 <= self.mesh_values <= 15069:
            problems.append(f"model.mesh_values must lie in 0..15069 (0 = all); got {self.mesh_values}")
        if self.speech_input not in ("frontend", "fbank"):
            problems.append(f"model.speech_input {self.speech_input!r}: expected 'frontend' or 'fbank'")
        for name, width, heads in (("width", self.width, self.heads), ("decoder_width", self.decoder_width, self.heads)):
            if heads >= 1 and width % heads:
                problems.append(f"model.{name} {width} is not divisible by model.heads {heads}; each attention "
                                f"head takes {name} / heads values")
        if self.video_patch >= 1 and self.video_size % self.video_patch:
            problems.append(f"model.video_size {self.video_size} is not a multiple of model.video_patch "
                            f"{self.video_patch}")
        return problems


@dataclass(frozen=True)
class StageConfig:
    """One training stage: optimiser schedule (AdamW, linear warm-up then cosine decay to
    learning_rate_floor x learning_rate), batch size, and how often training.loop logs and checkpoints."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 100
    learning_rate_floor: float = 0.0
    WHAT: ClassVar[str] = "representation stage"

    def check(self) -> list:
        problems = at_least({"steps": self.steps, "batch_size": self.batch_size, "log_every": self.log_every,
                             "checkpoint_every": self.checkpoint_every}, 1)
        problems += at_least({"warmup_steps": self.warmup_steps, "weight_decay": self.weight_decay}, 0)
        if self.learning_rate <= 0 or self.grad_clip <= 0:
            problems.append(f"learning_rate and grad_clip must be positive; got {self.learning_rate} and "
                            f"{self.grad_clip}")
        if not 0 <= self.learning_rate_floor <= 1:
            problems.append(f"learning_rate_floor is a fraction of learning_rate (0..1); got {self.learning_rate_floor}")
        return problems


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
    # Front-end speech has 5 tokens (one per frame), not 160 patches: masking 75 % would leave one frame visible,
    # too little for the contrastive term to learn timing from; 0.4 keeps 3 of 5.
    frontend_mask_ratio: float = 0.4
    contrastive_weight: float = 1.0
    # A batch = batch_size / windows_per_clip clips x that many time offsets; the other offsets of a
    # window's own clip are its hard negatives (the paper's perceptual loss uses only those). With 8 offsets
    # drawn anywhere in a clip (7 of 63 negatives) the first release's two-stage model learned clip identity
    # (voice <-> face, loudness) rather than timing (true - shuffled margin 0.031 on unseen speakers).
    windows_per_clip: int = 8
    # The starts of one clip's windows are a run `offset_spacing` frames apart (0: drawn anywhere in the clip),
    # so its hard negatives are the same speech 3, 6, ... 15 frames off: only timing tells them apart.
    offset_spacing: int = 0
    identity_mix: bool = True     # stage 2 / ablations: blend mesh windows towards other training identities
    # Which half of the training clips to use (by a hash of the sentence, so halves share no utterance): the
    # PLRS evaluator trains on the other half than the perceptual-loss critic. -1 = all.
    data_half: int = -1
    stage1_max_frames: int = 0    # stage 1 renders mouth video of at most this many frames (0 = every clip)
    max_train_frames: int = 0     # at most this many training frames in memory (float32 vertices; 0 = all)
    seed: int = 0
    ablation: StageConfig | None = field(default=None)  # "no 2D prior" and SyncNet runs; None = stage2's schedule
    WHAT: ClassVar[str] = "representation"

    def check(self) -> list:
        problems = at_least({"windows_per_clip": self.windows_per_clip}, 1)
        problems += at_least({"offset_spacing": self.offset_spacing, "stage1_max_frames": self.stage1_max_frames,
                              "max_train_frames": self.max_train_frames}, 0)
        if self.data_half not in (-1, 0, 1):
            problems.append(f"data_half must be 0, 1 or -1 (all clips); got {self.data_half!r}")
        if self.temperature <= 0:
            problems.append(f"temperature must be positive; got {self.temperature}")
        for name, ratio in (("mask_ratio", self.mask_ratio), ("frontend_mask_ratio", self.frontend_mask_ratio)):
            if not 0 < ratio < 1:
                problems.append(f"{name} must lie strictly between 0 and 1; got {ratio}")
        if self.contrastive_weight < 0:
            problems.append(f"contrastive_weight must be at least 0; got {self.contrastive_weight}")
        return problems

    @property
    def ablation_stage(self) -> StageConfig:
        return self.ablation or self.stage2

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict) -> "Config":
        return build(Config, values)


PRESETS = {
    "tiny": Config(
        name="tiny",
        model=ModelConfig(width=32, heads=2, blocks=1, fusion_blocks=1, decoder_width=32, decoder_blocks=1,
                          video_size=16, video_patch=8, syncnet_channels=32),
        stage1=StageConfig(steps=30, batch_size=32, learning_rate=1e-3, warmup_steps=5, log_every=10),
        stage2=StageConfig(steps=60, batch_size=64, learning_rate=1e-3, warmup_steps=5, log_every=20),
        offset_spacing=3,
    ),
    "small": Config(
        name="small",
        model=ModelConfig(width=64, heads=4, blocks=3, fusion_blocks=1, decoder_width=32, decoder_blocks=1,
                          video_size=32, video_patch=8, syncnet_channels=64, mesh_values=3000),
        stage1=StageConfig(steps=600, batch_size=66, learning_rate=1e-3, warmup_steps=40, log_every=100),
        stage2=StageConfig(steps=1500, batch_size=66, learning_rate=1e-3, warmup_steps=40, log_every=100),
        windows_per_clip=11, offset_spacing=3, stage1_max_frames=15_000, max_train_frames=30_000,
    ),
    "full": Config(
        name="full",
        model=ModelConfig(),
        stage1=StageConfig(steps=100_000, batch_size=256, learning_rate=1e-4, warmup_steps=2000, log_every=500,
                           checkpoint_every=1000),
        stage2=StageConfig(steps=50_000, batch_size=264, learning_rate=1e-4, warmup_steps=1000, log_every=500,
                           checkpoint_every=1000),
        windows_per_clip=11, offset_spacing=3,
    ),
}


def preset(name: str, **overrides) -> Config:
    """A preset by name with overrides (plain values, dicts for sections: seed=1, stage2={"steps": 5}), checked."""
    if name not in PRESETS:
        raise BackendError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return with_overrides(PRESETS[name], overrides)
