"""`python -m training export-representation`: a representation checkpoint's encoders as ONNX (the PLRS contract)."""

from pathlib import Path

from training.representation.export import export_representation


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-representation", help="export a checkpoint's encoders to ONNX")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a <variant>.pt from `represent`")
    parser.add_argument("--out", type=Path, required=True, help="folder for speech_encoder.onnx, mesh_encoder.onnx")
    parser.add_argument("--force", action="store_true", help="replace the encoders already in --out")
    parser.set_defaults(run=run)


def run(args) -> int:
    for path in export_representation(args.checkpoint, args.out, force=args.force):
        print(path)
    return 0
