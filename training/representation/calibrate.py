"""Calibration of the PLRS evaluator on REAL held-out speech, and the colour bands derived from it.

Every real held-out utterance (the Kathleen held-out prompts and shared/speech/dev, never trained on) is scored by
the backend's own PLRS path (`backend.metrics.plrs.clip_plrs`: ONNX models, front-end features of the whole clip,
non-overlapping windows over exactly the audio's span) as six animations on FLAME_sample:

  ground_truth  the articulatory rig driven by the utterance's labels (neutral style)
  shift_1/3/5   the same, 1 / 3 / 5 frames late (the first frame held)
  shuffled      the rig driven by another utterance's labels (the same length: a plausible face, wrong speech)
  static        the template held still

The bands (`derive_bands`) then follow from the per-clip scores so that on this set no ground-truth clip reads
"poor" and no static face reads "good": fair = the lowest ground-truth clip score minus BAND_MARGIN; good = the
highest of the static clips' and the shuffled clips' 95th percentile, plus BAND_MARGIN (a score must beat every
static face and nearly every wrong-speech face to read good). They are written with the calibration table to the
evaluator's `evaluator.json`, the one place the add-on and the CLI read them from (`backend.metrics.plrs.read_bands`).
"""

from pathlib import Path

import numpy as np

from backend.atomic import write_json, write_text
from backend.flame import FlameRegions
from backend.frame_rate import MESH_FPS
from backend.heldout import dev_utterances, heldout_utterances
from backend.mesh import load_flame_mesh
from backend.metrics.evaluation import audio_frame_count
from backend.metrics.phone_checks import rig_from_labels
from backend.metrics.plrs import EVALUATOR_FILE, OnnxSpeechMeshEncoders, clip_plrs
from backend.rig.flame_rig import FlameRig

CONDITIONS = ("ground_truth", "shift_1", "shift_3", "shift_5", "shuffled", "static")
BAND_MARGIN = 0.01


def delayed(vertices: np.ndarray, frames: int) -> np.ndarray:
    """The animation `frames` late: its first frame held, the same length."""
    return np.concatenate([np.repeat(vertices[:1], frames, axis=0), vertices[:len(vertices) - frames]])


def calibration_scores(encoders, shared) -> dict:
    """{condition: [clip score, ...]} over the real held-out utterances (CONDITIONS above)."""
    shared = Path(shared)
    mesh = load_flame_mesh(shared / "flame" / "FLAME_sample.ply")
    rig = FlameRig(mesh.vertices, mesh.faces, FlameRegions.load(shared / "flame" / "FLAME_masks.npz").masks)
    utterances = heldout_utterances(shared) + dev_utterances(shared)
    scores = {condition: [] for condition in CONDITIONS}
    for index, item in enumerate(utterances):
        frames = audio_frame_count(len(item.audio), item.rate, MESH_FPS)
        truth = rig_from_labels(rig, item.timeline, frames)
        other = utterances[(index + len(utterances) // 2) % len(utterances)]
        animations = {"ground_truth": truth, "shift_1": delayed(truth, 1), "shift_3": delayed(truth, 3),
                      "shift_5": delayed(truth, 5), "shuffled": rig_from_labels(rig, other.timeline, frames),
                      "static": np.repeat(mesh.vertices[None], frames, axis=0)}
        for condition, vertices in animations.items():
            scores[condition].append(clip_plrs(encoders, item.audio, item.rate, vertices).score)
    return scores


def summarise(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"clips": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "p5": float(np.percentile(values, 5)), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def derive_bands(scores: dict) -> dict:
    """{"good": g, "fair": f} from per-clip calibration scores (rule in the module docstring)."""
    fair = float(np.min(scores["ground_truth"])) - BAND_MARGIN
    good = max(float(np.max(scores["static"])), float(np.percentile(scores["shuffled"], 95))) + BAND_MARGIN
    good = max(good, fair + BAND_MARGIN)
    return {"good": round(good, 4), "fair": round(fair, 4)}


def rating(value: float, bands: dict) -> str:
    return "good" if value >= bands["good"] else "fair" if value >= bands["fair"] else "poor"


def calibrate(evaluator_dir, shared, extra: dict | None = None) -> dict:
    """Score the calibration set with the ONNX evaluator in `evaluator_dir`, derive the bands and write both (with
    `extra`: provenance) to `<evaluator_dir>/evaluator.json` and calibration.md; returns what was written."""
    folder = Path(evaluator_dir)
    encoders = OnnxSpeechMeshEncoders.from_directory(folder)
    scores = calibration_scores(encoders, shared)
    bands = derive_bands(scores)
    table = {condition: summarise(values) for condition, values in scores.items()}
    for condition, values in scores.items():
        ratings = [rating(value, bands) for value in values]
        table[condition]["reads"] = {name: ratings.count(name) / len(ratings) for name in ("good", "fair", "poor")}
    report = {**(extra or {}), "speech_input": encoders.speech_input,
              "calibration_set": "real held-out speech: Kathleen held-out prompts (backend.heldout) + shared/speech/dev, "
                                 "FLAME_sample, rig from labels as ground truth",
              "calibration": table, "bands": bands,
              "band_rule": "fair = lowest ground-truth clip - 0.01; good = max(highest static clip, shuffled 95th "
                           "percentile) + 0.01 (training/representation/calibrate.py)"}
    write_json(folder / EVALUATOR_FILE, report, indent=1)
    write_text(folder / "calibration.md", calibration_table(report))
    return report


def calibration_table(report: dict) -> str:
    bands = report["bands"]
    lines = [f"PLRS bands: good >= {bands['good']:.3f}, fair >= {bands['fair']:.3f}, else poor.", "",
             "| animation | clips | mean | std | min | median | max | reads good / fair / poor |",
             "|---|---|---|---|---|---|---|---|"]
    for condition, row in report["calibration"].items():
        reads = row["reads"]
        lines.append(f"| {condition} | {row['clips']} | {row['mean']:.3f} | {row['std']:.3f} | {row['min']:.3f} | "
                     f"{row['median']:.3f} | {row['max']:.3f} | {reads['good']:.0%} / {reads['fair']:.0%} / "
                     f"{reads['poor']:.0%} |")
    return "\n".join(lines) + "\n"
