"""Scoring a prediction folder against a dataset, or one animation on its own: the `score` command's engine.

Datasets are read by backend.datasets (every layout it knows); this module only matches prediction files
to its clips: `<clip>.npy` or `<clip>_condition_<trainsubject>.npy` (FaceFormer's naming), each scored as its
own entry. Ground truth is brought to the prediction fps by taking every n-th frame when the rates differ by
an integer factor n (VOCASET 60 -> 30 fps, as the published evaluations do); any other mismatch is an error
unless resampling (linear interpolation) is asked for.

Results are `MetricEntry` lists (name, value in a stated unit, how many clips were scored and skipped,
a note) plus per-clip rows, ready for a table, CSV or JSON. A metric that cannot be computed has value
None and says why in its note; clips a metric cannot score (fewer than 3 extrema for MTM, missing audio
or template) are counted as skipped for that metric, never scored as 0.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backend.audio import load_audio, to_int16
from backend.datasets import ClipEntry, SpeechMeshDataset, open_dataset
from backend.datasets.corpus import CONTROL_STORE, CorpusDataset
from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, NUM_VERTICES, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS, resample_frames
from backend.mesh import load_vertex_sequence
from backend.metrics import clip_scores, fdd, lve, mtm, plrs, slcc
from backend.progress import progress

PLRS_MISSING_NOTE = "n/a (no speech-mesh encoder models found)"
LIPS_MISSING_NOTE = "n/a (no FLAME lip region: FLAME_masks.npz not found)"
SPEECH_ENVELOPE = "speech envelope"
LVE_SCALE, FDD_SCALE = 1e5, 1e7
CONDITION_MARK = "_condition_"
LENGTH_RATIO_LIMIT = 1.5


@dataclass(frozen=True)
class Prediction:
    """One prediction file, the dataset clip it belongs to (None if unknown), and its condition."""

    path: Path
    clip: Optional[ClipEntry]
    condition: Optional[str]


def find_predictions(pred_dir, dataset: SpeechMeshDataset) -> list[Prediction]:
    """Every .npy in `pred_dir`, matched to its dataset clip by name; MetricError if there are none."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise MetricError(f"{pred_dir}: prediction folder not found")
    paths = sorted(pred_dir.glob("*.npy"))
    if not paths:
        raise MetricError(f"{pred_dir}: no predictions; expected <clip>.npy or <clip>{CONDITION_MARK}<subject>.npy files")
    known = set(dataset.clip_ids())
    predictions = []
    for path in paths:
        clip_id, mark, condition = path.stem.partition(CONDITION_MARK)
        predictions.append(Prediction(path, dataset.entry(clip_id) if clip_id in known else None,
                                      condition if mark else None))
    return predictions


def convert_fps(vertices: np.ndarray, fps: float, target_fps: float, resample: bool, source: str) -> np.ndarray:
    """Ground truth (T, V, 3) at `fps` -> at `target_fps`: identity or integer-factor decimation; any other
    ratio only when `resample` is asked for (linear interpolation), else a MetricError."""
    factor = fps / target_fps
    if fps != target_fps and not (factor == round(factor) and factor > 1) and not resample:
        raise MetricError(f"{source}: ground truth is at {fps:g} fps but predictions are at {target_fps:g} fps; "
                          "frame rates must match (or differ by an integer factor); ask for resampling to "
                          "interpolate")
    return resample_frames(vertices, fps, target_fps)


def check_comparable_lengths(pred_frames: int, gt_frames: int, source: str) -> None:
    """MetricError when lengths differ by more than LENGTH_RATIO_LIMIT: a sign of mismatched frame rates."""
    ratio = max(pred_frames, gt_frames) / max(min(pred_frames, gt_frames), 1)
    if ratio > LENGTH_RATIO_LIMIT:
        raise MetricError(f"{source}: prediction has {pred_frames} frames but the ground truth has {gt_frames} "
                          f"at the same fps ({ratio:.2f}x); the frame rates probably do not match "
                          "(check the prediction and ground-truth fps options)")


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
    """summary: one entry per metric; clips: one dict per scored prediction (folder mode only); curves: the
    (T,) per-frame curves behind a single-clip MTM against the speech envelope (for a plot), else empty."""

    summary: list[MetricEntry]
    clips: list[dict]
    curves: dict = field(default_factory=dict)

    def entry(self, name: str) -> MetricEntry:
        return next(entry for entry in self.summary if entry.name == name)

    def to_json(self) -> dict:
        return {"summary": [asdict(entry) for entry in self.summary], "clips": self.clips}


