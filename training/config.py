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
    contrastive_weight: float = 1.0
    # A batch = batch_size / windows_per_clip clips x that many time offsets; the other offsets of a
    # window's own clip are its hard negatives (the paper's perceptual loss uses only those). With 8 per
    # clip (7 of 63 negatives) the small two-stage model learned clip identity (voice <-> face, loudness)
    # rather than timing, which did not carry over to unseen speakers (models/speech_mesh_two_stage).
    windows_per_clip: int = 8
    identity_mix: bool = True     # stage 2 / ablations: blend mesh windows towards other training identities
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
        stage2=StageConfig(steps=2000, batch_size=64, learning_rate=1e-3, warmup_steps=40, log_every=100),
        windows_per_clip=32,
    ),
    "full": Config(
        name="full",
        model=ModelConfig(),
        stage1=StageConfig(steps=100_000, batch_size=256, learning_rate=1e-4, warmup_steps=2000, log_every=500),
        stage2=StageConfig(steps=50_000, batch_size=256, learning_rate=1e-4, warmup_steps=1000, log_every=500),
        windows_per_clip=32,
    ),
}


def preset(name: str, **overrides) -> Config:
    """A preset by name; keyword overrides replace top-level fields (e.g. seed=1)."""
    if name not in PRESETS:
        raise BackendError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# --- Generators (issue 6): FaceFormer-style and KMTalk-style presets ----------------------------------
# Everything a generator run needs is one GeneratorConfig; `python -m training train` takes a preset
# name plus a few overrides. Presets: `tiny` (CI: seconds), `small` (shipped CPU models: minutes on
# 2 cores), `full` (FaceFormer-like width for a GPU).

GENERATOR_FAMILIES = ("faceformer", "kmtalk", "codetalker-vq", "codetalker", "selftalk")
KEY_FRAME_SOURCES = ("timeline", "uniform")


@dataclass(frozen=True)
class GeneratorConfig:
    """A generator run. family: faceformer | kmtalk. backbone (kmtalk only): the key-motion decoder,
    "transformer" (KMTalk) or "faceformer" (KMTalk's scheme plugged into the FaceFormer-style decoder).
    key_frames: phoneme boundaries from the timeline, or the `uniform` ablation (every
    uniform_spacing frames). audio_guidance: motion completion sees the audio (False = ablation).
    perceptual_weight: 0 = baseline; > 0 adds PerceptualLoss (published FaceFormer weight 1e-7).
    period: periodic positional encoding / ALiBi period in frames (FaceFormer: 25 at 25-30 fps).
    attention_block: self-attention is local in blocks of this many frames (sees >= this many either side)."""

    name: str
    family: str = "faceformer"
    width: int = 64
    heads: int = 4
    encoder_blocks: int = 2
    decoder_blocks: int = 2
    mel_bins: int = 80
    period: int = 25
    attention_block: int = 64
    backbone: str = "transformer"
    key_frames: str = "timeline"
    uniform_spacing: int = 3
    audio_guidance: bool = True
    perceptual_weight: float = 0.0
    steps: int = 600
    clips_per_step: int = 4
    learning_rate: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    seed: int = 0
    # Generators II (issue 7). CodeTalker-style: stage 1 family "codetalker-vq" learns a codebook of
    # codebook_size entries; each frame's latent (width) is cut into code_groups codes; commitment_weight
    # is the VQ-VAE beta. Stage 2 family "codetalker" loads the stage-1 checkpoint `motion_prior` (frozen)
    # and regresses the codes' latents with code_weight. SelfTalk-style: recogniser_weight (audio-side
    # phoneme CTC), lip_reading_weight (phoneme CTC of the lip reader on generated lips) and
    # consistency_weight (lip reader vs audio recogniser agreement) enter the loss in mm^2 units.
    codebook_size: int = 256
    code_groups: int = 4
    commitment_weight: float = 0.25
    code_weight: float = 0.1
    motion_prior: str = ""
    recogniser_weight: float = 0.01
    lip_reading_weight: float = 0.01
    consistency_weight: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict) -> "GeneratorConfig":
        return GeneratorConfig(**values)


GENERATOR_PRESETS = {
    "tiny": GeneratorConfig(name="tiny", width=16, heads=2, encoder_blocks=1, decoder_blocks=1, mel_bins=40,
                            steps=12, clips_per_step=2, warmup_steps=2, log_every=2, checkpoint_every=4),
    "small": GeneratorConfig(name="small"),
    "full": GeneratorConfig(name="full", width=256, heads=8, encoder_blocks=6, decoder_blocks=4, steps=40_000,
                            clips_per_step=8, learning_rate=1e-4, warmup_steps=1000, log_every=100,
                            checkpoint_every=1000),
}


def generator_preset(name: str, **overrides) -> GeneratorConfig:
    """A generator preset by name; keyword overrides replace fields (e.g. family="kmtalk", seed=1)."""
    if name not in GENERATOR_PRESETS:
        raise BackendError(f"unknown generator preset {name!r}; expected one of {', '.join(GENERATOR_PRESETS)}")
    unknown = sorted(set(overrides) - set(GeneratorConfig.__dataclass_fields__))
    if unknown:
        raise BackendError(f"unknown generator setting(s) {', '.join(unknown)}; "
                           f"known: {', '.join(GeneratorConfig.__dataclass_fields__)}")
    config = replace(GENERATOR_PRESETS[name], **overrides)
    if config.family not in GENERATOR_FAMILIES:
        raise BackendError(f"unknown generator family {config.family!r}; expected one of "
                           f"{', '.join(GENERATOR_FAMILIES)}")
    if config.key_frames not in KEY_FRAME_SOURCES:
        raise BackendError(f"unknown key-frame source {config.key_frames!r}; expected one of "
                           f"{', '.join(KEY_FRAME_SOURCES)}")
    if config.backbone not in ("transformer", "faceformer"):
        raise BackendError(f"unknown key-motion backbone {config.backbone!r}; expected transformer or faceformer")
    if config.width % config.code_groups:
        raise BackendError(f"width {config.width} is not a multiple of code_groups {config.code_groups}; "
                           "each code covers width / code_groups latent values")
    return config
