"""Store the weights of shipped generator graphs as float16 (training.generators.export.store_weights_float16, the
step every export now ends with), for folders exported before that step existed.

    .venv/bin/python scripts/store_generators_float16.py [models/generators/NAME ...]   (default: every shipped one)

Per folder: the graph is rewritten in a temporary copy, its vertices compared with the float32 graph's on the
export's parity feeds (SYNTHETIC speech-like features, or audio for a first-release graph), and the copy replaces
generator.onnx only when the difference is within the export's PARITY_TOLERANCE; model.json gets
`float16_weights_max_abs_m` and MODEL_CARD.md the export's float16 sentence and the new file size. A folder whose
graph already holds float16 weights is left as it is, so the script can run twice.
"""

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.atomic import write_json, write_text  # noqa: E402
from backend.generators import MODEL_FILE, ONE_SHOT_FILE  # noqa: E402
from backend.models import default_models_dir  # noqa: E402
from training.generators.export import (CARD_FILE, FLOAT16_SENTENCE, PARITY_TOLERANCE, parity_template,  # noqa: E402
                                        store_float16)


def holds_float16(path: Path) -> bool:
    return any(weight.data_type == onnx.TensorProto.FLOAT16 for weight in onnx.load(str(path)).graph.initializer)


def convert(folder: Path) -> str:
    """Convert one generator folder; returns the line the script prints for it."""
    graph = folder / ONE_SHOT_FILE
    if holds_float16(graph):
        return f"{folder.name}: already float16, left as it is"
    before = graph.stat().st_size
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as scratch:
        copy = Path(scratch) / ONE_SHOT_FILE
        shutil.copyfile(graph, copy)
        error = store_float16(copy, parity_template())
        if error > PARITY_TOLERANCE:
            return (f"{folder.name}: float16 weights move the vertices by {error:.1e} m (limit "
                    f"{PARITY_TOLERANCE:g}); kept float32")
        copy.chmod(0o644)
        copy.replace(graph)   # same file system: atomic
    after = graph.stat().st_size
    values = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    values["float16_weights_max_abs_m"] = error
    write_json(folder / MODEL_FILE, values)
    card = folder / CARD_FILE
    if card.is_file():
        write_text(card, card_with_float16(card.read_text(encoding="utf-8"), error, after))
    return f"{folder.name}: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB, {error:.1e} m from the float32 graph"


def card_with_float16(text: str, error: float, size: int) -> str:
    """The card with its "ONNX N MB" size updated and the float16 sentence after its parity line (or at its end)."""
    text = re.sub(r"ONNX \d+(\.\d+)? MB", f"ONNX {size / 1e6:.1f} MB", text)
    sentence = f"- {FLOAT16_SENTENCE.format(error)}"
    lines = text.rstrip("\n").split("\n")
    parity = [index for index, line in enumerate(lines) if "onnxruntime parity" in line]
    lines.insert(parity[-1] + 1 if parity else len(lines), sentence)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="generator folders (default: every shipped one)")
    args = parser.parse_args(argv)
    shipped = default_models_dir("generators").glob(f"*/{ONE_SHOT_FILE}")
    folders = args.folders or sorted(path.parent for path in shipped)
    for folder in folders:
        if not (folder / ONE_SHOT_FILE).is_file():
            raise SystemExit(f"{folder}: no {ONE_SHOT_FILE}; expected a generator folder")
        print(convert(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
