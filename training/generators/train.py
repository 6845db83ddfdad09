"""Training of a generator family with the one training loop (training.loop): seeded, logged (CSV + PNG),
progress bar, atomic checkpoints, `--resume`, torchrun (gloo on CPU, nccl on GPU), GPU when present.

One step = `clips_per_step` whole clips per process (each clip is one forward; gradients accumulate), then one
AdamW update. The clip order is a pure function of (seed, step, rank), and no layer draws random numbers, so a
resumed run repeats exactly what an uninterrupted run does. Losses are in mm^2 (vertex MSE in m^2 x 1e6), then
the family's own terms (training.generators.protocol), then the perceptual term: `perceptual_weight` x InfoNCE
in the same units (published FaceFormer weight 1e-7), also x 1e6.

Outputs in `out_dir`: checkpoint.pt (latest, atomic), loss.csv, loss.png, config.json.
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.audio import resample
from backend.errors import BackendError
from backend.generators import SAMPLE_RATE, frame_count
from training import loop
from backend.datasets import open_dataset
from training.generators.config import GeneratorConfig
from training.generators.families import FAMILY_CLASSES, build_generator
from training.generators.protocol import MM2_PER_M2, TrainingClip
from training.provenance import data_provenance
from training.representation.losses import PerceptualLoss, speech_features
from training.representation.train import load_representation


def load_clips(corpus, split: str, styles: list, config: GeneratorConfig) -> list:
    """The corpus clips of `split` as TrainingClips; a clip's style is its subject (or the first style for
    subjects not among `styles`, e.g. unseen test subjects); `inputs` are what the family needs."""
    family = FAMILY_CLASSES[config.family]
    dataset = open_dataset(corpus, split=split)
    clips = []
    for clip_id in dataset.clip_ids():
        clip = dataset.load(clip_id)
        audio = resample(clip.audio, clip.sample_rate, SAMPLE_RATE).astype(np.float32)
        frames = min(frame_count(len(audio)), len(clip.vertices))
        style = torch.zeros(len(styles))
        style[styles.index(clip.subject) if clip.subject in styles else 0] = 1.0
        clips.append(TrainingClip(clip_id, torch.from_numpy(audio)[None], torch.from_numpy(clip.vertices[:frames]),
                                  torch.from_numpy(clip.template), style,
                                  family.clip_inputs(config, clip_id, clip, frames)))
    if not clips:
        raise BackendError(f"{corpus}: no clips in split '{split}'")
    return clips


def training_styles(corpus) -> list:
    """Sorted subject names of the training split: the generator's styles."""
    dataset = open_dataset(corpus, split="train")
    return sorted({dataset.entry(clip_id).subject for clip_id in dataset.clip_ids()})


def clip_order(seed: int, count: int, position: int) -> int:
    """Index of the clip at global `position` of the sampling stream: epoch-wise seeded permutations."""
    epoch, offset = divmod(position, count)
    return int(np.random.default_rng([seed, epoch]).permutation(count)[offset])


def clip_losses(model, clip: TrainingClip, perceptual) -> dict:
    """The loss terms of one clip (tensors, mm^2 units) and their weighted sum under "loss": the vertex MSE,
    the family's own terms, the perceptual term when `perceptual` is given. `clip` is on the model's device."""
    output = model.training_output(clip)
    predicted = output.vertices[0, :len(clip.vertices)]
    terms = {"mse": F.mse_loss(predicted, clip.vertices[:len(predicted)]) * MM2_PER_M2}
    total = terms["mse"]
    for name, term in output.losses.items():
        terms[name] = term.value
        total = total + term.weight * term.value
    if perceptual is not None:
        terms["perceptual"] = perceptual(predicted, clip.speech_target) * MM2_PER_M2
        total = total + terms["perceptual"]
    return {"loss": total, **terms}


def loss_columns(config: GeneratorConfig) -> tuple:
    """The logged terms of a run of `config`."""
    return ("loss", "mse", *FAMILY_CLASSES[config.family].loss_names(config),
            *(("perceptual",) if config.perceptual_weight > 0 else ()))


def loop_settings(config: GeneratorConfig) -> loop.LoopSettings:
    return loop.LoopSettings(config.steps, config.learning_rate, config.warmup_steps, config.weight_decay,
                             config.grad_clip, config.log_every, config.checkpoint_every, config.clips_per_step,
                             config.learning_rate_floor)


def prepared_model(config: GeneratorConfig, corpus, representation, device):
    """(model on `device` after the family's set-up, styles, training clips on `device`, perceptual loss or None)."""
    styles = training_styles(corpus)
    clips = load_clips(corpus, "train", styles, config)
    model = build_generator(config, len(styles))
    model.prepare_training(clips)
    model = model.to(device)
    perceptual = build_perceptual(config, representation, clips, device)
    return model, styles, [clip.to(device) for clip in clips], perceptual


def build_perceptual(config: GeneratorConfig, representation, clips: list, device):
    """PerceptualLoss from a representation checkpoint (frozen), with every clip's speech target cached."""
    if config.perceptual_weight <= 0:
        return None
    if representation is None:
        raise BackendError("perceptual_weight > 0 needs --representation CHECKPOINT (from `python -m training "
                           "represent`)")
    encoders = load_representation(representation)
    loss = PerceptualLoss(encoders.speech_encoder, encoders.mesh_encoder, weight=config.perceptual_weight).to(device)
    for clip in clips:
        clip.speech_target = loss.speech_target(speech_features(clip.audio[0].numpy(), SAMPLE_RATE,
                                                                len(clip.vertices))).cpu()
    return loss


def train(config: GeneratorConfig, corpus, out_dir, resume: bool = False, representation=None,
          show_progress: bool | None = None) -> Path:
    """Train `config` on the corpus's train split; returns the checkpoint path (written by rank 0)."""
    place = loop.session()
    torch.manual_seed(config.seed)
    model, styles, clips, perceptual = prepared_model(config, corpus, representation, place.device)

    def micro_loss(step: int, index: int) -> dict:
        position = (step * place.world + place.rank) * config.clips_per_step + index
        return clip_losses(model, clips[clip_order(config.seed, len(clips), position)], perceptual)

    result = loop.run(model, micro_loss, loop_settings(config), out_dir, name=f"train {config.family}",
                      identity={"config": json.dumps(config.to_dict()), "styles": json.dumps(styles)},
                      extra={"data": json.dumps(data_provenance(corpus, len(clips)))},
                      info={"config": config.to_dict(), "styles": styles}, resume=resume,
                      columns=loss_columns(config), epoch_size=len(clips), show_progress=show_progress)
    return result.checkpoint
