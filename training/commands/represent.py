"""`python -m training represent`: train a speech-mesh representation variant (stages checkpointed and logged in
<out>/runs/<name>/<stage>/; --resume continues them)."""

from pathlib import Path

from training.commands.options import add_seed_and_settings, overrides
from training.representation.config import Config, preset
from training.representation.train import VARIANTS, represent


def register(subparsers) -> None:
    parser = subparsers.add_parser("represent", help="train a speech-mesh representation variant")
    parser.add_argument("--preset", default="small", help="tiny, small or full (training/representation/config.py)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus`")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (<variant>.pt, runs/<variant>/<stage>/, mouth_video/)")
    parser.add_argument("--variant", default="two-stage", help=f"{', '.join(VARIANTS)} (default two-stage)")
    parser.add_argument("--video", type=Path, help="LRS3-like talking-face folder for stage 1 (default: render "
                                                   "mouth video from the corpus meshes)")
    parser.add_argument("--name", help="name of this run's checkpoint <out>/<name>.pt and runs/<name>/ (default: the "
                                       "variant), e.g. two-stage-fbank for --set model.speech_input=fbank")
    parser.add_argument("--feature-cache", type=Path, help="folder caching the speech front end's features per clip "
                                                           "(default <out>/speech_features)")
    parser.add_argument("--resume", action="store_true", help="continue the stage checkpoints in --out")
    add_seed_and_settings(parser, "representation config", "--set stage2.steps=500 --set model.width=32")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = preset(args.preset, **overrides(Config, args))
    print(represent(config, args.corpus, args.out, args.variant, args.video, resume=args.resume, name=args.name,
                    feature_cache=args.feature_cache))
    return 0
