"""THE training loop of both wings (representation stages and generator families).

Services: the schedule (linear warm-up, then cosine decay to a floor), the step (zero-grad, gradient
accumulation over micro-batches, averaging over DDP ranks, clipping, AdamW update), atomic checkpoints with
`--resume` (model, optimiser, step, torch and numpy random states: a resumed run repeats exactly what an
uninterrupted one does), the CSV + PNG loss log, the progress bar, and torchrun (gloo on CPU, nccl on GPU).

A run folder holds checkpoint.pt (latest), loss.csv, loss.png and config.json (what the caller describes, plus
the world size). The caller supplies `micro_loss(step, index) -> {"loss": scalar tensor, term: tensor, ...}`:
it draws its own batch (from the seeded numpy stream it passed as `rng`, or by a pure function of step and
index) and returns the loss to back-propagate with any terms to log.
"""

import atexit
import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist

from backend.errors import BackendError
from backend.progress import Progress
from backend.atomic import atomic_path, atomic_stream, write_json
from training.checkpoints import load_checkpoint, remove_partial_files, save_checkpoint

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "loss.csv"
PLOT_FILE = "loss.png"
RUN_FILE = "config.json"
RESUME_KEYS = ("model", "optimizer", "step")


@dataclass(frozen=True)
class Schedule:
    """Learning rate at a step: linear warm-up over `warmup_steps` to `learning_rate`, then cosine decay to
    `floor` x learning_rate at the last of `steps`."""

    learning_rate: float
    warmup_steps: int
    steps: int
    floor: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(self.steps - self.warmup_steps, 1)
        return self.learning_rate * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs of a config: schedule, optimiser, accumulation and how often to log and checkpoint."""

    steps: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    log_every: int
    checkpoint_every: int
    micro_batches: int = 1
    learning_rate_floor: float = 0.0

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.learning_rate, self.warmup_steps, self.steps, self.learning_rate_floor)


@dataclass(frozen=True)
class Session:
    """This process's place in a (possibly distributed) run."""

    rank: int
    world: int
    device: torch.device


def session() -> Session:
    """Rank, world size and device; starts the process group once under torchrun (nccl with GPUs, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    return Session(dist.get_rank() if world > 1 else 0, world, device)


def optimiser_step(optimiser, parameters: list, micro_batches: int, micro_loss: Callable[[int], dict],
                   grad_clip: float, learning_rate: Optional[float] = None) -> dict:
    """One update: zero-grad; for each micro-batch i, (micro_loss(i)["loss"] / micro_batches).backward();
    gradients averaged over ranks when distributed; clipped to norm `grad_clip`; optimiser step (at
    `learning_rate` when given). Returns the mean of every term over the micro-batches (floats)."""
    if learning_rate is not None:
        for group in optimiser.param_groups:
            group["lr"] = learning_rate
    optimiser.zero_grad(set_to_none=True)
    sums = {}
    for index in range(micro_batches):
        terms = micro_loss(index)
        (terms["loss"] / micro_batches).backward()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) / micro_batches
    if dist.is_initialized() and dist.get_world_size() > 1:
        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad)
            parameter.grad /= dist.get_world_size()
    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimiser.step()
    return sums


@dataclass
class LoopResult:
    """What a run did: the checkpoint (None without a folder), the step it started at, each step's mean loss."""

    checkpoint: Optional[Path]
    start: int
    losses: list = field(default_factory=list)


def _log_columns(columns, with_epoch: bool) -> list:
    return ["step", *(["epoch"] if with_epoch else []), *columns, "learning_rate", "seconds"]


