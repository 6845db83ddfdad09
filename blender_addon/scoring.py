"""The panel's lip-sync scores for one animation, and the plot behind them: presentation only.

The scores come from the one single-clip scoring, `backend.metrics.evaluation.score_clip`, asked for the
panel's three (see backend.metrics.clip_scores for how each single-clip variant differs from the dataset
metric):
- MTM against the speech envelope (the RMS loudness per frame): how far (ms) the lip-opening peaks and valleys
  sit from the loudness peaks and valleys. Its note (lips lag/lead audio) is estimated against the same
  envelope, not with the encoders (that search costs ~5 s per minute of audio, more than the 3 s budget).
- PLRS needs the PLRS evaluator models (`<models>/plrs_evaluator/`); without them it is n/a. Its colour bands are
  the evaluator's own, measured on real held-out speech (`evaluator.json`, read by backend.metrics.plrs.read_bands).
- SLCC (windowed, 1-s windows) needs the FLAME lip region (`FLAME_masks.npz`); without it it is n/a.
Everything here is numpy only (no bpy), so it runs in the worker thread.

Cheap scoring (Animate from Audio, issue 17 item 7): the scores read only a few vertices (`scored_vertices`: the
lip centres, the lip region and the 1,404 vertices the shipped PLRS mesh encoder reads), so an animation rebuilt
from shape-key weights is rebuilt at those alone, and PLRS hears the speech front-end features the generator
already computed (`frontend_features`) instead of running the front end a second time. The scores are those of
the full clip (tests/test_cheap_scoring.py); the one difference: PLRS used to hear the audio unclipped, the
generator's features hear it clipped to [-1, 1] after resampling to 16 kHz, which changes nothing for audio
that stays within [-1, 1] (any 16-bit WAV at 16 kHz).
The PLRS evaluator's sessions are loaded once per models folder (`cached_encoders`): building them holds
Python's GIL (~70 ms of UI stall) on every run otherwise.
"""

import json
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from backend.flame import find_regions_beside
from backend.frame_rate import MESH_FPS
from backend.metrics.evaluation import SPEECH_ENVELOPE, Regions, score_clip, vertices_scored
from backend.metrics.plrs import FRONTEND_INPUT, load_model_set_encoders, read_bands, speech_input_of
from backend.models import PLRS_EVALUATOR

EXPLANATIONS = {
    "MTM": "timing gap (ms) between lip-opening and loudness peaks; lower is better",
    "PLRS": "how readable the lips are for the speech (cosine, -1..1); higher is better",
    "SLCC": "does the mouth move more when the voice is louder (r, -1..1); higher is better",
}
# (good, fair) limits from the published numbers (REFERENCE §2, §4): models reach ~50 ms MTM and real speech has
# SLCC 0.24-0.42. PLRS has none here: its limits are the evaluator's measured bands (`Score.limits`). Beyond `fair`
# the panel marks a score in red.
LIMITS = {"MTM": (60.0, 120.0), "SLCC": (0.2, 0.0)}
# the panel's name -> (the entry of score_clip's report, the panel's unit)
REPORT_ENTRIES = {"MTM": (f"MTM vs {SPEECH_ENVELOPE}", "ms"), "PLRS": ("PLRS", ""), "SLCC": ("clip SLCC", "")}


@dataclass
class Score:
    """One panel line: value None means n/a, and `note` says why."""

    name: str
    value: Optional[float]
    unit: str = ""
    note: str = ""
    limits: Optional[list] = None   # (good, fair) for this score; None = LIMITS[name]

    @property
    def rating(self) -> str:
        """'good', 'fair', 'poor' or 'n/a' against `limits` or LIMITS (MTM lower is better, the others higher)."""
        if self.value is None or (self.limits is None and self.name not in LIMITS):
            return "n/a"
        good, fair = self.limits if self.limits is not None else LIMITS[self.name]
        if self.name == "MTM":
            return "good" if self.value <= good else "fair" if self.value <= fair else "poor"
        return "good" if self.value >= good else "fair" if self.value >= fair else "poor"

    @property
    def shown_value(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.0f} {self.unit}" if self.unit == "ms" else f"{self.value:.2f}"

    @property
    def text(self) -> str:
        return f"{self.name}: {self.shown_value}" + (f" ({self.note})" if self.note else "")


@dataclass
class ClipScores:
    """The panel's three scores plus the curves of its plot (lip opening (T,), speech envelope (T,))."""

    scores: list = field(default_factory=list)
    lip_opening: list = field(default_factory=list)
    speech_envelope: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ClipScores":
        values = json.loads(text)
        return cls(scores=[Score(**score) for score in values["scores"]], lip_opening=values["lip_opening"],
                   speech_envelope=values["speech_envelope"])

    def by_name(self, name: str) -> Score:
        return next(score for score in self.scores if score.name == name)


def _reason(note: str) -> str:
    """A report note without its 'n/a (...)' wrapper: the panel already shows n/a."""
    return note[len("n/a ("):-1] if note.startswith("n/a (") and note.endswith(")") else note


def folder_stamp(folder: Path) -> Optional[tuple]:
    """(name, mtime) of every file in `folder`, None when it is not a folder: a cache key that changes with them."""
    return tuple((path.name, path.stat().st_mtime_ns) for path in sorted(folder.iterdir())) \
        if folder.is_dir() else None


