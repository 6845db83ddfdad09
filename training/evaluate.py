"""Evaluate any set of trained generators side by side on a corpus split, in the paper's table format:
MTM (ms), LVE (x1e-5 m^2), PLRS, SLCC (ΔSLCC), FDD (x1e-7 m^2), as Markdown and CSV.

A model is a generator checkpoint (`checkpoint.pt`, run in torch) or an exported generator folder
(model.json + generator.onnx, run through backend.generators). Predictions are written as
<out>/predictions/<label>/<clip>.npy and scored by backend.metrics.score_folder (the metrics are never
re-implemented here). The first row is the ground truth itself (its PLRS and SLCC are the data's).
Unseen test subjects are animated with the generator's default style.
"""

import csv
import re
from pathlib import Path

import numpy as np
import torch

from backend.errors import BackendError
from backend.flame import FlameRegions, find_masks_path
from backend.generators import MODEL_FILE, load_generator
from backend.mesh import save_vertex_sequence
from backend.metrics.evaluation import Regions, score_folder
from backend.metrics.plrs import OnnxSpeechMeshEncoders, find_encoder_directory
from backend.progress import progress
from training.data import open_dataset
from training.generators.kmtalk import timeline_key_mask
from training.train import SAMPLE_RATE, load_trained
from backend.audio import resample

GROUND_TRUTH = "ground truth"
COLUMNS = ("model", "MTM_ms", "LVE_1e-5", "PLRS", "SLCC", "delta_SLCC", "FDD_1e-7", "clips")
SUMMARY_NAMES = {"MTM": "MTM_ms", "LVE": "LVE_1e-5", "PLRS": "PLRS", "SLCC": "SLCC", "ΔSLCC": "delta_SLCC",
                 "FDD": "FDD_1e-7"}


def parse_model_arguments(items: list) -> dict:
    """["label=path", ...] -> {label: Path}; a bare path is labelled by its folder name."""
    models = {}
    for item in items:
        label, mark, path = item.partition("=")
        label, path = (label, Path(path)) if mark else (Path(item).parent.name or item, Path(item))
        if label in models or label == GROUND_TRUTH:
            raise BackendError(f"model label '{label}' is used twice (or is reserved); give each --model a "
                               "distinct LABEL=PATH")
        models[label] = path
    return models


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)


def predict_clips(path: Path, clips: list, key_frames: str = "model"):
    """Yield (clip_id, (T, 5023, 3) prediction) for each corpus Clip with the model at `path`."""
    if (path / MODEL_FILE).is_file():
        generator = load_generator(path)
        for clip_id, clip in clips:
            yield clip_id, generator.animate(clip.audio, clip.sample_rate, clip.template)
        return
    model, config, styles, _ = load_trained(path)
    style = torch.eye(len(styles))[:1]
    for clip_id, clip in clips:
        audio = torch.from_numpy(resample(clip.audio, clip.sample_rate, SAMPLE_RATE).astype(np.float32))[None]
        with torch.no_grad():
            if config.family == "kmtalk" and key_frames == "timeline" and clip.timeline:
                frames = model.speech_encoder(audio).shape[1]
                mask = timeline_key_mask(clip.timeline, frames)[None]
                vertices = model(audio, torch.from_numpy(clip.template)[None], style, mask)["vertices"]
            else:
                vertices = model(audio, torch.from_numpy(clip.template)[None], style)["vertices"]
        yield clip_id, vertices[0].numpy()


def evaluate(models: dict, corpus, out_dir, split: str = "test", encoders_dir=None, masks=None,
             key_frames: str = "model") -> str:
    """Score every model on the corpus split; writes table.md and table.csv in `out_dir`; returns the
    Markdown table."""
    out_dir = Path(out_dir)
    dataset = open_dataset(corpus, split=split)
    clips = [(clip_id, dataset.load(clip_id)) for clip_id in dataset.clip_ids()]
    flame = FlameRegions.load(find_masks_path(masks))
    regions = Regions(lips=flame.lips, upper_face=flame.upper_face)
    encoder_folder = find_encoder_directory(encoders_dir)
    encoders = None if encoder_folder is None else OnnxSpeechMeshEncoders.from_directory(encoder_folder)
    rows = []
    for label, path in {GROUND_TRUTH: None, **models}.items():
        pred_dir = out_dir / "predictions" / _safe_name(label)
        pred_dir.mkdir(parents=True, exist_ok=True)
        produced = ((clip_id, clip.vertices) for clip_id, clip in clips) if path is None else \
            predict_clips(Path(path), clips, key_frames)
        for clip_id, vertices in progress(produced, total=len(clips), description=f"predict {label}"):
            save_vertex_sequence(pred_dir / f"{clip_id}.npy", vertices)
        report = score_folder(pred_dir, corpus, regions, encoders, split=split, show_progress=False)
        values = {SUMMARY_NAMES[entry.name]: entry.value for entry in report.summary if entry.name in SUMMARY_NAMES}
        rows.append({"model": label, **{column: values.get(column) for column in COLUMNS[1:-1]},
                     "clips": len(clips)})
    _write_csv(out_dir / "table.csv", rows)
    table = markdown_table(rows, corpus, split, encoder_folder)
    (out_dir / "table.md").write_text(table)
    return table


def _write_csv(path: Path, rows: list) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, COLUMNS)
        writer.writeheader()
        writer.writerows([{key: ("" if value is None else value) for key, value in row.items()} for row in rows])


def _shown(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list, corpus, split: str, encoder_folder) -> str:
    """The paper's layout: MTM ↓ / LVE ↓ / PLRS ↑ / SLCC (Δ ↓) / FDD, one row per model."""
    lines = [f"Split `{split}` of `{corpus}` ({rows[0]['clips']} clips). PLRS encoders: "
             f"{encoder_folder or 'none found (PLRS n/a)'}.", "",
             "| model | MTM (ms) ↓ | LVE (×10⁻⁵ m²) ↓ | PLRS ↑ | SLCC (Δ ↓) | FDD (×10⁻⁷ m²) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        slcc = "n/a" if row["SLCC"] is None else f"{row['SLCC']:.2f} ({_shown(row['delta_SLCC'], 2)})"
        lines.append(f"| {row['model']} | {_shown(row['MTM_ms'], 1)} | {_shown(row['LVE_1e-5'], 3)} | "
                     f"{_shown(row['PLRS'], 3)} | {slcc} | {_shown(row['FDD_1e-7'], 3)} |")
    return "\n".join(lines) + "\n"
