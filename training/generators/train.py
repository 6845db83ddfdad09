"""Training of a generator family with the one training loop (training.loop): seeded, logged (CSV + PNG),
progress bar, atomic checkpoints, `--resume`, torchrun (gloo on CPU, nccl on GPU), GPU when present.

Before the first step: the corpus's train split is read once into TrainingClips (training.generators.clips:
front-end features from the feature cache, a fixed pool of augmented copies, the motion in a basis fitted on the
data and stored in the model). One step = `clips_per_step` clips per process, each cut to a random crop of
`crop_frames` frames (each crop one forward; gradients accumulate), then one AdamW update. Clip order and crop
starts are a pure function of (seed, step, rank), and no layer draws random numbers, so a resumed run repeats
exactly what an uninterrupted run does.

Loss, in mm^2 (REFERENCE §6b's prototype recipe): the vertex MSE (through the basis, frames inside /p b m/
weighted `bilabial_weight`) + `lip_gap_weight` x the squared lip-gap error (same weights) + `closure_weight` x
the closure term (`closure_term`: lips left open where they must be shut) + the family's own terms
(training.generators.protocol) + the perceptual term: `perceptual_weight` x InfoNCE in the same units
(published FaceFormer weight 1e-7), also x 1e6; the perceptual term sees whole clips (no crop). Its speech side
is computed once per clip from the cached front-end features (or the audio, for an fbank speech encoder).

Fine-tuning (`init_from`, e.g. "+ perceptual" from a baseline): the run starts from that checkpoint's weights
with a fresh optimiser and schedule; its data statistics must equal the ones fitted now (same corpus).

Outputs in `out_dir`: checkpoint.pt (latest, atomic), loss.csv, loss.png, config.json.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch

from backend.errors import BackendError
from backend.generators import SAMPLE_RATE
from backend.metrics.plrs import FRONTEND_INPUT
from training import loop
from training.generators.clips import ClipLoader, training_styles
from training.generators.config import GeneratorConfig
from training.generators.families import FAMILY_CLASSES, build_generator
from training.generators.protocol import MM2_PER_M2, TrainingClip, load_generator_checkpoint
from training.provenance import data_provenance
from training.representation.losses import PerceptualLoss, frontend_speech_features, speech_features
from training.representation.train import load_representation


def clip_order(seed: int, count: int, position: int) -> int:
    """Index of the clip at global `position` of the sampling stream: epoch-wise seeded permutations."""
    epoch, offset = divmod(position, count)
    return int(np.random.default_rng([seed, epoch]).permutation(count)[offset])


def crop_start(seed: int, position: int, frames: int, length: int) -> int:
    """First frame of the crop at global `position` (0 when the clip is not longer than the crop)."""
    if length <= 0 or frames <= length:
        return 0
    return int(np.random.default_rng([seed, position, 1]).integers(0, frames - length + 1))


def closure_term(gap: torch.Tensor, mask: torch.Tensor, template: torch.Tensor, margin_mm: float) -> torch.Tensor:
    """Mean over the frames of `mask` (T,) of the squared excess (mm^2) of the generated lip gap `gap` (T,) metres
    over the template's rest gap + margin_mm: zero when the lips are shut there, growing as they open."""
    from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
    shut = torch.linalg.vector_norm(template[UPPER_LIP_CENTRE] - template[LOWER_LIP_CENTRE]) + margin_mm / 1000.0
    excess = torch.relu(gap - shut)
    return (excess ** 2 * mask).sum() / mask.sum().clamp(min=1.0) * MM2_PER_M2


def clip_losses(model, clip: TrainingClip, perceptual) -> dict:
    """The loss terms of one clip (tensors, mm^2 units) and their weighted sum under "loss": the vertex MSE, the
    lip-gap error, the closure term when closure_weight > 0, the family's own terms, the perceptual term when
    `perceptual` is given. `clip` is on the model's device."""
    output = model.training_output(clip)
    basis, config = model.motion_basis, model.config
    predicted = output.coefficients[0, :clip.frames]
    frames = len(predicted)
    weights = clip.weights[:frames]
    terms = {"mse": basis.vertex_mse(predicted, clip.coefficients[:frames], weights)}
    gap = basis.lip_gap(predicted[None], clip.template[None])[0]
    terms["lip_gap"] = ((gap - clip.lip_gap[:frames]) ** 2 * weights).sum() / weights.sum() * MM2_PER_M2
    total = terms["mse"] + config.lip_gap_weight * terms["lip_gap"]
    if config.closure_weight > 0:
        terms["closure"] = closure_term(gap, clip.closure_mask[:frames], clip.template, config.closure_margin_mm)
        total = total + config.closure_weight * terms["closure"]
    for name, term in output.losses.items():
        terms[name] = term.value
        total = total + term.weight * term.value
    if perceptual is not None:
        vertices = basis.vertices(predicted[None], clip.template[None])[0]
        terms["perceptual"] = perceptual(vertices, clip.speech_target) * MM2_PER_M2
        total = total + terms["perceptual"]
    return {"loss": total, **terms}


