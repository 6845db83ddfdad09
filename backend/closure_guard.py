"""Lip closure guard: where the speech front end or the bilabial detector hears /p b m/, the generated lips are shut.

Why: a bilabial is the one place where speech fixes the mouth exactly (both lips in contact), and viewers notice
a /p b m/ spoken through open lips at once. The v2 generators close on ~90 % of the bilabials of speakers they
never heard. In some misses the graph opens a few millimetres although the front end heard the bilabial clearly
(its /p b m/ posterior near 1): two of the five that every model misses on the benchmark's sets b and c; in the
others the front end heard /n/ or /d/. A second pair of ears, the bilabial detector (`backend.bilabial_detector`:
Whisper tiny.en's encoder, pretrained on far more real voices, and a frame probe), hears most of those. The guard
takes the evidence literally, after the graph, for every generator that hears the front end:

1. Events: runs of 50 Hz front-end frames whose /p b m/ posterior mass (`speech_frontend.bilabial_columns`)
   reaches `GuardSettings.threshold`, and runs of frames where the detector's probability reaches its own
   threshold. A CTC recogniser spikes once per phone, `BILABIAL_DELAY_S` after its centre, so each front-end run
   is moved back by that delay (the detector's runs mark the closure itself); every run is widened
   (`GuardSettings`; a labelled closure lasts 60-120 ms, median ~80 ms) with a raised-cosine ramp beyond: the per-frame weight w_t in [0, 1].
2. Closing: at frame t with lip gap g_t above the template's own rest gap g_rest by more than `TARGET_M`, the
   mouth region is blended towards the template by a_t = w_t * (1 - TARGET_M / (g_t - g_rest)):
   v <- v - a_t * m * (v - template), m a soft mask around the lip centres (1 within `INNER_RADIUS_M`, falling
   to 0 at `OUTER_RADIUS_M`), so the lip-centre gap becomes ~g_rest + TARGET_M where w_t = 1 and nothing moves
   where the graph already closed, where nothing was heard, or outside the mouth.

It never opens a mouth and never touches a frame without a heard bilabial, so rest in pauses can only improve;
what it can cost is a false alarm (the front end's /p b m/ precision is 98.5 % on real speech, REFERENCE §6b; the
guard reads the detector at 0.3, above its calibrated 0.16, where 2 % of the validation split's speech frames
away from a bilabial fire).
The settings were chosen on training-prompt Kathleen takes, each clean, with noise and in a room
(`benchmarks/closure_guard.py`), never on the benchmark's held-out prompts, unseen speakers or voices; `benchmarks/real_speech.py --unguarded` shows every set
with and without it.
Works in the FLAME frame (metres), where generators run; numpy only.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.speech_frontend import BILABIAL_DELAY_S, FRAME_RATE, POSTERIOR_DIM, bilabial_columns


@dataclass(frozen=True)
class GuardSettings:
    """When and how long the guard shuts the lips. The defaults are what benchmarks/closure_guard.py chose by its
    rule on 40 Kathleen takes of training prompts that no corpus used, each clean, with noise and in a room (its
    grid: threshold 0.3 / 0.5 / 0.7, before 0-80 ms, after 0-40 ms, each without the detector and with it at four
    thresholds, as union or gap filler). In noise and reverberation the detector's probabilities fall, so 0.3 shuts
    more of those takes' bilabials than 0.5 or 0.7 (on clean takes all three shut every one); at its calibrated
    threshold (0.16) the false alarms lowered the openness rho by more than 0.02."""

    threshold: float = 0.3    # /p b m/ posterior mass that counts as heard (real bilabials spike near 1)
    before_s: float = 0.0     # shut this long before a heard run (moved back by BILABIAL_DELAY_S)...
    after_s: float = 0.02     # ... and this long after it
    ramp_s: float = 0.035     # then released over this long (raised cosine), so the lips never snap
    detector_threshold: Optional[float] = 0.3   # bilabial detector probability that counts as heard (None: unused)
    detector_fills_gaps: bool = False   # True: only detector runs with no front-end run within GAP_FRAMES


DEFAULT_SETTINGS = GuardSettings()
GAP_FRAMES = 3          # 60 ms at 50 Hz: a front-end spike this close to a detector run is the same bilabial
TARGET_M = 0.0004        # aim 0.4 mm above the rest gap: inside the benchmark's 1 mm "shut" band, not pressed
INNER_RADIUS_M = 0.015   # the lips (FLAME: ~80 vertices) follow fully...
OUTER_RADIUS_M = 0.045   # ...fading out towards the chin and cheeks (~800 vertices in all)


def closure_weights(log_posteriors: np.ndarray, frames: int, settings: GuardSettings = DEFAULT_SETTINGS,
                    bilabial: Optional[np.ndarray] = None) -> np.ndarray:
    """(T50, 191+) front-end log-posteriors at 50 Hz -> (frames,) float32 weights in [0, 1] at 30 fps: 1 where a
    heard bilabial must be shut, ramping to 0 around it (see the module docstring, step 1). `bilabial`: (T50,)
    the bilabial detector's probabilities (`backend.bilabial_detector`), used when settings.detector_threshold is
    set; its runs mark the closure itself, so they are not moved back by the CTC delay."""
    log_posteriors = np.asarray(log_posteriors, dtype=np.float32)
    if log_posteriors.ndim != 2 or log_posteriors.shape[1] < POSTERIOR_DIM:
        raise ValueError(f"log-posteriors of shape {log_posteriors.shape}; expected (T, {POSTERIOR_DIM}) or wider")
    heard = np.exp(log_posteriors[:, bilabial_columns()]).sum(axis=1) >= settings.threshold
    runs = [(first / FRAME_RATE - BILABIAL_DELAY_S, last / FRAME_RATE - BILABIAL_DELAY_S) for first, last in _runs(heard)]
    if bilabial is not None and settings.detector_threshold is not None:
        bilabial = np.asarray(bilabial, dtype=np.float32)
        if bilabial.shape != heard.shape:
            raise ValueError(f"detector probabilities of shape {bilabial.shape}; expected {heard.shape}, one per "
                             "front-end frame")
        near = np.zeros(heard.size + 1, dtype=np.int32)   # prefix counts of front-end frames that heard one
        np.cumsum(heard, out=near[1:])
        for first, last in _runs(bilabial >= settings.detector_threshold):
            lo, hi = max(first - GAP_FRAMES, 0), min(last + GAP_FRAMES + 1, heard.size)
            if settings.detector_fills_gaps and near[hi] > near[lo]:
                continue
            runs.append((first / FRAME_RATE, last / FRAME_RATE))
    weights = np.zeros(max(frames, 0), dtype=np.float32)
    times = np.arange(max(frames, 0)) / MESH_FPS
    ramp = max(settings.ramp_s, 1e-6)
    for begin, end in runs:
        begin, end = begin - settings.before_s, end + settings.after_s
        lo, hi = np.searchsorted(times, [begin - ramp, end + ramp])
        if lo >= hi:
            continue
        span = times[lo:hi]
        outside = np.maximum(begin - span, span - end).clip(min=0.0)
        weight = 0.5 * (1.0 + np.cos(np.pi * np.minimum(outside / ramp, 1.0)))
        np.maximum(weights[lo:hi], weight.astype(np.float32), out=weights[lo:hi])
    return weights


def _runs(mask: np.ndarray) -> list:
    """(first, last) indices of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


