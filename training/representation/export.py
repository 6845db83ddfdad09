"""ONNX export of the speech and mesh encoders in the PLRS contract (backend/metrics/plrs.py), with a
parity check against torch on random inputs.

speech_encoder.onnx: `frontend` (B, 5, 447) or `fbank` (B, 20, 128) (what the encoder hears) -> `embedding` (B, D);
mesh_encoder.onnx: `vertices` (B, 5, 15069) -> `embedding` (B, D). Opset 17 (onnxruntime 1.22, also in Blender's Python); the batch
axis is dynamic. The TorchScript-based exporter (`dynamo=False`) needs no extra package.

The three files are built in a hidden folder inside the target and moved in only after the parity check, so a
failed or killed export leaves the old encoders in place; a folder that already holds them (e.g. the shipped
models/speech_mesh/) is replaced only when asked to (`force`).
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend import features
from backend.atomic import atomic_path, write_json
from backend.errors import BackendError, ModelError
from backend.flame import VERTEX_VALUES
from backend.onnx_session import OPSET, open_session
from backend.metrics.plrs import (EMBEDDING_OUTPUT, MESH_ENCODER_FILE, MESH_INPUT, MESH_VERTICES_FIELD,
                                  REPRESENTATION_FILE, SPEECH_ENCODER_FILE)
from training.representation.train import load_representation

PARITY_TOLERANCE = 1e-4


def export_encoder(module: nn.Module, example: torch.Tensor, input_name: str, path) -> Path:
    """Export one encoder with a dynamic batch axis named 'B'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), atomic_path(path) as temporary:
        torch.onnx.export(module.eval(), (example,), str(temporary), input_names=[input_name],
                          output_names=[EMBEDDING_OUTPUT], opset_version=OPSET, dynamo=False,
                          dynamic_axes={input_name: {0: "B"}, EMBEDDING_OUTPUT: {0: "B"}})
    return path


def parity_error(module: nn.Module, path, input_name: str, inputs: torch.Tensor) -> float:
    """Largest absolute difference between torch and onnxruntime embeddings of `inputs`."""
    session = open_session(path)
    (onnx_out,) = session.run([EMBEDDING_OUTPUT], {input_name: inputs.numpy()})
    with torch.no_grad():
        torch_out = module.eval()(inputs).numpy()
    return float(np.max(np.abs(onnx_out - torch_out)))


def random_inputs(speech_encoder: nn.Module, mesh_encoder: nn.Module, batch: int,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random speech inputs of the encoder's shape (fbank ~ N(0, 1); front-end rows around the training mean with
    the training spread), and vertices (B, 5, 15069) drawn around the mesh encoder's training mean with its
    training spread (so activations are in a realistic range)."""
    generator = torch.Generator().manual_seed(seed)
    speech = torch.randn(batch, *speech_encoder.input_shape, generator=generator)
    if hasattr(speech_encoder, "standardise"):
        speech = speech_encoder.standardise.mean + speech * speech_encoder.standardise.std
    noise = torch.randn(batch, features.WINDOW_FRAMES, VERTEX_VALUES, generator=generator)
    values = mesh_encoder.values
    mean, spread = values.full(values.standardise.mean), values.full(values.standardise.std, 1e-3)
    return speech, mean + noise * spread


def export_representation(checkpoint, out_dir, batch: int = 7, force: bool = False) -> list[Path]:
    """Export a checkpoint's encoders to `out_dir` (plus its training metadata as representation.json, with the
    vertices a mesh encoder that reads only some values reads: backend.metrics.plrs "What the mesh encoder reads"),
    check parity on a random batch of `batch` (not the export batch of 2), raise ModelError past 1e-4.
    BackendError if `out_dir` already holds any of the three files and not `force`."""
    out = Path(out_dir)
    names = (SPEECH_ENCODER_FILE, MESH_ENCODER_FILE, REPRESENTATION_FILE)
    existing = [name for name in names if (out / name).exists()]
    if existing and not force:
        raise BackendError(f"{out} already holds an exported representation ({', '.join(existing)}); pass --force "
                           "to replace it (the old files stay until the new ones pass the parity check)")
    representation = load_representation(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as building:
        build = Path(building)
        speech_encoder = representation.speech_encoder
        speech_name = speech_encoder.input_name
        example_speech, _ = random_inputs(speech_encoder, representation.mesh_encoder, 2, seed=1)
        speech_path = export_encoder(speech_encoder, example_speech, speech_name, build / SPEECH_ENCODER_FILE)
        _, mesh_example = random_inputs(speech_encoder, representation.mesh_encoder, 2, seed=2)
        mesh_path = export_encoder(representation.mesh_encoder, mesh_example, MESH_INPUT, build / MESH_ENCODER_FILE)
        fbank, vertices = random_inputs(speech_encoder, representation.mesh_encoder, batch)
        errors = {"speech": parity_error(speech_encoder, speech_path, speech_name, fbank),
                  "mesh": parity_error(representation.mesh_encoder, mesh_path, MESH_INPUT, vertices)}
        if max(errors.values()) > PARITY_TOLERANCE:
            raise ModelError(f"ONNX export differs from torch by {errors} (max abs); expected at most "
                             f"{PARITY_TOLERANCE}; {out} is unchanged")
        meta = {**representation.meta, "onnx_opset": OPSET, "parity_max_abs_error": errors}
        read = representation.mesh_encoder.values.index
        if len(read) < VERTEX_VALUES:
            meta[MESH_VERTICES_FIELD] = np.unique(read.numpy() // 3).tolist()
        write_json(build / REPRESENTATION_FILE, meta, indent=1, sort_keys=True)
        for name in names:   # the metadata last: a folder whose json is new holds the new encoders
            os.replace(build / name, out / name)
    return [out / name for name in names]
