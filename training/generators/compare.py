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

Exported models (`compare_exported`, `--exported MODELS_DIR`): no exported model is retrained; the folders
`<family>_v2` and `<family>_v2_perceptual` are scored through the backend (ONNX) on the corpus split and on
the real-speech sets (`--real-speech DIR` from benchmarks/real_speech_corpus.py, whose 3D ground truth is the
rig driven by the phone labels), PLRS always from the independent evaluator (refused if it is the critic's
folder), with REFERENCE §8's closure / rest per set and issue 18's check of the paper's claim per family. Each
row (model x set) is kept in its own folder and reused while its graph, the data and the evaluator are
unchanged, so the sets can be scored in separate runs. The cost rows use the exported models' own training
configurations (a CodeTalker-style stage 1 refitted for a few steps on the cost clips, `with_cost_prior`,
in <out>/cost_runs/); the codebook usage reads the runs in `--runs` whose configuration is the exported one's.
The "ablation" part (Table 3) is the one that trains: the exported `_perceptual` model is the row of its critic's
variant (`--critic`), and each other variant's critic (`--representation DIR`, trained there when missing with
the critic's own settings on `--representation-corpus`) is the perceptual loss of a fine-tune that repeats the
exported run (found in `--runs`) with only the critic changed; runs and their exports live in <out>/ablation/.

    python -m training compare --exported models/generators --corpus DIR --real-speech DIR --out DIR
        [--real-sets a b c] [--runs DIR] [--parts comparison ablation codebook cost]
        [--representation DIR --representation-corpus DIR]
"""

import csv
import hashlib
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
from backend.datasets import open_dataset
from backend.datasets.corpus import MANIFEST_FILE
from backend.errors import BackendError
from training import loop
from training.configuration import merged
from training.generators.config import GeneratorConfig, generator_preset
from training.generators.evaluate import evaluate
from training.generators.families import FAMILY_CLASSES, load_generator_checkpoint, load_trained
from training.generators.clips import ClipLoader, default_feature_cache
from training.generators.train import (clip_losses, clip_order, crop_start, loop_settings, prepared_model,
                                        train)
from training.provenance import data_provenance
from training.representation.config import Config, preset
from training.representation.train import load_representation_meta, represent

FAMILIES = ("faceformer", "kmtalk", "codetalker", "selftalk")   # the families that animate speech
ABLATION_VARIANTS = ("syncnet", "no-2d-prior")
VARIANT_NAMES = {"two-stage": "ours (two-stage, 2D prior)", "syncnet": "3D SyncNet-style",
                 "no-2d-prior": "w/o 2D prior"}
TABLE3_ORDER = ("syncnet", "no-2d-prior", "two-stage")    # the paper's Table 3 rows, top to bottom
PERCEPTUAL_WEIGHT = 1e-7     # the published FaceFormer weight; the other families' weights are unpublished
PARTS = ("comparison", "ablation", "codebook", "cost")
EXPORTED_PARTS = ("comparison", "ablation", "codebook", "cost")


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


def ensure_representations(folder: Path, variants, corpus, preset_name: str, seed: int, reference=None,
                           feature_cache=None, log=print) -> dict:
    """{variant: checkpoint path}, training the missing ones with the settings of the `reference` checkpoint
    (default <folder>/two-stage.pt; its preset, seed and data half, so only the variant differs) when it exists,
    else the preset's (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = Path(reference) if reference is not None else folder / "two-stage.pt"
    paths = {}
    for variant in variants:
        path = folder / f"{variant}.pt"
        if not path.is_file():
            config = (Config.from_dict(load_representation_meta(reference)["config"])
                      if reference.is_file() else preset(preset_name, seed=seed))
            log(f"training representation {variant} ({config.name} settings, seed {config.seed}, data half "
                f"{config.data_half}) -> {path}")
            represent(config, corpus, folder, variant, log=log, resume=True, feature_cache=feature_cache)
        paths[variant] = path
    return paths


def ensure_run(run: Run, config: GeneratorConfig, runs_dir: Path, corpus, representation, log=print,
               feature_cache=None) -> str:
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
    log(f"{'resuming' if action == 'resumed' else 'training'} {run.name} ({config.family}, {config.name} preset, "
        f"{config.steps} steps)")
    started = time.monotonic()
    train(config, corpus, runs_dir / run.name, resume=checkpoint_path.is_file(), representation=representation,
          feature_cache=feature_cache)
    log(f"{run.name}: {time.monotonic() - started:.0f} s")
    return action


def run_label(run: Run, loss_variant: str = "two-stage") -> str:
    """Row label: the family's title alone (no perceptual loss), "+ perceptual" with the loss of `loss_variant`
    (the release's own critic), "+ perceptual (<variant>)" with another representation variant as the critic."""
    base = FAMILY_CLASSES[run.family].title
    if run.variant is None:
        return base
    return f"{base} + perceptual" if run.variant == loss_variant else f"{base} + perceptual ({VARIANT_NAMES[run.variant]})"


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
        base, perceptual = rows.get(run_label(Run("", family)), {}), rows.get(run_label(Run("", family, "two-stage")), {})
        lines.append(f"| {FAMILY_CLASSES[family].title} | ✗ | {_metric_cells(base)} | |")
        lines.append(f"| {FAMILY_CLASSES[family].title} | ✓ | {_metric_cells(perceptual)} | {paper_direction(base, perceptual)} |")
    return "\n".join(lines) + "\n"


