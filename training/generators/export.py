"""Export a generator checkpoint to the ONNX contract v2 of backend/generators.py (one-shot graph on the speech
front end's features, `"input": "speech_features"`; the motion basis is inside the graph), with a parity check
against torch on two lengths of front-end features, plus model.json and a MODEL_CARD.md written from it. The
folder is replaced as a whole (built beside it, then swapped in), and only when asked to (`--force`);
`synthetic_training_data` comes from the training data's manifest as recorded in the checkpoint.

The TorchScript-based exporter (`dynamo=False`, opset 17, IR version 10 for onnxruntime 1.22 and
Blender's Python) keeps the frame count T dynamic; onnxruntime's basic
optimisations then fold constants (see fold_constants), the weights are stored as float16 and computed in float32
(see store_weights_float16), and the parity check runs on the final file.
"""

import ctypes
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper
import torch
from torch import nn

from backend.atomic import write_json, write_text
from backend.errors import BackendError, ModelError
from backend.generators import (INPUT_AUDIO, INPUT_SPEECH_FEATURES, INPUT_STYLE, INPUT_TEMPLATE, MODEL_FILE,
                                ONE_SHOT_FILE, OUTPUT_VERTICES, SAMPLE_RATE, read_generator_info, speech_features)
from backend.flame import NUM_VERTICES
from backend.onnx_session import OPSET, open_session
from backend.frame_rate import MESH_FPS
from training import loop
from training.generators.families import load_trained

IR_VERSION = 10
PARITY_TOLERANCE = 1e-4
PARITY_SECONDS = (1.3, 3.7)
FLOAT16_MIN_ELEMENTS = 1024   # smaller weights (biases, norms) stay float32: they save nothing worth a Cast
CARD_FILE = "MODEL_CARD.md"
FLOAT16_SENTENCE = ("Weights stored as float16, computed in float32 (store_weights_float16: weights upstream of a "
                    "code choice and small ones stay float32); {:.1e} m from the float32 graph.")
AT_FDCWD, RENAME_EXCHANGE = -100, 2   # renameat2(2): paths relative to the working folder; swap both names


