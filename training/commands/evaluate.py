"""`python -m training evaluate`: score trained generators side by side on a corpus split (the paper's table)."""

from pathlib import Path

from backend.cli import non_negative_int
from training.commands.options import add_encoders_and_masks
from training.generators.evaluate import evaluate, parse_model_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="score trained generators on a test split (paper table)")
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                        help="a checkpoint.pt or an exported generator folder (repeat)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True, help="folder for table.md, table.csv, predictions/")
    add_encoders_and_masks(parser)
    parser.add_argument("--render", type=non_negative_int, default=0, metavar="N",
                        help="also render lip close-ups of N clips (needs the FLAME template: $FLAME_TEMPLATE)")
    parser.set_defaults(run=run)


def run(args) -> int:
    print(evaluate(parse_model_arguments(args.model), args.corpus, args.out, args.split, args.encoders, args.masks,
                   args.render))
    return 0