def ablation_table(rows: dict, families=("faceformer",), loss_variant: str = "two-stage") -> str:
    """Table 3 layout: each family without the perceptual loss, then with the loss of each representation variant
    as the critic (the paper's order; `loss_variant`'s row is the release's own "+ perceptual" model). A row not
    in `rows` reads n/a."""
    lines = [f"| model | trained with | {METRIC_HEADER} |", "|---|---|---|---|---|---|---|"]
    for family in families:
        title = FAMILY_CLASSES[family].title
        lines.append(f"| {title} | no perceptual loss | {_metric_cells(rows.get(run_label(Run('', family)), {}))} |")
        for variant in TABLE3_ORDER:
            row = rows.get(run_label(Run("", family, variant), loss_variant), {})
            own = " (the + perceptual model)" if variant == loss_variant else ""
            lines.append(f"| {title} | loss from {VARIANT_NAMES[variant]}{own} | {_metric_cells(row)} |")
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


def codebook_usage(checkpoints: dict, corpus, split: str) -> dict:
    """Usage of a CodeTalker-style prior's codebook on the split: the prior's own codes for the ground-truth
    motion (its training forward; the prior frozen inside the first stage-2 checkpoint), and the codes each
    stage-2 model of `checkpoints` ({label: checkpoint path}) predicts from the split's speech."""
    report, clips = {}, None
    with torch.no_grad():
        for label, path in checkpoints.items():
            model, config, styles, _ = load_trained(path)
            size = config.codetalker.codebook_size
            if clips is None:
                clips = ClipLoader(corpus, split, styles, replace(config, variants=1)).clips(model.motion_basis)
                codes = [model.prior.training_output(clip).code_indices.flatten() for clip in clips]
                report["stage 1: ground-truth motion"] = code_usage(torch.cat(codes), size)
            chosen = [model.predict(clip.features, clip.template[None], torch.eye(len(styles))[:1])
                      .code_indices.flatten() for clip in clips]
            report[f"stage 2 ({label}): codes predicted from speech"] = code_usage(torch.cat(chosen), size)
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