class OneShot(nn.Module):
    """The contract's signature around a trained generator: (speech_features, template, style) -> vertices."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.model.animate(features, template, style)


def fold_constants(path: Path) -> None:
    """Rewrite the graph with onnxruntime's basic (standard-ONNX) optimisations: constant folding of
    weight-only products (KMTalk's composed key embedding) drops the unfolded weight copies, which
    roughly halves the file. Sets IR version 10 for onnxruntime 1.22."""
    graph = onnx.load(str(path))
    graph.ir_version = IR_VERSION
    onnx.save(graph, str(path))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    folded = path.with_name(f".{path.name}.folded")
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(folded))
    graph.ir_version = IR_VERSION
    onnx.save(graph, str(path))
    folded.unlink()


def store_weights_float16(path: Path) -> None:
    """Rewrite the graph at `path` with every float32 weight of at least FLOAT16_MIN_ELEMENTS values stored as
    float16 and a Cast back to float32 in front of its users: the file roughly halves, the arithmetic stays
    float32 (onnxruntime folds each Cast of a constant once, at load, so inference speed is unchanged) and the
    weights are rounded to float16 (the export's parity check measures the effect). Weights beyond float16's
    range stay float32, and so do those upstream of a discrete choice (ArgMin/ArgMax: CodeTalker's codebook
    lookup), where a rounding can flip a code and move the output by millimetres."""
    graph = onnx.load(str(path))
    upstream = _upstream_of_choices(graph.graph)
    casts, kept = [], []
    for weight in graph.graph.initializer:
        values = numpy_helper.to_array(weight) if weight.data_type == onnx.TensorProto.FLOAT else None
        if (values is None or weight.name in upstream or values.size < FLOAT16_MIN_ELEMENTS
                or np.abs(values).max() > np.finfo(np.float16).max):
            kept.append(weight)
            continue
        kept.append(numpy_helper.from_array(values.astype(np.float16), f"{weight.name}.float16"))
        casts.append(helper.make_node("Cast", [f"{weight.name}.float16"], [weight.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{weight.name}.to_float32"))
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    nodes = casts + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def _upstream_of_choices(graph) -> set:
    """Names of every value an ArgMin or ArgMax node of `graph` depends on."""
    producer = {output: node for node in graph.node for output in node.output}
    pending = [name for node in graph.node if node.op_type in ("ArgMin", "ArgMax") for name in node.input]
    seen = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in producer:
            pending.extend(producer[name].input)
    return seen


def parity_template() -> np.ndarray:
    """(5023, 3) float32: the SYNTHETIC template the parity checks animate."""
    return np.random.default_rng(1).normal(scale=0.05, size=(NUM_VERTICES, 3)).astype(np.float32)


def speech_like_audio(seconds: float, seed: int) -> np.ndarray:
    """(1, N) SYNTHETIC test audio: harmonics under a syllable-rate envelope (for parity checks only)."""
    rng = np.random.default_rng(seed)
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * times + rng.uniform(0, 6))
    voice = sum(np.sin(2 * np.pi * 130 * k * times) / k for k in range(1, 8)) + 0.1 * rng.normal(size=times.size)
    return (0.3 * envelope * voice / np.max(np.abs(voice)))[None].astype(np.float32)


def speech_like_features(seconds: float, seed: int) -> np.ndarray:
    """(1, T, 447) front-end features at 30 fps of `speech_like_audio` (SYNTHETIC; for parity checks only)."""
    return speech_features(speech_like_audio(seconds, seed)[0])[None]


def parity_feeds(template: np.ndarray, num_styles: int, speech_input: str = INPUT_SPEECH_FEATURES) -> list:
    """The parity checks' inputs: one feed per PARITY_SECONDS length of SYNTHETIC speech-like features (or audio,
    for a first-release graph whose `speech_input` is "audio"), the template and one style each."""
    speech = speech_like_audio if speech_input == INPUT_AUDIO else speech_like_features
    return [{speech_input: speech(seconds, index), INPUT_TEMPLATE: template[None],
             INPUT_STYLE: np.eye(num_styles, dtype=np.float32)[[index % num_styles]]}
            for index, seconds in enumerate(PARITY_SECONDS)]


def parity_error(module: nn.Module, path: Path, template: np.ndarray, num_styles: int) -> float:
    """Largest |torch - onnxruntime| vertex difference (metres) over PARITY_SECONDS lengths of features."""
    session = open_session(path)
    worst = 0.0
    for feeds in parity_feeds(template, num_styles):
        (onnx_out,) = session.run([OUTPUT_VERTICES], feeds)
        with torch.no_grad():
            torch_out = module(*(torch.from_numpy(value) for value in feeds.values())).numpy()
        if onnx_out.shape != torch_out.shape:
            raise ModelError(f"{path}: ONNX output shape {onnx_out.shape} differs from torch {torch_out.shape}")
        worst = max(worst, float(np.max(np.abs(onnx_out - torch_out))))
    return worst


def store_float16(path: Path, template: np.ndarray) -> float:
    """`store_weights_float16` on the generator graph at `path`; returns the largest vertex difference (metres)
    it makes against the float32 graph on the parity feeds (the caller decides whether that is small enough)."""
    session = open_session(path)
    inputs = {value.name: value for value in session.get_inputs()}
    speech_input = INPUT_AUDIO if INPUT_AUDIO in inputs else INPUT_SPEECH_FEATURES
    feeds = parity_feeds(template, inputs[INPUT_STYLE].shape[1], speech_input)
    before = [session.run([OUTPUT_VERTICES], feed)[0] for feed in feeds]
    store_weights_float16(path)
    session = open_session(path)
    return max(float(np.max(np.abs(session.run([OUTPUT_VERTICES], feed)[0] - old)))
               for feed, old in zip(feeds, before))


def run_name(path: str) -> str:
    """A local checkpoint path reduced to its run folder and file name (what model.json may show)."""
    return "/".join(Path(path).parts[-2:])


def shareable_config(config) -> dict:
    """The training config for model.json, with local file paths (the stage-1 checkpoint, whose weights
    are folded into the ONNX graph; the checkpoint a fine-tuned run started from) reduced to their run folder
    and file name."""
    values = config.to_dict()
    if values["codetalker"]["motion_prior"]:
        values["codetalker"]["motion_prior"] = run_name(values["codetalker"]["motion_prior"])
    if values["init_from"]:
        values["init_from"] = run_name(values["init_from"])
    return values


def fine_tuning(config, data: dict) -> dict | None:
    """{"checkpoint" (run/file), "steps", "train_seconds" (None without its log)} of the checkpoint a fine-tuned
    run started from, or None for a run from scratch."""
    if not config.init_from:
        return None
    if not Path(config.init_from).is_file():
        raise ModelError(f"{config.init_from}: the checkpoint this run was fine-tuned from is gone; the card must "
                         "state its steps and time, so export while it exists")
    from training.generators.protocol import load_generator_checkpoint
    timing = training_seconds(config.init_from, data)
    return {"checkpoint": run_name(config.init_from), "steps": int(load_generator_checkpoint(config.init_from)["step"]),
            "train_seconds": None if timing is None else timing["train"]}


BENCHMARK_REFERENCE_ROWS = ("rig", "static_rest")
TARGETS = {"closure": (0.95, "≥ 95 %"), "rest": (0.90, "≥ 90 %"), "mtm_median_ms": (45.0, "≤ 45 ms"),
           "openness_rho": (0.5, "≥ 0.5"), "lag_frames": (1.0, "|lag| ≤ 1")}
TARGET_SETS = ("a:", "b:", "c:")


def data_sentence(data: dict, synthetic: bool) -> str:
    """What the model learnt from, said exactly: the motion's nature and the audio's sources."""
    sources = data.get("sources") or {}
    listed = ", ".join(f"{name} {count} clips ({hours:.2f} h)" for name, (count, hours) in sources.items())
    real = [name for name in sources if name == "kathleen"]
    motion = ("SYNTHETIC motion (the articulatory FLAME rig driven by phone timings, not captured faces)"
              if synthetic else "motion from the data folder (not marked synthetic)")
    audio = ("partly real audio: the `kathleen` clips are real recordings of one speaker, every other source "
             "is TTS" if real and len(sources) > 1 else "real recordings" if real else "audio as listed")
    hours = f"{data['hours']:.2f} h in all; " if data.get("hours") else ""
    return f"{motion} on {audio} ({hours}sources: {listed or 'not recorded'})"


COMPARED = (("closure", True, "closure", True), ("rest", True, "rest", True),
            ("mtm_median_ms", False, "MTM median", False))   # (key, higher is better, label, percent)


def baseline_comparison(values: dict, report: dict) -> list:
    """Lines comparing this model with `values["baseline"]` on every set both have: better, equal (as shown) or
    worse, per number."""
    baseline = values.get("baseline")
    found = {(row["model"], row["set"]): row["summary"] for row in report["rows"]}
    sets = [row["set"] for row in report["rows"] if row["model"] == values["name"] and (baseline, row["set"]) in found]
    if not baseline or not sets:
        return []
    lines, wins, losses, total = [f"Against its baseline `{baseline}` (same benchmark run):", ""], 0, 0, 0
    for label in sets:
        parts = []
        for key, higher, name, percent in COMPARED:
            ours, theirs = found[(values["name"], label)].get(key), found[(baseline, label)].get(key)
            if ours is None or theirs is None:
                continue
            shown = (lambda v: f"{100 * v:.0f} %") if percent else (lambda v: f"{v:.0f} ms")
            if shown(ours) == shown(theirs):
                verdict = "equal"
            else:
                verdict = "better" if (ours > theirs if higher else ours < theirs) else "worse"
            wins, losses, total = wins + (verdict == "better"), losses + (verdict == "worse"), total + 1
            parts.append(f"{name} {shown(ours)} vs {shown(theirs)} ({verdict})")
        lines.append(f"- {label}: " + "; ".join(parts))
    lines += ["", f"Better on {wins}, worse on {losses} of {total} numbers (equal as shown: the rest).", ""]
    plrs = values.get("plrs") or {}
    if values["name"] in plrs and baseline in plrs:
        lines += ["Independent PLRS (`benchmarks/real_speech_plrs.py`, the PLRS evaluator): " + "; ".join(
            f"set {key} {plrs[values['name']][key]:.3f} vs {plrs[baseline][key]:.3f}"
            for key in sorted(plrs[values["name"]]) if key in plrs[baseline]) + ".", ""]
    return lines


def benchmark_section(values: dict, report: dict | None) -> list:
    """The real-speech benchmark rows of this model (and of its baseline, for a fine-tuned one) beside the rig and
    static rows, and the targets it misses."""
    if report is None:
        return ["## Real-speech benchmark", "", "Not run for this export: rerun `export-generator --benchmark "
                "out/real_speech/real_speech.json --force` after `benchmarks/real_speech.py`.", ""]
    shown_models = (values["name"], *((values["baseline"],) if values.get("baseline") else ()),
                    *BENCHMARK_REFERENCE_ROWS)
    rows = [row for row in report["rows"] if row["model"] in shown_models]
    lines = ["## Real-speech benchmark", "",
             "`OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_speech.py --out out/real_speech` "
             "(REFERENCE §8; the rig is the ceiling, static_rest passes closure and rest by definition):", "",
             "| model | set | clips | closure | rest | openness ρ | lag | MTM median ms |", "|---|---|---|---|---|---|---|---|"]
    missed = []
    for row in rows:
        summary = row["summary"]

        def shown(key, percent=False, digits=2):
            value = summary.get(key)
            return "n/a" if value is None else f"{100 * value:.0f} %" if percent else f"{value:.{digits}f}"
        lines.append(f"| {row['model']} | {row['set']} | {summary['clips']} | {shown('closure', True)} | "
                     f"{shown('rest', True)} | {shown('openness_rho')} | {shown('lag_frames', digits=1)} | "
                     f"{shown('mtm_median_ms', digits=0)} |")
        if row["model"] == values["name"] and row["set"].startswith(TARGET_SETS):
            for key, (limit, text) in TARGETS.items():
                value = summary.get(key)
                if value is None:
                    continue
                failed = abs(value) > limit if key == "lag_frames" else (value > limit if key == "mtm_median_ms"
                                                                          else value < limit)
                if failed:
                    missed.append(f"{row['set']}: {key} {value:.3g} (target {text})")
    lines += ["", "Targets missed (issue 18, sets a–c): " + ("; ".join(missed) if missed else "none") + ".", ""]
    return lines + baseline_comparison(values, report)


def loss_sentence(config: dict) -> str:
    """The training loss of `config` (a GeneratorConfig dict) in words."""
    terms = [f"vertex MSE + {config['lip_gap_weight']} × lip-gap error, /p b m/ frames × {config['bilabial_weight']}"]
    if config.get("closure_weight"):
        terms.append(f"{config['closure_weight']} × closure term (squared lip gap above rest + "
                     f"{config['closure_margin_mm']} mm on /p b m/ frames where the target is shut)")
    if config.get("perceptual_weight"):
        terms.append(f"perceptual loss of the speech-mesh representation × {config['perceptual_weight']:g} "
                     "(InfoNCE on whole clips)")
    return " + ".join(terms)


def training_lines(values: dict) -> list:
    """The card's steps and time lines (a fine-tuned model states its baseline's steps and time too)."""
    config, timing, tuned = values["config"], values.get("training_seconds"), values.get("fine_tuned_from")
    crops = (f"crops of {config['crop_frames']} frames" if not config.get("perceptual_weight")
             else "whole clips (the perceptual term needs them)")
    steps = f"- {values['training_steps']} steps of {config['clips_per_step']} {crops}; loss: {loss_sentence(config)}."
    if values.get("perceptual_share") is not None:
        steps += (f" The perceptual term was {100 * values['perceptual_share']:.0f} % of the logged loss (mean over "
                  "the logged steps).")
    if tuned:
        steps = (f"- Fine-tuned from the baseline checkpoint `{tuned['checkpoint']}` ({tuned['steps']} steps), then "
                 + steps[2:])
    if not timing:
        return [steps, "- Training time: not recorded."]
    base = ""
    if tuned and tuned.get("train_seconds") is not None:
        base = (f" on top of the baseline's {tuned['train_seconds']:.0f} s (total "
                f"{tuned['train_seconds'] + timing['train']:.0f} s of steps)")
    return [steps, f"- Training time on this machine: {timing['train']:.0f} s of steps (summed over resumed "
            f"sessions){base} + {timing['data']:.0f} s reading the corpus and its cached features in the last "
            f"session ({timing['threads']} torch thread(s), 2 shared cores)."]


def model_card(values: dict, report: dict | None = None) -> str:
    """MODEL_CARD.md of an exported generator, written from its model.json and, when given, a real-speech benchmark
    report (regenerated on every export)."""
    data = values["training_data"]
    kind = "SYNTHETIC" if values["synthetic_training_data"] else "not synthetic"
    source = (f"the corpus `{data['folder']}` (preset {data.get('preset')}, seed {data.get('seed')})"
              if data.get("manifest") else f"`{data['folder']}` (no corpus manifest: recorded as not synthetic)")
    config = values["config"]
    return "\n".join([
        f"# {values['name']} — {values['description']} ({kind} training motion)", "",
        "Written by `python -m training export-generator` from the run's checkpoint; re-exporting rewrites it.", "",
        "## What it is",
        f"- Family `{values['family']}`, kind `{values['kind']}`, contract v2 (`backend/generators.py`): input "
        f"`{values['input']}` (1, T, 447) — the frozen hama 1.6 speech front end's 191 CTC log-posteriors and "
        f"256-d hidden layer, resampled to {values['fps']} fps by the backend — plus `template` (1, 5023, 3) and "
        f"`style` (1, {len(values['styles'])}) one-hot → `vertices` (1, T, 5023, 3). Callers pass audio "
        "(16 kHz after resampling); the backend runs the front end.",
        f"- Preset `{values['preset']}`, {values['parameters']:,} parameters (motion basis included); styles "
        f"{', '.join(f'`{style}`' for style in values['styles'])} (default `{values['default_style']}`).",
        f"- Output through a fixed linear motion basis of {config['basis_size']} components (PCA of the training "
        f"displacements, {100 * values.get('basis_explained', 0):.2f} % of their variance), stored in the graph.", "",
        "## Training",
        f"- Data: {source}; {data.get('train_clips')} training clips and augmented copies "
        f"({config['variants']} per clip: the clean one and {config['variants'] - 1} from "
        "`training.corpus.augment` plans, babble taken from other training clips).",
        f"- Provenance: {data_sentence(data, values['synthetic_training_data'])}.",
        *training_lines(values), "",
        *benchmark_section(values, report),
        "## Known limits",
        "- The motion it learnt is the rig's, not a captured face's: its style, coarticulation and the rig's own "
        "anticipatory opening in pauses carry over.",
        "- The front end hears phones (hama 1.6, one model for every voice): it was trained on undocumented data; "
        "crosstalk and non-English speech are outside what the corpus taught.", "",
        "## Export",
        f"- ONNX opset {OPSET}, IR {IR_VERSION}; torch ↔ onnxruntime parity {values['parity_max_abs_m']:.1e} m "
        f"(limit {PARITY_TOLERANCE:g}).",
        f"- {FLOAT16_SENTENCE.format(values['float16_weights_max_abs_m'])}", ""])


def swap_folders(new: Path, target: Path) -> None:
    """Make `new` the folder `target` in one step: an atomic exchange (Linux renameat2 RENAME_EXCHANGE) when
    `target` exists, then the old one (now at `new`) is deleted; a plain rename when it does not."""
    if not target.exists():
        os.rename(new, target)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2") or libc.renameat2(AT_FDCWD, os.fsencode(new), AT_FDCWD, os.fsencode(target),
                                                        RENAME_EXCHANGE) != 0:
        raise ModelError(f"cannot replace {target} atomically on this system ({os.strerror(ctypes.get_errno())}); "
                         f"the new export is kept in {new}")
    shutil.rmtree(new)


def training_data(checkpoint: dict) -> dict:
    """The training data's provenance recorded in a generator checkpoint (see training.generators.train)."""
    if "data" not in checkpoint:
        raise ModelError("the checkpoint does not record its training data (written before provenance was kept); "
                         "retrain it with `python -m training train` to export it")
    return json.loads(checkpoint["data"])


