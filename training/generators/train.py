"""Training of a generator family with the one training loop (training.loop): seeded, logged (CSV + PNG),
progress bar, atomic checkpoints, `--resume`, torchrun (gloo on CPU, nccl on GPU), GPU when present.

Before the first step: the corpus's train split is read once into TrainingClips (training.generators.clips:
front-end features from the feature cache, a fixed pool of augmented copies, the motion in a basis fitted on the
data and stored in the model). One step = `clips_per_step` clips per process, each cut to a random crop of
`crop_frames` frames (each crop one forward; gradients accumulate), then one AdamW update. Clip order and crop
starts are a pure function of (seed, step, rank), and no layer draws random numbers, so a resumed run repeats
exactly what an uninterrupted run does.

Loss, in mm^2 (REFERENCE §6b's prototype recipe): the vertex MSE (through the basis, frames inside /p b m/
weighted `bilabial_weight`) + `lip_gap_weight` x the squared lip-gap error (same weights) + the family's own
terms (training.generators.protocol) + the perceptual term: `perceptual_weight` x InfoNCE in the same units
(published FaceFormer weight 1e-7), also x 1e6; the perceptual term sees whole clips (no crop).

Outputs in `out_dir`: checkpoint.pt (latest, atomic), loss.csv, loss.png, config.json.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch

from backend.errors import BackendError
from backend.generators import SAMPLE_RATE
from training import loop
from training.generators.clips import ClipLoader, training_styles
from training.generators.config import GeneratorConfig
from training.generators.families import FAMILY_CLASSES, build_generator
from training.generators.protocol import MM2_PER_M2, TrainingClip
from training.provenance import data_provenance
from training.representation.losses import PerceptualLoss, speech_features
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


def clip_losses(model, clip: TrainingClip, perceptual) -> dict:
    """The loss terms of one clip (tensors, mm^2 units) and their weighted sum under "loss": the vertex MSE, the
    lip-gap error, the family's own terms, the perceptual term when `perceptual` is given. `clip` is on the
    model's device."""
    output = model.training_output(clip)
    basis, config = model.motion_basis, model.config
    predicted = output.coefficients[0, :clip.frames]
    frames = len(predicted)
    weights = clip.weights[:frames]
    terms = {"mse": basis.vertex_mse(predicted, clip.coefficients[:frames], weights)}
    gap = basis.lip_gap(predicted[None], clip.template[None])[0]
    terms["lip_gap"] = ((gap - clip.lip_gap[:frames]) ** 2 * weights).sum() / weights.sum() * MM2_PER_M2
    total = terms["mse"] + config.lip_gap_weight * terms["lip_gap"]
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
    return ("loss", "mse", "lip_gap", *FAMILY_CLASSES[config.family].loss_names(config),
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
    target = None if perceptual is None else (
        lambda audio, frames: perceptual.speech_target(speech_features(audio, SAMPLE_RATE, frames)).cpu())
    clips = loader.clips(model.motion_basis, target)
    model.prepare_training(clips)
    model = model.to(device)
    return model, styles, [clip.to(device) for clip in clips], perceptual, time.monotonic() - began


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
