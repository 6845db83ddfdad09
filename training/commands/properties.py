"""`python -m training properties`: measure and plot a representation's emergent properties."""

from pathlib import Path

from training.representation.properties import measure_and_plot


def register(subparsers) -> None:
    parser = subparsers.add_parser("properties", help="measure and plot the representation's properties")
    parser.add_argument("--checkpoint", type=Path, action="append", required=True,
                        help="a <variant>.pt checkpoint (repeat to compare variants)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--split", default="test", help="held-out split to measure on (default test)")
    parser.add_argument("--out", type=Path, required=True, help="folder for properties.json and PNG plots")
    parser.set_defaults(run=run)


def run(args) -> int:
    measure_and_plot(args.checkpoint, args.corpus, args.out, args.split)
    return 0