class ClosureGuard:
    """The closing step (module docstring, step 2) for one template (5023, 3) in metres, FLAME frame."""

    def __init__(self, template: np.ndarray):
        self.template = np.asarray(template, dtype=np.float32)
        centre = (self.template[UPPER_LIP_CENTRE] + self.template[LOWER_LIP_CENTRE]) / 2
        distance = np.linalg.norm(self.template - centre, axis=1)
        self.vertices = np.flatnonzero(distance < OUTER_RADIUS_M)
        fall = (distance[self.vertices] - INNER_RADIUS_M) / (OUTER_RADIUS_M - INNER_RADIUS_M)
        self.mask = (0.5 * (1.0 + np.cos(np.pi * fall.clip(0.0, 1.0)))).astype(np.float32)
        self.rest_gap = float(np.linalg.norm(self.template[UPPER_LIP_CENTRE] - self.template[LOWER_LIP_CENTRE]))

    def apply(self, vertices: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Close `vertices` (F, 5023, 3) float32 in place where `weights` (F,) ask for it; returns them."""
        if len(weights) != len(vertices):
            raise ValueError(f"{len(weights)} closure weights for {len(vertices)} frames")
        active = np.flatnonzero(weights > 0)
        if not active.size:
            return vertices
        gap = np.linalg.norm(vertices[active, UPPER_LIP_CENTRE] - vertices[active, LOWER_LIP_CENTRE], axis=1)
        excess = gap - self.rest_gap
        amount = np.where(excess > TARGET_M, 1.0 - TARGET_M / np.maximum(excess, TARGET_M), 0.0) * weights[active]
        frames = active[amount > 0]
        if not frames.size:
            return vertices
        blend = (amount[amount > 0].astype(np.float32)[:, None] * self.mask[None, :])[:, :, None]
        region = vertices[frames[:, None], self.vertices[None, :]]
        region -= blend * (region - self.template[self.vertices])
        vertices[frames[:, None], self.vertices[None, :]] = region
        return vertices