def _mean_entry(name: str, values: list, unit: str, skipped: int, note: str, scale: float = 1.0) -> MetricEntry:
    if not values:
        return MetricEntry(name, None, unit, 0, skipped, f"n/a (no clip could be scored) {note}".strip())
    return MetricEntry(name, float(np.mean(values)) * scale, unit, len(values), skipped, note)


def _ground_truth(dataset, clip) -> np.ndarray:
    """A clip's ground-truth vertices at the dataset's native rate: its vertex file as it is, or, for our corpus's
    compact store (rig controls), the reader's decoding."""
    if isinstance(dataset, CorpusDataset) and dataset.store == CONTROL_STORE:
        return dataset.load(clip.id).vertices
    return load_vertex_sequence(clip.vertices_path, num_vertices=None)


def score_folder(pred_dir, data_dir, regions: Regions, encoders: Optional[plrs.SpeechMeshEncoders] = None,
                 pred_fps: float = MESH_FPS, gt_fps: Optional[float] = None, split: Optional[str] = None,
                 resample: bool = False, show_progress: Optional[bool] = None,
                 on_update: Optional[Callable[[int, int], None]] = None) -> ScoreReport:
    """Score every prediction in `pred_dir` against the dataset in `data_dir` (any layout backend.datasets reads;
    `gt_fps` states the ground truth's rate where the layout does not)."""
    dataset = open_dataset(data_dir, split=split, fps=None, native_fps=gt_fps)
    if not dataset.clip_ids():
        raise MetricError(f"{data_dir}: no ground-truth clips in split '{split}'")
    predictions = find_predictions(pred_dir, dataset)
    templates = dataset.subject_templates()
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
        if clip.vertices_path is None:
            raise MetricError(f"{dataset.root}: a {dataset.kind} dataset keeps its clips in shared files; scoring "
                              "needs one file per clip (vertices_npy/<clip>.npy, wav/<clip>.wav)")
        pred = load_vertex_sequence(prediction.path, num_vertices=None)
        gt = convert_fps(_ground_truth(dataset, clip), dataset.native_fps, pred_fps, resample,
                         source=str(clip.vertices_path))
        check_comparable_lengths(len(pred), len(gt), prediction.path.name)
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
        if clip.subject in templates:
            fdd_values.append(fdd.clip_fdd(gt, pred, templates[clip.subject].astype(np.float64), regions.upper_face))
            row["fdd"] = fdd_values[-1]
        if not clip.wav_path.is_file():
            row["audio_skipped"] = f"{clip.wav_path} not found"
            continue
        samples, rate = load_audio(clip.wav_path)
        speech = slcc.speech_intensity(to_int16(samples))
        row.update(speech_intensity=speech, lip_intensity=slcc.lip_intensity(pred, regions.lips))
        slcc_model.append((speech, row["lip_intensity"], clip.subject, clip.level))
        slcc_data[clip.id] = (speech, slcc.lip_intensity(gt, regions.lips), clip.subject, clip.level)
        if encoders is not None and pred_fps == MESH_FPS:
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
    if fps != MESH_FPS:
        return MetricEntry("PLRS", None, "cosine", 0, total, f"n/a (PLRS needs 30 fps meshes; got {fps:g} fps)")
    return _mean_entry("PLRS", [clip.score for clip in clips], "cosine", total - len(clips),
                       "mean over clips of mean window cosine")


def audio_frame_count(num_samples: int, rate: int, fps: float) -> int:
    """Mesh frames that span `num_samples` of audio at `rate` Hz (rounded half up)."""
    return int(np.floor(num_samples * fps / rate + 0.5))


