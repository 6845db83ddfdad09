"""Scoring a prediction folder against a dataset, or one animation on its own: the `score` command's engine.

Results are `MetricEntry` lists (name, value in a stated unit, how many clips were scored and skipped,
a note) plus per-clip rows, ready for a table, CSV or JSON. A metric that cannot be computed has value
None and says why in its note; clips a metric cannot score (fewer than 3 extrema for MTM, missing audio
or template) are counted as skipped for that metric, never scored as 0.
"""

from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from backend.audio import load_audio, to_int16
from backend.errors import MetricError
from backend.mesh import load_vertex_sequence
from backend.metrics import clip_scores, dataset as layout, fdd, lve, mtm, plrs, slcc
from backend.progress import progress

PLRS_MISSING_NOTE = "n/a (no speech-mesh encoder models found)"
LVE_SCALE, FDD_SCALE = 1e5, 1e7


@dataclass
class MetricEntry:
    """One line of a score table. value is None when the metric could not be computed (see note)."""

    name: str
    value: Optional[float]
    unit: str
    scored: int = 1
    skipped: int = 0
    note: str = ""


@dataclass
class Regions:
    """Vertex index arrays the metrics need: lips (254-entry FLAME list) and upper_face (FDD)."""

    lips: np.ndarray
    upper_face: np.ndarray


@dataclass
class ScoreReport:
    """summary: one entry per metric; clips: one dict per scored prediction (folder mode only)."""

    summary: list[MetricEntry]
    clips: list[dict]

    def to_json(self) -> dict:
        return {"summary": [asdict(entry) for entry in self.summary], "clips": self.clips}


def _mean_entry(name: str, values: list, unit: str, skipped: int, note: str, scale: float = 1.0) -> MetricEntry:
    if not values:
        return MetricEntry(name, None, unit, 0, skipped, f"n/a (no clip could be scored) {note}".strip())
    return MetricEntry(name, float(np.mean(values)) * scale, unit, len(values), skipped, note)


def score_folder(pred_dir, data_dir, regions: Regions, encoders: Optional[plrs.SpeechMeshEncoders] = None,
                 pred_fps: float = 30.0, gt_fps: Optional[float] = None, split: Optional[str] = None,
                 resample: bool = False, show_progress: Optional[bool] = None,
                 on_update: Optional[Callable[[int, int], None]] = None) -> ScoreReport:
    """Score every prediction in `pred_dir` against the dataset in `data_dir` (layout: backend.metrics.dataset)."""
    dataset = layout.open_dataset(data_dir, gt_fps, split)
    predictions = layout.find_predictions(pred_dir, dataset)
    rows, mtm_clips, lve_frames, fdd_values, plrs_clips = [], [], [], [], []
    slcc_model, slcc_data = [], {}
    for prediction in progress(predictions, description="scoring", enabled=show_progress, on_update=on_update):
        row = {"prediction": prediction.path.name}
        rows.append(row)
        if prediction.clip is None:
            row["skipped"] = "no ground-truth clip of that name in the dataset" + (
                f" split '{split}'" if split else "")
            continue
        clip = prediction.clip
        row.update(clip=clip.id, subject=clip.subject, level=clip.level, condition=prediction.condition)
        pred = load_vertex_sequence(prediction.path, num_vertices=None)
        gt = layout.load_ground_truth(dataset, clip, pred_fps, resample)
        layout.check_comparable_lengths(len(pred), len(gt), prediction.path.name)
        pred, gt = pred[:min(len(pred), len(gt))], gt[:min(len(pred), len(gt))]
        row["frames"] = len(pred)
        try:
            mtm_clips.append(mtm.clip_mtm(gt, pred, pred_fps))
            row.update(mtm_ms=mtm_clips[-1].ms, mtm_matches=mtm_clips[-1].matches,
                       mtm_deltas=mtm_clips[-1].deltas.tolist())
        except mtm.UnscorableClipError as skip:
            row["mtm_skipped"] = str(skip)
        lve_frames.append(lve.lip_errors_per_frame(gt, pred, regions.lips))
        row["lve"] = float(np.mean(lve_frames[-1]))
        if clip.subject in dataset.templates:
            fdd_values.append(fdd.clip_fdd(gt, pred, dataset.templates[clip.subject], regions.upper_face))
            row["fdd"] = fdd_values[-1]
        if not clip.wav_path.is_file():
            row["audio_skipped"] = f"{clip.wav_path} not found"
            continue
        samples, rate = load_audio(clip.wav_path)
        speech = slcc.speech_intensity(to_int16(samples))
        row.update(speech_intensity=speech, lip_intensity=slcc.lip_intensity(pred, regions.lips))
        slcc_model.append((speech, row["lip_intensity"], clip.subject, clip.level))
        slcc_data[clip.id] = (speech, slcc.lip_intensity(gt, regions.lips), clip.subject, clip.level)
        if encoders is not None and pred_fps == 30:
            plrs_clips.append(plrs.clip_plrs(encoders, samples, rate, pred))
            row["plrs"] = plrs_clips[-1].score
    total = len(rows)
    summary = [
        _mean_entry("MTM", [clip.ms for clip in mtm_clips], "ms", total - len(mtm_clips),
                    "mean of clip means; skipped clips have < 3 extrema, no matches, or no ground truth"),
        MetricEntry("LVE", lve.dataset_lve(lve_frames) * LVE_SCALE if lve_frames else None, "x1e-5 m^2",
                    len(lve_frames), total - len(lve_frames), "mean over all frames of all clips"),
        _mean_entry("FDD", fdd_values, "x1e-7 m^2", total - len(fdd_values),
                    "signed dyn(GT) - dyn(pred); needs subject templates", FDD_SCALE),
        *_slcc_entries(slcc_model, list(slcc_data.values()), total),
        _plrs_entry(plrs_clips, encoders, pred_fps, total),
    ]
    if dataset.synthetic:
        summary.append(MetricEntry("dataset", None, "", note=f"{dataset.root} is a SYNTHETIC corpus (manifest)"))
    return ScoreReport(summary, rows)


