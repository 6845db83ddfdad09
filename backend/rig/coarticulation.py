"""Phone timeline -> articulatory control curves (T, 7) at a frame rate (SYNTHETIC animation).

Speech controls (jaw, close, round, spread, labiodental) follow Cohen & Massaro's coarticulation model:
every phone has, per control, a target and a dominance `alpha * exp(-theta * |t - centre|)`; a control
is the dominance-weighted mean of the targets. Rounded vowels have a slow anticipatory fall-off, so
rounding starts over the consonants before them. A final pass enforces the hard constraints people
notice (lips closed during /p b m/, lower lip on the upper teeth during /f v/) on the rig itself.
Inside pauses of at least REST_PAUSE_S the speech controls fade to zero (the face at rest) within
REST_FADE_S of the pause's edges: coarticulation alone opens the mouth early and keeps it open across
long pauses, and people rest their lips there.
Upper-face controls: blinks at random times, brow raises on the loudest (stressed) vowels.
"""

from dataclasses import dataclass

import numpy as np

from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.rig.flame_rig import CONTROLS, FlameRig, smoothstep
from backend.rig.timeline import (BILABIALS, LABIODENTALS, ROUNDING, SILENCE, SPREADING, VOWEL_OPENNESS, VOWELS,
                                      phone_frames)

SPEECH_CONTROLS = ("jaw", "close", "round", "spread", "labiodental")
JAW_PER_OPENNESS = 0.55           # jaw control per unit vowel openness at articulation gain 1
CLOSED_GAP_M = 0.0003             # lip-centre gap the enforcement aims for during /p b m/
_CONSONANT_JAW = {"B": 0.04, "P": 0.04, "M": 0.04, "F": 0.05, "V": 0.05, "TH": 0.10, "DH": 0.10, "S": 0.08,
                  "Z": 0.08, "T": 0.12, "D": 0.12, "N": 0.12, "L": 0.18, "SH": 0.10, "ZH": 0.10, "CH": 0.10,
                  "JH": 0.10, "R": 0.15, "Y": 0.10, "W": 0.10, "K": 0.18, "G": 0.18, "NG": 0.18, "HH": 0.30}
_JAW_LIMIT = {True: 0.15, False: 0.06}   # jaw ceiling during /p b m/ (True) and /f v/ (False)
_THETA = 30.0                     # 1/s: default dominance fall-off
_THETA_ROUNDING_ANTICIPATION = 7.0
REST_PAUSE_S = 0.3                # silences at least this long bring the lips to rest ...
REST_FADE_S = 0.1                 # ... this far inside them (the anticipation into or out of a long pause)


@dataclass(frozen=True)
class ArticulationStyle:
    """How one speaker at one intensity articulates: gains multiply the jaw and lip-shape controls."""

    gain: float = 1.0               # overall articulation amplitude (intensity level x speaker)
    jaw_balance: float = 1.0        # >1: more jaw, <1: more lips
    lip_balance: float = 1.0
    timing_offset_s: float = 0.0    # motion leads (<0) or lags (>0) the audio by a few ms
    blink_rate_hz: float = 0.3
    brow_gain: float = 1.0


