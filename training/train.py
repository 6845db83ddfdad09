"""THE training loop for the generators: seeded, logged (CSV + PNG), progress bar, atomic checkpoints,
`--resume`, DistributedDataParallel under torchrun (gloo on CPU, nccl on GPU), GPU when present.

One step = `clips_per_step` whole clips per process (each clip is one forward; gradients accumulate),
then one AdamW update (linear warm-up, cosine decay, gradient clipping). The clip order is a pure
function of (seed, step, rank), and no layer draws random numbers, so a resumed run repeats exactly
what an uninterrupted run does. Losses are in mm^2 (vertex MSE in m^2 x 1e6); the perceptual term is
`perceptual_weight` x InfoNCE in the same m^2 units (published FaceFormer weight 1e-7), also x 1e6.

Outputs in `out_dir`: checkpoint.pt (latest, atomic), loss.csv, loss.png, config.json.
"""

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from backend.audio import resample
from backend.errors import BackendError, ModelError
from backend.generators import SAMPLE_RATE, frame_count
from backend.progress import Progress
from training.config import GeneratorConfig
from backend.datasets import open_dataset
from training.generators import TARGET_FAMILIES, build_generator
from training.generators.kmtalk import timeline_key_mask, uniform_key_mask
from training.generators.selftalk import phoneme_labels

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "loss.csv"
PLOT_FILE = "loss.png"
CONFIG_FILE = "config.json"
MM2_PER_M2 = 1e6
KEY_LOSS_WEIGHT = 1.0
BOUNDARY_LOSS_WEIGHT = 0.1
LOG_COLUMNS = ("step", "epoch", "loss", "mse", "key_mse", "boundary", "perceptual", "learning_rate", "seconds",
               "auxiliary")


@dataclass
class TrainingClip:
    """One clip ready for a forward pass: audio (1, N) 16 kHz, vertices (T, 5023, 3), template (5023, 3),
    style one-hot (S,), key_mask (T,), speech_target (T - 4, D) for the perceptual loss or None, phonemes (L,)
    CTC targets (SelfTalk-style family only) or None."""

    clip_id: str
    audio: torch.Tensor
    vertices: torch.Tensor
    template: torch.Tensor
    style: torch.Tensor
    key_mask: torch.Tensor
    speech_target: torch.Tensor | None = None
    phonemes: torch.Tensor | None = None


def load_clips(corpus, split: str, styles: list, config: GeneratorConfig) -> list:
    """The corpus clips of `split` as TrainingClips; a clip's style is its subject (or the first style for
    subjects not among `styles`, e.g. unseen test subjects)."""
    dataset = open_dataset(corpus, split=split)
    clips = []
    for clip_id in dataset.clip_ids():
        clip = dataset.load(clip_id)
        audio = resample(clip.audio, clip.sample_rate, SAMPLE_RATE).astype(np.float32)
        frames = min(frame_count(len(audio)), len(clip.vertices))
        style = torch.zeros(len(styles))
        style[styles.index(clip.subject) if clip.subject in styles else 0] = 1.0
        if config.key_frames == "timeline" and clip.timeline:
            key_mask = timeline_key_mask(clip.timeline, frames)
        else:
            key_mask = uniform_key_mask(frames, config.uniform_spacing)
        clips.append(TrainingClip(clip_id, torch.from_numpy(audio)[None], torch.from_numpy(clip.vertices[:frames]),
                                  torch.from_numpy(clip.template), style, key_mask))
        if config.family == "selftalk":
            if not clip.timeline:
                raise BackendError(f"{corpus}: clip {clip_id} has no phoneme timeline; the SelfTalk-style family "
                                   "trains its lip reader on the corpus manifest's timelines")
            clips[-1].phonemes = phoneme_labels(clip.timeline)
    if not clips:
        raise BackendError(f"{corpus}: no clips in split '{split}'")
    return clips


def training_styles(corpus) -> list:
    """Sorted subject names of the training split: the generator's styles."""
    dataset = open_dataset(corpus, split="train")
    return sorted({dataset.load(clip_id).subject for clip_id in dataset.clip_ids()})


def clip_order(seed: int, count: int, position: int) -> int:
    """Index of the clip at global `position` of the sampling stream: epoch-wise seeded permutations."""
    epoch, offset = divmod(position, count)
    return int(np.random.default_rng([seed, epoch]).permutation(count)[offset])


