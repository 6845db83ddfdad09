"""`python -m training train`: train a generator family (checkpoint.pt, loss.csv, loss.png in --out)."""

from pathlib import Path

from backend.errors import BackendError
from training.commands.options import add_seed_and_settings, overrides
from training.generators.config import FAMILIES, GeneratorConfig, generator_preset
from training.generators.train import train


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a generator family")
    parser.add_argument("--preset", default="small", help="tiny, small or full (training/generators/config.py)")
    parser.add_argument("--family", help=f"{', '.join(FAMILIES)} (default: the preset's, faceformer)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus`")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, loss.csv, loss.png)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--representation", type=Path, help="speech-mesh checkpoint for the perceptual loss")
    parser.add_argument("--perceptual-weight", type=float, help="perceptual loss weight (0 = baseline; paper 1e-7)")
    add_seed_and_settings(parser, "GeneratorConfig", "--set kmtalk.key_frames=uniform --set steps=50")
    parser.add_argument("--progress", action="store_true", help="force the progress bar (default: on a terminal)")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = generator_preset(args.preset, **overrides(GeneratorConfig, args, family=args.family,
                                                       perceptual_weight=args.perceptual_weight))
    path = train(config, args.corpus, args.out, args.resume, args.representation,
                 show_progress=True if args.progress else None)
    if not path.is_file():
        raise BackendError(f"{path} was not written")
    print(path)
    return 0