def phone_targets(label: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, dominance), each (5,) over SPEECH_CONTROLS, for one ARPAbet phone or SIL."""
    is_vowel = label in VOWELS
    jaw = JAW_PER_OPENNESS * VOWEL_OPENNESS[label] if is_vowel else _CONSONANT_JAW.get(label, 0.0)
    targets = np.array([jaw, 1.0 if label in BILABIALS else 0.0, ROUNDING.get(label, 0.0),
                        SPREADING.get(label, 0.0), 1.0 if label in LABIODENTALS else 0.0])
    dominance = np.array([
        1.0 if is_vowel else (0.4 if label == SILENCE else (0.05 if label == "HH" else
                                                            (2.0 if label in BILABIALS + LABIODENTALS else 0.6))),
        5.0 if label in BILABIALS else 0.3,
        (1.5 if label in ROUNDING else 0.8) if is_vowel else (2.0 if label == "W" else (0.8 if label in ROUNDING else 0.2)),
        1.0 if is_vowel else 0.3,
        5.0 if label in LABIODENTALS else 0.3,
    ])
    return targets, dominance


def speech_curves(timeline, frame_times: np.ndarray) -> np.ndarray:
    """Coarticulated speech controls (T, 5) at `frame_times` (s) from a (start, end, label) timeline."""
    centres = np.array([(start + end) / 2 for start, end, _ in timeline])
    targets, dominance = map(np.array, zip(*(phone_targets(label) for _, _, label in timeline)))
    lag = frame_times[:, None] - centres[None, :]                      # (T, S): > 0 after the phone
    rounded_ahead = (lag < 0) & np.array([label in ROUNDING for _, _, label in timeline])[None, :]
    weights = np.empty((len(frame_times), len(timeline), len(SPEECH_CONTROLS)))
    for control, name in enumerate(SPEECH_CONTROLS):
        rate = np.where(rounded_ahead, _THETA_ROUNDING_ANTICIPATION, _THETA) if name == "round" else _THETA
        weights[:, :, control] = dominance[None, :, control] * np.exp(-rate * np.abs(lag))
    return np.einsum("tsc,sc->tc", weights, targets) / np.maximum(weights.sum(1), 1e-12)


def rest_weights(timeline, frame_times: np.ndarray) -> np.ndarray:
    """(T,) 0..1: how far each frame's speech controls fade to rest; 1 deeper than REST_FADE_S inside a run of
    SIL lasting >= REST_PAUSE_S (a run at the clip's start or end rests right up to that edge), smooth ramps."""
    runs = []
    for start, end, label in timeline:
        if label != SILENCE:
            continue
        if runs and abs(runs[-1][1] - start) < 1e-6:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    weights = np.zeros(len(frame_times))
    clip_end = timeline[-1][1] if timeline else 0.0
    for start, end in runs:
        if end - start < REST_PAUSE_S - 1e-9:
            continue
        into = np.inf if start <= 1e-6 else frame_times - start
        out_of = np.inf if end >= clip_end - 1e-6 else end - frame_times
        depth = np.minimum(into, out_of)
        inside = (frame_times >= start) & (frame_times < end)
        weights = np.maximum(weights, np.where(inside, smoothstep(depth / REST_FADE_S), 0.0))
    return weights


def enforce_constraints(controls: np.ndarray, timeline, frame_times: np.ndarray, rig: FlameRig) -> np.ndarray:
    """Make /p b m/ close the lips (centre gap ~0.3 mm) and /f v/ put the lower lip on the upper teeth.

    Frames inside a phone (or the frame nearest a phone shorter than a frame) are solved in closed
    form on the rig: the lip-centre positions are affine in the close/labiodental control for a given
    jaw angle, so one probe at 0 and one at 1 give the exact line to solve along.
    """
    controls = controls.copy()
    close, labio, jaw = CONTROLS.index("close"), CONTROLS.index("labiodental"), CONTROLS.index("jaw")
    centres = [UPPER_LIP_CENTRE, LOWER_LIP_CENTRE]
    for phones, column in ((LABIODENTALS, labio), (BILABIALS, close)):   # closure wins a shared frame
        frames = phone_frames(timeline, frame_times, phones)
        if frames.size == 0:
            continue
        controls[frames, jaw] = np.minimum(controls[frames, jaw], _JAW_LIMIT[column == close])
        controls[frames, labio if column == close else close] = 0.0
        probe = np.repeat(controls[frames], 2, axis=0)
        probe[0::2, column], probe[1::2, column] = 0.0, 1.0
        points = rig.animate(probe, centres)                            # (2F, 2, 3)
        if column == close:
            start = points[0::2, 0] - points[0::2, 1]                    # gap vector at 0
            step = (points[1::2, 0] - points[1::2, 1]) - start
            shut = -np.einsum("fi,fi->f", start, step) / np.einsum("fi,fi->f", step, step)
            amount = shut - CLOSED_GAP_M / np.linalg.norm(step, axis=1)
        else:
            start = points[0::2, 1] - rig.teeth_point                   # lower lip to teeth at 0
            step = points[1::2, 1] - points[0::2, 1]
            amount = -np.einsum("fi,fi->f", start, step) / np.einsum("fi,fi->f", step, step)
        controls[frames, column] = np.maximum(amount, 0.0)
    return controls


def blink_curve(frame_times: np.ndarray, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Blinks at Poisson times: 70 ms closing, 40 ms closed, 150 ms opening; (T,) in 0..1."""
    curve = np.zeros(len(frame_times))
    duration = frame_times[-1] if len(frame_times) else 0.0
    onset = rng.exponential(1.0 / rate_hz) * 0.5
    while onset < duration:
        since = frame_times - onset
        shape = np.interp(since, [0.0, 0.07, 0.11, 0.26], [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)
        curve = np.maximum(curve, shape)
        onset += 0.4 + rng.exponential(1.0 / rate_hz)
    return curve


def brow_curve(timeline, frame_times: np.ndarray, frame_energy: np.ndarray) -> np.ndarray:
    """Brow raises on stressed vowels: vowels whose loudness is in the top quarter of the clip's vowels.

    frame_energy: (T,) audio RMS per frame. Each raise is a raised-cosine bump of +-0.25 s, scaled
    by how far the vowel's loudness is above the clip's 75th percentile (0..1).
    """
    vowels = [(start, end) for start, end, label in timeline if label in VOWELS]
    curve = np.zeros(len(frame_times))
    if not vowels:
        return curve
    loudness = np.array([frame_energy[(frame_times >= start) & (frame_times < end)].max(initial=0.0)
                         for start, end in vowels])
    threshold, peak = np.percentile(loudness, 75), loudness.max()
    for (start, end), level in zip(vowels, loudness):
        if level <= threshold or peak <= threshold:
            continue
        strength = 0.4 + 0.6 * (level - threshold) / (peak - threshold)
        distance = np.abs(frame_times - (start + end) / 2) / 0.25
        curve = np.maximum(curve, strength * 0.5 * (1 + np.cos(np.pi * np.minimum(distance, 1.0))))
    return curve


def control_curves(timeline, n_frames: int, fps: float, rig: FlameRig, style: ArticulationStyle,
                   frame_energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All controls (n_frames, 7) for a clip: coarticulated speech, style gains, constraints, upper face."""
    frame_times = np.arange(n_frames) / fps
    speech = speech_curves(timeline, frame_times - style.timing_offset_s)
    controls = np.zeros((n_frames, len(CONTROLS)))
    for index, name in enumerate(SPEECH_CONTROLS):
        controls[:, CONTROLS.index(name)] = speech[:, index]
    controls[:, CONTROLS.index("jaw")] *= style.gain * style.jaw_balance
    for name in ("round", "spread"):
        controls[:, CONTROLS.index(name)] *= style.gain * style.lip_balance
    controls[:, [CONTROLS.index(name) for name in SPEECH_CONTROLS]] *= 1.0 - rest_weights(timeline, frame_times)[:, None]
    shifted = [(start + style.timing_offset_s, end + style.timing_offset_s, label) for start, end, label in timeline]
    # Constraints hold on the frames of both the audio's and the (few-ms) shifted timeline.
    controls = enforce_constraints(controls, timeline + shifted, frame_times, rig)
    controls[:, CONTROLS.index("blink")] = blink_curve(frame_times, style.blink_rate_hz, rng)
    controls[:, CONTROLS.index("brow")] = style.brow_gain * brow_curve(shifted, frame_times, frame_energy)
    return controls