def measure_cost(config: GeneratorConfig, corpus, representation, steps: int, device_name: str,
                 feature_cache=None) -> dict:
    """Seconds per training iteration (wall and process CPU, median over `steps` after one warm-up) and peak
    memory of the training loop's own step (training.loop.optimiser_step over training.generators.train's clip
    losses, on crops of crop_frames for a baseline and whole clips with the perceptual loss, as train does) on
    the corpus's train clips. Peak memory: CUDA's peak allocation on a GPU; on CPU the process's peak resident
    set minus its resident set before the model was built (call it in a fresh process: the peak never goes
    down)."""
    torch.manual_seed(config.seed)
    device = torch.device(device_name)
    baseline_mb = _resident_mb()
    model, _, clips, perceptual, _ = prepared_model(config, corpus, representation, device, feature_cache)
    crop = 0 if perceptual is not None else config.crop_frames

    def micro_loss(step: int, index: int) -> dict:
        position = step * config.clips_per_step + index
        clip = clips[clip_order(config.seed, len(clips), position)]
        start = crop_start(config.seed, position, clip.frames, crop)
        return clip_losses(model, clip.crop(start, crop) if crop and clip.frames > crop else clip, perceptual)

    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    settings = loop_settings(config)
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    walls, cpus = [], []
    for step in range(steps + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        loop.optimiser_step(optimiser, parameters, config.clips_per_step, lambda index: micro_loss(step, index),
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
    config_values, corpus, representation, steps, device_name, threads, feature_cache = arguments
    torch.set_num_threads(threads)
    results.put(measure_cost(GeneratorConfig.from_dict(config_values), corpus, representation, steps, device_name,
                             feature_cache))


def measured_in_fresh_process(config: GeneratorConfig, corpus, representation, steps: int, device_name: str,
                              threads: int, feature_cache=None) -> dict:
    """measure_cost in a fresh spawned process (its peak memory is its own)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_cost_worker, args=((config.to_dict(), str(corpus), representation, steps,
                                                         device_name, threads, feature_cache), results))
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise BackendError(f"measuring the training cost of {config.family} failed (exit code {worker.exitcode}); "
                           "see the traceback above")
    return results.get(timeout=60)


def cost_rows(configs: dict, corpus, representation, steps: int, device_name: str, threads: int,
              feature_cache=None, log=print) -> list:
    """One row per family and perceptual setting ({family: (baseline config, + loss config)}), each measured in a
    fresh process, the two settings of a family back to back (so both see the same machine load)."""
    rows = []
    for family, pair in configs.items():
        measured_pair = []
        for config in pair:
            perceptual = config.perceptual_weight > 0
            try:
                measured = measured_in_fresh_process(config, corpus, representation if perceptual else None, steps,
                                                     device_name, threads, feature_cache)
            except BackendError as error:
                log(f"cost {family}: not measured ({error})")
                break
            measured_pair.append({"family": family, "perceptual": perceptual,
                                  "perceptual_weight": config.perceptual_weight, **measured})
            log(f"cost {family} perceptual={perceptual}: {measured['seconds_per_iteration']:.3f} s/iter")
        rows += measured_pair if len(measured_pair) == 2 else []
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


def report_header(title: str, corpus: Path) -> tuple:
    """(heading "# <title> (<label> corpus)", the line "Corpus `<path>` (preset P, seed S, <label>)", label), label
    "SYNTHETIC" or "not marked synthetic" (the corpus manifest's word, `data_provenance`): every comparison report
    names its data the same way and heads its tables with the label."""
    data = data_provenance(corpus)
    label = "SYNTHETIC" if data["synthetic"] else "not marked synthetic"
    return (f"# {title} ({label} corpus)\n", f"Corpus `{corpus}` (preset {data['preset']}, seed {data['seed']}, "
            f"{label})", label)


def compare(corpus, runs_dir, representation_dir, out_dir, encoders_dir=None, masks=None, preset_name: str = "small",
            settings: dict | None = None, split: str = "test", families=FAMILIES, parts=PARTS, cost_steps: int = 10,
            device_name: str = "cpu", threads: int = 1, representation_corpus=None, log=print) -> str:
    """Train or reuse every run the parts need, evaluate, measure; writes <out>/comparison.md and returns it.
    settings: GeneratorConfig overrides for every run (e.g. {"seed": 1}); its seed also seeds missing
    representations, which train on representation_corpus (default the corpus)."""
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
    representations = ensure_representations(Path(representation_dir), variants, representation_corpus or corpus,
                                             preset_name, seed, log=log)
    provenance = {}
    for run in runs:
        config = run_config(run, preset_name, settings, runs_dir)
        provenance[run.name] = ensure_run(run, config, runs_dir, corpus,
                                          representations.get(run.variant) if run.variant else None, log)
    heading, corpus_line, synthetic = report_header("Generator comparison", corpus)
    sections = [heading,
                f"{corpus_line}; split `{split}`; generator preset `{preset_name}`, seed {seed}; perceptual weight "
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
        report = codebook_usage({name: runs_dir / name / loop.CHECKPOINT_FILE for name in
                                 ("codetalker_base", "codetalker_perceptual")}, corpus, split)
        write_json(out_dir / "codebook.json", report)
        sections += [f"## CodeTalker-style codebook usage (split `{split}`; {synthetic} corpus)\n", codebook_table(report)]
    if "cost" in parts:
        configs = {family: tuple(run_config(Run("", family, variant), preset_name, settings, runs_dir)
                                 for variant in (None, "two-stage")) for family in families}
        rows = cost_rows(configs, corpus, str(representations["two-stage"]), cost_steps, device_name, threads,
                         log=log)
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


# --- the comparison of exported (shipped) models ------------------------------------------------------------
PERCEPTUAL_SUFFIX = "_perceptual"
DEFAULT_EXPORTED_SUFFIX = "_v2"
CLOSURE_SETS = ("b", "c")      # issue 18's target sets: unseen real speakers and unseen TTS voices
LVE_TOLERANCE = 1.05           # the loss may not make the corpus test split's LVE worse by more than 5 %


def exported_pairs(models_dir: Path, families, suffix: str = DEFAULT_EXPORTED_SUFFIX) -> dict:
    """{family: (baseline folder or None, + perceptual folder or None)}: `<family><suffix>` and
    `<family><suffix>_perceptual` in models_dir, None where the folder is not there."""
    def folder(name: str):
        path = Path(models_dir) / name
        return path if (path / "model.json").is_file() else None
    return {family: (folder(f"{family}{suffix}"), folder(f"{family}{suffix}{PERCEPTUAL_SUFFIX}"))
            for family in families}


def _exported_labels(pairs: dict) -> dict:
    """{Table 2 row label: folder} of every exported model there is."""
    labels = {}
    for family, folders in pairs.items():
        for variant, path in zip((None, "two-stage"), folders):
            if path is not None:
                labels[run_label(Run("", family, variant))] = path
    return labels


def phone_check_rows(evaluation_dir: Path, corpus, split: str, labels) -> dict:
    """{row label: backend.metrics.phone_checks.summarise of its predictions in evaluation_dir} for each of
    `labels` on a split of a corpus that keeps its rig (rig/: the rig of each clip's subject gives the rest gap;
    the clip's own motion is the timing reference); closure and rest are REFERENCE §8's."""
    from backend.mesh import load_vertex_sequence
    from backend.metrics import phone_checks
    from backend.metrics.mtm import lip_distance_curve
    from training.generators.evaluate import prediction_folder
    dataset = open_dataset(corpus, split=split)
    if not hasattr(dataset, "rig"):
        raise BackendError(f"{corpus}: the phone checks need a corpus built by this project (its rig/ folder "
                           "gives each subject's rest gap)")
    per_label = {label: [] for label in labels}
    for clip_id in dataset.clip_ids():
        clip = dataset.load(clip_id)
        if not clip.timeline:
            continue
        rig = dataset.rig(clip.subject)
        for label in per_label:
            vertices = load_vertex_sequence(prediction_folder(evaluation_dir, label) / f"{clip_id}.npy")
            frames = min(len(vertices), len(clip.vertices))
            checks = phone_checks.check_clip(vertices[:frames], clip.timeline, rig, clip.fps,
                                             lip_distance_curve(clip.vertices[:frames]))
            per_label[label].append(checks)
    return {label: phone_checks.summarise(checks) for label, checks in per_label.items()}


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def phone_check_table(checks: dict, set_names: dict) -> str:
    """Closure / rest / MTM median against the reference, one column per set."""
    sets = list(checks)
    header = " | ".join(set_names[key] for key in sets)
    lines = [f"| model | {header} |", "|---|" + "---|" * len(sets)]
    for label in checks[sets[0]]:
        cells = []
        for key in sets:
            summary = checks[key][label]
            mtm = "n/a" if summary.get("mtm_median_ms") is None else f"{summary['mtm_median_ms']:.0f}"
            cells.append(f"{_percent(summary.get('closure'))} / {_percent(summary.get('rest'))} / {mtm}")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _value(row: dict, column: str):
    value = (row or {}).get(column, "")
    return None if value in ("", None) else float(value)


def issue_direction(family: str, test_rows: dict, checks: dict, split: str) -> dict:
    """Issue 18's check of the paper's claim for one family: + perceptual beats its baseline on bilabial closure
    (mean over CLOSURE_SETS of the real-speech sets, else the corpus split), MTM and the independent PLRS (corpus
    split `split`), without that split's LVE worse by more than 5 %. {criterion: (baseline, + loss, passed)},
    "holds" and "closure_sets"."""
    base_label, loss_label = run_label(Run("", family)), run_label(Run("", family, "two-stage"))
    closure_sets = [key for key in CLOSURE_SETS if key in checks and key != split] or [split]

    def closure(label):
        values = [checks[key].get(label, {}).get("closure") for key in closure_sets]
        return None if not values or None in values else float(np.mean(values))

    base, loss = test_rows.get(base_label, {}), test_rows.get(loss_label, {})
    pairs = {"closure": (closure(base_label), closure(loss_label), 1),
             "MTM": (_value(base, "MTM_ms"), _value(loss, "MTM_ms"), -1),
             "PLRS": (_value(base, "PLRS"), _value(loss, "PLRS"), 1)}
    result = {name: (first, second, None if first is None or second is None else sign * (second - first) > 0)
              for name, (first, second, sign) in pairs.items()}
    first, second = _value(base, "LVE_1e-5"), _value(loss, "LVE_1e-5")
    result["LVE"] = (first, second, None if first is None or second is None else second <= LVE_TOLERANCE * first)
    passed = [value[2] for value in result.values()]
    result["holds"] = None if None in passed else all(passed)
    result["closure_sets"] = closure_sets
    return result


def direction_table(directions: dict, split: str) -> str:
    def mark(flag):
        return "n/a" if flag is None else ("✓" if flag else "✗")

    def pair(values, digits, percent=False):
        first, second, flag = values
        if first is None or second is None:
            return "n/a"
        shown = (lambda v: f"{100 * v:.1f} %") if percent else (lambda v: f"{v:.{digits}f}")
        return f"{shown(first)} → {shown(second)} {mark(flag)}"

    lines = ["| family | closure ↑ (sets " + "+".join(next(iter(directions.values()))["closure_sets"]) +
             f") | MTM ms ↓ ({split}) | independent PLRS ↑ ({split}) | LVE ×10⁻⁵ ({split}, ≤ +5 %) | claim holds |",
             "|---|---|---|---|---|---|"]
    for family, result in directions.items():
        lines.append(f"| {FAMILY_CLASSES[family].title} | {pair(result['closure'], 0, True)} | "
                     f"{pair(result['MTM'], 1)} | {pair(result['PLRS'], 3)} | {pair(result['LVE'], 3)} | "
                     f"{mark(result['holds'])} |")
    held = sum(result["holds"] is True for result in directions.values())
    lines.append("")
    lines.append(f"The claim holds for {held} of {len(directions)} families (issue 18 asks for at least three of four).")
    return "\n".join(lines) + "\n"


EVALUATED_FILE = "evaluated.json"


INFERENCE_FIELDS = ("kind", "input", "fps", "sample_rate", "styles", "default_style")   # model.json keys used to animate


def evaluation_identity(models: dict, corpus: Path, split: str, evaluator) -> dict:
    """What an evaluation folder's tables depend on: each model's graphs and the model.json fields inference reads
    (not its card or benchmark notes), the data, the evaluator's files (sha256)."""
    def digest(folder: Path) -> str:
        hashed = hashlib.sha256()
        for path in sorted(Path(folder).glob("*.onnx")):
            hashed.update(path.name.encode() + path.read_bytes())
        info_path = Path(folder) / "model.json"
        for info in [json.loads(info_path.read_text(encoding="utf-8"))] if info_path.is_file() else []:
            hashed.update(json.dumps({key: info.get(key) for key in INFERENCE_FIELDS}, sort_keys=True).encode())
        for path in sorted(Path(folder).glob("*.json")) if not info_path.is_file() else []:
            hashed.update(path.name.encode() + path.read_bytes())
        return hashed.hexdigest()
    return {"models": {label: digest(folder) for label, folder in models.items()},
            "corpus": str(Path(corpus).resolve()), "split": split, "evaluator": digest(evaluator)}


def evaluate_once(models: dict, corpus: Path, evaluation_dir: Path, split: str, evaluator, masks,
                  log=print) -> tuple:
    """The Table 2 row and the phone checks of the ground truth and of each model on the split, each row in its
    own folder <evaluation_dir>/<row>/ (evaluate() and phone_check_rows) and kept there: a row whose model,
    data and evaluator are unchanged (see evaluation_identity) is reused, so the rows can be scored in separate
    runs. Returns ({label: table row}, {label: phone-check summary}, {label: "reused" | "evaluated"})."""
    from training.generators.evaluate import GROUND_TRUTH, prediction_folder
    rows, checks, actions = {}, {}, {}
    for label, path in {GROUND_TRUTH: None, **models}.items():
        folder = evaluation_dir / prediction_folder("", label).name
        identity = evaluation_identity({} if path is None else {label: path}, corpus, split, evaluator)
        record = folder / EVALUATED_FILE
        if not (record.is_file() and json.loads(record.read_text(encoding="utf-8")) == identity):
            started = time.monotonic()
            if path is None:
                evaluate({}, corpus, folder, split, evaluator, masks)
            else:
                evaluate({label: path}, corpus, folder, split, evaluator, masks, ground_truth=False)
            write_json(folder / "phone_checks.json", phone_check_rows(folder, corpus, split, [label]))
            write_json(record, identity)
            log(f"evaluated {label} on {Path(corpus).name} split {split}: {time.monotonic() - started:.0f} s")
            actions[label] = "evaluated"
        else:
            actions[label] = "reused"
        rows[label] = _rows_of(folder)[label]
        checks[label] = json.loads((folder / "phone_checks.json").read_text(encoding="utf-8"))[label]
    return rows, checks, actions


def _rows_of(evaluation_dir: Path) -> dict:
    with open(evaluation_dir / "table.csv", newline="") as stream:
        return {row["model"]: row for row in csv.DictReader(stream)}


def matching_checkpoints(runs_dir: Path, exported: dict) -> dict:
    """{label: checkpoint} of the runs in runs_dir/*/ whose saved configuration is the exported model's
    (model.json's config; the stage-1 path is compared by its run folder and file name only)."""
    from training.generators.export import shareable_config
    wanted = {label: json.loads((Path(folder) / "model.json").read_text())["config"]
              for label, folder in exported.items()}
    found = {}
    for path in sorted(Path(runs_dir).glob(f"*/{loop.CHECKPOINT_FILE}")):
        config = shareable_config(GeneratorConfig.from_dict(json.loads(load_generator_checkpoint(path)["config"])))
        for label, values in wanted.items():
            if config == values and label not in found:
                found[label] = path
    return found


def exported_cost_configs(pairs: dict, runs_dir) -> dict:
    """{family: (baseline config, + loss config)} from the exported model.json configs (a fine-tuned model's
    starting checkpoint dropped); a CodeTalker-style model's stage-1 checkpoint is looked up in runs_dir under the
    run folder model.json names (families without runs_dir are left out; `with_cost_prior` then refits it on the
    cost clips)."""
    configs = {}
    for family, folders in pairs.items():
        if None in folders:
            continue
        pair = []
        for folder in folders:
            values = json.loads((folder / "model.json").read_text())["config"]
            if values.get("init_from"):
                values["init_from"] = ""     # a step costs the same whatever weights it starts from
            if values["codetalker"]["motion_prior"]:
                if runs_dir is None:
                    break
                values["codetalker"]["motion_prior"] = str(Path(runs_dir) / values["codetalker"]["motion_prior"])
            pair.append(GeneratorConfig.from_dict(values))
        if len(pair) == 2:
            configs[family] = tuple(pair)
    return configs


def cost_subset(corpus: Path, out: Path, clips: int) -> Path:
    """A corpus of every n-th train clip of `corpus` (files linked, not copied) for the cost rows: a step's cost
    depends on the clips' lengths, not on how many there are, and reading fewer clips keeps each process short."""
    manifest = json.loads((corpus / MANIFEST_FILE).read_text(encoding="utf-8"))
    train = [entry for entry in manifest["clips"] if entry.get("split") == "train"]
    kept = train[::max(1, len(train) // clips)][:clips]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("wav", "controls_npy", "vertices_npy", "templates", "rig"):
        if (corpus / name).exists() and not (out / name).exists():
            (out / name).symlink_to((corpus / name).resolve(), target_is_directory=True)
    write_json(out / MANIFEST_FILE, {**{key: value for key, value in manifest.items() if key != "stats"},
                                     "clips": kept, "subset_of": str(corpus.resolve())}, indent=1)
    return out


COST_PRIOR_STEPS = 20      # steps of the stage-1 refit on the cost clips (its weights do not change a step's cost)
COST_RUNS_FOLDER = "cost_runs"


def with_cost_prior(config: GeneratorConfig, subset: Path, runs_dir: Path, feature_cache=None,
                    log=print) -> GeneratorConfig:
    """`config` with its stage-1 motion prior (CodeTalker-style) refitted on the cost clips `subset`: the stage-1
    run's own configuration (read from its checkpoint) trained for COST_PRIOR_STEPS steps in
    runs_dir/<its run folder> (reused when there). Why: stage 2 refuses a prior fitted in another motion basis,
    and the basis is fitted on the clips read (the shipped prior's on the whole train split); a stage-2 step's cost
    depends on the frozen prior's sizes (the same: the stage-1 configuration), not on its weights. Configurations
    without a prior are returned as they are."""
    prior = config.codetalker.motion_prior
    if not prior:
        return config
    if not Path(prior).is_file():
        raise BackendError(f"{prior}: no stage-1 run there (pass the runs folder the model was trained in as --runs)")
    saved = GeneratorConfig.from_dict(json.loads(load_generator_checkpoint(prior)["config"]))
    refit = replace(saved, steps=min(saved.steps, COST_PRIOR_STEPS))
    run = Run(Path(prior).parent.name, refit.family)
    ensure_run(run, refit, runs_dir, subset, None, log, feature_cache)
    return replace(config, codetalker=replace(config.codetalker,
                                              motion_prior=str(runs_dir / run.name / loop.CHECKPOINT_FILE)))


ABLATION_FOLDER = "ablation"     # <out>/ablation/runs/<family>_<variant>/, <out>/ablation/models/<model>_<variant>/


def in_runs(path: str, runs_dir: Path) -> str:
    """A checkpoint path of a saved configuration, found again in runs_dir by its run folder and file name."""
    from training.generators.export import run_name
    return str(Path(runs_dir) / run_name(path)) if path else path


def ablation_fine_tunes(pairs: dict, runs_dir: Path, critic: Path, representation_dir: Path, representation_corpus,
                        corpus, out_dir: Path, log=print) -> tuple:
    """Table 3 on exported models: the exported `_perceptual` folder is the row of the critic's own variant; for
    every other representation variant, its checkpoint `<representation_dir>/<variant>.pt` (trained when missing
    with the critic's own settings — preset, seed, data half — on `representation_corpus`, so only the variant
    differs) is the critic of a fine-tune made exactly as the exported one: the run in runs_dir whose
    configuration is the exported model's gives every setting (start checkpoint, steps, weight, data), looked up
    again in runs_dir. Each fine-tune is trained (or reused, or resumed) in <out>/ablation/runs/<family>_<variant>
    and exported to <out>/ablation/models/<exported name>_<variant> (not shipped).
    Returns ({row label: model folder}, critic variant, [family left out: reason])."""
    from training.generators.export import export_generator
    critic_variant = load_representation_meta(critic)["variant"]
    others = [variant for variant in TABLE3_ORDER if variant != critic_variant]
    critics = ensure_representations(Path(representation_dir), others, representation_corpus, "small", 0,
                                     reference=critic, feature_cache=default_feature_cache(representation_corpus),
                                     log=log)
    shipped = {family: folders[1] for family, folders in pairs.items() if None not in folders}
    runs = matching_checkpoints(runs_dir, {family: folder for family, folder in shipped.items()})
    models, left_out = {}, [f"{family}: no exported baseline and _perceptual pair" for family in pairs
                            if family not in shipped]
    root = Path(out_dir) / ABLATION_FOLDER
    for family, folder in shipped.items():
        if family not in runs:
            left_out.append(f"{family}: no run in {runs_dir} has {folder.name}'s configuration")
            continue
        models[run_label(Run("", family))] = pairs[family][0]
        models[run_label(Run("", family, critic_variant), critic_variant)] = folder
        config = GeneratorConfig.from_dict(json.loads(load_generator_checkpoint(runs[family])["config"]))
        config = replace(config, init_from=in_runs(config.init_from, runs_dir),
                         codetalker=replace(config.codetalker,
                                            motion_prior=in_runs(config.codetalker.motion_prior, runs_dir)))
        for variant in others:
            run = Run(f"{family}_{variant}", family, variant)
            ensure_run(run, config, root / "runs", corpus, critics[variant], log)
            checkpoint = root / "runs" / run.name / loop.CHECKPOINT_FILE
            exported = root / "models" / f"{folder.name}_{variant}"
            info = exported / "model.json"
            if not info.is_file() or checkpoint.stat().st_mtime > info.stat().st_mtime:
                export_generator(checkpoint, exported, force=True, description=(
                    f"{folder.name} fine-tuned as it was, with the {VARIANT_NAMES[variant]} critic "
                    f"{critics[variant]} (Table 3 ablation; not shipped)"))
            models[run_label(run, critic_variant)] = exported
    return models, critic_variant, left_out


def ablation_sections(pairs: dict, families, corpus, out_dir: Path, runs_dir, critic: Path, representation_dir,
                      representation_corpus, evaluations: dict, set_names: dict, evaluator, masks, synthetic: str,
                      log=print) -> list:
    """comparison.md's Table 3 sections: `ablation_fine_tunes`, then every row (baseline, + the loss of each
    critic) scored on each set of `evaluations` ({set: (corpus, evaluation folder)}, rows shared with Table 2's);
    writes <out>/ablation.json ({set: {row: table row}}, the phone checks, the critic's variant)."""
    models, critic_variant, left_out = ablation_fine_tunes(pairs, Path(runs_dir), critic, representation_dir,
                                                           representation_corpus, corpus, out_dir, log)
    done = [family for family in families if run_label(Run("", family)) in models]
    if not done:
        return ["## Representation ablation (paper Table 3 format)\n", "Not run: " + "; ".join(left_out) + ".\n"]
    rows, checks = {}, {}
    for key, (folder, evaluation_dir) in evaluations.items():
        log(f"Table 3: evaluating on {set_names[key]}")
        rows[key], checks[key], _ = evaluate_once(models, folder, evaluation_dir, key, evaluator, masks, log)
    write_json(out_dir / "ablation.json", {"critic_variant": critic_variant, "critic": str(critic),
                                           "models": {label: str(path) for label, path in models.items()},
                                           "rows": rows, "phone_checks": checks, "left_out": left_out})
    split = next(iter(evaluations))
    sections = ["## Representation ablation (paper Table 3 format): each critic as the perceptual loss\n",
                f"The + perceptual model's critic `{critic}` is the {VARIANT_NAMES[critic_variant]} variant; the "
                f"other variants' critics (`{representation_dir}`) were trained with its settings (preset, seed, data "
                f"half) on `{representation_corpus}`, and each fine-tune repeats the + perceptual run's settings "
                f"(from `{runs_dir}`) with only the critic changed. PLRS from the independent evaluator `{evaluator}`"
                f"{'; not run: ' + '; '.join(left_out) if left_out else ''}.\n",
                f"### Table 3 format on {set_names[split]} ({synthetic} rig motion)\n",
                ablation_table(rows[split], done, critic_variant)]
    for key in evaluations:
        if key != split:
            sections += [f"### Table 3 format on real-speech set {set_names[key]} (against the rig from the "
                         "labels)\n", ablation_table(rows[key], done, critic_variant)]
    own = {run_label(Run("", family, critic_variant), critic_variant) for family in done}   # named by critic here
    shown = {key: {f"{label} ({VARIANT_NAMES[critic_variant]})" if label in own else label: summary
                   for label, summary in per_label.items()} for key, per_label in checks.items()}
    sections += ["### Bilabial closure / rest in pauses / MTM median ms per critic (REFERENCE §8)\n",
                 phone_check_table(shown, set_names)]
    return sections


def compare_exported(models_dir, corpus, out_dir, real_speech=None, real_sets=("a", "b", "c"), runs_dir=None,
                     critic=None, encoders_dir=None, masks=None, split: str = "test", families=FAMILIES,
                     parts=("comparison", "codebook", "cost"), suffix: str = DEFAULT_EXPORTED_SUFFIX,
                     cost_steps: int = 5, cost_clips: int = 40, device_name: str = "cpu", threads: int = 1,
                     representation_dir=None, representation_corpus=None, log=print) -> str:
    """The paper's comparison of exported generator folders (`<family><suffix>` and its `_perceptual` variant in
    models_dir): Table 2 on the corpus split and on each real-speech set (a corpus written by
    benchmarks/real_speech_corpus.py: its 3D ground truth is the rig driven by the labels), PLRS always from the
    independent evaluator; closure / rest per set; issue 18's direction check; codebook usage and cost per step
    from the runs in runs_dir whose configuration is the exported one's. Nothing is trained except for the
    "ablation" part (Table 3: the other representation variants as critics, `ablation_fine_tunes`, critics in
    representation_dir trained on representation_corpus, default the corpus) and the cost part's 20-step stage-1
    refit (`with_cost_prior`). Writes <out>/comparison.md."""
    from backend.metrics.plrs import find_encoder_directory
    from backend.models import SPEECH_MESH, default_models_dir
    unknown = sorted(set(families) - set(FAMILIES)) + sorted(set(parts) - set(EXPORTED_PARTS))
    if unknown:
        raise BackendError(f"unknown famil(ies) or part(s) {', '.join(unknown)}; families: {', '.join(FAMILIES)}; "
                           f"parts with --exported: {', '.join(EXPORTED_PARTS)}")
    if "ablation" in parts and (runs_dir is None or representation_dir is None):
        raise BackendError("the ablation part fine-tunes as the exported runs were made: it needs --runs (their run "
                           "folders) and --representation (a folder for the other critics; missing ones are trained)")
    corpus, out_dir, models_dir = Path(corpus), Path(out_dir), Path(models_dir)
    critic = Path(critic) if critic else default_models_dir(SPEECH_MESH) / "representation.pt"
    evaluator = find_encoder_directory(encoders_dir)
    if evaluator is None:
        raise BackendError("no PLRS evaluator found (models/plrs_evaluator/ or --encoders); the comparison scores "
                           "PLRS with the independent evaluator only")
    if Path(evaluator).resolve() == critic.resolve().parent:
        raise BackendError(f"{evaluator} holds the critic the perceptual loss was trained with ({critic}); score "
                           "PLRS with the independent evaluator (models/plrs_evaluator/)")
    pairs = exported_pairs(models_dir, families, suffix)
    models = _exported_labels(pairs)
    if not models:
        raise BackendError(f"{models_dir}: no exported folder <family>{suffix}[{PERCEPTUAL_SUFFIX}] of "
                           f"{', '.join(families)}")
    missing = [f"{family}{suffix}{tail}" for family, folders in pairs.items()
               for tail, folder in zip(("", PERCEPTUAL_SUFFIX), folders) if folder is None]
    out_dir.mkdir(parents=True, exist_ok=True)
    heading, corpus_line, synthetic = report_header("Paper comparison of the exported generators", corpus)
    trained = "only the ablation fine-tunes are trained here" if "ablation" in parts else \
        "no exported model retrained here"
    sections = [heading,
                f"{corpus_line}. Models: `{models_dir}` ({', '.join(f'`{Path(path).name}`' for path in models.values())}"
                f"{'; not there: ' + ', '.join(f'`{name}`' for name in missing) if missing else ''}); {trained}"
                f". PLRS from the independent evaluator `{evaluator}` (another seed and a disjoint data "
                f"half from the critic `{critic}` the perceptual loss used).\n"]
    set_names = {split: f"corpus `{corpus.name}` split `{split}`"}
    evaluations = {split: (corpus, out_dir / f"evaluation_{split}")}
    if real_speech is not None:
        real_speech = Path(real_speech)
        described = json.loads((real_speech / "manifest.json").read_text(encoding="utf-8")).get("sets", {})
        for key in real_sets:
            set_names[key] = described.get(key, f"set {key}")
            evaluations[key] = (real_speech, out_dir / f"evaluation_{key}")
    if "comparison" in parts:
        rows, checks, actions = {}, {}, {}
        for key, (folder, evaluation_dir) in evaluations.items():
            log(f"evaluating on {set_names[key]}")
            rows[key], checks[key], done = evaluate_once(models, folder, evaluation_dir, key, evaluator, masks, log)
            actions[key] = "evaluated" if "evaluated" in done.values() else "reused"
        write_json(out_dir / "phone_checks.json", checks)
        sections.append("Evaluations: " + ", ".join(f"{set_names[key]} ({action})" for key, action in actions.items())
                        + ".\n")
        sections += [f"## Table 2 format on {set_names[split]} ({synthetic} rig motion, {len(open_dataset(corpus, split=split).clip_ids())} clips)\n",
                     comparison_table(rows[split], families)]
        for key in evaluations:
            if key == split:
                continue
            sections += [f"## Table 2 format on real-speech set {set_names[key]}\n",
                         "MTM, LVE, FDD and the ground-truth row's SLCC are measured against the rig driven by the "
                         "clip's phone labels (REFERENCE §8 pseudo ground truth, FLAME_sample template), not a "
                         "captured face; PLRS hears the real audio.\n", comparison_table(rows[key], families)]
        sections += ["## Bilabial closure / rest in pauses / MTM median ms (REFERENCE §8)\n",
                     "Against each set's own reference: the rig from the labels on the real-speech sets, the "
                     "corpus clip's motion on the corpus split.\n", phone_check_table(checks, set_names)]
        directions = {family: issue_direction(family, rows[split], checks, split) for family in families}
        write_json(out_dir / "direction.json", directions)
        sections += ["## Does + perceptual beat its baseline? (issue 18's reading of the paper's claim)\n",
                     direction_table(directions, split)]
    if "ablation" in parts:
        sections += ablation_sections(pairs, families, corpus, out_dir, runs_dir, critic, representation_dir,
                                      representation_corpus or corpus, evaluations, set_names, evaluator, masks,
                                      synthetic, log)
    checkpoints = matching_checkpoints(runs_dir, models) if runs_dir is not None and "codebook" in parts else {}
    codetalker = {label: path for label, path in checkpoints.items() if label.startswith(FAMILY_CLASSES["codetalker"].title)}
    if "codebook" in parts:
        if codetalker:
            report = codebook_usage(codetalker, corpus, split)
            write_json(out_dir / "codebook.json", report)
            sections += [f"## CodeTalker-style codebook usage (split `{split}`)\n", codebook_table(report)]
        else:
            sections += ["## CodeTalker-style codebook usage\n", "Not measured: no run in "
                         f"`{runs_dir}` has the exported CodeTalker-style models' configuration (the ONNX export "
                         "keeps no codes).\n"]
    if "cost" in parts:
        configs = exported_cost_configs(pairs, runs_dir)
        sections.append("## Training cost (paper Table S8 format)\n")
        subset = cost_subset(corpus, out_dir / "cost_corpus", cost_clips) if configs else None
        cache = default_feature_cache(corpus)
        if configs:   # the refitted priors are kept per cost-clip selection (their basis is fitted on it)
            clips_key = hashlib.blake2b((subset / MANIFEST_FILE).read_bytes(), digest_size=4).hexdigest()
            prior_runs = out_dir / COST_RUNS_FOLDER / clips_key
        for family, pair in list(configs.items()):
            try:
                configs[family] = tuple(with_cost_prior(config, subset, prior_runs, cache, log) for config in pair)
            except BackendError as error:
                log(f"cost {family}: not measured ({error})")
                del configs[family]
        rows = cost_rows(configs, subset, str(critic), cost_steps, device_name, threads, feature_cache=cache,
                         log=log) if configs else []
        refitted = [family for family, pair in configs.items() if pair[0].codetalker.motion_prior]
        refit_note = (f"; the stage-1 prior of {', '.join(refitted)} refitted on those clips for {COST_PRIOR_STEPS} "
                      "steps with its run's configuration (`with_cost_prior`: a stage-2 step costs the same whatever "
                      "the frozen prior's weights)") if refitted else ""
        left_out = sorted(set(families) - {row["family"] for row in rows})
        if rows:
            with atomic_stream(out_dir / "cost.csv", "w", newline="") as stream:
                writer = csv.DictWriter(stream, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            sections += [f"Device `{device_name}` ({platform.processor() or platform.machine()}, {threads} "
                         f"thread(s), shared machine); each exported model's own training configuration (the + loss "
                         f"rows with the critic `{critic}`), median of {cost_steps} steps after one warm-up, each in "
                         f"a fresh process, on {cost_clips} train clips of `{corpus.name}` (every n-th)"
                         f"{refit_note}"
                         f"{'; not measured: ' + ', '.join(left_out) if left_out else ''}.\n",
                         cost_table(rows, device_name)]
        else:
            sections.append("Not measured: no family has both exported folders (and a CodeTalker-style stage 1 "
                            "run in --runs).\n")
    text = "\n".join(sections)
    write_text(out_dir / "comparison.md", text)
    return text