def check_audio_span(pred_frames: int, num_samples: int, rate: int, fps: float) -> int:
    """The audio's length in frames; MetricError giving both lengths when the prediction differs by more than
    one frame (a longer or shorter animation would score frames that have no speech, or speech with no frames)."""
    audio_frames = audio_frame_count(num_samples, rate, fps)
    if abs(pred_frames - audio_frames) > 1:
        raise MetricError(f"the animation has {pred_frames} frames ({pred_frames / fps:.2f} s) but the audio spans "
                          f"{audio_frames} frames ({num_samples / rate:.2f} s) at {fps:g} fps; score an animation "
                          "of exactly the audio's span")
    return audio_frames


def vertices_scored(regions: Optional[Regions], encoders: Optional[plrs.SpeechMeshEncoders]) -> Optional[np.ndarray]:
    """The sorted FLAME vertex ids that `score_clip` without ground truth reads (the lip centres, the lip region,
    what the mesh encoder reads), or None when it reads every vertex (an encoder that does not say what it reads)."""
    if encoders is not None and getattr(encoders, "mesh_vertices", None) is None:
        return None
    parts = [np.array([UPPER_LIP_CENTRE, LOWER_LIP_CENTRE])]
    parts += [] if regions is None else [np.asarray(regions.lips)]
    parts += [] if encoders is None else [np.asarray(encoders.mesh_vertices)]
    return np.unique(np.concatenate(parts).astype(np.int64))


def score_clip(pred, samples, rate: int, regions: Optional[Regions] = None, fps: float = MESH_FPS, gt=None,
               template=None, reference_curve=None, encoders: Optional[plrs.SpeechMeshEncoders] = None,
               offset_by_encoders: bool = True, vertex_ids=None, frontend_features=None) -> ScoreReport:
    """Score one (T, V, 3) animation against its float mono audio: the one single-clip scoring (the `score`
    command and the add-on's Score Animation).

    The animation must span the audio (within one frame; see check_audio_span) and is scored over exactly the
    audio's span. Ground truth, template, a reference curve, regions and encoders are optional and add the
    metrics that need them. reference_curve: a (T,) lip-distance curve, or SPEECH_ENVELOPE to measure MTM
    against the speech loudness (RMS per frame; the report's `curves` then hold the lip opening and that
    envelope). offset_by_encoders=False estimates the audio-mesh offset from the loudness envelope even when
    encoders are given (fast: the encoder search costs ~5 s per minute of audio). A metric that cannot score
    this clip is an entry with value None and the reason in its note.

    The cheap form (the add-on's, whose clip is rebuilt from shape-key weights): `vertex_ids` says `pred` is
    (T, K, 3), the animation at these K FLAME vertices only, at least `vertices_scored(regions, encoders)`; the
    scores are those of the full clip (no ground truth then). `frontend_features`: the audio's (T50, 447) speech
    front-end features at 50 Hz when the caller has them (plrs.speech_track), so PLRS does not recompute them.
    """
    pred = np.asarray(pred)
    pred = pred[:check_audio_span(len(pred), len(samples), rate, fps)]   # exactly the audio's span
    summary, curves = [], {}
    column = _columns_of(vertex_ids, regions, encoders, gt)
    upper, lower = column(UPPER_LIP_CENTRE), column(LOWER_LIP_CENTRE)
    if gt is not None:
        gt = np.asarray(gt)
        check_comparable_lengths(len(pred), len(gt), "ground truth")
        summary.append(_guarded("MTM", "ms", lambda: mtm.clip_mtm(gt, pred, fps), _mtm_entry))
        if regions is not None:
            summary.append(MetricEntry("LVE", lve.clip_lve(gt, pred, regions.lips) * LVE_SCALE, "x1e-5 m^2",
                                       note="mean over frames of the worst lip vertex (squared)"))
        if template is not None and regions is not None:
            summary.append(MetricEntry("FDD", fdd.clip_fdd(gt, pred, template, regions.upper_face) * FDD_SCALE,
                                       "x1e-7 m^2", note="signed dyn(GT) - dyn(pred)"))
    if isinstance(reference_curve, str) and reference_curve == SPEECH_ENVELOPE:
        envelope = clip_scores.speech_envelope(np.asarray(samples, dtype=np.float64), rate, fps)
        lips = mtm.lip_distance_curve(pred, upper, lower)
        frames = min(len(envelope), len(lips))
        curves = {"lip_opening": lips[:frames], SPEECH_ENVELOPE: envelope[:frames]}
        summary.append(_guarded(f"MTM vs {SPEECH_ENVELOPE}", "ms",
                                lambda: clip_scores.mtm_against_reference(pred[:frames], envelope[:frames], fps,
                                                                          upper, lower), _mtm_entry))
    elif reference_curve is not None:
        summary.append(_guarded("MTM vs reference", "ms",
                                lambda: clip_scores.mtm_against_reference(pred, reference_curve, fps, upper, lower),
                                _mtm_entry))
    if regions is None:
        summary.append(MetricEntry("clip SLCC", None, "r", 0, 1, LIPS_MISSING_NOTE))
    else:
        summary.append(_guarded("clip SLCC", "r", lambda: clip_scores.clip_slcc(samples, rate, pred,
                                                                                column(regions.lips), fps),
                                lambda name, unit, result: MetricEntry(
                                    name, result.r, unit, note=f"per-clip variant: Pearson r over "
                                    f"{len(result.speech_rms)} windows of {result.window_seconds:g} s")))
    if encoders is None:
        summary.append(MetricEntry("PLRS", None, "cosine", 0, 1, PLRS_MISSING_NOTE))
    elif fps != MESH_FPS:
        summary.append(MetricEntry("PLRS", None, "cosine", 0, 1, f"n/a (PLRS needs 30 fps; got {fps:g} fps)"))
    else:
        summary.append(_guarded("PLRS", "cosine", lambda: plrs.clip_plrs(
                                    encoders, samples, rate, pred, vertex_ids=vertex_ids,
                                    frontend_features=frontend_features),
                                lambda name, unit, result: MetricEntry(
                                    name, result.score, unit, note=f"mean over {len(result.window_scores)} windows")))
    offset_encoders = encoders if offset_by_encoders and fps == MESH_FPS else None
    summary.append(_guarded("audio-mesh offset", "ms",
                            lambda: clip_scores.estimate_av_offset(samples, rate, pred, fps, offset_encoders,
                                                                   upper=upper, lower=lower, vertex_ids=vertex_ids,
                                                                   frontend_features=frontend_features),
                            lambda name, unit, result: MetricEntry(
                                name, result.ms, unit, note=f"{result.frames:+d} frames by {result.method}; "
                                "positive = mesh lags audio")))
    return ScoreReport(summary, [], curves)


