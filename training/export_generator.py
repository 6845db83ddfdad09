"""Export a generator checkpoint to the ONNX contract of backend/generators.py (one-shot graph), with a
parity check against torch on two audio lengths, plus model.json and a MODEL_CARD.md.

The TorchScript-based exporter (`dynamo=False`, opset 17, IR version 10 for onnxruntime 1.22 and
Blender's Python) keeps the audio length N and the frame count T dynamic; onnxruntime's basic
optimisations then fold constants (see fold_constants), and the parity check runs on the final file.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from backend.errors import ModelError
from backend.frame_rate import MESH_FPS
from backend.generators import (INPUT_AUDIO, INPUT_STYLE, INPUT_TEMPLATE, MODEL_FILE, ONE_SHOT_FILE,
                                OUTPUT_VERTICES, SAMPLE_RATE, read_generator_info)
from backend.flame import NUM_VERTICES
from training.train import load_trained

OPSET = 17
IR_VERSION = 10
PARITY_TOLERANCE = 1e-4
PARITY_SECONDS = (1.3, 3.7)
CARD_FILE = "MODEL_CARD.md"


class OneShot(nn.Module):
    """The contract's signature around a trained generator: (audio, template, style) -> vertices."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, template: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.model(audio, template, style)["vertices"]


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
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
    if values.get("motion_prior"):
        values["motion_prior"] = "/".join(Path(values["motion_prior"]).parts[-2:])
    return values


def export_generator(checkpoint, out_dir, name: str | None = None, description: str = "") -> tuple[Path, float]:
    """Write generator.onnx, model.json and MODEL_CARD.md into `out_dir`; returns (folder, parity error).
    ModelError if the ONNX graph differs from torch by more than PARITY_TOLERANCE metres."""
    model, config, styles, state = load_trained(checkpoint)
    module = OneShot(model).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONE_SHOT_FILE
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
        raise ModelError(f"{path}: ONNX differs from torch by {error:.2e} m; the limit is {PARITY_TOLERANCE:g}")
    name = name or out_dir.name
    values = {"name": name, "family": config.family, "description": description or f"{config.family}-style "
              f"generator ({config.name} preset)", "fps": MESH_FPS, "sample_rate": SAMPLE_RATE, "styles": styles,
              "default_style": styles[0], "kind": "one_shot", "synthetic_training_data": True,
              "preset": config.name, "config": shareable_config(config), "training_steps": int(state["step"]),
              "parity_max_abs_m": error, "parameters": sum(p.numel() for p in model.parameters())}
    (out_dir / MODEL_FILE).write_text(json.dumps(values, indent=2) + "\n")
    read_generator_info(out_dir)  # the folder must satisfy the contract it claims
    return out_dir, error
