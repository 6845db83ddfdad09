"""Evaluate any set of trained generators side by side on a corpus split, in the paper's table format:
MTM (ms), LVE (x1e-5 m^2), PLRS, SLCC (ΔSLCC), FDD (x1e-7 m^2), as Markdown and CSV.

A model is a generator checkpoint (`checkpoint.pt`, run in torch) or an exported generator folder
(model.json + generator.onnx, run through backend.generators). Predictions are written as
<out>/predictions/<label>/<clip>.npy and scored by backend.metrics.score_folder (the metrics are never
re-implemented here). The first row is the ground truth itself (its PLRS and SLCC are the data's).
Unseen test subjects are animated with the generator's default style. `render_clips` > 0 also writes
<out>/renders/<clip>.png: lip close-ups of a few frames, ground truth above each model's prediction.
"""

import csv
import re
from pathlib import Path

import numpy as np
import torch

from backend.atomic import atomic_path, atomic_stream, write_text
from backend.audio import resample
from backend.errors import BackendError
from backend.flame import FlameRegions, find_masks_path
from backend.generators import MODEL_FILE, SAMPLE_RATE, load_generator, speech_features
from backend.mesh import save_vertex_sequence
from backend.metrics.evaluation import Regions, score_folder
from backend.metrics.plrs import OnnxSpeechMeshEncoders, find_encoder_directory
from backend.progress import progress
from backend.datasets import open_dataset
from training.generators.families import load_trained

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


def prediction_folder(out_dir, label: str) -> Path:
    """Where `evaluate` writes the predictions of the row `label` (<out>/predictions/<label, file-safe>/)."""
    return Path(out_dir) / "predictions" / re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)


def predict_clips(path: Path, clips: list):
    """Yield (clip_id, (T, 5023, 3) prediction) for each corpus Clip with the model at `path` (a torch checkpoint
    hears the same front-end features as an exported graph). An exported graph runs without the backend's lip
    closure guard, so both paths measure the model itself (the real-speech benchmark shows the guard's effect)."""
    if (path / MODEL_FILE).is_file():
        generator = load_generator(path)
        for clip_id, clip in clips:
            yield clip_id, generator.animate(clip.audio, clip.sample_rate, clip.template, lip_closure=False)
        return
    model, _, styles, _ = load_trained(path)
    style = torch.eye(len(styles))[:1]
    for clip_id, clip in clips:
        features = torch.from_numpy(speech_features(resample(clip.audio, clip.sample_rate, SAMPLE_RATE)
                                                    .astype(np.float32)))[None]
        with torch.no_grad():
            vertices = model.predict(features, torch.from_numpy(clip.template)[None], style).vertices
        yield clip_id, vertices[0].numpy()


def evaluate(models: dict, corpus, out_dir, split: str = "test", encoders_dir=None, masks=None,
             render_clips: int = 0, ground_truth: bool = True) -> str:
    """Score every model on the corpus split (and the ground truth itself first, unless `ground_truth` is False:
    a model's scores do not depend on that row); writes table.md and table.csv in `out_dir`; returns the
    Markdown table."""
    out_dir = Path(out_dir)
    dataset = open_dataset(corpus, split=split)
    clips = [(clip_id, dataset.load(clip_id)) for clip_id in dataset.clip_ids()]
    flame = FlameRegions.load(find_masks_path(masks))
    regions = Regions(lips=flame.lips, upper_face=flame.upper_face)
    encoder_folder = find_encoder_directory(encoders_dir)
    encoders = None if encoder_folder is None else OnnxSpeechMeshEncoders.from_directory(encoder_folder)
    rows = []
    labels = {**({GROUND_TRUTH: None} if ground_truth else {}), **models}
    if not labels:
        raise BackendError("nothing to evaluate: no model given and the ground-truth row left out")
    for label, path in labels.items():
        pred_dir = prediction_folder(out_dir, label)
        pred_dir.mkdir(parents=True, exist_ok=True)
        produced = ((clip_id, clip.vertices) for clip_id, clip in clips) if path is None else \
            predict_clips(Path(path), clips)
        for clip_id, vertices in progress(produced, total=len(clips), description=f"predict {label}"):
            save_vertex_sequence(pred_dir / f"{clip_id}.npy", vertices)
        report = score_folder(pred_dir, corpus, regions, encoders, split=split, show_progress=False)
        values = {SUMMARY_NAMES[entry.name]: entry.value for entry in report.summary if entry.name in SUMMARY_NAMES}
        rows.append({"model": label, **{column: values.get(column) for column in COLUMNS[1:-1]},
                     "clips": len(clips)})
    if render_clips:
        spread = clips[::max(1, len(clips) // render_clips)][:render_clips]
        render_comparisons(out_dir, list(labels), spread)
    _write_csv(out_dir / "table.csv", rows)
    table = markdown_table(rows, corpus, split, encoder_folder)
    write_text(out_dir / "table.md", table)
    return table


def _write_csv(path: Path, rows: list) -> None:
    with atomic_stream(path, "w", newline="") as stream:
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


def render_comparisons(out_dir: Path, labels: list, clips: list, frames_per_clip: int = 4) -> list:
    """One PNG per clip: rows = ground truth and each model, columns = lip close-ups at the clip's
    interesting frames (first bilabial, labiodental, most open vowel) plus evenly spaced ones."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE, find_template_path
    from backend.mesh import load_flame_mesh, load_vertex_sequence
    from training.corpus.render import interesting_frames, rasterise

    faces = load_flame_mesh(find_template_path()).faces
    (out_dir / "renders").mkdir(parents=True, exist_ok=True)
    paths = []
    for clip_id, clip in clips:
        sequences = [load_vertex_sequence(prediction_folder(out_dir, label) / f"{clip_id}.npy")
                     for label in labels]
        length = min(len(sequence) for sequence in sequences)
        chosen = interesting_frames(clip.timeline or [], length, 30.0)
        chosen = sorted(set(chosen + list(np.linspace(0, length - 1, frames_per_clip + 2, dtype=int)[1:-1])))
        chosen = chosen[:frames_per_clip + 2]
        figure, axes = pyplot.subplots(len(labels), len(chosen), figsize=(2.2 * len(chosen), 2.3 * len(labels)),
                                       squeeze=False)
        lips = 0.5 * (clip.vertices[0, UPPER_LIP_CENTRE] + clip.vertices[0, LOWER_LIP_CENTRE])
        for row, (label, sequence) in enumerate(zip(labels, sequences)):
            for column, frame in enumerate(chosen):
                axis = axes[row, column]
                axis.imshow(rasterise(sequence[frame], faces, (lips[0], lips[1]), 0.035, 160))
                gap = np.linalg.norm(sequence[frame, UPPER_LIP_CENTRE] - sequence[frame, LOWER_LIP_CENTRE]) * 1000
                axis.set_title(f"{label}\nframe {frame}, gap {gap:.1f} mm", fontsize=7)
                axis.axis("off")
        figure.suptitle(f"{clip_id} (held-out, SYNTHETIC corpus)", fontsize=9)
        figure.tight_layout()
        path = out_dir / "renders" / f"{clip_id}.png"
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=80)
        pyplot.close(figure)
        paths.append(path)
    return paths