def _slcc_entries(model: list[tuple], data: list[tuple], total: int) -> list[MetricEntry]:
    """SLCC of predictions and of ground truth (all clips and per level) and their ΔSLCC."""
    def compute(clips):
        speech, lips, identities, levels = zip(*clips)
        with_levels = any(level is not None for level in levels)
        return slcc.dataset_slcc(speech, lips, identities, levels if with_levels else None)

    if len(model) < 3:
        return [MetricEntry("SLCC", None, "r", len(model), total - len(model),
                            "n/a (needs at least 3 clips with audio)")]
    try:
        model_scores, data_scores = compute(model), compute(data)
    except MetricError as error:
        return [MetricEntry("SLCC", None, "r", len(model), total - len(model), f"n/a ({error})")]
    entries = []
    for key in model_scores:
        suffix = "" if key == "all" else f" {key.replace('_', ' ')}"
        entries.append(MetricEntry(f"SLCC{suffix}", model_scores[key], "r", len(model), total - len(model),
                                   "predictions; identity-wise z-scores, Pearson r over clips"))
        if key in data_scores:
            entries.append(MetricEntry(f"SLCC data{suffix}", data_scores[key], "r", len(data), 0, "ground truth"))
            entries.append(MetricEntry(f"ΔSLCC{suffix}", slcc.delta_slcc(model_scores[key], data_scores[key]),
                                       "r", len(model), total - len(model), "|SLCC(pred) - SLCC(data)|"))
    return entries


def _plrs_entry(clips: list, encoders, fps: float, total: int) -> MetricEntry:
    if encoders is None:
        return MetricEntry("PLRS", None, "cosine", 0, total, PLRS_MISSING_NOTE)
    if fps != 30:
        return MetricEntry("PLRS", None, "cosine", 0, total, f"n/a (PLRS needs 30 fps meshes; got {fps:g} fps)")
    return _mean_entry("PLRS", [clip.score for clip in clips], "cosine", total - len(clips),
                       "mean over clips of mean window cosine")


def score_clip(pred, samples, rate: int, regions: Regions, fps: float = 30.0, gt=None, template=None,
               reference_curve=None, encoders: Optional[plrs.SpeechMeshEncoders] = None) -> ScoreReport:
    """Score one (T, V, 3) animation with its float mono audio; ground truth, template, reference lip
    curve and encoders are optional and add the metrics that need them."""
    pred = np.asarray(pred)
    layout.check_comparable_lengths(len(pred), round(len(samples) * fps / rate), "score", against="the audio")
    summary = []
    if gt is not None:
        gt = np.asarray(gt)
        layout.check_comparable_lengths(len(pred), len(gt), "ground truth")
        summary.append(_guarded("MTM", "ms", lambda: mtm.clip_mtm(gt, pred, fps), _mtm_entry))
        summary.append(MetricEntry("LVE", lve.clip_lve(gt, pred, regions.lips) * LVE_SCALE, "x1e-5 m^2",
                                   note="mean over frames of the worst lip vertex (squared)"))
        if template is not None:
            summary.append(MetricEntry("FDD", fdd.clip_fdd(gt, pred, template, regions.upper_face) * FDD_SCALE,
                                       "x1e-7 m^2", note="signed dyn(GT) - dyn(pred)"))
    if reference_curve is not None:
        summary.append(_guarded("MTM vs reference", "ms",
                                lambda: clip_scores.mtm_against_reference(pred, reference_curve, fps), _mtm_entry))
    summary.append(_guarded("clip SLCC", "r", lambda: clip_scores.clip_slcc(samples, rate, pred, regions.lips, fps),
                            lambda name, unit, result: MetricEntry(
                                name, result.r, unit, note=f"per-clip variant: Pearson r over "
                                f"{len(result.speech_rms)} windows of {result.window_seconds:g} s")))
    if encoders is None:
        summary.append(MetricEntry("PLRS", None, "cosine", 0, 1, PLRS_MISSING_NOTE))
    elif fps != 30:
        summary.append(MetricEntry("PLRS", None, "cosine", 0, 1, f"n/a (PLRS needs 30 fps; got {fps:g} fps)"))
    else:
        result = plrs.clip_plrs(encoders, samples, rate, pred)
        summary.append(MetricEntry("PLRS", result.score, "cosine", note=f"mean over {len(result.window_scores)} windows"))
    summary.append(_guarded("audio-mesh offset", "ms",
                            lambda: clip_scores.estimate_av_offset(samples, rate, pred, fps,
                                                                   encoders if fps == 30 else None),
                            lambda name, unit, result: MetricEntry(
                                name, result.ms, unit, note=f"{result.frames:+d} frames by {result.method}; "
                                "positive = mesh lags audio")))
    return ScoreReport(summary, [])


def _mtm_entry(name: str, unit: str, result: mtm.ClipMTM) -> MetricEntry:
    return MetricEntry(name, result.ms, unit, note=f"{result.frames:.2f} frames from {result.matches} matches; "
                       f"Δt = {','.join(map(str, result.deltas.tolist()))}")


def _guarded(name: str, unit: str, compute, make_entry) -> MetricEntry:
    """make_entry(name, unit, compute()), or a skipped entry when the clip cannot be scored."""
    try:
        return make_entry(name, unit, compute())
    except mtm.UnscorableClipError as skip:
        return MetricEntry(name, None, unit, 0, 1, f"skipped: {skip}")
