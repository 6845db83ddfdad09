"""`python -m training`: one subcommand per module in `training.commands` (as `python -m backend`).

    represent              train a speech-mesh representation variant (--preset, --seed, --set, --resume)
    export-representation  a checkpoint's encoders as ONNX (speech_encoder.onnx + mesh_encoder.onnx)
    properties             measure and plot the representation's properties (real held-out speech)
    calibrate-plrs         the PLRS evaluator's calibration on real held-out speech and its colour bands
    train                  train a generator family (--preset, --family, --seed, --set, --resume)
    evaluate               score generators side by side (MTM, LVE, PLRS, SLCC/Δ, FDD table)
    export-generator       a generator checkpoint as a generator folder (--force replaces one)
    compare                every family +/- perceptual loss, representation ablation, codebook usage, cost
    bilabial-detector      the lip closure guard's bilabial detector (Whisper tiny.en encoder + probe)
"""

import argparse
import importlib
import sys

import torch

from backend.cli import dispatch
from backend.cli import positive_int

COMMAND_MODULES = (
    "training.commands.represent",
    "training.commands.export_representation",
    "training.commands.properties",
    "training.commands.calibrate_plrs",
    "training.commands.train",
    "training.commands.evaluate",
    "training.commands.export_generator",
    "training.commands.compare",
    "training.commands.bilabial_detector",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default 1: small models run fastest single-threaded on a busy CPU)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    return dispatch(build_parser(), argv, before_run=lambda args: torch.set_num_threads(args.threads))


if __name__ == "__main__":
    sys.exit(main())
