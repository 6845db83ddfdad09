"""Every setting of a generator run in one GeneratorConfig: shared sizes and schedule, then one section per family
(`kmtalk`, `codetalker`, `selftalk`) holding that family's options and loss weights. Checked by
training.configuration.build: presets with overrides, `--set KEY=VALUE` (`--set kmtalk.key_frames=uniform`) and
saved checkpoints alike.

Presets: `tiny` (CI: seconds), `small` (the shipped CPU models: a bounded number of steps sized to train in
about 8-10 minutes on 2 cores; see the model cards for the measured times), `full` (FaceFormer-like width for a
GPU).
"""

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from backend.errors import BackendError
from training.configuration import at_least, build, with_overrides

FAMILIES = ("faceformer", "kmtalk", "codetalker-vq", "codetalker", "selftalk")  # training.generators.families
KEY_FRAME_SOURCES = ("phonemes", "uniform")
BACKBONES = ("transformer", "faceformer")


@dataclass(frozen=True)
class KMTalkConfig:
    """backbone: the key-motion decoder, "transformer" (KMTalk) or "faceformer" (KMTalk's scheme plugged into the
    FaceFormer-style decoder). key_frames: "phonemes", the phones the speech front end recognises (its CTC
    spikes: the frames where the non-blank posterior peaks above 0.5), or the `uniform` ablation (every
    uniform_spacing frames). audio_guidance: motion completion sees the audio (False = ablation).
    key_weight: loss weight of the key-motion MSE (mm^2)."""

    backbone: str = "transformer"
    key_frames: str = "phonemes"
    uniform_spacing: int = 3
    audio_guidance: bool = True
    key_weight: float = 1.0
    WHAT: ClassVar[str] = "kmtalk"

    def check(self) -> list:
        problems = at_least({"kmtalk.uniform_spacing": self.uniform_spacing}, 1)
        problems += at_least({"kmtalk.key_weight": self.key_weight}, 0)
        if self.key_frames not in KEY_FRAME_SOURCES:
            problems.append(f"unknown key-frame source {self.key_frames!r}; expected one of {', '.join(KEY_FRAME_SOURCES)}")
        if self.backbone not in BACKBONES:
            problems.append(f"unknown key-motion backbone {self.backbone!r}; expected {' or '.join(BACKBONES)}")
        return problems


@dataclass(frozen=True)
class CodeTalkerConfig:
    """Stage 1 (family "codetalker-vq") learns a codebook of codebook_size entries; each frame's latent (width) is
    cut into code_groups codes; commitment_weight is the VQ-VAE beta. Stage 2 (family "codetalker") loads the
    stage-1 checkpoint `motion_prior` (frozen) and regresses the codes' latents with code_weight."""

    codebook_size: int = 256
    code_groups: int = 4
    commitment_weight: float = 0.25
    code_weight: float = 0.1
    motion_prior: str = ""
    WHAT: ClassVar[str] = "codetalker"

    def check(self) -> list:
        return (at_least({"codetalker.codebook_size": self.codebook_size, "codetalker.code_groups": self.code_groups}, 1)
                + at_least({"codetalker.commitment_weight": self.commitment_weight,
                            "codetalker.code_weight": self.code_weight}, 0))


@dataclass(frozen=True)
class SelfTalkConfig:
    """Loss weights (mm^2 units): recogniser_weight (audio-side phoneme CTC), lip_reading_weight (phoneme CTC of
    the lip reader on real and generated lips), consistency_weight (lip reader vs audio recogniser agreement)."""

    recogniser_weight: float = 0.01
    lip_reading_weight: float = 0.01
    consistency_weight: float = 0.01
    WHAT: ClassVar[str] = "selftalk"

    def check(self) -> list:
        return at_least({f"selftalk.{key}": value for key, value in asdict(self).items()}, 0)