def training_seconds(checkpoint, data: dict) -> dict | None:
    """{"train": seconds of steps (loss.csv beside the checkpoint, summed over resumed sessions), "data": seconds
    preparing the clips, "threads"} or None when the run folder has no log."""
    rows = loop.read_log(Path(checkpoint).parent / loop.LOG_FILE)
    if not rows or "data_seconds" not in data:
        return None
    total, previous = 0.0, 0.0
    for row in rows:
        seconds = float(row["seconds"])
        if seconds < previous:
            total += previous
        previous = seconds
    return {"train": total + previous, "data": float(data["data_seconds"]), "threads": data.get("threads")}


def perceptual_share(checkpoint) -> float | None:
    """Mean share of the (weighted) perceptual term in the logged loss of the run, or None without one."""
    rows = [row for row in loop.read_log(Path(checkpoint).parent / loop.LOG_FILE) if row.get("perceptual")]
    shares = [float(row["perceptual"]) / float(row["loss"]) for row in rows if float(row["loss"]) > 0]
    return float(np.mean(shares)) if shares else None


def export_generator(checkpoint, out_dir, name: str | None = None, description: str = "",
                     force: bool = False, benchmark=None, baseline: str | None = None,
                     plrs=None) -> tuple[Path, float]:
    """Write generator.onnx, model.json and MODEL_CARD.md as the folder `out_dir`; returns (folder, parity error).

    The folder is built beside `out_dir` and swapped in at once, so a kill at any moment leaves the old model or
    the new one, never a mix. An existing `out_dir` is replaced only with `force`. ModelError if the ONNX graph
    differs from torch by more than PARITY_TOLERANCE metres (nothing is replaced then). `benchmark`: a
    real_speech.json whose rows for this model go into the card; `baseline`: the generator name this one is
    compared with in the card (a "+ perceptual" variant's baseline); `plrs`: a benchmarks/real_speech_plrs.py
    JSON whose scores of this model and its baseline go into that comparison."""
    report = None if benchmark is None else json.loads(Path(benchmark).read_text(encoding="utf-8"))
    plrs_scores = None if plrs is None else json.loads(Path(plrs).read_text(encoding="utf-8"))["plrs"]
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise BackendError(f"{out_dir} exists; pass --force to replace it (the old generator is kept until the new "
                           "one is complete)")
    if out_dir.exists() and not out_dir.is_dir():
        raise BackendError(f"{out_dir} is a file; expected a generator folder to write")
    model, config, styles, state = load_trained(checkpoint)
    data = training_data(state)
    tuned = fine_tuning(config, data)
    module = OneShot(model).eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):  # left by an export that was killed
        shutil.rmtree(stale)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    building.chmod(0o755)   # mkdtemp makes it private; a shipped model folder is readable by every user
    try:
        path = building / ONE_SHOT_FILE
        example = (torch.from_numpy(speech_like_features(1.0, 0)), torch.zeros(1, NUM_VERTICES, 3),
                   torch.eye(len(styles))[:1])
        with torch.no_grad():
            torch.onnx.export(module, example, str(path),
                              input_names=[INPUT_SPEECH_FEATURES, INPUT_TEMPLATE, INPUT_STYLE],
                              output_names=[OUTPUT_VERTICES], opset_version=OPSET, dynamo=False,
                              dynamic_axes={INPUT_SPEECH_FEATURES: {1: "T"}, OUTPUT_VERTICES: {1: "T"}})
        fold_constants(path)
        template = parity_template()
        float16_error = store_float16(path, template)
        error = parity_error(module, path, template, len(styles))
        if error > PARITY_TOLERANCE:
            raise ModelError(f"{out_dir / ONE_SHOT_FILE}: ONNX differs from torch by {error:.2e} m; the limit is "
                             f"{PARITY_TOLERANCE:g}")
        name = name or out_dir.name
        values = {"name": name, "family": config.family, "description": description or f"{config.family}-style "
                  f"generator ({config.name} preset)", "fps": MESH_FPS, "sample_rate": SAMPLE_RATE, "styles": styles,
                  "default_style": styles[0], "kind": "one_shot", "synthetic_training_data": data["synthetic"], "input": INPUT_SPEECH_FEATURES,
                  "training_data": {key: value for key, value in data.items() if key != "path"},
                  "preset": config.name, "config": shareable_config(config), "training_steps": int(state["step"]),
                  "parity_max_abs_m": error, "float16_weights_max_abs_m": float16_error,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "basis_explained": float(model.motion_basis.explained.sum()),
                  "training_seconds": training_seconds(checkpoint, data), "fine_tuned_from": tuned,
                  "perceptual_share": perceptual_share(checkpoint) if config.perceptual_weight > 0 else None,
                  "baseline": baseline, "plrs": None if plrs_scores is None else {
                      key: plrs_scores[key] for key in (name, baseline) if key in plrs_scores}}
        write_json(building / MODEL_FILE, values)
        write_text(building / CARD_FILE, model_card(values, report))
        read_generator_info(building)  # the folder must satisfy the contract it claims
        swap_folders(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return out_dir, error
