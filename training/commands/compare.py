"""`python -m training compare`: the paper's full comparison (training/generators/compare.py)."""

from pathlib import Path

import torch

from backend.cli import positive_int
from training.commands.options import add_encoders_and_masks, add_seed_and_settings, overrides
from training.generators.compare import FAMILIES, PARTS, compare
from training.generators.config import GeneratorConfig


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="train or reuse, then evaluate every family with and without "
                                                   "the perceptual loss, the ablation and the training cost")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True, help="run folders (<runs>/<name>/checkpoint.pt)")
    parser.add_argument("--representation", type=Path, required=True,
                        help="folder with two-stage.pt, syncnet.pt, no-2d-prior.pt (missing ones are trained)")
    parser.add_argument("--out", type=Path, required=True, help="folder for comparison.md, cost.csv, ...")
    add_encoders_and_masks(parser)
    parser.add_argument("--preset", default="small", help="generator preset for every run")
    add_seed_and_settings(parser, "GeneratorConfig of every run", "--set steps=50")
    parser.add_argument("--split", default="test")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                        help=f"subset of {', '.join(FAMILIES)}")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), metavar="PART", help=f"subset of {', '.join(PARTS)}")
    parser.add_argument("--cost-steps", type=positive_int, default=10, help="measured iterations per cost row")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device for the cost rows (training runs use the GPU when present)")
    parser.set_defaults(run=run)


def run(args) -> int:
    print(compare(args.corpus, args.runs, args.representation, args.out, args.encoders, args.masks, args.preset,
                  overrides(GeneratorConfig, args), args.split, args.families, args.parts, args.cost_steps,
                  args.device, args.threads))
    return 0
