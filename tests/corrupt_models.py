"""Corrupted copies of a shipped generator (for the output-check tests): NaN weights, or bit-flipped weights
(the exponent's top bit of every 97th value of every float initializer flipped, as a bad disk or download does)."""

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "generators" / "faceformer_small"


def corrupt_copy(destination: Path, kind: str, source: Path = SHIPPED) -> Path:
    """Copy generator folder `source` to `destination` with its weights corrupted: kind 'nan' or 'bitflip'."""
    shutil.copytree(source, destination)
    model = onnx.load(str(source / "generator.onnx"))
    floats = [init for init in model.graph.initializer if init.data_type == onnx.TensorProto.FLOAT and
              np.prod(init.dims) > 1000]
    for initializer in floats:
        values = numpy_helper.to_array(initializer).copy()
        if kind == "nan":
            values[...] = np.nan
        else:
            bits = values.reshape(-1).view(np.uint32)
            bits[::97] ^= np.uint32(1 << 30)
        initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))
    onnx.save(model, str(destination / "generator.onnx"))
    return destination
