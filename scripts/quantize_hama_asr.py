"""Build the int8 candidate of the speech front end (NOT shipped: it missed the quality gate, benchmarks/README.md
"int8 and float16 for the front end"): `.cache/hama16_asr_int8.onnx` from the shipped
`models/speech_frontend/hama16_asr.onnx`.

    .venv/bin/python scripts/quantize_hama_asr.py [--out .cache/hama16_asr_int8.onnx]

The transformer's eight weight MatMuls (qkv, attention out, feed-forward in and out of both layers) become
onnxruntime dynamic int8 products (weights int8 per output column, activations quantised per call); the mel
filterbank (its inputs span ten decades: int8 breaks the features, 77 % frame-argmax agreement) and the output
projection stay float32, as do the convolutions (static QDQ int8 of the pointwise and stem convolutions with a
corpus calibration set kept only 85-89 % of the argmaxes and ran no faster) and the attention's activation
products (onnxruntime's dynamic quantiser leaves them float). The float16-stored weights are first folded into
float32 constants, which the quantiser needs. Deterministic: no calibration data.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.speech_frontend import default_model_path  # noqa: E402

KEPT_FLOAT = ("mel.filterbank", "proj.weight")   # MatMuls whose weight stays float32


def folded_float32(graph: onnx.ModelProto) -> onnx.ModelProto:
    """`graph` with every Cast of a float16 constant replaced by the float32 constant it computes, and every node
    named (the quantiser selects nodes by name)."""
    constants = {weight.name: weight for weight in graph.graph.initializer}
    nodes = []
    for node in graph.graph.node:
        if node.op_type == "Cast" and node.input[0] in constants:
            values = numpy_helper.to_array(constants[node.input[0]]).astype(np.float32)
            graph.graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    weights = [weight for weight in graph.graph.initializer if weight.name in used]
    for index, node in enumerate(nodes):
        node.name = node.name or f"{node.op_type}_{index}"
    del graph.graph.node[:], graph.graph.initializer[:]
    graph.graph.node.extend(nodes)
    graph.graph.initializer.extend(weights)
    return graph


def quantize(source: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    graph = folded_float32(onnx.load(str(source)))
    kept = [node.name for node in graph.graph.node if node.op_type == "MatMul" and set(node.input) & set(KEPT_FLOAT)]
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(scratch) / "folded.onnx"
        onnx.save(graph, str(folded))
        partial = out.with_name(f".{out.name}.partial")
        quantize_dynamic(str(folded), str(partial), op_types_to_quantize=["MatMul"], nodes_to_exclude=kept,
                         per_channel=True, weight_type=QuantType.QInt8)
        partial.replace(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=default_model_path())
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "hama16_asr_int8.onnx")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    quantize(args.source, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
