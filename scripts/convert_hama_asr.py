"""Build the shipped speech front end from hama 1.6.0's ASR weights (`hama/assets/asr_waveform.hama` in the
`hama==1.6.0` wheel): `models/speech_frontend/hama16_asr.onnx` (our graph of the network, the wheel's weights)
and `tokens.json` (the names of the 191 outputs).

    python -m pip download --no-deps hama==1.6.0 -d /tmp/hama
    .venv/bin/python scripts/convert_hama_asr.py /tmp/hama/hama-1.6.0-py3-none-any.whl

The `.hama` pack (format read from the file itself): b"HAMAPK", 2 version bytes, u32 tensor count, then per
tensor u16 name length, name, u8 dtype (0 float32, 1 float16), u8 rank, rank × u32 dims, u64 offset and u64
byte count into the data block that ends the file (it starts after the header, padded for alignment).

The graph (the network as backend.speech_frontend's docstring describes it; opset 17, IR 9 for onnxruntime 1.22):
waveform (1, n) float32 16 kHz -> reflect Pad 200 -> Conv with the pack's STFT kernels (201 real + 201 imaginary,
window 400, stride 160) -> power -> MatMul mel filterbank -> Max 1e-10 -> Log -> Cast float16 -> Cast float32 ->
stem Conv (k3 s2 p1) -> GELU -> 11 × [depthwise Conv (k9, dilation d, pad 4d) -> pointwise Conv -> SiLU ->
squeeze-excitation (ReduceMean over time -> Conv 1x1 -> SiLU -> Conv 1x1 -> Sigmoid) -> Mul -> + residual] ->
(1, T, 256) -> 2 × pre-norm [LayerNormalization -> MatMul qkv -> 4 heads softmax(q k^T / 8) v -> MatMul out ->
+ residual; LayerNormalization -> MatMul -> GELU (erf, the graph's sqrt 2 = 1.4140625) -> MatMul -> + residual]
= `hidden` (1, T, 256) -> MatMul proj -> LogSoftmax = `log_posteriors` (1, T, 191).
Weights stay float16 as in the pack (a Cast to float32 each, folded by onnxruntime at load); the float32 STFT
kernels and filterbank stay float32.
"""

import argparse
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.atomic import write_bytes, write_json  # noqa: E402
from backend.speech_frontend import (BLOCKS, DEPTHWISE_KERNEL, DILATIONS, GELU_SQRT2, HEADS, HIDDEN_DIM,  # noqa: E402
                                     LAYER_NORM_EPS, LAYERS, MEL_FLOOR, MODEL_FILE, N_FFT, POSTERIOR_DIM, STFT_HOP,
                                     STFT_PAD, TOKENS_FILE)

ASSET = "hama/assets/asr_waveform.hama"
VOCABULARY = "hama/assets/g2p_vocab.json"   # its "decoder" list, then <wb> and <blank>, names the 191 outputs
DTYPES = {0: np.float32, 1: np.float16}
PREFIX = "acoustic_model.model."
OPSET, IR_VERSION = 17, 9


def read_hama_pack(data: bytes) -> dict:
    """{name: array} of a `.hama` pack."""
    if data[:6] != b"HAMAPK":
        raise SystemExit("not a .hama pack (expected the b'HAMAPK' magic)")
    count = struct.unpack_from("<I", data, 8)[0]
    position, entries = 12, []
    for _ in range(count):
        length = struct.unpack_from("<H", data, position)[0]
        name = data[position + 2:position + 2 + length].decode()
        position += 2 + length
        dtype, rank = data[position], data[position + 1]
        dims = struct.unpack_from(f"<{rank}I", data, position + 2)
        offset, size = struct.unpack_from("<QQ", data, position + 2 + 4 * rank)
        position += 2 + 4 * rank + 16
        entries.append((name, DTYPES[dtype], dims, offset, size))
    data_start = len(data) - max(offset + size for _, _, _, offset, size in entries)
    if data_start < position:
        raise SystemExit("truncated .hama pack (data block overlaps the header)")
    tensors = {}
    for name, dtype, dims, offset, size in entries:
        start = data_start + offset
        tensors[name] = np.frombuffer(data[start:start + size], dtype=dtype).reshape(dims).copy()
    return tensors


