"""`python -m training`: train, export and measure the speech-mesh representation.

    represent              --preset tiny|small|full --corpus DIR --out DIR [--variant two-stage|no-2d-prior|syncnet]
                           [--video DIR] [--seed N]
    export-representation  --checkpoint FILE.pt --out DIR        (speech_encoder.onnx + mesh_encoder.onnx)
    properties             --checkpoint FILE.pt [...] --corpus DIR --out DIR   (figures, PNG plots, JSON)
    train                  --preset tiny|small|full --family faceformer|kmtalk --corpus DIR --out DIR [--resume]
    evaluate               --model LABEL=PATH [...] --corpus DIR --out DIR   (MTM, LVE, PLRS, SLCC/Δ, FDD table)
    export-generator       --checkpoint FILE.pt --out DIR                    (generator ONNX + model.json)
    compare                --corpus DIR --runs DIR --representation DIR --out DIR   (issue 7: every family
                           +/- perceptual loss, representation ablation, codebook usage, training cost)
"""

import argparse
import sys
from pathlib import Path

import torch

from backend.cli import dispatch
from backend.errors import BackendError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: small models run fastest single-threaded on a busy CPU)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    represent = commands.add_parser("represent", help="train a speech-mesh representation variant")
    represent.add_argument("--preset", default="small", help="tiny, small or full (training/config.py)")
    represent.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus`")
    represent.add_argument("--out", type=Path, required=True, help="output folder (<variant>.pt, mouth_video/)")
    represent.add_argument("--variant", default="two-stage", help="two-stage (default), no-2d-prior or syncnet")
    represent.add_argument("--video", type=Path, help="LRS3-like talking-face folder for stage 1 (default: render "
                                                      "mouth video from the corpus meshes)")
    represent.add_argument("--seed", type=int, default=0)
    represent.set_defaults(run=run_represent)
    export = commands.add_parser("export-representation", help="export a checkpoint's encoders to ONNX")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(run=run_export)
    properties = commands.add_parser("properties", help="measure and plot the representation's properties")
    properties.add_argument("--checkpoint", type=Path, action="append", required=True,
                            help="a <variant>.pt checkpoint (repeat to compare variants)")
    properties.add_argument("--corpus", type=Path, required=True)
    properties.add_argument("--split", default="test", help="held-out split to measure on (default test)")
    properties.add_argument("--out", type=Path, required=True, help="folder for properties.json and PNG plots")
    properties.set_defaults(run=run_properties)
    add_generator_commands(commands)
    add_compare_command(commands)
    return parser


def run_represent(args) -> int:
    from training.config import preset
    from training.representation import represent
    represent(preset(args.preset, seed=args.seed), args.corpus, args.out, args.variant, args.video)
    return 0


def run_export(args) -> int:
    from training.export import export_representation
    for path in export_representation(args.checkpoint, args.out):
        print(path)
    return 0


def run_properties(args) -> int:
    from training.properties import measure_and_plot
    measure_and_plot(args.checkpoint, args.corpus, args.out, args.split)
    return 0


# --- Generators (issue 6): train, evaluate, export-generator ------------------------------------------

def add_generator_commands(commands) -> None:
    """train --preset P --family F --corpus DIR --out DIR [--resume] [--perceptual-weight W --representation PT]
    evaluate --model NAME=PATH ... --corpus DIR --out DIR      (paper table, Markdown + CSV)
    export-generator --checkpoint PT --out DIR --name NAME     (ONNX + model.json + parity check)"""
    train = commands.add_parser("train", help="train a generator (FaceFormer-style or KMTalk-style)")
    train.add_argument("--preset", default="small", help="tiny, small or full (GENERATOR_PRESETS in training/config.py)")
    train.add_argument("--family", default="faceformer", help="faceformer or kmtalk")
    train.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus`")
    train.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, loss.csv, loss.png)")
    train.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    train.add_argument("--representation", type=Path, help="speech-mesh checkpoint for the perceptual loss")
    train.add_argument("--perceptual-weight", type=float, help="perceptual loss weight (0 = baseline; paper 1e-7)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any GeneratorConfig field, e.g. --set key_frames=uniform --set steps=50")
    train.add_argument("--progress", action="store_true", help="force the progress bar (default: on a terminal)")
    train.set_defaults(run=run_train)
    evaluate = commands.add_parser("evaluate", help="score trained generators on a test split (paper table)")
    evaluate.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                          help="a checkpoint.pt or an exported generator folder (repeat)")
    evaluate.add_argument("--corpus", type=Path, required=True)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for table.md, table.csv, predictions/")
    evaluate.add_argument("--encoders", type=Path, help="PLRS encoder folder (default: shipped speech_mesh)")
    evaluate.add_argument("--masks", type=Path, help="FLAME_masks.npz (default: $FLAME_MASKS)")
    evaluate.add_argument("--key-frames", choices=("model", "timeline"), default="model",
                          help="KMTalk key frames: the model's own (default) or the test clips' timelines")
    evaluate.add_argument("--render", type=int, default=0, metavar="N",
                          help="also render lip close-ups of N clips (needs the FLAME template: $FLAME_TEMPLATE)")
    evaluate.set_defaults(run=run_evaluate)
    export = commands.add_parser("export-generator", help="export a generator checkpoint to the ONNX contract")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True, help="generator folder to write")
    export.add_argument("--name", help="generator name (default: the folder name)")
    export.add_argument("--description", default="", help="one line for a UI")
    export.set_defaults(run=run_export_generator)


