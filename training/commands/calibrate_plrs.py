"""`python -m training calibrate-plrs`: the PLRS evaluator's calibration on real held-out speech and its colour
bands, written to the evaluator folder's evaluator.json (read by the CLI and the add-on) and calibration.md."""

from pathlib import Path

from training.commands.properties import DEFAULT_SHARED
from training.representation.calibrate import calibrate, calibration_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("calibrate-plrs", help="calibrate the PLRS evaluator and derive its colour bands")
    parser.add_argument("--evaluator", type=Path, required=True,
                        help="evaluator folder (speech_encoder.onnx, mesh_encoder.onnx; gets evaluator.json)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared folder (default {DEFAULT_SHARED})")
    parser.set_defaults(run=run)


def run(args) -> int:
    print(calibration_table(calibrate(args.evaluator, args.shared)))
    return 0