class GraphBuilder:
    """Nodes and initializers of one ONNX graph, named in order."""

    def __init__(self):
        self.nodes, self.initializers, self.count = [], [], 0

    def constant(self, array, name: str) -> str:
        array = np.asarray(array)
        if array.dtype == np.float16:   # stored as in the pack, computed in float32
            self.initializers.append(numpy_helper.from_array(array, f"{name}.float16"))
            self.nodes.append(helper.make_node("Cast", [f"{name}.float16"], [name], to=TensorProto.FLOAT))
        else:
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, inputs: list, outputs: int = 1, **attributes):
        self.count += 1
        names = [f"{kind.lower()}_{self.count}_{index}" for index in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def gelu(self, x: str) -> str:
        scaled = self.op("Erf", [self.op("Div", [x, "sqrt2"])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [scaled, "one"])]), "half"])

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def linear(self, x: str, weight, bias, name: str) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.constant(weight, f"{name}.weight")]),
                               self.constant(bias, f"{name}.bias")])


def build_graph(tensors: dict) -> onnx.ModelProto:
    g = GraphBuilder()
    for name, value in (("half", 0.5), ("one", 1.0), ("sqrt2", GELU_SQRT2), ("floor", MEL_FLOOR),
                        ("scale", (HIDDEN_DIM // HEADS) ** -0.5)):
        g.constant(np.array(value, np.float32), name)
    g.constant(np.array([0, 0, 3, HEADS, HIDDEN_DIM // HEADS], np.int64), "qkv_shape")
    g.constant(np.array([0, 0, HIDDEN_DIM], np.int64), "model_shape")
    g.constant(np.array([1, 1, 1], np.int64), "thirds")
    g.constant(np.array([0], np.int64), "first_axis")
    g.constant(np.array([1], np.int64), "channel_axis")
    g.constant(np.array([0, STFT_PAD, 0, STFT_PAD], np.int64), "stft_pads")
    kernels = np.concatenate([tensors["stft_real_kernel"], tensors["stft_imag_kernel"]])   # (402, 1, 400)
    bins = kernels.shape[0] // 2
    g.constant(np.array([bins, bins], np.int64), "halves")

    padded = g.op("Pad", ["waveform", "stft_pads"], mode="reflect")                     # (1, n + 400)
    padded = g.op("Unsqueeze", [padded, "channel_axis"])                                 # (1, 1, n + 400)
    spectrum = g.op("Conv", [padded, g.constant(kernels, "stft.kernels")], kernel_shape=[N_FFT], strides=[STFT_HOP])
    real, imaginary = g.op("Split", [spectrum, "halves"], outputs=2, axis=1)
    power = g.op("Add", [g.op("Mul", [real, real]), g.op("Mul", [imaginary, imaginary])])    # (1, 201, F)
    mel = g.op("MatMul", [g.op("Transpose", [power], perm=[0, 2, 1]), g.constant(tensors["mel_fb"], "mel.filterbank")])
    log_mel = g.op("Log", [g.op("Max", [mel, "floor"])])
    log_mel = g.op("Cast", [g.op("Cast", [log_mel], to=TensorProto.FLOAT16)], to=TensorProto.FLOAT)  # the fp16 boundary
    x = g.op("Transpose", [log_mel], perm=[0, 2, 1])                                        # (1, 80, F)
    x = g.op("Conv", [x, g.constant(tensors["onnx::Conv_663"], "stem.weight"),
                      g.constant(tensors["onnx::Conv_664"], "stem.bias")], kernel_shape=[3], pads=[1, 1], strides=[2])
    x = g.gelu(x)
    for block in range(BLOCKS):
        source, dilation = f"{PREFIX}backbone.{block}.", DILATIONS[block]
        reach = dilation * (DEPTHWISE_KERNEL // 2)
        depthwise = g.op("Conv", [x, g.constant(tensors[source + "depthwise.weight"], f"block{block}.depthwise.weight"),
                                  g.constant(tensors[source + "depthwise.bias"], f"block{block}.depthwise.bias")],
                         kernel_shape=[DEPTHWISE_KERNEL], pads=[reach, reach], dilations=[dilation], group=HIDDEN_DIM)
        pointwise = g.silu(g.op("Conv", [
            depthwise, g.constant(tensors[f"onnx::Conv_{666 + 3 * block}"], f"block{block}.pointwise.weight"),
            g.constant(tensors[f"onnx::Conv_{667 + 3 * block}"], f"block{block}.pointwise.bias")], kernel_shape=[1]))
        squeeze = g.op("ReduceMean", [pointwise], axes=[2], keepdims=1)
        squeeze = g.silu(g.op("Conv", [squeeze, g.constant(tensors[source + "se.fc1.weight"], f"block{block}.se1.weight"),
                                       g.constant(tensors[source + "se.fc1.bias"], f"block{block}.se1.bias")],
                              kernel_shape=[1]))
        excite = g.op("Sigmoid", [g.op("Conv", [squeeze,
                                                g.constant(tensors[source + "se.fc2.weight"], f"block{block}.se2.weight"),
                                                g.constant(tensors[source + "se.fc2.bias"], f"block{block}.se2.bias")],
                                       kernel_shape=[1])])
        x = g.op("Add", [g.op("Mul", [pointwise, excite]), x])
    x = g.op("Transpose", [x], perm=[0, 2, 1])                                              # (1, T, 256)
    matrices = {0: (712, 716, 717, 718), 1: (719, 723, 724, 725)}
    for layer in range(LAYERS):
        source = f"{PREFIX}attn_layers.{layer}."
        qkv_w, out_w, ff_in_w, ff_out_w = (tensors[f"onnx::MatMul_{number}"] for number in matrices[layer])
        normed = g.op("LayerNormalization", [x, g.constant(tensors[source + "norm1.weight"], f"layer{layer}.norm1.weight"),
                                             g.constant(tensors[source + "norm1.bias"], f"layer{layer}.norm1.bias")],
                      axis=-1, epsilon=LAYER_NORM_EPS)
        qkv = g.linear(normed, qkv_w, tensors[source + "attn.in_proj_bias"], f"layer{layer}.qkv")
        heads = g.op("Transpose", [g.op("Reshape", [qkv, "qkv_shape"])], perm=[2, 0, 3, 1, 4])  # (3, 1, H, T, 64)
        query, key, value = (g.op("Squeeze", [part, "first_axis"]) for part in
                             g.op("Split", [heads, "thirds"], outputs=3, axis=0))
        scores = g.op("MatMul", [g.op("Mul", [query, "scale"]), g.op("Transpose", [key], perm=[0, 1, 3, 2])])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), value])               # (1, H, T, 64)
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), "model_shape"])
        x = g.op("Add", [x, g.linear(context, out_w, tensors[source + "attn.out_proj.bias"], f"layer{layer}.out")])
        normed = g.op("LayerNormalization", [x, g.constant(tensors[source + "norm2.weight"], f"layer{layer}.norm2.weight"),
                                             g.constant(tensors[source + "norm2.bias"], f"layer{layer}.norm2.bias")],
                      axis=-1, epsilon=LAYER_NORM_EPS)
        hidden = g.gelu(g.linear(normed, ff_in_w, tensors[source + "ff.0.bias"], f"layer{layer}.ff_in"))
        x = g.op("Add", [x, g.linear(hidden, ff_out_w, tensors[source + "ff.3.bias"], f"layer{layer}.ff_out")])
    g.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    logits = g.linear(x, tensors[PREFIX + "proj.weight"][:, :, 0].T.copy(), tensors[PREFIX + "proj.bias"], "proj")
    g.nodes.append(helper.make_node("LogSoftmax", [logits], ["log_posteriors"], axis=-1))
    graph = helper.make_graph(
        g.nodes, "hama16_asr", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("log_posteriors", TensorProto.FLOAT, [1, "frames", POSTERIOR_DIM]),
         helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "frames", HIDDEN_DIM])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="scripts/convert_hama_asr.py",
                              doc_string="hama 1.6.0 ASR (asr_waveform.hama) as an ONNX graph; see MODEL_CARD.md")
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="hama-1.6.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "speech_frontend" / MODEL_FILE)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        model = build_graph(read_hama_pack(wheel.read(ASSET)))
        tokens = json.loads(wheel.read(VOCABULARY))["decoder"] + ["<wb>", "<blank>"]
    if len(tokens) != POSTERIOR_DIM:
        raise SystemExit(f"expected {POSTERIOR_DIM} output tokens; the wheel's vocabulary gives {len(tokens)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(args.out, model.SerializeToString())
    write_json(args.out.with_name(TOKENS_FILE), tokens, ensure_ascii=False)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) and {TOKENS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
