"""Checks of a generated clip against the phone labels of its speech (REFERENCE §8): no 3D ground truth needed.

A recording with phone labels (`start end PHONE`, ARPAbet + SIL) says where the lips must be: shut at
/p b m/, at rest in pauses, open on open vowels, the lower lip on the upper teeth at /f v/; and the
articulatory rig (backend.rig) driven by those labels with the neutral style is a pseudo ground truth for
timing. On a (T, 5023, 3) clip at `fps`, with lip gap g_t = ||v[t, 3531] - v[t, 3504]|| and the rest gap
g_rest of the template the clip was made with:

  closure      share of /p b m/ whose mid-phone frame has g <= g_rest + 1 mm
  rest         share of frames inside pauses >= 0.3 s (0.1 s trimmed at each end) with g <= g_rest + 1 mm
  openness     Spearman rho of mid-vowel g against vowel openness classes (open 3, mid 2, close 1)
  lag          the shift in -10..10 frames maximising the correlation of z-scored g with the z-scored lip
               gap of the rig driven by the labels; 0 = in sync, + = the mouth is late
  MTM          the published MTM (backend.metrics.mtm) with the rig-from-labels lip gap as ground truth
  contact      share of /f v/ where the lower-lip centre comes within 1.5 mm of the rig's upper-teeth point
               at some frame of the phone (the proxy the corpus builder measures)
  jaw range    5th to 95th percentile of the chin's displacement from the template (mm)

Frame t is at time t / fps. Unlabelled speech gets `check_unlabelled`: rest in pauses found from the audio
level, and the jaw range.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr

from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.metrics.mtm import UnscorableClipError, lip_distance_curve, mtm_from_curves
from backend.rig.coarticulation import ArticulationStyle, control_curves
from backend.rig.flame_rig import FlameRig
from backend.rig.timeline import BILABIALS, LABIODENTALS, SILENCE, check_timeline, segment_frames

CLOSED_ABOVE_REST_M = 0.001     # lips count as shut / at rest up to 1 mm above the template's rest gap
LABIODENTAL_CONTACT_M = 0.0015  # lower-lip centre this near the upper-teeth point counts as contact
MIN_PAUSE_S = 0.3
PAUSE_TRIM_S = 0.1
MAX_LAG_FRAMES = 10
OPENNESS_CLASS = {**dict.fromkeys(("AA", "AE", "AO", "AW", "AY"), 3),
                  **dict.fromkeys(("AH", "EH", "ER", "OW", "EY", "OY"), 2),
                  **dict.fromkeys(("IH", "IY", "UH", "UW"), 1)}
# Unlabelled audio: a frame is a pause when its level is this far below the clip's loud (99th pct) frames.
PAUSE_BELOW_LOUD_DB = 30.0

MEANINGS = {
    "closure": "share of /p b m/ whose middle frame has the lips shut (gap <= rest + 1 mm); people always close",
    "mid_bilabial_gap_mm": "median lip gap at the middle of /p b m/ (mm); the template's rest gap is the floor",
    "rest": "share of frames in pauses >= 0.3 s (0.1 s trimmed) with the mouth at rest (gap <= rest + 1 mm)",
    "pause_gap_mm": "median lip gap inside those pauses (mm)",
    "openness_rho": "Spearman rho of the lip gap at vowel middles against vowel openness (open > mid > close)",
    "lag_frames": "shift (-10..10 frames) best aligning the lip gap with the rig driven by the labels; + = late",
    "mtm_ms": "MTM against the rig driven by the labels (ms): how far apart matching lip extrema are",
    "contact": "share of /f v/ where the lower lip reaches the upper teeth (within 1.5 mm)",
    "jaw_range_mm": "5th to 95th percentile of the chin's displacement from the template (mm)",
}


@dataclass(frozen=True)
class ClipChecks:
    """One clip's checks; a value is None where the clip has nothing to measure it on."""

    frames: int
    bilabials: int
    closure: float | None
    mid_bilabial_gap_mm: float | None
    pause_frames: int
    rest: float | None
    pause_gap_mm: float | None
    vowels: int
    openness_rho: float | None
    lag_frames: int | None
    mtm_ms: float | None
    labiodentals: int
    contact: float | None
    jaw_range_mm: float

    def as_dict(self) -> dict:
        return asdict(self)