_loaded_encoders: dict = {}


def cached_encoders(models_dir, threads: int = 1):
    """load_model_set_encoders, kept while the evaluator folder's files are unchanged."""
    folder = Path(models_dir) / PLRS_EVALUATOR
    key = (str(folder), threads, folder_stamp(folder))
    if key not in _loaded_encoders:
        encoders = load_model_set_encoders(models_dir, threads)
        _loaded_encoders.clear()
        _loaded_encoders[key] = encoders
    return _loaded_encoders[key]


def _regions(template_path: str) -> Optional[Regions]:
    regions = find_regions_beside(template_path) if template_path else None
    return None if regions is None else Regions(regions.lips, regions.upper_face)


def scored_vertices(models_dir, template_path: str, threads: int = 1) -> Optional[np.ndarray]:
    """The sorted FLAME vertex ids the panel's scores read, or None when they read every vertex."""
    return vertices_scored(_regions(template_path), cached_encoders(models_dir, threads))


def hears_frontend(models_dir, threads: int = 1) -> bool:
    """Whether PLRS would run the speech front end (so features the caller has are worth passing)."""
    encoders = cached_encoders(models_dir, threads)
    return encoders is not None and speech_input_of(encoders) == FRONTEND_INPUT


def score_animation(samples: np.ndarray, rate: int, vertices: np.ndarray, models_dir, template_path: str,
                    threads: int = 1, vertex_ids=None, frontend_features=None) -> ClipScores:
    """The panel's scores of (T, 5023, 3) FLAME-frame vertices at 30 fps spanning mono float `samples`; or of
    (T, K, 3) vertices at the K FLAME vertices `vertex_ids` (at least `scored_vertices`), and with the audio's
    (T50, 447) speech front-end features at 50 Hz when the caller has them (see "Cheap scoring")."""
    report = score_clip(vertices, samples, rate, _regions(template_path), MESH_FPS, reference_curve=SPEECH_ENVELOPE,
                        encoders=cached_encoders(models_dir, threads), offset_by_encoders=False,
                        vertex_ids=vertex_ids, frontend_features=frontend_features)
    scores = []
    for name, (entry_name, unit) in REPORT_ENTRIES.items():
        entry = report.entry(entry_name)
        limits = None
        if name == "PLRS":
            bands = read_bands(Path(models_dir) / PLRS_EVALUATOR)
            limits = None if bands is None else list(bands)
        scores.append(Score(name, entry.value, unit, "" if entry.value is not None else _reason(entry.note), limits))
    offset = report.entry("audio-mesh offset")
    if scores[0].value is not None and offset.value is not None:
        scores[0].note = (f"lips {'lag' if offset.value > 0 else 'lead'} audio by {abs(offset.value):.0f} ms"
                          if offset.value else "no lip-audio offset")
    return ClipScores(scores=scores, lip_opening=[round(float(v), 6) for v in report.curves["lip_opening"]],
                      speech_envelope=[round(float(v), 6) for v in report.curves[SPEECH_ENVELOPE]])


BACKGROUND = (0.12, 0.12, 0.12, 1.0)
GRID = (0.3, 0.3, 0.3, 1.0)
ENVELOPE_COLOUR = (0.3, 0.6, 1.0, 1.0)   # blue, top half
LIP_COLOUR = (1.0, 0.55, 0.1, 1.0)       # orange, bottom half


def _fill_curve(strip: np.ndarray, values, colour) -> None:
    """Draw `values` (one per mesh frame) into `strip` (h, w, 4) as a filled area scaled to its own range with a
    brighter outline; row 0 is the bottom."""
    values = np.asarray(values, dtype=np.float64)
    height, width = strip.shape[:2]
    if len(values) < 2:
        return
    span = values.max() - values.min()
    levels = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    tops = np.interp(np.arange(width), np.linspace(0, width - 1, len(values)), levels) * (height - 3)
    rows = np.arange(height)[:, None]
    fill = np.asarray(colour) * (0.45, 0.45, 0.45, 1.0)
    strip[rows <= tops[None, :]] = fill
    strip[(rows >= tops[None, :] - 1) & (rows <= tops[None, :] + 1)] = colour


def plot_pixels(scores: ClipScores, size: int = 256) -> np.ndarray:
    """(size, size, 4) float32 RGBA image, time left to right with a grey line every second: the speech envelope
    (blue, top half) above the lip opening (orange, bottom half), each scaled to its own range, so peaks
    that line up vertically are in sync. Row 0 is the bottom (Blender's image layout)."""
    image = np.empty((size, size, 4), dtype=np.float32)
    image[...] = BACKGROUND
    frames = max(len(scores.lip_opening), 1)
    for second in np.arange(MESH_FPS, frames, MESH_FPS):
        image[:, int(round(second / frames * (size - 1)))] = GRID
    half = size // 2
    gap = 3
    _fill_curve(image[:half - gap], scores.lip_opening, LIP_COLOUR)
    _fill_curve(image[half + gap:], scores.speech_envelope, ENVELOPE_COLOUR)
    return image
