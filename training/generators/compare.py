"""The paper's full comparison in one command: every generator family with and without the perceptual
loss (Table 2 format), the representation ablation (Table 3), codebook usage of the CodeTalker-style
prior, and the training cost (Table S8: seconds per iteration and peak memory, with and without the loss).

    python -m training compare --corpus DIR --runs DIR --representation DIR --out DIR [--encoders DIR]

Runs live in <runs>/<name>/ (see `planned_runs`). A finished run whose saved configuration equals the one
asked for is reused; an unfinished one is resumed; anything else is trained here with `training.generators.train`
(on the one training loop), one run at a time. The representation folder holds <variant>.pt for
two-stage (the perceptual loss), syncnet and no-2d-prior (the ablation); a missing variant is trained
with `training.representation.train.represent`, with the two-stage checkpoint's settings when it exists so
the ablation differs from it only in the variant. Evaluation is `training.generators.evaluate.evaluate`; the
cost rows come from fresh processes (peak memory is per process) running the training loop's own step.

Outputs in --out: comparison.md (all tables), evaluation/ (table.csv, predictions), cost.csv,
codebook.json. Everything is measured on whatever corpus is given; the ci corpus is SYNTHETIC.
"""

import csv
import json
import multiprocessing
import platform
import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from backend.atomic import atomic_stream, write_json, write_text
from backend.errors import BackendError
from training import loop
from training.configuration import merged
from training.generators.config import GeneratorConfig, generator_preset
from training.generators.evaluate import evaluate
from training.generators.families import FAMILY_CLASSES, load_generator_checkpoint, load_trained
from training.generators.clips import ClipLoader
from training.generators.train import (clip_losses, clip_order, loop_settings, prepared_model, train)
from training.provenance import data_provenance
from training.representation.config import Config, preset
from training.representation.train import load_representation_meta, represent

FAMILIES = ("faceformer", "kmtalk", "codetalker", "selftalk")   # the families that animate speech
ABLATION_VARIANTS = ("syncnet", "no-2d-prior")
VARIANT_NAMES = {"two-stage": "ours (two-stage, 2D prior)", "syncnet": "3D SyncNet-style",
                 "no-2d-prior": "w/o 2D prior"}
PERCEPTUAL_WEIGHT = 1e-7     # the published FaceFormer weight; the other families' weights are unpublished
PARTS = ("comparison", "ablation", "codebook", "cost")


@dataclass(frozen=True)
class Run:
    """One training run: `family` trained with the perceptual loss of representation `variant` (None = baseline)."""

    name: str
    family: str
    variant: str | None = None


def prior_run(family: str) -> Run | None:
    """The run of the family's prior (trained first, see Family.prior_family), or None."""
    prior = FAMILY_CLASSES[family].prior_family
    return None if prior is None else Run(prior.replace("-", "_"), prior)


def has_codebook(family: str) -> bool:
    """A family whose prior quantises motion into codes (its usage is reported)."""
    return FAMILY_CLASSES[family].prior_family is not None


def planned_runs(families, parts) -> list:
    """The runs the requested parts need, priors first, baselines before their + loss runs."""
    runs = [prior_run(family) for family in families if prior_run(family) is not None]
    if "comparison" in parts or "codebook" in parts:
        for family in families:
            if "comparison" in parts or has_codebook(family):
                runs += [Run(f"{family}_base", family), Run(f"{family}_perceptual", family, "two-stage")]
    if "ablation" in parts:
        runs += [Run("faceformer_base", "faceformer"), Run("faceformer_perceptual", "faceformer", "two-stage")]
        runs += [Run(f"faceformer_perceptual_{variant}", "faceformer", variant) for variant in ABLATION_VARIANTS]
    unique = {}
    for run in runs:
        unique.setdefault(run.name, run)
    return list(unique.values())


