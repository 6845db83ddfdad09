"""`python -m training`: train, export and measure the speech-mesh representation.

    represent              --preset tiny|small|full --corpus DIR --out DIR [--variant two-stage|no-2d-prior|syncnet]
                           [--video DIR] [--seed N]
    export-representation  --checkpoint FILE.pt --out DIR        (speech_encoder.onnx + mesh_encoder.onnx)
    properties             --checkpoint FILE.pt [...] --corpus DIR --out DIR   (figures, PNG plots, JSON)
"""

import argparse
import sys
from pathlib import Path

import torch

from backend.errors import BackendError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: small models run fastest single-threaded on a busy CPU)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    represent = commands.add_parser("represent", help="train a speech-mesh representation variant")
    represent.add_argument("--preset", default="small", help="tiny, small or full (training/config.py)")
    represent.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus`")
    represent.add_argument("--out", type=Path, required=True, help="output folder (<variant>.pt, mouth_video/)")
    represent.add_argument("--variant", default="two-stage", help="two-stage (default), no-2d-prior or syncnet")
    represent.add_argument("--video", type=Path, help="LRS3-like talking-face folder for stage 1 (default: render "
                                                      "mouth video from the corpus meshes)")
    represent.add_argument("--seed", type=int, default=0)
    represent.set_defaults(run=run_represent)
    export = commands.add_parser("export-representation", help="export a checkpoint's encoders to ONNX")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(run=run_export)
    properties = commands.add_parser("properties", help="measure and plot the representation's properties")
    properties.add_argument("--checkpoint", type=Path, action="append", required=True,
                            help="a <variant>.pt checkpoint (repeat to compare variants)")
    properties.add_argument("--corpus", type=Path, required=True)
    properties.add_argument("--split", default="test", help="held-out split to measure on (default test)")
    properties.add_argument("--out", type=Path, required=True, help="folder for properties.json and PNG plots")
    properties.set_defaults(run=run_properties)
    return parser


def run_represent(args) -> int:
    from training.config import preset
    from training.representation import represent
    represent(preset(args.preset, seed=args.seed), args.corpus, args.out, args.variant, args.video)
    return 0


def run_export(args) -> int:
    from training.export import export_representation
    for path in export_representation(args.checkpoint, args.out):
        print(path)
    return 0


def run_properties(args) -> int:
    from training.properties import measure_and_plot
    measure_and_plot(args.checkpoint, args.corpus, args.out, args.split)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    torch.set_num_threads(args.threads)
    try:
        return int(args.run(args) or 0)
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