def learning_rate(config: GeneratorConfig, step: int) -> float:
    """Linear warm-up to config.learning_rate, then cosine decay to 10% of it at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def clip_losses(model, clip: TrainingClip, config: GeneratorConfig, perceptual, device) -> dict:
    """The loss terms of one clip (tensors, mm^2 units; see the module docstring)."""
    frames = len(clip.vertices)
    targets = ({"vertices": clip.vertices[None].to(device),
                "phonemes": None if clip.phonemes is None else clip.phonemes.to(device)},) \
        if config.family in TARGET_FAMILIES else ()
    outputs = model(clip.audio.to(device), clip.template[None].to(device), clip.style[None].to(device),
                    clip.key_mask[None].to(device) if config.family == "kmtalk" else None, *targets)
    target = clip.vertices.to(device)
    predicted = outputs["vertices"][0, :frames]
    terms = {"mse": F.mse_loss(predicted, target[:len(predicted)]) * MM2_PER_M2}
    if "key_vertices" in outputs:
        mask = clip.key_mask.to(device)[:len(predicted)]
        key_error = ((outputs["key_vertices"][0, :len(predicted)] - target[:len(predicted)]) ** 2).mean(dim=(1, 2))
        terms["key_mse"] = (key_error * mask).sum() / mask.sum().clamp(min=1) * MM2_PER_M2
    if "boundary_logits" in outputs:
        logits = outputs["boundary_logits"][0, :frames]
        terms["boundary"] = F.binary_cross_entropy_with_logits(logits, clip.key_mask.to(device)[:len(logits)])
    if perceptual is not None:
        terms["perceptual"] = perceptual(predicted, clip.speech_target.to(device)) * MM2_PER_M2
    if "auxiliary" in outputs:  # the family's own weighted terms (VQ, code regression, phoneme CTC)
        terms["auxiliary"] = outputs["auxiliary"]
    return terms


def total_loss(terms: dict) -> torch.Tensor:
    return (terms["mse"] + KEY_LOSS_WEIGHT * terms.get("key_mse", 0.0) + BOUNDARY_LOSS_WEIGHT * terms.get("boundary", 0.0)
            + terms.get("perceptual", 0.0) + terms.get("auxiliary", 0.0))


def build_perceptual(config: GeneratorConfig, representation, clips: list, device):
    """PerceptualLoss from a representation checkpoint (frozen), with every clip's speech target cached."""
    if config.perceptual_weight <= 0:
        return None
    if representation is None:
        raise BackendError("perceptual_weight > 0 needs --representation CHECKPOINT (from `python -m training "
                           "represent`)")
    from training.losses import PerceptualLoss, speech_features
    from training.representation import load_representation
    encoders = load_representation(representation)
    loss = PerceptualLoss(encoders.speech_encoder, encoders.mesh_encoder, weight=config.perceptual_weight).to(device)
    for clip in clips:
        clip.speech_target = loss.speech_target(speech_features(clip.audio[0].numpy(), SAMPLE_RATE,
                                                                len(clip.vertices))).cpu()
    return loss


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file in the same folder, then os.replace: never a half-written checkpoint."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path) -> dict:
    """A generator checkpoint, loaded with weights_only=True (no code runs); ModelError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for unreadable files
        raise ModelError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None
    missing = [key for key in ("model", "config", "styles", "step") if key not in checkpoint]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {', '.join(missing)}; expected one written by "
                         "`python -m training train`")
    return checkpoint


def load_trained(path):
    """(model in eval mode, config, styles, checkpoint) from a generator checkpoint."""
    checkpoint = load_checkpoint(path)
    config = GeneratorConfig.from_dict(json.loads(checkpoint["config"]))
    styles = json.loads(checkpoint["styles"])
    model = build_generator(config, len(styles))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), config, styles, checkpoint


def _keep_logged_rows(path: Path, last_step: int) -> None:
    """Drop log rows past the checkpoint's step (they will be redone by the resumed run)."""
    if not path.is_file():
        return
    with open(path, newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if int(row["step"]) <= last_step]
    _write_log(path, rows)


