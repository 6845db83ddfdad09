"""Tiny hand-built ONNX models for the tests (built here, never shipped; no torch), following the generator and
PLRS encoder contracts:
- the "offset" generator: vertices = template + style @ STYLE_OFFSETS, one frame per frame_count rule;
- the "rms_jaw" generator (TEST ONLY): the lower-lip centre moves down with the RMS of each HOP-sample frame;
- a PLRS encoder pair (TEST ONLY): speech = mean fbank over time, mesh = mean frame @ fixed weights;
- `linear_model`: one encoder as a fixed linear projection (flatten, then @ weights);
- the "feature" generator (TEST ONLY, contract v2): the lower lip follows one front-end feature."""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backend.flame import LOWER_LIP_CENTRE

STYLES = ("subject_a", "subject_b", "subject_c")
STYLE_OFFSETS = np.array([[0.0, 0.0, 0.0], [0.001, 0.0, 0.0], [0.0, 0.0, 0.002]], dtype=np.float32)
HOP = 533
STYLE_GAINS = (0.05, 0.1)


def constant(name, values, dtype=TensorProto.INT64):
    array = np.asarray(values)
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, array.shape, array.ravel()))


def frame_count_nodes() -> list:
    """Nodes computing "frames" = (60 N + 16000) // 32000 from the (1, N) "audio" input (the contract's rounding
    rule); they also define the constant "one" = [1]."""
    return [
        helper.make_node("Shape", ["audio"], ["audio_shape"]),
        constant("one", [1]),
        helper.make_node("Gather", ["audio_shape", "one"], ["samples"], axis=0),
        constant("sixty", [60]), constant("half", [16000]), constant("divisor", [32000]),
        helper.make_node("Mul", ["samples", "sixty"], ["scaled"]),
        helper.make_node("Add", ["scaled", "half"], ["rounded"]),
        helper.make_node("Div", ["rounded", "divisor"], ["frames"]),
    ]


def offset_model(style_width: int = len(STYLES), output_name: str = "vertices") -> onnx.ModelProto:
    """T = (60 N + 16000) // 32000 frames of template + style @ STYLE_OFFSETS (the contract's rounding rule)."""
    nodes = [
        *frame_count_nodes(),
        constant("before", [1]), constant("after", [5023, 3]),
        helper.make_node("Concat", ["before", "frames", "after"], ["out_shape"], axis=0),
        constant("frame_axis", [1]),
        helper.make_node("Unsqueeze", ["template", "frame_axis"], ["template_4d"]),
        helper.make_node("Expand", ["template_4d", "out_shape"], ["repeated"]),
        constant("offsets", STYLE_OFFSETS[:style_width], TensorProto.FLOAT),
        helper.make_node("MatMul", ["style", "offsets"], ["offset"]),
        constant("offset_shape", [1, 1, 1, 3]),
        helper.make_node("Reshape", ["offset", "offset_shape"], ["offset_4d"]),
        helper.make_node("Add", ["repeated", "offset_4d"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes, "offset_generator",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "N"]),
         helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 5023, 3]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, style_width])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, "T", 5023, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def model_json(**overrides) -> dict:
    values = {"name": "offset", "family": "test", "description": "hand-built test generator", "fps": 30,
              "sample_rate": 16000, "styles": list(STYLES), "default_style": "subject_b", "kind": "one_shot",
              "synthetic_training_data": True, "preset": "none"}
    values.update(overrides)
    return values


def write_generator(folder, model=None, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model or offset_model(), str(folder / "generator.onnx"))
    (folder / "model.json").write_text(json.dumps(model_json(**overrides)))
    return folder


def tone(seconds: float, rate: int) -> np.ndarray:
    """A 220 Hz sine, float32: audio any generator accepts."""
    times = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * times)).astype(np.float32)