def run_train(args) -> int:
    from training.config import generator_preset
    from training.train import train
    overrides = {"family": args.family}
    if args.perceptual_weight is not None:
        overrides["perceptual_weight"] = args.perceptual_weight
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_setting(key, value)
    config = generator_preset(args.preset, **overrides)
    print(train(config, args.corpus, args.out, args.resume, args.representation,
                show_progress=True if args.progress else None))
    return 0


def _parse_setting(key: str, value: str):
    """A --set value typed like the GeneratorConfig field `key` (unknown keys are reported by the preset)."""
    from training.config import GeneratorConfig
    field = GeneratorConfig.__dataclass_fields__.get(key)
    if field is None or field.type in (str, "str"):
        return value
    if field.type in (bool, "bool"):
        if value.lower() not in ("true", "false", "1", "0"):
            raise BackendError(f"--set {key}={value}: expected true or false")
        return value.lower() in ("true", "1")
    try:
        return (int if field.type in (int, "int") else float)(value)
    except ValueError:
        raise BackendError(f"--set {key}={value}: expected a number") from None


def run_evaluate(args) -> int:
    from training.evaluate import evaluate, parse_model_arguments
    table = evaluate(parse_model_arguments(args.model), args.corpus, args.out, args.split, args.encoders,
                     args.masks, args.key_frames, args.render)
    print(table)
    return 0


def run_export_generator(args) -> int:
    from training.export_generator import export_generator
    path, error = export_generator(args.checkpoint, args.out, args.name, args.description)
    print(f"{path} (torch/onnxruntime parity: max |difference| {error:.2e} m)")
    return 0


def add_compare_command(commands) -> None:
    """compare: the paper's full comparison (training/compare.py)."""
    from training.compare import FAMILIES, PARTS
    compare = commands.add_parser("compare", help="train or reuse, then evaluate every family with and without "
                                                  "the perceptual loss, the ablation and the training cost")
    compare.add_argument("--corpus", type=Path, required=True)
    compare.add_argument("--runs", type=Path, required=True, help="run folders (<runs>/<name>/checkpoint.pt)")
    compare.add_argument("--representation", type=Path, required=True,
                         help="folder with two-stage.pt, syncnet.pt, no-2d-prior.pt (missing ones are trained)")
    compare.add_argument("--out", type=Path, required=True, help="folder for comparison.md, cost.csv, ...")
    compare.add_argument("--encoders", type=Path, help="PLRS encoder folder (default: shipped speech_mesh)")
    compare.add_argument("--masks", type=Path, help="FLAME_masks.npz (default: $FLAME_MASKS)")
    compare.add_argument("--preset", default="small", help="generator preset for every run")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--split", default="test")
    compare.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                         help=f"subset of {', '.join(FAMILIES)}")
    compare.add_argument("--parts", nargs="+", default=list(PARTS), metavar="PART", help=f"subset of {', '.join(PARTS)}")
    compare.add_argument("--cost-steps", type=int, default=10, help="measured iterations per cost row")
    compare.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                         help="device for the cost rows (training runs use the GPU when present)")
    compare.set_defaults(run=run_compare)


def run_compare(args) -> int:
    from training.compare import compare
    print(compare(args.corpus, args.runs, args.representation, args.out, args.encoders, args.masks, args.preset, args.seed,
                  args.split, args.families, args.parts, args.cost_steps, args.device, args.threads))
    return 0


def main(argv=None) -> int:
    return dispatch(build_parser(), argv, before_run=lambda args: torch.set_num_threads(args.threads))


if __name__ == "__main__":
    sys.exit(main())