def run_config(run: Run, preset_name: str, settings: dict, runs_dir: Path) -> GeneratorConfig:
    """The GeneratorConfig of `run`: the preset, the family, the perceptual weight, CodeTalker's prior."""
    overrides = {"family": run.family, "perceptual_weight": PERCEPTUAL_WEIGHT if run.variant else 0.0}
    prior = prior_run(run.family)
    if prior is not None:
        overrides["codetalker"] = {"motion_prior": str(runs_dir / prior.name / loop.CHECKPOINT_FILE)}
    return generator_preset(preset_name, **merged(settings, overrides))


def ensure_representations(folder: Path, variants, corpus, preset_name: str, seed: int, log=print) -> dict:
    """{variant: checkpoint path}, training the missing ones (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = folder / "two-stage.pt"
    paths = {}
    for variant in variants:
        path = folder / f"{variant}.pt"
        if not path.is_file():
            config = (Config.from_dict(load_representation_meta(reference)["config"])
                      if reference.is_file() else preset(preset_name, seed=seed))
            log(f"training representation {variant} ({config.name} settings) -> {path}")
            represent(config, corpus, folder, variant, log=log, resume=True)
        paths[variant] = path
    return paths


def ensure_run(run: Run, config: GeneratorConfig, runs_dir: Path, corpus, representation, log=print) -> str:
    """Reuse, resume or train `run`; returns what was done ("reused", "resumed", "trained")."""
    checkpoint_path = runs_dir / run.name / loop.CHECKPOINT_FILE
    action = "trained"
    if checkpoint_path.is_file():
        checkpoint = load_generator_checkpoint(checkpoint_path)
        saved = GeneratorConfig.from_dict(json.loads(checkpoint["config"]))
        if saved != config:
            differing = [name for name in config.__dataclass_fields__ if getattr(saved, name) != getattr(config, name)]
            raise BackendError(f"{checkpoint_path} was trained with other settings ({', '.join(differing)}); "
                               "move it away or pass another --runs folder")
        if int(checkpoint["step"]) >= config.steps:
            return "reused"
        action = "resumed"
    log(f"{action[:-1]}ing {run.name} ({config.family}, {config.name} preset, {config.steps} steps)")
    started = time.monotonic()
    train(config, corpus, runs_dir / run.name, resume=checkpoint_path.is_file(), representation=representation)
    log(f"{run.name}: {time.monotonic() - started:.0f} s")
    return action


def run_label(run: Run) -> str:
    base = FAMILY_CLASSES[run.family].title
    if run.variant is None:
        return base
    return f"{base} + perceptual" if run.variant == "two-stage" else f"{base} + perceptual ({VARIANT_NAMES[run.variant]})"


def _cell(row: dict, column: str, digits: int) -> str:
    value = row.get(column, "")
    return "n/a" if value in ("", None) else f"{float(value):.{digits}f}"


def _metric_cells(row: dict) -> str:
    slcc = "n/a" if row.get("SLCC", "") == "" else f"{float(row['SLCC']):.2f} ({_cell(row, 'delta_SLCC', 2)})"
    return (f"{_cell(row, 'MTM_ms', 1)} | {_cell(row, 'LVE_1e-5', 3)} | {_cell(row, 'PLRS', 3)} | {slcc} | "
            f"{_cell(row, 'FDD_1e-7', 3)}")


METRIC_HEADER = "MTM (ms) ↓ | LVE (×10⁻⁵ m²) ↓ | PLRS ↑ | SLCC (Δ ↓) | FDD (×10⁻⁷ m²)"


def paper_direction(base: dict, perceptual: dict) -> str:
    """Which criteria the loss improved (the paper: all of MTM, LVE, PLRS and ΔSLCC improve)."""
    checks = [("MTM", "MTM_ms", -1), ("LVE", "LVE_1e-5", -1), ("PLRS", "PLRS", 1), ("ΔSLCC", "delta_SLCC", -1)]
    marks = []
    for name, column, sign in checks:
        if base.get(column, "") in ("", None) or perceptual.get(column, "") in ("", None):
            marks.append(f"{name} n/a")
            continue
        better = sign * (float(perceptual[column]) - float(base[column])) > 0
        marks.append(f"{name} {'✓' if better else '✗'}")
    return ", ".join(marks)


def comparison_table(rows: dict, families) -> str:
    """Table 2 layout: each family baseline, then + perceptual loss, with the paper-direction check."""
    lines = [f"| model | perceptual loss | {METRIC_HEADER} | as the paper (loss improves) |",
             "|---|---|---|---|---|---|---|---|", f"| ground truth | | {_metric_cells(rows['ground truth'])} | |"]
    for family in families:
        base, perceptual = rows[run_label(Run("", family))], rows[run_label(Run("", family, "two-stage"))]
        lines.append(f"| {FAMILY_CLASSES[family].title} | ✗ | {_metric_cells(base)} | |")
        lines.append(f"| {FAMILY_CLASSES[family].title} | ✓ | {_metric_cells(perceptual)} | {paper_direction(base, perceptual)} |")
    return "\n".join(lines) + "\n"


def ablation_table(rows: dict) -> str:
    """Table 3 layout: FaceFormer-style trained with the loss from each representation variant."""
    lines = [f"| FaceFormer-style trained with | {METRIC_HEADER} |", "|---|---|---|---|---|---|",
             f"| no perceptual loss | {_metric_cells(rows[run_label(Run('', 'faceformer'))])} |"]
    for variant in ("two-stage", *ABLATION_VARIANTS):
        lines.append(f"| loss from {VARIANT_NAMES[variant]} | "
                     f"{_metric_cells(rows[run_label(Run('', 'faceformer', variant))])} |")
    return "\n".join(lines) + "\n"


def code_usage(indices: torch.Tensor, codebook_size: int) -> dict:
    """Codebook usage of code indices (any shape): perplexity exp(entropy of the code histogram), codes
    used at least once, dead codes (never used), out of codebook_size."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).double()
    probabilities = counts / counts.sum()
    entropy = -(probabilities[counts > 0] * probabilities[counts > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"perplexity": float(entropy.exp()), "used": used, "dead": codebook_size - used,
            "codebook_size": codebook_size, "codes": int(counts.sum())}


def codebook_usage(runs_dir: Path, corpus, split: str, family: str = "codetalker") -> dict:
    """Usage of the prior's codebook of `family`: the prior's own codes for the split's ground-truth motion
    (its training forward), and the codes each trained `family` model predicts from the split's speech."""
    report = {}
    prior, config, styles, _ = load_trained(runs_dir / prior_run(family).name / loop.CHECKPOINT_FILE)
    clips = ClipLoader(corpus, split, styles, replace(config, variants=1)).clips(prior.motion_basis)
    size = config.codetalker.codebook_size
    with torch.no_grad():
        codes = [prior.training_output(clip).code_indices.flatten() for clip in clips]
        report["stage 1: ground-truth motion"] = code_usage(torch.cat(codes), size)
        for name in (f"{family}_base", f"{family}_perceptual"):
            path = runs_dir / name / loop.CHECKPOINT_FILE
            if not path.is_file():
                continue
            model, config, styles, _ = load_trained(path)
            chosen = [model.predict(clip.features, clip.template[None], torch.eye(len(styles))[:1])
                      .code_indices.flatten() for clip in clips]
            report[f"stage 2 ({name}): codes predicted from speech"] = code_usage(torch.cat(chosen),
                                                                                   config.codetalker.codebook_size)
    return report


def codebook_table(report: dict) -> str:
    lines = ["| codes | perplexity | used | dead | codebook size | codes counted (frames × groups) |",
             "|---|---|---|---|---|---|"]
    for name, usage in report.items():
        lines.append(f"| {name} | {usage['perplexity']:.1f} | {usage['used']} | {usage['dead']} | "
                     f"{usage['codebook_size']} | {usage['codes']} |")
    return "\n".join(lines) + "\n"


def _resident_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize() / 2**20


def measure_cost(config: GeneratorConfig, corpus, representation, steps: int, device_name: str) -> dict:
    """Seconds per training iteration (wall and process CPU, median over `steps` after one warm-up) and peak
    memory of the training loop's own step (training.loop.optimiser_step over training.generators.train's clip
    losses) on the corpus's train clips. Peak memory: CUDA's peak allocation on a GPU; on CPU the process's peak
    resident set minus its resident set before the model was built (call it in a fresh process: the peak never
    goes down)."""
    torch.manual_seed(config.seed)
    device = torch.device(device_name)
    baseline_mb = _resident_mb()
    model, _, clips, perceptual, _ = prepared_model(config, corpus, representation, device)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    settings = loop_settings(config)
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    walls, cpus = [], []
    for step in range(steps + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        loop.optimiser_step(optimiser, parameters, config.clips_per_step, lambda index: clip_losses(
            model, clips[clip_order(config.seed, len(clips), step * config.clips_per_step + index)], perceptual),
            config.grad_clip, settings.schedule(step))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_mb
    return {"seconds_per_iteration": float(np.median(walls)), "cpu_seconds_per_iteration": float(np.median(cpus)),
            "peak_memory_mb": float(peak_mb), "steps": steps, "clips_per_step": config.clips_per_step}


def _cost_worker(arguments: tuple, results) -> None:
    config_values, corpus, representation, steps, device_name, threads = arguments
    torch.set_num_threads(threads)
    results.put(measure_cost(GeneratorConfig.from_dict(config_values), corpus, representation, steps, device_name))


def cost_rows(families, preset_name: str, settings: dict, runs_dir: Path, corpus, representation, steps: int,
              device_name: str, threads: int, log=print) -> list:
    """One row per family and perceptual setting, each measured in a fresh spawned process, the two settings of a
    family back to back (so both see the same machine load)."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for family in families:
        for variant in (None, "two-stage"):
            config = run_config(Run("", family, variant), preset_name, settings, runs_dir)
            results = context.Queue()
            worker = context.Process(target=_cost_worker, args=((config.to_dict(), str(corpus),
                                                                 representation if variant else None, steps,
                                                                 device_name, threads), results))
            worker.start()
            worker.join()
            if worker.exitcode != 0:
                raise BackendError(f"measuring the training cost of {family} failed (exit code {worker.exitcode}); "
                                   "see the traceback above")
            measured = results.get(timeout=60)
            rows.append({"family": family, "perceptual": bool(variant), **measured})
            log(f"cost {family} perceptual={bool(variant)}: {measured['seconds_per_iteration']:.3f} s/iter")
    return rows


def cost_table(rows: list, device_name: str) -> str:
    memory = "peak CUDA allocation (MB)" if device_name.startswith("cuda") else "peak RSS increase (MB)"
    lines = [f"| family | s/iter (wall) | s/iter (CPU) | {memory} | + loss: s/iter (wall) | + loss: s/iter (CPU) | "
             f"+ loss: {memory} | time ratio (CPU) | memory ratio |", "|---|---|---|---|---|---|---|---|---|"]
    by_key = {(row["family"], row["perceptual"]): row for row in rows}
    for family in dict.fromkeys(row["family"] for row in rows):
        base, loss = by_key[(family, False)], by_key[(family, True)]
        lines.append(f"| {FAMILY_CLASSES[family].title} | {base['seconds_per_iteration']:.3f} | "
                     f"{base['cpu_seconds_per_iteration']:.3f} | {base['peak_memory_mb']:.0f} | "
                     f"{loss['seconds_per_iteration']:.3f} | {loss['cpu_seconds_per_iteration']:.3f} | "
                     f"{loss['peak_memory_mb']:.0f} | "
                     f"{loss['cpu_seconds_per_iteration'] / base['cpu_seconds_per_iteration']:.2f}× | "
                     f"{loss['peak_memory_mb'] / max(base['peak_memory_mb'], 1e-9):.2f}× |")
    return "\n".join(lines) + "\n"


def compare(corpus, runs_dir, representation_dir, out_dir, encoders_dir=None, masks=None, preset_name: str = "small",
            settings: dict | None = None, split: str = "test", families=FAMILIES, parts=PARTS, cost_steps: int = 10,
            device_name: str = "cpu", threads: int = 1, log=print) -> str:
    """Train or reuse every run the parts need, evaluate, measure; writes <out>/comparison.md and returns it.
    settings: GeneratorConfig overrides for every run (e.g. {"seed": 1}); its seed also seeds missing
    representations."""
    settings = settings or {}
    seed = settings.get("seed", 0)
    unknown = sorted(set(families) - set(FAMILIES)) + sorted(set(parts) - set(PARTS))
    if unknown:
        raise BackendError(f"unknown famil(ies) or part(s) {', '.join(unknown)}; families: {', '.join(FAMILIES)}; "
                           f"parts: {', '.join(PARTS)}")
    if "ablation" in parts and "faceformer" not in families:
        raise BackendError("the ablation part trains FaceFormer-style models; add faceformer to --families")
    corpus, runs_dir, out_dir = Path(corpus), Path(runs_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = planned_runs(families, parts)
    variants = sorted({run.variant for run in runs if run.variant} | ({"two-stage"} if "cost" in parts else set()))
    representations = ensure_representations(Path(representation_dir), variants, corpus, preset_name, seed, log)
    provenance = {}
    for run in runs:
        config = run_config(run, preset_name, settings, runs_dir)
        provenance[run.name] = ensure_run(run, config, runs_dir, corpus,
                                          representations.get(run.variant) if run.variant else None, log)
    data = data_provenance(corpus)
    synthetic = "SYNTHETIC" if data["synthetic"] else "not marked synthetic"
    sections = [f"# Generator comparison ({synthetic} corpus)\n",
                f"Corpus `{corpus}` (preset {data['preset']}, seed {data['seed']}, {synthetic}); "
                f"split `{split}`; generator preset `{preset_name}`, seed {seed}; perceptual weight "
                f"{PERCEPTUAL_WEIGHT:g} for every family; representations in `{representation_dir}`. These numbers say "
                "how well models fit a synthetic rig, not real speech.\n",
                "Runs: " + ", ".join(f"`{name}` ({action})" for name, action in provenance.items()) + ".\n"]
    evaluated = [run for run in runs if FAMILY_CLASSES[run.family].animates_speech
                 and ("comparison" in parts or run.family == "faceformer")]
    if "comparison" in parts or "ablation" in parts:
        evaluate({run_label(run): runs_dir / run.name / "checkpoint.pt" for run in evaluated}, corpus,
                 out_dir / "evaluation", split, encoders_dir, masks)
        with open(out_dir / "evaluation" / "table.csv", newline="") as stream:
            rows = {row["model"]: row for row in csv.DictReader(stream)}
        if "comparison" in parts:
            sections += [f"## Comparison (paper Table 2 format; {synthetic} corpus)\n", comparison_table(rows, families)]
        if "ablation" in parts:
            sections += [f"## Representation ablation (paper Table 3 format; {synthetic} corpus)\n", ablation_table(rows)]
    if "codebook" in parts and "codetalker" in families:
        report = codebook_usage(runs_dir, corpus, split, "codetalker")
        write_json(out_dir / "codebook.json", report)
        sections += [f"## CodeTalker-style codebook usage (split `{split}`; {synthetic} corpus)\n", codebook_table(report)]
    if "cost" in parts:
        rows = cost_rows(families, preset_name, settings, runs_dir, corpus, str(representations["two-stage"]),
                         cost_steps, device_name, threads, log)
        with atomic_stream(out_dir / "cost.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        sections += [f"## Training cost (paper Table S8 format; {synthetic} corpus)\n",
                     f"Device `{device_name}` ({platform.processor() or platform.machine()}, {threads} thread(s), "
                     f"shared machine), `{preset_name}` preset, median of {cost_steps} steps after one warm-up, "
                     "each setting in a fresh process.\n", cost_table(rows, device_name)]
    text = "\n".join(sections)
    write_text(out_dir / "comparison.md", text)
    return text