def _write_log(path: Path, rows: list) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    with open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def plot_losses(log_path: Path, plot_path: Path, title: str) -> None:
    """loss.csv -> loss.png (total and each term against the step, log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(log_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        return
    figure, axes = plt.subplots(figsize=(6, 3.5))
    steps = [int(row["step"]) for row in rows]
    for column in ("loss", "mse", "key_mse", "boundary", "perceptual", "auxiliary"):
        values = [float(row[column]) for row in rows if row[column] != ""]
        if len(values) == len(rows):
            axes.plot(steps, values, label=column)
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (mm$^2$ units)")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    temporary = plot_path.with_name(f".{plot_path.name}.partial.png")
    figure.savefig(temporary, dpi=80)
    plt.close(figure)
    os.replace(temporary, plot_path)


def _distributed() -> tuple:
    """(rank, world size, device); starts the process group under torchrun (nccl with GPUs, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, device


def train(config: GeneratorConfig, corpus, out_dir, resume: bool = False, representation=None,
          show_progress: bool | None = None) -> Path:
    """Train `config` on the corpus's train split; returns the checkpoint path (written by rank 0)."""
    rank, world, device = _distributed()
    out_dir = Path(out_dir)
    checkpoint_path, log_path = out_dir / CHECKPOINT_FILE, out_dir / LOG_FILE
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume and checkpoint_path.exists():
            raise BackendError(f"{checkpoint_path} exists; pass --resume to continue it or choose another --out")
        for stale in out_dir.glob(".*.partial*"):  # left by a run killed while writing
            stale.unlink()
    torch.manual_seed(config.seed)
    styles = training_styles(corpus)
    clips = load_clips(corpus, "train", styles, config)
    model = build_generator(config, len(styles))
    if hasattr(model, "prepare_training"):  # family hook: data-dependent set-up (codebook, frozen prior, lips)
        model.prepare_training(clips)
    model = model.to(device)
    perceptual = build_perceptual(config, representation, clips, device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start = 0
    if resume and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path)
        if json.loads(checkpoint["config"]) != config.to_dict():
            raise BackendError(f"{checkpoint_path} was trained with another configuration; resume it with the "
                               "same preset and settings")
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimizer"])
        start = int(checkpoint["step"])
    if rank == 0:
        (out_dir / CONFIG_FILE).write_text(json.dumps({"config": config.to_dict(), "styles": styles,
                                                       "world_size": world}, indent=2))
        _keep_logged_rows(log_path, start)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    rows = []
    if rank == 0 and log_path.is_file():
        with open(log_path, newline="") as stream:
            rows = list(csv.DictReader(stream))
    bar = Progress(config.steps, f"train {config.family}", enabled=show_progress if rank == 0 else False)
    bar.done = start
    began = time.monotonic()
    for step in range(start, config.steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        optimiser.zero_grad(set_to_none=True)
        sums = {}
        for index in range(config.clips_per_step):
            position = (step * world + rank) * config.clips_per_step + index
            clip = clips[clip_order(config.seed, len(clips), position)]
            terms = clip_losses(trained, clip, config, perceptual, device)
            (total_loss(terms) / config.clips_per_step).backward()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) / config.clips_per_step
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        bar.update()
        done = step + 1
        if rank == 0 and (done % config.log_every == 0 or done == config.steps):
            loss = sums["mse"] + KEY_LOSS_WEIGHT * sums.get("key_mse", 0.0) + \
                BOUNDARY_LOSS_WEIGHT * sums.get("boundary", 0.0) + sums.get("perceptual", 0.0) + sums.get("auxiliary", 0.0)
            rows.append({"step": done, "epoch": f"{done * world * config.clips_per_step / len(clips):.3f}",
                         "loss": f"{loss:.6g}", "mse": f"{sums['mse']:.6g}",
                         "key_mse": f"{sums['key_mse']:.6g}" if "key_mse" in sums else "",
                         "boundary": f"{sums['boundary']:.6g}" if "boundary" in sums else "",
                         "perceptual": f"{sums['perceptual']:.6g}" if "perceptual" in sums else "",
                         "learning_rate": f"{learning_rate(config, step):.6g}",
                         "auxiliary": f"{sums['auxiliary']:.6g}" if "auxiliary" in sums else "",
                         "seconds": f"{time.monotonic() - began:.2f}"})
            _write_log(log_path, rows)
        if rank == 0 and (done % config.checkpoint_every == 0 or done == config.steps):
            save_checkpoint(checkpoint_path, {"model": model.state_dict(), "optimizer": optimiser.state_dict(),
                                              "step": done, "config": json.dumps(config.to_dict()),
                                              "styles": json.dumps(styles), "world_size": world})
            plot_losses(log_path, out_dir / PLOT_FILE, f"{config.family} ({config.name})")
    bar.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return checkpoint_path
