"""Measured truth of a SYNTHETIC corpus: SLCC, bilabial closure, lip-teeth contact, jaw vs vowel openness,
and the data's own MTM against a copy shifted by one frame (a sanity check: it should be 1 frame).

`clip_measures` runs on one clip while building (or on files, via `corpus_stats`); `summarise` pools them.
SLCC and MTM come from `backend.metrics` (the project's one implementation of REFERENCE §2).
"""

import json
from pathlib import Path

import numpy as np
import soundfile

from backend.errors import BackendError, MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE, FlameRegions
from backend.mesh import load_flame_mesh, load_vertex_sequence
from backend.metrics import clip_mtm, dataset_slcc, lip_intensity, speech_intensity
from backend.metrics.phone_checks import LABIODENTAL_CONTACT_M
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import BILABIALS, LABIODENTALS, VOWEL_OPENNESS, segment_frames

CLOSED_MM = 1.0        # a bilabial counts as closed when the lip-centre gap gets below this
CONTACT_MM = LABIODENTAL_CONTACT_M * 1000   # /f v/ contact: lower-lip centre this near the teeth point


def clip_measures(vertices: np.ndarray, samples_int16: np.ndarray, timeline, rig: FlameRig, lip_indices,
                  fps: float) -> dict:
    """Per-clip numbers. vertices: (T, 5023, 3); samples_int16: (n,) the clip's int16 audio."""
    frame_times = np.arange(len(vertices)) / fps
    gap_mm = np.linalg.norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], axis=1) * 1000
    teeth_mm = np.linalg.norm(vertices[:, LOWER_LIP_CENTRE] - rig.teeth_point, axis=1) * 1000
    chin_drop = np.linalg.norm(vertices[:, rig.chin_vertex] - rig.template[rig.chin_vertex], axis=1) * 1000
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
               "mtm_one_frame_shift_ms": round(float(np.mean(shifts)) * 1000 / 30, 2) if shifts else None}
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
    from training.corpus.build import default_paths  # build imports this module
    root = Path(corpus_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise BackendError(f"{root}: no manifest.json; expected a corpus built by `python -m training.corpus build`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    template_path, masks_path, _ = default_paths(template, masks)
    faces = load_flame_mesh(template_path).faces
    regions = FlameRegions.load(masks_path)
    rigs, measures = {}, []
    for clip in manifest["clips"]:
        if clip["subject"] not in rigs:
            with np.load(root / "templates" / f"{clip['subject']}.npz") as archive:
                rigs[clip["subject"]] = FlameRig(archive["vertices"], faces, regions.masks)
        vertices = load_vertex_sequence(root / "vertices_npy" / f"{clip['id']}.npy")
        samples, _ = soundfile.read(root / "wav" / f"{clip['id']}.wav", dtype="int16")
        measures.append(clip_measures(vertices, samples, [tuple(entry) for entry in clip["timeline"]],
                                      rigs[clip["subject"]], regions.lips, manifest["fps"]))
    return summarise(measures, manifest["clips"])
