"""`python -m training compare`: the paper's full comparison (training/generators/compare.py), either training
the runs it needs (--runs, --representation) or on exported generator folders (--exported, not retrained)."""

from pathlib import Path

import torch

from backend.cli import positive_int
from backend.errors import BackendError
from training.commands.options import add_encoders_and_masks, add_seed_and_settings, overrides
from training.generators.compare import FAMILIES, PARTS, compare, compare_exported
from training.generators.config import GeneratorConfig


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="train or reuse, then evaluate every family with and without "
                                                   "the perceptual loss, the ablation and the training cost; or "
                                                   "compare exported models (--exported)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--runs", type=Path, help="run folders (<runs>/<name>/checkpoint.pt); with --exported, "
                                                  "only read: the runs whose configuration is an exported model's "
                                                  "give the codebook usage and the CodeTalker-style stage 1")
    parser.add_argument("--representation", type=Path,
                        help="folder with two-stage.pt, syncnet.pt, no-2d-prior.pt (missing ones are trained); "
                             "with --exported and the ablation part, the critics other than --critic's variant")
    parser.add_argument("--representation-corpus", type=Path, metavar="DIR",
                        help="corpus the missing representations train on (default --corpus)")
    parser.add_argument("--out", type=Path, required=True, help="folder for comparison.md, cost.csv, ...")
    add_encoders_and_masks(parser)
    parser.add_argument("--preset", default="small", help="generator preset for every run")
    add_seed_and_settings(parser, "GeneratorConfig of every run", "--set steps=50")
    parser.add_argument("--split", default="test")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                        help=f"subset of {', '.join(FAMILIES)}")
    parser.add_argument("--parts", nargs="+", metavar="PART",
                        help=f"subset of {', '.join(PARTS)} (default all; with --exported: comparison codebook cost, "
                             "and ablation: Table 3, the exported + perceptual runs fine-tuned again with each other "
                             "critic)")
    parser.add_argument("--cost-steps", type=positive_int, help="measured iterations per cost row "
                                                                "(default 10; with --exported 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device for the cost rows (training runs use the GPU when present)")
    exported = parser.add_argument_group("exported models (not retrained)")
    exported.add_argument("--exported", type=Path, metavar="MODELS_DIR",
                          help="compare the folders <family><suffix> and <family><suffix>_perceptual in MODELS_DIR "
                               "(e.g. models/generators)")
    exported.add_argument("--suffix", default="_v2", help="exported folder name after the family (default _v2)")
    exported.add_argument("--real-speech", type=Path, metavar="DIR",
                          help="the real-speech sets as a corpus (benchmarks/real_speech_corpus.py --out DIR)")
    exported.add_argument("--real-sets", nargs="+", default=["a", "b", "c"], metavar="SET",
                          help="splits of --real-speech to evaluate (default a b c)")
    exported.add_argument("--critic", type=Path, help="the representation checkpoint the perceptual loss used, for "
                                                      "the cost rows (default models/speech_mesh/representation.pt)")
    exported.add_argument("--cost-clips", type=positive_int, default=40,
                          help="train clips the cost rows read (every n-th of the split; default 40)")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.exported is not None:
        print(compare_exported(args.exported, args.corpus, args.out, args.real_speech, args.real_sets, args.runs,
                               args.critic, args.encoders, args.masks, args.split, args.families,
                               args.parts or ["comparison", "codebook", "cost"], args.suffix, args.cost_steps or 5,
                               args.cost_clips, args.device, args.threads, args.representation,
                               args.representation_corpus))
        return 0
    if args.runs is None or args.representation is None:
        raise BackendError("compare needs --runs and --representation (to train or reuse the runs), or --exported "
                           "MODELS_DIR to compare exported models")
    print(compare(args.corpus, args.runs, args.representation, args.out, args.encoders, args.masks, args.preset,
                  overrides(GeneratorConfig, args), args.split, args.families, args.parts or list(PARTS),
                  args.cost_steps or 10, args.device, args.threads, args.representation_corpus))
    return 0
