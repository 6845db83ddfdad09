"""`python -m training properties`: measure and plot a representation's emergent properties, on real held-out speech
(`--shared`, the default: the Kathleen held-out prompts and shared/speech/dev with the rig from their labels as the
mesh) or on a corpus split (`--corpus`)."""

import os
from pathlib import Path

from training.representation.properties import measure_and_plot

DEFAULT_SHARED = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))


def register(subparsers) -> None:
    parser = subparsers.add_parser("properties", help="measure and plot the representation's properties")
    parser.add_argument("--checkpoint", type=Path, action="append", required=True,
                        help="a <variant>.pt checkpoint (repeat to compare variants)")
    parser.add_argument("--corpus", type=Path, help="measure on this corpus's --split instead of real speech")
    parser.add_argument("--split", default="test", help="corpus split to measure on (default test)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help=f"shared folder with speech/kathleen, speech/dev and flame/ (default {DEFAULT_SHARED})")
    parser.add_argument("--feature-cache", type=Path, help="front-end feature cache (default <out>/speech_features)")
    parser.add_argument("--out", type=Path, required=True, help="folder for properties.json and PNG plots")
    parser.set_defaults(run=run)


def run(args) -> int:
    measure_and_plot(args.checkpoint, args.out, args.corpus, args.split, None if args.corpus else args.shared,
                     args.feature_cache)
    return 0