def rms_generator_model() -> onnx.ModelProto:
    """T = (60 N + 16000) // 32000 frames; frame t = template + gain(style) * RMS(audio[533 t : 533 (t+1)]) * D,
    where D moves only the lower-lip centre (down, -y)."""
    direction = np.zeros((1, 1, 5023, 3), np.float32)
    direction[0, 0, LOWER_LIP_CENTRE, 1] = -1.0
    nodes = [
        *frame_count_nodes(),
        constant("hop", [HOP]),
        helper.make_node("Mul", ["frames", "hop"], ["used"]),
        constant("padding", [0, 0, 0, HOP]),
        helper.make_node("Pad", ["audio", "padding"], ["padded"]),
        constant("zero", [0]),
        helper.make_node("Slice", ["padded", "zero", "used", "one"], ["framed_flat"]),
        constant("minus_one", [-1]),
        helper.make_node("Concat", ["minus_one", "hop"], ["frame_shape"], axis=0),
        helper.make_node("Reshape", ["framed_flat", "frame_shape"], ["framed"]),
        helper.make_node("Mul", ["framed", "framed"], ["squared"]),
        helper.make_node("ReduceMean", ["squared"], ["mean_square"], axes=[1], keepdims=0),
        helper.make_node("Sqrt", ["mean_square"], ["rms"]),
        constant("gains", np.array(STYLE_GAINS, np.float32).reshape(-1, 1), TensorProto.FLOAT),
        helper.make_node("MatMul", ["style", "gains"], ["gain"]),
        helper.make_node("Reshape", ["gain", "one"], ["gain_scalar"]),
        helper.make_node("Mul", ["rms", "gain_scalar"], ["opening"]),
        constant("opening_shape", [1, -1, 1, 1]),
        helper.make_node("Reshape", ["opening", "opening_shape"], ["opening_4d"]),
        constant("direction", direction, TensorProto.FLOAT),
        helper.make_node("Mul", ["opening_4d", "direction"], ["motion"]),
        helper.make_node("Unsqueeze", ["template", "one"], ["template_4d"]),
        helper.make_node("Add", ["template_4d", "motion"], ["vertices"]),
    ]
    graph = helper.make_graph(
        nodes, "rms_jaw_generator",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "N"]),
         helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 5023, 3]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, len(STYLE_GAINS)])],
        [helper.make_tensor_value_info("vertices", TensorProto.FLOAT, [1, "T", 5023, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def write_rms_generator(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(rms_generator_model(), str(folder / "generator.onnx"))
    (folder / "model.json").write_text(json.dumps({
        "name": folder.name, "family": "test", "description": "TEST ONLY: lower lip follows audio RMS",
        "fps": 30, "sample_rate": 16000, "styles": ["calm", "lively"], "default_style": "calm",
        "kind": "one_shot", "synthetic_training_data": True}))
    return folder


def write_test_encoders(folder: Path) -> Path:
    """TEST ONLY PLRS encoder pair: speech = mean fbank over time (B, 128); mesh = mean frame @ fixed weights."""
    folder.mkdir(parents=True, exist_ok=True)
    speech = helper.make_graph(
        [helper.make_node("ReduceMean", ["fbank"], ["embedding"], axes=[1], keepdims=0)], "speech",
        [helper.make_tensor_value_info("fbank", TensorProto.FLOAT, ["B", 20, 128])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 128])])
    weights = np.random.default_rng(0).normal(size=(15069, 128)).astype(np.float32)
    mesh = helper.make_graph(
        [helper.make_node("ReduceMean", ["vertices"], ["mean_frame"], axes=[1], keepdims=0),
         constant("weights", weights, TensorProto.FLOAT),
         helper.make_node("MatMul", ["mean_frame", "weights"], ["embedding"])], "mesh",
        [helper.make_tensor_value_info("vertices", TensorProto.FLOAT, ["B", 5, 15069])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 128])])
    for graph, name in ((speech, "speech_encoder.onnx"), (mesh, "mesh_encoder.onnx")):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10),
                  str(folder / name))
    return folder


def linear_model(path, input_name, input_shape, weights, output_name="embedding"):
    """An ONNX graph: input (B, *input_shape) -> flatten -> @ weights -> output (B, D)."""
    flat = int(np.prod(input_shape))
    graph = helper.make_graph(
        [helper.make_node("Reshape", [input_name, "flat_shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], [output_name])],
        "linear_encoder",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["B", *input_shape])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["B", weights.shape[1]])],
        initializer=[numpy_helper.from_array(np.array([-1, flat], dtype=np.int64), "flat_shape"),
                     numpy_helper.from_array(weights.astype(np.float32), "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


FEATURE_GAIN = 1e-3   # metres of lower-lip travel per unit of the blank log-posterior (TEST ONLY)


def feature_generator_model(style_width: int = len(STYLES)) -> onnx.ModelProto:
    """Contract v2 (TEST ONLY): speech_features (1, T, 447) -> frame t = template + FEATURE_GAIN x
    features[t, 190] (the blank log-posterior, <= 0) x D, D moving only the lower-lip centre up: a frame-local
    graph, so chunked and one-pass outputs must agree exactly. The style input is accepted and unused."""
    weights = np.zeros((447, 1), np.float32)
    weights[190, 0] = FEATURE_GAIN
    direction = np.zeros((1, 1, 5023, 3), np.float32)
    direction[0, 0, LOWER_LIP_CENTRE, 1] = 1.0
    nodes = [
        constant("weights", weights, TensorProto.FLOAT),
        helper.make_node("MatMul", ["speech_features", "weights"], ["opening"]),     # (1, T, 1)
        constant("last_axis", [3]),
        helper.make_node("Unsqueeze", ["opening", "last_axis"], ["opening_4d"]),   # (1, T, 1, 1)
        constant("direction", direction, TensorProto.FLOAT),
        helper.make_node("Mul", ["opening_4d", "direction"], ["motion"]),
        constant("frame_axis", [1]),
        helper.make_node("Unsqueeze", ["template", "frame_axis"], ["template_4d"]),
        helper.make_node("Add", ["template_4d", "motion"], ["vertices"]),
    ]
    graph = helper.make_graph(
        nodes, "feature_generator",
        [helper.make_tensor_value_info("speech_features", TensorProto.FLOAT, [1, "T", 447]),
         helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 5023, 3]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, style_width])],
        [helper.make_tensor_value_info("vertices", TensorProto.FLOAT, [1, "T", 5023, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def write_feature_generator(folder, **overrides):
    """A v2 generator folder ("input": "speech_features") around feature_generator_model."""
    return write_generator(folder, feature_generator_model(), **{"name": folder.name, "input": "speech_features",
                                                                   **overrides})