def _write_log(path: Path, columns: list, rows: list) -> None:
    with atomic_stream(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_log(path) -> list:
    """The rows of a loss.csv (dicts of strings); [] when there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def plot_losses(log_path: Path, plot_path: Path, title: str) -> None:
    """loss.csv -> loss.png: every logged term against the step (log scale when all are positive)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = read_log(log_path)
    if not rows:
        return
    figure, axes = plt.subplots(figsize=(6, 3.5))
    steps = [int(row["step"]) for row in rows]
    positive = True
    for column in rows[0]:
        if column in ("step", "epoch", "learning_rate", "seconds"):
            continue
        values = [float(row[column]) for row in rows if row[column] != ""]
        if len(values) == len(rows):
            axes.plot(steps, values, label=column)
            positive = positive and min(values) > 0
    if positive:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    with atomic_path(plot_path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    plt.close(figure)


def run(module: torch.nn.Module, micro_loss: Callable[[int, int], dict], settings: LoopSettings, out_dir=None, *,
        name: str, identity: Optional[dict] = None, extra: Optional[dict] = None, info: Optional[dict] = None,
        resume: bool = False,
        rng: Optional[np.random.Generator] = None, columns=("loss",), epoch_size: Optional[int] = None,
        show_progress: Optional[bool] = None, log: Optional[Callable[[str], None]] = None) -> LoopResult:
    """Train `module`'s parameters that require grad for `settings.steps` steps.

    out_dir: the run folder (None: nothing is written and nothing can be resumed). identity: JSON strings that
    must be equal to resume a checkpoint (the configuration); they are stored in it, as are the `extra` JSON
    strings (e.g. the training data's provenance), which are not compared. info: what config.json
    records. rng: the numpy stream `micro_loss` draws from (its state is checkpointed). columns: terms logged to
    loss.csv; epoch_size: micro-batches per epoch (adds an `epoch` column). log: one line every log_every steps.
    A checkpoint that already reached `settings.steps` is loaded and nothing is trained.
    """
    place = session()
    identity = identity or {}
    checkpoint_path = log_path = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        checkpoint_path, log_path = out_dir / CHECKPOINT_FILE, out_dir / LOG_FILE
        if place.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            if not resume and checkpoint_path.exists():
                raise BackendError(f"{checkpoint_path} exists; pass --resume to continue it or choose another --out")
            remove_partial_files(out_dir)
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    start = 0
    if resume and checkpoint_path is not None and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path, (*RESUME_KEYS, *identity), "python -m training")
        if any(checkpoint[key] != value for key, value in identity.items()):
            raise BackendError(f"{checkpoint_path} was trained with another configuration; resume it with the "
                               "same preset and settings")
        module.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimizer"])
        start = int(checkpoint["step"])
        if "torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng"])
        if "cuda_rng" in checkpoint and place.device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint["cuda_rng"], place.device)
        if rng is not None and "numpy_rng" in checkpoint:
            rng.bit_generator.state = json.loads(checkpoint["numpy_rng"])
    if place.world > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)
    log_columns = _log_columns(columns, epoch_size is not None)
    rows = []
    if log_path is not None and place.rank == 0:
        write_json(out_dir / RUN_FILE, {**(info or {}), "world_size": place.world})
        rows = [row for row in read_log(log_path) if int(row["step"]) <= start]
        _write_log(log_path, log_columns, rows)
    result = LoopResult(checkpoint_path, start)
    if start >= settings.steps:
        module.eval()
        return result
    schedule = settings.schedule
    bar = Progress(settings.steps, name, enabled=show_progress if place.rank == 0 else False)
    bar.done = start
    module.train()
    began = time.monotonic()
    for step in range(start, settings.steps):
        learning_rate = schedule(step)
        terms = optimiser_step(optimiser, parameters, settings.micro_batches,
                               lambda index: micro_loss(step, index), settings.grad_clip, learning_rate)
        result.losses.append(terms["loss"])
        bar.update()
        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            if log is not None and place.rank == 0:
                recent = np.mean(result.losses[-settings.log_every:])
                log(f"{name} step {done}/{settings.steps} loss {recent:.4f} ({time.monotonic() - began:.0f} s)")
            if log_path is not None and place.rank == 0:
                row = {"step": done, "learning_rate": f"{learning_rate:.6g}",
                       "seconds": f"{time.monotonic() - began:.2f}",
                       **{column: f"{terms[column]:.6g}" if column in terms else "" for column in columns}}
                if epoch_size is not None:
                    row["epoch"] = f"{done * place.world * settings.micro_batches / epoch_size:.3f}"
                rows.append(row)
                _write_log(log_path, log_columns, rows)
        if checkpoint_path is not None and place.rank == 0 and (
                done % settings.checkpoint_every == 0 or done == settings.steps):
            payload = {"model": module.state_dict(), "optimizer": optimiser.state_dict(), "step": done,
                       "world_size": place.world, "torch_rng": torch.get_rng_state(), **(extra or {}), **identity}
            if place.device.type == "cuda":
                payload["cuda_rng"] = torch.cuda.get_rng_state(place.device)
            if rng is not None:
                payload["numpy_rng"] = json.dumps(rng.bit_generator.state)
            save_checkpoint(checkpoint_path, payload)
            plot_losses(log_path, out_dir / PLOT_FILE, name)
    bar.close()
    module.eval()
    if place.world > 1:
        dist.barrier()
    return result
