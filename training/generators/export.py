"""Export a generator checkpoint to the ONNX contract of backend/generators.py (one-shot graph), with a
parity check against torch on two audio lengths, plus model.json and a MODEL_CARD.md written from it. The
folder is replaced as a whole (built beside it, then swapped in), and only when asked to (`--force`);
`synthetic_training_data` comes from the training data's manifest as recorded in the checkpoint.

The TorchScript-based exporter (`dynamo=False`, opset 17, IR version 10 for onnxruntime 1.22 and
Blender's Python) keeps the audio length N and the frame count T dynamic; onnxruntime's basic
optimisations then fold constants (see fold_constants), and the parity check runs on the final file.
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
import torch
from torch import nn

from backend.atomic import write_json, write_text
from backend.errors import BackendError, ModelError
from backend.generators import (INPUT_AUDIO, INPUT_STYLE, INPUT_TEMPLATE, MODEL_FILE, ONE_SHOT_FILE,
                                OUTPUT_VERTICES, SAMPLE_RATE, read_generator_info)
from backend.flame import NUM_VERTICES
from backend.onnx_session import OPSET, open_session
from backend.frame_rate import MESH_FPS
from training.generators.families import load_trained

IR_VERSION = 10
PARITY_TOLERANCE = 1e-4
PARITY_SECONDS = (1.3, 3.7)
CARD_FILE = "MODEL_CARD.md"
AT_FDCWD, RENAME_EXCHANGE = -100, 2   # renameat2(2): paths relative to the working folder; swap both names


class OneShot(nn.Module):
    """The contract's signature around a trained generator: (audio, template, style) -> vertices."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.model(audio, template, style).vertices


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


def speech_like_audio(seconds: float, seed: int) -> np.ndarray:
    """(1, N) SYNTHETIC test audio: harmonics under a syllable-rate envelope (for parity checks only)."""
    rng = np.random.default_rng(seed)
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * times + rng.uniform(0, 6))
    voice = sum(np.sin(2 * np.pi * 130 * k * times) / k for k in range(1, 8)) + 0.1 * rng.normal(size=times.size)
    return (0.3 * envelope * voice / np.max(np.abs(voice)))[None].astype(np.float32)


def parity_error(module: nn.Module, path: Path, template: np.ndarray, num_styles: int) -> float:
    """Largest |torch - onnxruntime| vertex difference (metres) over PARITY_SECONDS audio lengths."""
    session = open_session(path)
    worst = 0.0
    for index, seconds in enumerate(PARITY_SECONDS):
        audio = speech_like_audio(seconds, index)
        style = np.eye(num_styles, dtype=np.float32)[[index % num_styles]]
        feeds = {INPUT_AUDIO: audio, INPUT_TEMPLATE: template[None], INPUT_STYLE: style}
        (onnx_out,) = session.run([OUTPUT_VERTICES], feeds)
        with torch.no_grad():
            torch_out = module(*(torch.from_numpy(value) for value in feeds.values())).numpy()
        if onnx_out.shape != torch_out.shape:
            raise ModelError(f"{path}: ONNX output shape {onnx_out.shape} differs from torch {torch_out.shape}")
        worst = max(worst, float(np.max(np.abs(onnx_out - torch_out))))
    return worst


def shareable_config(config) -> dict:
    """The training config for model.json, with local file paths (the stage-1 checkpoint, whose weights
    are folded into the ONNX graph) reduced to their run folder and file name."""
    values = config.to_dict()
    if values["codetalker"]["motion_prior"]:
        values["codetalker"]["motion_prior"] = "/".join(Path(values["codetalker"]["motion_prior"]).parts[-2:])
    return values


