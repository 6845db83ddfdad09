"""`python -m training export-generator`: a generator checkpoint as a generator folder (ONNX + model.json +
MODEL_CARD.md), swapped in whole; an existing folder is replaced only with --force."""

from pathlib import Path

from training.generators.export import export_generator


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-generator", help="export a generator checkpoint to the ONNX contract")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="generator folder to write")
    parser.add_argument("--name", help="generator name (default: the folder name)")
    parser.add_argument("--description", default="", help="one line for a UI")
    parser.add_argument("--force", action="store_true", help="replace an existing generator folder")
    parser.add_argument("--benchmark", type=Path, help="real_speech.json of benchmarks/real_speech.py: its rows for "
                        "this model go into MODEL_CARD.md")
    parser.add_argument("--baseline", help="generator name this one is compared with in its card (the baseline a "
                        "'+ perceptual' variant was fine-tuned from)")
    parser.add_argument("--plrs", type=Path, help="JSON of benchmarks/real_speech_plrs.py: the independent PLRS of "
                        "this model and its --baseline go into MODEL_CARD.md")
    parser.set_defaults(run=run)


def run(args) -> int:
    path, error = export_generator(args.checkpoint, args.out, args.name, args.description, args.force,
                                   args.benchmark, args.baseline, args.plrs)
    print(f"{path} (torch/onnxruntime parity: max |difference| {error:.2e} m)")
    return 0