def rest_gap(template) -> float:
    """The template's lip-centre gap (m): the mouth at rest (2.37 mm for FLAME_sample)."""
    template = np.asarray(template, dtype=np.float64)
    return float(np.linalg.norm(template[UPPER_LIP_CENTRE] - template[LOWER_LIP_CENTRE]))


def rig_from_labels(rig: FlameRig, timeline, n_frames: int, fps: float = MESH_FPS) -> np.ndarray:
    """(n_frames, 5023, 3) the rig driven by the labels with the neutral style: the pseudo ground truth.

    Blinks and brows are left at rest (no audio level is used), so the result depends on the labels only.
    """
    check_timeline(timeline, "phone labels")
    controls = control_curves(timeline, n_frames, fps, rig, ArticulationStyle(blink_rate_hz=1e-6),
                              np.zeros(n_frames), np.random.default_rng(0))
    return rig.animate(controls)


def pause_frames(timeline, n_frames: int, fps: float = MESH_FPS) -> np.ndarray:
    """Frames inside runs of SIL lasting >= MIN_PAUSE_S, PAUSE_TRIM_S trimmed at each end (int indices)."""
    runs, start, end = [], None, None
    for phone_start, phone_end, label in list(timeline) + [(np.inf, np.inf, "")]:
        if label == SILENCE and start is not None and abs(phone_start - end) < 1e-6:
            end = phone_end
            continue
        if start is not None:
            runs.append((start, end))
        start, end = (phone_start, phone_end) if label == SILENCE else (None, None)
    times = np.arange(n_frames) / fps
    inside = np.zeros(n_frames, dtype=bool)
    for start, end in runs:
        if end - start >= MIN_PAUSE_S - 1e-9:
            inside |= (times >= start + PAUSE_TRIM_S - 1e-9) & (times < end - PAUSE_TRIM_S - 1e-9)
    return np.flatnonzero(inside)


def detected_pause_frames(audio, rate: int, n_frames: int, fps: float = MESH_FPS) -> np.ndarray:
    """Pause frames of unlabelled audio: runs >= MIN_PAUSE_S of frames PAUSE_BELOW_LOUD_DB under the loud
    frames' level, trimmed like labelled pauses."""
    audio = np.asarray(audio, dtype=np.float64)
    hop = rate / fps
    level = np.array([np.sqrt(np.mean(audio[int(t * hop): max(int((t + 1) * hop), int(t * hop) + 1)] ** 2) + 1e-12)
                      for t in range(n_frames)])
    level_db = 20 * np.log10(level)
    quiet = level_db < np.percentile(level_db, 99) - PAUSE_BELOW_LOUD_DB
    timeline, start = [], 0
    for t in range(1, n_frames + 1):
        if t == n_frames or quiet[t] != quiet[start]:
            timeline.append((start / fps, t / fps, SILENCE if quiet[start] else "AH"))
            start = t
    return pause_frames(timeline, n_frames, fps)


def best_lag(gap, reference_gap, max_lag: int = MAX_LAG_FRAMES) -> int | None:
    """Shift k in -max_lag..max_lag maximising corr(gap[t], reference[t - k]); None for a flat curve."""
    gap, reference = np.asarray(gap, dtype=np.float64), np.asarray(reference_gap, dtype=np.float64)
    length = min(len(gap), len(reference))
    gap, reference = gap[:length], reference[:length]
    if length < 2 * max_lag + 3 or gap.std() < 1e-9 or reference.std() < 1e-9:
        return None
    gap, reference = (gap - gap.mean()) / gap.std(), (reference - reference.mean()) / reference.std()
    scores = []
    for shift in range(-max_lag, max_lag + 1):
        later, earlier = (gap[shift:], reference[:length - shift]) if shift >= 0 else (gap[:shift], reference[-shift:])
        scores.append(np.corrcoef(later, earlier)[0, 1] if later.std() > 0 and earlier.std() > 0 else -np.inf)
    return int(np.argmax(scores)) - max_lag