def model_card(values: dict) -> str:
    """MODEL_CARD.md of an exported generator, written from its model.json (regenerated on every export)."""
    data = values["training_data"]
    kind = "SYNTHETIC" if values["synthetic_training_data"] else "not synthetic"
    source = (f"the {kind} corpus `{data['folder']}` (preset {data.get('preset')}, seed {data.get('seed')})"
              if data.get("manifest") else f"`{data['folder']}` (no corpus manifest: recorded as not synthetic)")
    return "\n".join([
        f"# {values['name']} — {values['description']} ({kind} training data)", "",
        "Written by `python -m training export-generator` from the run's checkpoint; re-exporting rewrites it.", "",
        "## What it is",
        f"- Family `{values['family']}`, kind `{values['kind']}` (contract in `backend/generators.py`): `audio` (1, N) "
        f"{values['sample_rate']} Hz, `template` (1, 5023, 3), `style` (1, {len(values['styles'])}) one-hot → "
        f"`vertices` (1, T, 5023, 3) at {values['fps']} fps.",
        f"- Preset `{values['preset']}`, {values['parameters']:,} parameters; styles "
        f"{', '.join(f'`{style}`' for style in values['styles'])} (default `{values['default_style']}`).", "",
        "## Training",
        f"- Data: {source}; {data.get('train_clips')} training clips.",
        f"- {values['training_steps']} steps (`config` in model.json holds every setting).", "",
        "## Export",
        f"- ONNX opset {OPSET}, IR {IR_VERSION}; torch ↔ onnxruntime parity {values['parity_max_abs_m']:.1e} m "
        f"(limit {PARITY_TOLERANCE:g}).", "",
        "No evaluation is recorded here: run `python -m training evaluate` and add its table.", ""])


def _swap_folders(new: Path, target: Path) -> None:
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


def export_generator(checkpoint, out_dir, name: str | None = None, description: str = "",
                     force: bool = False) -> tuple[Path, float]:
    """Write generator.onnx, model.json and MODEL_CARD.md as the folder `out_dir`; returns (folder, parity error).

    The folder is built beside `out_dir` and swapped in at once, so a kill at any moment leaves the old model or
    the new one, never a mix. An existing `out_dir` is replaced only with `force`. ModelError if the ONNX graph
    differs from torch by more than PARITY_TOLERANCE metres (nothing is replaced then)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise BackendError(f"{out_dir} exists; pass --force to replace it (the old generator is kept until the new "
                           "one is complete)")
    if out_dir.exists() and not out_dir.is_dir():
        raise BackendError(f"{out_dir} is a file; expected a generator folder to write")
    model, config, styles, state = load_trained(checkpoint)
    data = training_data(state)
    module = OneShot(model).eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):  # left by an export that was killed
        shutil.rmtree(stale)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        path = building / ONE_SHOT_FILE
        example = (torch.from_numpy(speech_like_audio(1.0, 0)), torch.zeros(1, NUM_VERTICES, 3),
                   torch.eye(len(styles))[:1])
        with torch.no_grad():
            torch.onnx.export(module, example, str(path), input_names=[INPUT_AUDIO, INPUT_TEMPLATE, INPUT_STYLE],
                              output_names=[OUTPUT_VERTICES], opset_version=OPSET, dynamo=False,
                              dynamic_axes={INPUT_AUDIO: {1: "N"}, OUTPUT_VERTICES: {1: "T"}})
        fold_constants(path)
        template = (np.random.default_rng(1).normal(scale=0.05, size=(NUM_VERTICES, 3))).astype(np.float32)
        error = parity_error(module, path, template, len(styles))
        if error > PARITY_TOLERANCE:
            raise ModelError(f"{out_dir / ONE_SHOT_FILE}: ONNX differs from torch by {error:.2e} m; the limit is "
                             f"{PARITY_TOLERANCE:g}")
        name = name or out_dir.name
        values = {"name": name, "family": config.family, "description": description or f"{config.family}-style "
                  f"generator ({config.name} preset)", "fps": MESH_FPS, "sample_rate": SAMPLE_RATE, "styles": styles,
                  "default_style": styles[0], "kind": "one_shot", "synthetic_training_data": data["synthetic"],
                  "training_data": {key: value for key, value in data.items() if key != "path"},
                  "preset": config.name, "config": shareable_config(config), "training_steps": int(state["step"]),
                  "parity_max_abs_m": error, "parameters": sum(p.numel() for p in model.parameters())}
        write_json(building / MODEL_FILE, values)
        write_text(building / CARD_FILE, model_card(values))
        read_generator_info(building)  # the folder must satisfy the contract it claims
        _swap_folders(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return out_dir, error