def loss_columns(config: GeneratorConfig) -> tuple:
    """The logged terms of a run of `config`."""
    return ("loss", "mse", "lip_gap", *(("closure",) if config.closure_weight > 0 else ()),
            *FAMILY_CLASSES[config.family].loss_names(config),
            *(("perceptual",) if config.perceptual_weight > 0 else ()))


def loop_settings(config: GeneratorConfig) -> loop.LoopSettings:
    return loop.LoopSettings(config.steps, config.learning_rate, config.warmup_steps, config.weight_decay,
                             config.grad_clip, config.log_every, config.checkpoint_every, config.clips_per_step,
                             config.learning_rate_floor)


def prepared_model(config: GeneratorConfig, corpus, representation, device, feature_cache=None):
    """(model on `device` after the data statistics and the family's set-up, styles, training clips on `device`,
    perceptual loss or None, seconds spent preparing the data)."""
    began = time.monotonic()
    styles = training_styles(corpus)
    loader = ClipLoader(corpus, "train", styles, config, feature_cache)
    model = build_generator(config, len(styles))
    model.set_statistics(loader.fit_statistics())
    perceptual = build_perceptual(config, representation, device)
    hears_audio = perceptual is not None and perceptual.speech_encoder.input_name != FRONTEND_INPUT
    kind = None if perceptual is None else perceptual.speech_encoder.input_name

    def target(source, frames):
        speech = (speech_features(source, SAMPLE_RATE, frames, kind) if hears_audio
                  else frontend_speech_features(source, frames))
        with torch.no_grad():
            return perceptual.speech_target(speech).cpu()
    clips = loader.clips(model.motion_basis, None if perceptual is None else target, hears_audio)
    model.prepare_training(clips)
    if config.init_from:
        start_from(model, config)
    model = model.to(device)
    return model, styles, [clip.to(device) for clip in clips], perceptual, time.monotonic() - began


def start_from(model, config: GeneratorConfig) -> None:
    """Load `config.init_from`'s weights into `model` (fine-tuning); BackendError if it is another family or
    was fitted on other data (its motion basis or feature statistics differ from the ones fitted now)."""
    checkpoint = load_generator_checkpoint(config.init_from)
    theirs = GeneratorConfig.from_dict(json.loads(checkpoint["config"]))
    if theirs.family != config.family:
        raise BackendError(f"{config.init_from}: init_from is a '{theirs.family}' checkpoint; this run trains "
                           f"'{config.family}'")
    fitted = {key: value.clone() for key, value in model.state_dict().items() if key.startswith("basis.")}
    model.load_state_dict(checkpoint["model"])
    for key, value in fitted.items():
        if not torch.allclose(model.state_dict()[key], value, atol=1e-6, rtol=1e-4):
            raise BackendError(f"{config.init_from}: its {key} differs from the one fitted on this corpus; "
                               "fine-tune on the data the checkpoint was trained on")


def build_perceptual(config: GeneratorConfig, representation, device):
    """PerceptualLoss from a representation checkpoint (frozen), or None for a baseline."""
    if config.perceptual_weight <= 0:
        return None
    if representation is None:
        raise BackendError("perceptual_weight > 0 needs --representation CHECKPOINT (from `python -m training "
                           "represent`)")
    encoders = load_representation(representation)
    return PerceptualLoss(encoders.speech_encoder, encoders.mesh_encoder, weight=config.perceptual_weight).to(device)


def train(config: GeneratorConfig, corpus, out_dir, resume: bool = False, representation=None,
          show_progress: bool | None = None, feature_cache=None) -> Path:
    """Train `config` on the corpus's train split; returns the checkpoint path (written by rank 0)."""
    place = loop.session()
    torch.manual_seed(config.seed)
    model, styles, clips, perceptual, data_seconds = prepared_model(config, corpus, representation, place.device,
                                                                    feature_cache)
    crop = 0 if perceptual is not None else config.crop_frames

    def micro_loss(step: int, index: int) -> dict:
        position = (step * place.world + place.rank) * config.clips_per_step + index
        clip = clips[clip_order(config.seed, len(clips), position)]
        start = crop_start(config.seed, position, clip.frames, crop)
        return clip_losses(model, clip.crop(start, crop) if crop and clip.frames > crop else clip, perceptual)

    provenance = {**data_provenance(corpus, len(clips)), "data_seconds": round(data_seconds, 1),
                  "threads": torch.get_num_threads()}
    result = loop.run(model, micro_loss, loop_settings(config), out_dir, name=f"train {config.family}",
                      identity={"config": json.dumps(config.to_dict()), "styles": json.dumps(styles)},
                      extra={"data": json.dumps(provenance)},
                      info={"config": config.to_dict(), "styles": styles}, resume=resume,
                      columns=loss_columns(config), epoch_size=len(clips), show_progress=show_progress)
    return result.checkpoint
