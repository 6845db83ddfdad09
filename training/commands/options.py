"""Options shared by the training commands, spelled as in the backend CLI for the same things (--encoders,
--masks, --split), and how their --seed / --set values become config overrides (typed and checked by
training.configuration)."""

import argparse
from pathlib import Path

from backend.cli import non_negative_int
from training.configuration import merged, parse_settings


def add_seed_and_settings(parser, config_name: str, example: str) -> None:
    """--seed N and repeatable --set KEY=VALUE (KEY may be section.field) for a command that trains."""
    parser.add_argument("--seed", type=non_negative_int, help="random seed of the run (default: the preset's, 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override any {config_name} field, e.g. {example} (repeat)")


def overrides(config_class, args, **fixed) -> dict:
    """The overrides of a command line: `fixed` ones, then --seed, then every --set (later ones win)."""
    values = {key: value for key, value in fixed.items() if value is not None}
    if args.seed is not None:
        values["seed"] = args.seed
    return merged(values, parse_settings(config_class, args.set))


def add_encoders_and_masks(parser) -> None:
    """The PLRS encoder folder and the FLAME masks, named as in `python -m backend score`."""
    parser.add_argument("--encoders", type=Path, help="PLRS speech-mesh encoder folder (speech_encoder.onnx, "
                                                      "mesh_encoder.onnx; default: the shipped ones)")
    parser.add_argument("--masks", type=Path, help="FLAME_masks.npz (default: $FLAME_MASKS or next to $FLAME_TEMPLATE)")