@dataclass(frozen=True)
class GeneratorConfig:
    """A generator run. Input: the speech front end's features (backend.generators contract v2); conv_layers
    dilated convolutions and encoder_blocks attention blocks encode them (training.generators.audio_encoder).
    Output: basis_size coefficients of the fixed motion basis (training.generators.motion_basis).
    Loss (training.generators.train): vertex MSE + lip_gap_weight x lip-gap error (both mm^2), frames inside
    /p b m/ weighted bilabial_weight, + closure_weight x the closure term: on /p b m/ frames where the target's
    lips are shut (within the benchmark's 1 mm of the rest gap), the squared excess of the generated gap over
    rest gap + closure_margin_mm (mm^2; zero when the lips are shut there); steps see random crops of crop_frames frames (0 = whole clips);
    variants: copies per clip in the fixed augmentation pool (1 = clean audio only; the others follow
    training.corpus.augment's plans, their features cached once). perceptual_weight: 0 = baseline; > 0 adds
    PerceptualLoss (published FaceFormer weight 1e-7). init_from: a generator checkpoint of the same family and
    data whose weights the run starts from (fine-tuning, e.g. "+ perceptual"; "" = from scratch). period: periodic positional encoding / ALiBi period in
    frames (FaceFormer: 25 at 25-30 fps). attention_block: self-attention is local in blocks of this many frames
    (sees >= this many either side). Schedule (training.loop): linear warm-up, cosine decay to
    learning_rate_floor x learning_rate."""

    name: str
    family: str = "faceformer"
    width: int = 64
    heads: int = 4
    conv_layers: int = 4
    encoder_blocks: int = 1
    decoder_blocks: int = 2
    basis_size: int = 48
    period: int = 25
    attention_block: int = 64
    lip_gap_weight: float = 0.2
    bilabial_weight: float = 3.0
    closure_weight: float = 0.0
    closure_margin_mm: float = 0.5
    crop_frames: int = 240
    variants: int = 1
    perceptual_weight: float = 0.0
    init_from: str = ""
    steps: int = 600
    clips_per_step: int = 4
    learning_rate: float = 1e-3
    learning_rate_floor: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    seed: int = 0
    kmtalk: KMTalkConfig = field(default_factory=KMTalkConfig)
    codetalker: CodeTalkerConfig = field(default_factory=CodeTalkerConfig)
    selftalk: SelfTalkConfig = field(default_factory=SelfTalkConfig)
    WHAT: ClassVar[str] = "generator"

    def check(self) -> list:
        if self.family not in FAMILIES:
            return [f"unknown generator family {self.family!r}; expected one of {', '.join(FAMILIES)}"]
        problems = at_least({key: getattr(self, key) for key in (
            "width", "heads", "decoder_blocks", "basis_size", "period", "attention_block", "steps", "variants",
            "clips_per_step", "log_every", "checkpoint_every")}, 1)
        problems += at_least({key: getattr(self, key) for key in (
            "warmup_steps", "weight_decay", "perceptual_weight", "conv_layers", "encoder_blocks", "lip_gap_weight",
            "crop_frames", "closure_weight", "closure_margin_mm")}, 0)
        problems += at_least({"bilabial_weight": self.bilabial_weight}, 1)
        if self.learning_rate <= 0 or self.grad_clip <= 0:
            problems.append(f"learning_rate and grad_clip must be positive; got {self.learning_rate} and "
                            f"{self.grad_clip}")
        if not 0 <= self.learning_rate_floor <= 1:
            problems.append(f"learning_rate_floor is a fraction of learning_rate (0..1); got {self.learning_rate_floor}")
        if self.heads >= 1 and self.width % self.heads:
            problems.append(f"width {self.width} is not divisible by heads {self.heads}; each attention head takes "
                            "width / heads values")
        if self.codetalker.code_groups >= 1 and self.width % self.codetalker.code_groups:
            problems.append(f"width {self.width} is not a multiple of codetalker.code_groups "
                            f"{self.codetalker.code_groups}; each code covers width / code_groups latent values")
        return problems

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict) -> "GeneratorConfig":
        return build(GeneratorConfig, values)


PRESETS = {
    "tiny": GeneratorConfig(name="tiny", width=16, heads=2, conv_layers=2, encoder_blocks=0, decoder_blocks=1,
                            basis_size=8, crop_frames=60, steps=12, clips_per_step=2, warmup_steps=2, log_every=2,
                            checkpoint_every=4),
    "small": GeneratorConfig(name="small", steps=3000, clips_per_step=4, learning_rate=2e-3, warmup_steps=100,
                             log_every=50, checkpoint_every=250, variants=3, closure_weight=1.0),
    "full": GeneratorConfig(name="full", width=256, heads=8, conv_layers=5, encoder_blocks=4, decoder_blocks=4,
                            basis_size=64, crop_frames=450, variants=6, steps=40_000, clips_per_step=8,
                            learning_rate=3e-4, warmup_steps=1000, log_every=100, checkpoint_every=1000),
}


# Steps of the `small` preset per family: each family's step costs differently (KMTalk runs two backbones,
# SelfTalk a lip reader and three CTCs, CodeTalker two stages), so each gets the steps that fit its time budget
# of about 7 minutes of steps on 2 shared cores (the model cards give the measured times).
FAMILY_STEPS = {"small": {"faceformer": 2200, "kmtalk": 1200, "codetalker-vq": 500, "codetalker": 1200,
                          "selftalk": 1400}}


def generator_preset(name: str, **overrides) -> GeneratorConfig:
    """A generator preset by name with overrides (plain values, dicts for sections: family="kmtalk",
    kmtalk={"key_frames": "uniform"}), checked; a preset's FAMILY_STEPS come before the overrides."""
    if name not in PRESETS:
        raise BackendError(f"unknown generator preset {name!r}; expected one of {', '.join(PRESETS)}")
    family = overrides.get("family", PRESETS[name].family)
    steps = FAMILY_STEPS.get(name, {}).get(family)
    return with_overrides(PRESETS[name], {**({"steps": steps} if steps else {}), **overrides})
