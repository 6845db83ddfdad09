"""Measured truth of a SYNTHETIC corpus: SLCC, bilabial closure, lip-teeth contact, jaw vs vowel openness,
and the data's own MTM against a copy shifted by one frame (a sanity check: it should be 1 frame).

`clip_measures` runs on one clip while building (or on files, via `corpus_stats`); `summarise` pools them.
SLCC and MTM come from `backend.metrics` (the project's one implementation of REFERENCE §2).
"""

import numpy as np

from backend.audio import to_int16
from backend.datasets import open_dataset
from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, MM_PER_M, UPPER_LIP_CENTRE, FlameRegions
from backend.frame_rate import MESH_FPS
from backend.mesh import load_flame_mesh
from backend.metrics import clip_mtm, dataset_slcc, lip_intensity, speech_intensity
from training.corpus.paths import default_paths
from training.corpus.rig import FlameRig
from training.corpus.timeline import BILABIALS, LABIODENTALS, VOWEL_OPENNESS, segment_frames

CLOSED_MM = 1.0        # a bilabial counts as closed when the lip-centre gap gets below this
CONTACT_MM = 1.5       # /f v/ counts as contact when the lower-lip centre gets this near the teeth point


def clip_measures(vertices: np.ndarray, samples_int16: np.ndarray, timeline, rig: FlameRig, lip_indices,
                  fps: float) -> dict:
    """Per-clip numbers. vertices: (T, 5023, 3); samples_int16: (n,) the clip's int16 audio."""
    frame_times = np.arange(len(vertices)) / fps
    gap_mm = np.linalg.norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], axis=1) * MM_PER_M
    teeth_mm = np.linalg.norm(vertices[:, LOWER_LIP_CENTRE] - rig.teeth_point, axis=1) * MM_PER_M
    chin_drop = np.linalg.norm(vertices[:, rig.chin_vertex] - rig.template[rig.chin_vertex], axis=1) * MM_PER_M
    closures, contacts, openness, drops = [], [], [], []
    for start, end, label in timeline:
        frames = segment_frames(start, end, frame_times)
        if label in BILABIALS:
            closures.append(float(gap_mm[frames].min()))
        elif label in LABIODENTALS:
            contacts.append(float(teeth_mm[frames].min()))
        elif label in VOWEL_OPENNESS:
            openness.append(VOWEL_OPENNESS[label])
            drops.append(float(chin_drop[int(np.argmin(np.abs(frame_times - (start + end) / 2)))]))
    try:
        shift_frames = clip_mtm(vertices[1:], vertices[:-1], fps).frames
    except MetricError:
        shift_frames = None
    return {"speech_intensity": speech_intensity(samples_int16),
            "lip_intensity": lip_intensity(vertices, lip_indices), "bilabial_gaps_mm": closures,
            "labiodental_distances_mm": contacts, "vowel_openness": openness, "chin_drop_mm": drops,
            "mtm_shift_frames": shift_frames, "seconds": len(samples_int16) / 16000.0}


def _within_clip_z(values: list) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def jaw_openness_correlation(measures: list[dict]) -> float:
    """Pearson r of chin drop vs vowel openness at vowel centres, both z-scored within each clip."""
    openness, drops = [], []
    for clip in measures:
        if len(clip["vowel_openness"]) >= 3:
            openness.append(_within_clip_z(clip["vowel_openness"]))
            drops.append(_within_clip_z(clip["chin_drop_mm"]))
    if not openness:
        return float("nan")
    return float(np.corrcoef(np.concatenate(openness), np.concatenate(drops))[0, 1])


def summarise(measures: list[dict], clips: list[dict]) -> dict:
    """Corpus statistics (JSON-ready) from per-clip measures and the manifest's clip entries."""
    gaps = np.concatenate([clip["bilabial_gaps_mm"] for clip in measures] + [[]])
    contacts = np.concatenate([clip["labiodental_distances_mm"] for clip in measures] + [[]])
    shifts = [clip["mtm_shift_frames"] for clip in measures if clip["mtm_shift_frames"] is not None]
    summary = {"synthetic": True, "clips": len(measures),
               "hours": round(sum(clip["seconds"] for clip in measures) / 3600, 4),
               "bilabial_closure_rate": round(float(np.mean(gaps < CLOSED_MM)), 4) if gaps.size else None,
               "bilabial_segments": int(gaps.size),
               "labiodental_contact_rate": round(float(np.mean(contacts < CONTACT_MM)), 4) if contacts.size else None,
               "labiodental_segments": int(contacts.size),
               "jaw_openness_r": round(jaw_openness_correlation(measures), 4),
               "mtm_one_frame_shift_ms": round(float(np.mean(shifts)) * 1000 / MESH_FPS, 2) if shifts else None}
    try:
        correlation = dataset_slcc([clip["speech_intensity"] for clip in measures],
                                [clip["lip_intensity"] for clip in measures],
                                [clip["subject"] for clip in clips], [clip["level"] for clip in clips])
        summary["slcc"] = {name: round(value, 4) for name, value in correlation.items()}
    except MetricError as error:
        summary["slcc"] = f"not computable: {error}"
    return summary


def corpus_stats(corpus_dir, template=None, masks=None) -> dict:
    """Recompute the statistics of a built corpus from its files (manifest, wav, vertices, templates)."""
    dataset = open_dataset(corpus_dir, kind="corpus", fps=None)
    template_path, masks_path, _ = default_paths(template, masks)
    faces = load_flame_mesh(template_path).faces
    regions = FlameRegions.load(masks_path)
    rigs, measures, entries = {}, [], []
    for clip_id in dataset.clip_ids():
        clip = dataset.load(clip_id)
        if clip.subject not in rigs:
            rigs[clip.subject] = FlameRig(clip.template, faces, regions.masks)
        measures.append(clip_measures(clip.vertices, to_int16(clip.audio), clip.timeline or [], rigs[clip.subject],
                                      regions.lips, clip.fps))
        entries.append({"subject": clip.subject, "level": clip.level})
    return summarise(measures, entries)
