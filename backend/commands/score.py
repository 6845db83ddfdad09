"""`python -m backend score`: lip-sync metrics for one animation or a prediction folder.

One clip:  score --pred seq.npy --audio a.wav [--gt gt.npy [--gt-fps 60]] [--template t.ply]
                 [--reference-curve curve.npy] [--encoders DIR] [--phones a.phones.lab]
A folder:  score --pred-dir P --data-dir D [--split test] [--gt-fps 60] [--resample]
Both print a table and can write --csv (per-clip rows for folders, the summary for one clip) and --json.
--phones (one clip) adds the real-speech checks against the audio's phone labels (backend.metrics.phone_checks):
bilabial closure, rest in pauses, openness order, lag and MTM against the rig driven by the labels.
PLRS runs only with speech-mesh encoder models (--encoders DIR with speech_encoder.onnx, mesh_encoder.onnx).
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from backend.atomic import atomic_stream, check_writable, write_json
from backend.audio import load_audio
from backend.cli import positive_float
from backend.errors import MetricError
from backend.frame_rate import MESH_FPS
from backend.flame import FlameRegions, find_masks_path, find_template_path
from backend.flame_frame import FlameFrame
from backend.mesh import load_flame_mesh, load_vertex_sequence
from backend.metrics import phone_checks
from backend.metrics.evaluation import Regions, ScoreReport, convert_fps, score_clip, score_folder
from backend.metrics.plrs import OnnxSpeechMeshEncoders, find_encoder_directory
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import read_lab


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="lip-sync metrics (MTM, LVE, FDD, SLCC, PLRS) for a clip or a prediction folder",
        description=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    single = parser.add_argument_group("one clip")
    single.add_argument("--pred", type=Path, help="predicted vertex sequence (.npy, (T, 5023, 3) or (T, 15069))")
    single.add_argument("--audio", type=Path, help="the speech the prediction was made from")
    single.add_argument("--gt", type=Path, help="ground-truth vertex sequence (adds MTM, LVE, FDD)")
    single.add_argument("--template", type=Path, help="subject template mesh (.ply/.obj; adds FDD with --gt)")
    single.add_argument("--reference-curve", type=Path,
                        help="reference lip-distance curve (.npy, one value per frame; adds MTM vs reference)")
    single.add_argument("--phones", type=Path, help="phone labels of the audio ('start_s end_s PHONE' lines, ARPAbet "
                        "+ SIL, e.g. from a forced aligner; adds the real-speech checks; the rest gap comes from "
                        "--template, else $FLAME_TEMPLATE)")
    folder = parser.add_argument_group("a folder")
    folder.add_argument("--pred-dir", type=Path, help="folder of predictions (<clip>[_condition_<subject>].npy)")
    folder.add_argument("--data-dir", type=Path, help="dataset folder (vertices_npy/, wav/, templates)")
    folder.add_argument("--split", help="only clips of this split (needs the dataset's manifest.json)")
    folder.add_argument("--resample", action="store_true",
                        help="interpolate ground truth whose fps is not an integer multiple of --fps")
    parser.add_argument("--fps", type=positive_float, default=float(MESH_FPS),
                        help=f"prediction frame rate (default {MESH_FPS})")
    parser.add_argument("--gt-fps", type=positive_float,
                        help="ground-truth frame rate (default: manifest fps, else 60 for folders, --fps for --gt)")
    parser.add_argument("--encoders", type=Path,
                        help="folder with speech_encoder.onnx and mesh_encoder.onnx (PLRS; default: the shipped ones)")
    parser.add_argument("--masks", type=Path, help="FLAME_masks.npz (default: $FLAME_MASKS or next to $FLAME_TEMPLATE)")
    parser.add_argument("--csv", type=Path, help="write the results as CSV")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    folder_mode = args.pred_dir is not None or args.data_dir is not None
    if folder_mode == (args.pred is not None or args.audio is not None) or (
            folder_mode and (args.pred_dir is None or args.data_dir is None)) or (
            not folder_mode and (args.pred is None or args.audio is None)):
        raise MetricError("score needs either --pred and --audio (one clip) or --pred-dir and --data-dir "
                          "(a folder), not both and not parts of each")
    for output in (args.csv, args.json):
        if output is not None:
            check_writable(output)   # refuse a bad target before the work, not after
    if folder_mode and args.phones is not None:
        raise MetricError("--phones checks one clip: use it with --pred and --audio, not with --pred-dir")
    masks = FlameRegions.load(find_masks_path(args.masks))
    regions = Regions(lips=masks.lips, upper_face=masks.upper_face)
    model_dir = find_encoder_directory(args.encoders)
    encoders = None if model_dir is None else OnnxSpeechMeshEncoders.from_directory(model_dir)
    if folder_mode:
        report = score_folder(args.pred_dir, args.data_dir, regions, encoders, args.fps, args.gt_fps, args.split,
                              args.resample)
    else:
        report = _score_one(args, regions, encoders)
    checks = _phone_checks(args, masks) if args.phones is not None else None
    print(format_table(report))
    if checks is not None:
        print(format_phone_checks(checks))
    if args.csv:
        write_csv(report, args.csv)
    if args.json:
        results = report.to_json() | ({"phone_checks": checks.as_dict()} if checks is not None else {})
        write_json(args.json, results, ensure_ascii=False)
    return 0


def _in_flame_frame(vertices: np.ndarray, source) -> np.ndarray:
    """`vertices` ((V, 3) or (T, V, 3), FLAME topology) in the FLAME frame the metrics and encoders measure in:
    a head in centimetres, rotated or mirrored (what `animate` writes for such a template) is mapped back,
    recovered from its own first frame (backend.flame_frame), and the caller is told."""
    frame = FlameFrame.recover(vertices.reshape(-1, *vertices.shape[-2:])[0])
    for note in frame.notes:
        print(f"warning: {source}: {note.split(':')[0]}; scored in FLAME metres", file=sys.stderr)
    return frame.to_flame(vertices)


def _score_one(args, regions: Regions, encoders) -> ScoreReport:
    pred = _in_flame_frame(load_vertex_sequence(args.pred, num_vertices=None), args.pred)
    samples, rate = load_audio(args.audio)
    gt = template = curve = None
    if args.gt is not None:
        gt = convert_fps(_in_flame_frame(load_vertex_sequence(args.gt, num_vertices=None), args.gt),
                         args.gt_fps or args.fps, args.fps, resample=False, source=str(args.gt))
    if args.template is not None:
        template = _in_flame_frame(load_flame_mesh(args.template).vertices, args.template)
    if args.reference_curve is not None:
        curve = np.load(args.reference_curve, allow_pickle=False)
    return score_clip(pred, samples, rate, regions, args.fps, gt, template, curve, encoders)


def _shown(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def format_table(report: ScoreReport) -> str:
    """The summary as a Markdown table (metric, value, unit, clips scored/skipped, note)."""
    lines = ["| metric | value | unit | scored | skipped | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {entry.name} | {_shown(entry.value)} | {entry.unit} | {entry.scored} | {entry.skipped} | "
              f"{entry.note} |" for entry in report.summary]
    return "\n".join(lines)


def write_csv(report: ScoreReport, path: Path) -> None:
    """Per-clip rows when there are any (folder mode), else the summary entries."""
    if report.clips:
        columns = list(dict.fromkeys(key for row in report.clips for key in row))
        rows = [{key: ";".join(map(str, value)) if isinstance(value, list) else value for key, value in row.items()}
                for row in report.clips]
    else:
        columns = ["name", "value", "unit", "scored", "skipped", "note"]
        rows = [vars(entry) for entry in report.summary]
    with atomic_stream(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}", file=sys.stderr)


def _phone_checks(args, masks: FlameRegions) -> phone_checks.ClipChecks:
    """The real-speech checks of --pred against --phones, with the rig built on the template used."""
    path = find_template_path(args.template)
    mesh = load_flame_mesh(path)
    rig = FlameRig(_in_flame_frame(mesh.vertices, path), mesh.faces, masks.masks)
    pred = _in_flame_frame(load_vertex_sequence(args.pred), args.pred)
    return phone_checks.check_clip(pred, read_lab(args.phones), rig, args.fps)


def format_phone_checks(checks: phone_checks.ClipChecks) -> str:
    """The checks as a Markdown table (check, value, what it means), with the counts they rest on."""
    values = checks.as_dict()
    counts = {"closure": f"{checks.bilabials} /p b m/", "rest": f"{checks.pause_frames} pause frames",
              "openness_rho": f"{checks.vowels} vowels", "contact": f"{checks.labiodentals} /f v/"}
    lines = ["", "Real-speech checks against the phone labels (REFERENCE §8)", "",
             "| check | value | over | what it means |", "|---|---|---|---|"]
    lines += [f"| {name} | {_shown(values[name])} | {counts.get(name, '')} | {meaning} |"
              for name, meaning in phone_checks.MEANINGS.items()]
    return "\n".join(lines)