def _columns_of(vertex_ids, regions: Optional[Regions], encoders, gt):
    """FLAME vertex ids -> columns of a clip known at `vertex_ids` only (identity for a full clip); MetricError
    unless such a clip holds every vertex `score_clip` reads."""
    if vertex_ids is None:
        return lambda ids: ids
    vertex_ids = np.asarray(vertex_ids, dtype=np.int64)
    if gt is not None:
        raise MetricError("scoring against ground truth needs the whole animation; got it at "
                          f"{len(vertex_ids)} vertices only")
    needed = vertices_scored(regions, encoders)
    missing = NUM_VERTICES - len(vertex_ids) if needed is None else np.setdiff1d(needed, vertex_ids).size
    if missing:
        raise MetricError(f"the animation lacks {missing} of the vertices its scores read (lip centres, lips, "
                          "what the PLRS mesh encoder reads)")
    column = np.full(NUM_VERTICES, -1, dtype=np.int64)
    column[vertex_ids] = np.arange(len(vertex_ids))
    return lambda ids: column[ids]


def _mtm_entry(name: str, unit: str, result: mtm.ClipMTM) -> MetricEntry:
    return MetricEntry(name, result.ms, unit, note=f"{result.frames:.2f} frames from {result.matches} matches; "
                       f"Δt = {','.join(map(str, result.deltas.tolist()))}")


def _guarded(name: str, unit: str, compute, make_entry) -> MetricEntry:
    """make_entry(name, unit, compute()), or a skipped entry (with the reason) when the clip cannot be scored."""
    try:
        return make_entry(name, unit, compute())
    except MetricError as skip:
        return MetricEntry(name, None, unit, 0, 1, f"skipped: {skip}")