def check_clip(vertices, timeline, rig: FlameRig, fps: float = MESH_FPS, reference_gap=None) -> ClipChecks:
    """All checks of one clip. vertices (T, 5023, 3) made with `rig.template`; timeline (start, end, PHONE);
    reference_gap (T,) the rig-from-labels lip gap (computed when None)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    check_timeline(timeline, "phone labels")
    if vertices.ndim != 3 or vertices.shape[1:] != rig.template.shape:
        raise MetricError(f"vertices have shape {vertices.shape}; expected (T, {rig.template.shape[0]}, 3)")
    n_frames = len(vertices)
    gap = lip_distance_curve(vertices)
    shut = rest_gap(rig.template) + CLOSED_ABOVE_REST_M
    times = np.arange(n_frames) / fps
    mid_bilabial, vowel_gaps, vowel_classes, contacts = [], [], [], []
    teeth = np.linalg.norm(vertices[:, LOWER_LIP_CENTRE] - rig.teeth_point, axis=1)
    for start, end, label in timeline:
        if start >= n_frames / fps:
            continue
        middle = int(np.argmin(np.abs(times - (start + end) / 2)))
        if label in BILABIALS:
            mid_bilabial.append(gap[middle])
        elif label in OPENNESS_CLASS:
            vowel_gaps.append(gap[middle])
            vowel_classes.append(OPENNESS_CLASS[label])
        elif label in LABIODENTALS:
            contacts.append(teeth[segment_frames(start, end, times)].min() < LABIODENTAL_CONTACT_M)
    pauses = pause_frames(timeline, n_frames, fps)
    if reference_gap is None:
        reference_gap = lip_distance_curve(rig_from_labels(rig, timeline, n_frames, fps))
    try:
        mtm = mtm_from_curves(reference_gap, gap, fps).ms
    except UnscorableClipError:
        mtm = None
    rho = None
    if len(set(vowel_classes)) > 1 and np.ptp(vowel_gaps) > 0:
        rho = float(spearmanr(vowel_gaps, vowel_classes)[0])
    mid_bilabial = np.array(mid_bilabial)
    return ClipChecks(
        frames=n_frames, bilabials=len(mid_bilabial),
        closure=float(np.mean(mid_bilabial <= shut)) if len(mid_bilabial) else None,
        mid_bilabial_gap_mm=float(np.median(mid_bilabial) * 1000) if len(mid_bilabial) else None,
        pause_frames=len(pauses), rest=float(np.mean(gap[pauses] <= shut)) if len(pauses) else None,
        pause_gap_mm=float(np.median(gap[pauses]) * 1000) if len(pauses) else None,
        vowels=len(vowel_gaps), openness_rho=rho, lag_frames=best_lag(gap, reference_gap), mtm_ms=mtm,
        labiodentals=len(contacts), contact=float(np.mean(contacts)) if contacts else None,
        jaw_range_mm=jaw_range_mm(vertices, rig))


def jaw_range_mm(vertices, rig: FlameRig) -> float:
    """5th to 95th percentile of the chin vertex's distance from its template position (mm)."""
    drop = np.linalg.norm(np.asarray(vertices)[:, rig.chin_vertex] - rig.template[rig.chin_vertex], axis=1)
    return float(np.subtract(*np.percentile(drop, [95, 5])) * 1000)


def check_unlabelled(vertices, audio, rate: int, rig: FlameRig, fps: float = MESH_FPS) -> dict:
    """Rest in pauses found from the audio level, and the jaw range, for speech without phone labels."""
    vertices = np.asarray(vertices, dtype=np.float64)
    gap = lip_distance_curve(vertices)
    pauses = detected_pause_frames(audio, rate, len(vertices), fps)
    shut = rest_gap(rig.template) + CLOSED_ABOVE_REST_M
    return {"frames": len(vertices), "pause_frames": len(pauses),
            "rest": float(np.mean(gap[pauses] <= shut)) if len(pauses) else None,
            "pause_gap_mm": float(np.median(gap[pauses]) * 1000) if len(pauses) else None,
            "jaw_range_mm": jaw_range_mm(vertices, rig)}


def summarise(clips) -> dict:
    """Aggregate ClipChecks (or their dicts): mean over the clips where a check is defined; MTM also as
    median; counts summed; `*_clips` says how many clips each mean is over."""
    rows = [clip.as_dict() if isinstance(clip, ClipChecks) else clip for clip in clips]
    summary = {"clips": len(rows)}
    for key in ("frames", "bilabials", "pause_frames", "vowels", "labiodentals"):
        summary[key] = int(sum(row.get(key) or 0 for row in rows))
    for key in ("closure", "mid_bilabial_gap_mm", "rest", "pause_gap_mm", "openness_rho", "lag_frames", "mtm_ms",
                "contact", "jaw_range_mm"):
        values = [row[key] for row in rows if row.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
        summary[f"{key}_clips"] = len(values)
    values = [row["mtm_ms"] for row in rows if row.get("mtm_ms") is not None]
    summary["mtm_median_ms"] = float(np.median(values)) if values else None
    return summary
