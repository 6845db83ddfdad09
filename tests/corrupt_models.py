"""Corrupted copies of a shipped generator (for the output-check tests): NaN weights, or bit-flipped weights
(the exponent's top bit of every 97th value of every float initializer flipped, as a bad disk or download does)."""

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "generators" / "faceformer_small"
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)   # shipped graphs store big weights as float16


def corrupt_copy(destination: Path, kind: str, source: Path = SHIPPED) -> Path:
    """Copy generator folder `source` to `destination` with its weights corrupted: kind 'nan' or 'bitflip'."""
    shutil.copytree(source, destination)
    model = onnx.load(str(source / "generator.onnx"))
    floats = [init for init in model.graph.initializer if init.data_type in FLOAT_TYPES and np.prod(init.dims) > 1000]
    for initializer in floats:
        values = numpy_helper.to_array(initializer).copy()
        if kind == "nan":
            values[...] = np.nan
        else:   # the top exponent bit: a weight of ~1 becomes ~1e38 (float32) or inf (float16-stored weights)
            unsigned = np.uint32 if values.dtype == np.float32 else np.uint16
            bits = values.reshape(-1).view(unsigned)
            bits[::97] ^= unsigned(1 << (30 if values.dtype == np.float32 else 14))
        initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))
    onnx.save(model, str(destination / "generator.onnx"))
    return destination
