"""Upper-face life the speech generators do not make: blinks and brow raises, as weight curves of the basis keys.

- Blinks: the rig's blink model (backend.rig.coarticulation.blink_curve: 70 ms closing, 40 ms closed, 150 ms
  opening, about 0.26 s in all; Poisson onsets at least 0.4 s apart) at BLINK_RATE_HZ, seeded, both eyes together
  (eyeBlink_L and eyeBlink_R). People blink ~10-20 times a minute while talking, each blink 0.1-0.4 s.
- Brows: browInnerUp raised on the loudest moments of the voice: the speech loudness (RMS per frame, smoothed
  over 0.25 s) above its 85th percentile, scaled to BROW_PEAK at the clip's peak.
- Pitch brows: browOuterUp_L/R raised where the voice's pitch (F0 by normalised autocorrelation, `pitch_track`)
  goes a few semitones above the speaker's median.
- Head motion: a seeded slow sway (nod, turn, tilt of a degree or two) that grows while the voice is loud, plus a
  small nod on the loud peaks, as rotation angles in the FLAME frame; `head_motion_eulers` turns them into an
  object's Euler curves.
Each is its own channel (its own keys or F-curves in the bake), seeded where random, and can be switched off.
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d

from backend.rig.coarticulation import blink_curve

BLINK_RATE_HZ = 0.28     # ~17 a minute
BROW_PEAK = 0.6          # browInnerUp weight at the loudest moment
BROW_PERCENTILE = 85.0
BROW_SMOOTHING_S = 0.25


def blink_weights(frames: int, fps: float, seed: int, rate_hz: float = BLINK_RATE_HZ) -> np.ndarray:
    """(frames,) eyelid closure 0..1 at `fps`, reproducible for a seed."""
    return blink_curve(np.arange(frames) / fps, rate_hz, np.random.default_rng(seed)).astype(np.float32)


def brow_weights(samples: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """(frames,) browInnerUp weight 0..BROW_PEAK following the loud peaks of mono float `samples`."""
    level = _smoothed_level(samples, rate, frames, fps)
    if not frames:
        return np.zeros(0, dtype=np.float32)
    threshold, peak = np.percentile(level, BROW_PERCENTILE), level.max()
    if peak <= threshold:
        return np.zeros(frames, dtype=np.float32)
    return (BROW_PEAK * np.clip((level - threshold) / (peak - threshold), 0.0, 1.0)).astype(np.float32)


PITCH_RANGE_HZ = (70.0, 400.0)
PITCH_WINDOW_S = 0.04
PITCH_RATE = 8000             # Hz the audio is analysed at
OCTAVE_TOLERANCE = 0.9
VOICED_CORRELATION = 0.5      # normalised autocorrelation peak above which a frame is voiced
VOICED_LEVEL = 0.1            # ... and its RMS above this share of the clip's 95th-percentile RMS
PITCH_BLOCK_FRAMES = 2048     # frames analysed at a time (bounds the FFT temporaries)
PITCH_BROW_PEAK = 0.5         # browOuterUp_L/R weight at PITCH_BROW_FULL_ST above the speaker's median pitch
PITCH_BROW_START_ST, PITCH_BROW_FULL_ST = 2.0, 6.0
PITCH_BROW_SMOOTHING_S = 0.15


def pitch_track(samples: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """(frames,) F0 in Hz of mono `samples` at `fps` (0 where unvoiced): the lag of the highest normalised
    autocorrelation within PITCH_RANGE_HZ over a PITCH_WINDOW_S window centred on each frame, parabolic
    interpolation between lags (the shortest of near-equal peaks, against octave errors); voiced where that peak exceeds VOICED_CORRELATION and the frame is not quiet."""
    samples = np.asarray(samples, dtype=np.float64)
    if rate > PITCH_RATE:   # F0 needs no more: a quarter of the work at 16 kHz
        from scipy.signal import resample_poly
        divisor = np.gcd(int(rate), PITCH_RATE)
        samples, rate = resample_poly(samples, PITCH_RATE // divisor, int(rate) // divisor), PITCH_RATE
    window = int(round(PITCH_WINDOW_S * rate))
    shortest, longest = int(rate / PITCH_RANGE_HZ[1]), int(np.ceil(rate / PITCH_RANGE_HZ[0]))
    if frames == 0 or window <= longest + 2:
        return np.zeros(frames)
    padded = np.pad(samples, (window // 2, window))
    starts = np.minimum((np.arange(frames) * rate / fps).astype(np.int64), len(padded) - window)
    size = 1 << int(np.ceil(np.log2(window + longest + 2)))   # no circular wrap up to the longest lag
    taper = np.hanning(window)
    f0, level = np.zeros(frames), np.zeros(frames)
    for first in range(0, frames, PITCH_BLOCK_FRAMES):
        index = starts[first:first + PITCH_BLOCK_FRAMES, None] + np.arange(window)
        block = padded[index]
        block = block - block.mean(axis=1, keepdims=True)
        level[first:first + len(block)] = np.sqrt(np.mean(block ** 2, axis=1))
        spectrum = np.fft.rfft(block * taper, size, axis=1)
        correlation = np.fft.irfft(np.abs(spectrum) ** 2, size, axis=1)[:, :longest + 2]
        taper_correlation = np.correlate(taper, taper, "full")[window - 1:window + longest + 1]
        correlation = correlation / np.maximum(correlation[:, :1], 1e-12) / (taper_correlation / taper_correlation[0])
        search = correlation[:, shortest:longest + 1]
        # the shortest lag within OCTAVE_TOLERANCE of the best one: a period's multiples correlate as well
        local = np.zeros_like(search, dtype=bool)
        local[:, 1:-1] = (search[:, 1:-1] >= search[:, :-2]) & (search[:, 1:-1] >= search[:, 2:])
        good = local & (search >= OCTAVE_TOLERANCE * search.max(axis=1, keepdims=True))
        best = np.where(good.any(axis=1), np.argmax(good, axis=1), np.argmax(search, axis=1))
        peak = search[np.arange(len(block)), best]
        lag = (best + shortest).astype(np.float64)
        inner = (best > 0) & (best < search.shape[1] - 1)
        rows = np.flatnonzero(inner)
        left, middle, right = (search[rows, best[rows] - 1], search[rows, best[rows]], search[rows, best[rows] + 1])
        curvature = left - 2 * middle + right
        lag[rows] += np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1), 0.0)
        f0[first:first + len(block)] = np.where(peak > VOICED_CORRELATION, rate / lag, 0.0)
    loud = np.percentile(level, 95) if frames else 0.0
    f0[level < VOICED_LEVEL * loud] = 0.0
    return f0


def pitch_brow_weights(samples: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """(frames,) browOuterUp weight 0..PITCH_BROW_PEAK: raised where the voice goes PITCH_BROW_START_ST semitones
    or more above the clip's median voiced pitch (full at PITCH_BROW_FULL_ST), smoothed; 0 for a clip without
    voiced frames."""
    f0 = pitch_track(samples, rate, frames, fps)
    voiced = f0 > 0
    if voiced.sum() < 3:
        return np.zeros(frames, dtype=np.float32)
    semitones = np.zeros(frames)
    semitones[voiced] = 12.0 * np.log2(f0[voiced] / np.median(f0[voiced]))
    raise_ = np.clip((semitones - PITCH_BROW_START_ST) / (PITCH_BROW_FULL_ST - PITCH_BROW_START_ST), 0.0, 1.0)
    return (PITCH_BROW_PEAK * gaussian_filter1d(raise_, PITCH_BROW_SMOOTHING_S * fps)).astype(np.float32)


HEAD_SWAY_DEGREES = (1.5, 2.0, 0.8)   # RMS of the slow sway about the FLAME x (nod), y (turn), z (tilt) axes
HEAD_SWAY_SECONDS = 1.2               # Gaussian smoothing of the seeded noise: the sway's time scale
HEAD_NOD_DEGREES = 1.5                # extra nod (chin down) at the loudest moments of the voice
HEAD_QUIET_SHARE = 0.4                # sway while silent, as a share of the sway while talking


def head_rotation_angles(samples: np.ndarray, rate: int, frames: int, fps: float, seed: int) -> np.ndarray:
    """(frames, 3) small head rotations in radians about the FLAME frame's x (nod, + = chin down), y (turn) and
    z (tilt) axes: seeded slow sway (HEAD_SWAY_DEGREES RMS over HEAD_SWAY_SECONDS), louder while the voice is
    loud, plus a nod on the loud peaks (the loudness brows' envelope). Reproducible for a seed."""
    rng = np.random.default_rng(seed)
    sway = gaussian_filter1d(rng.standard_normal((frames, 3)), HEAD_SWAY_SECONDS * fps, axis=0, mode="wrap") \
        if frames else np.zeros((0, 3))
    sway /= np.maximum(sway.std(axis=0, keepdims=True), 1e-12)
    loud = brow_weights(samples, rate, frames, fps) / BROW_PEAK                   # 0..1 on the loud peaks
    level = _smoothed_level(samples, rate, frames, fps)
    talking = level / max(level.max(), 1e-12) if frames else level
    envelope = HEAD_QUIET_SHARE + (1.0 - HEAD_QUIET_SHARE) * gaussian_filter1d(talking, HEAD_SWAY_SECONDS * fps) \
        if frames else talking
    angles = sway * np.radians(HEAD_SWAY_DEGREES)[None, :] * envelope[:, None]
    angles[:, 0] += np.radians(HEAD_NOD_DEGREES) * loud
    return angles.astype(np.float32)


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """(T, 3) rotations about x, y, z (radians) -> (T, 3, 3) matrices Rz @ Ry @ Rx."""
    x, y, z = (np.asarray(angles, dtype=np.float64)[:, axis] for axis in range(3))
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    one, zero = np.ones_like(x), np.zeros_like(x)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def euler_xyz(matrices: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation matrices -> (T, 3) XYZ Euler angles (Blender's default rotation mode: R = Rz Ry Rx),
    unwrapped over time so curves never jump by 2 pi."""
    m = np.asarray(matrices, dtype=np.float64)
    y = np.arcsin(np.clip(-m[:, 2, 0], -1.0, 1.0))
    x = np.arctan2(m[:, 2, 1], m[:, 2, 2])
    z = np.arctan2(m[:, 1, 0], m[:, 0, 0])
    return np.unwrap(np.stack([x, y, z], axis=1), axis=0)


def head_motion_eulers(angles: np.ndarray, rest_rotation: np.ndarray, flame_rotation=None) -> np.ndarray:
    """(T, 3) XYZ Euler curves of an object whose rest rotation matrix is `rest_rotation` (3, 3), turned by the
    FLAME-frame `angles` (head_rotation_angles) about its own local axes; `flame_rotation` (3, 3) is the mesh's
    local -> FLAME rotation (backend.flame_frame.FlameFrame.rotation; None = the mesh is in the FLAME frame)."""
    turns = rotation_matrices(angles)
    if flame_rotation is not None:
        frame = np.asarray(flame_rotation, dtype=np.float64)
        turns = frame.T @ turns @ frame
    return euler_xyz(np.asarray(rest_rotation, dtype=np.float64)[None] @ turns)


def _smoothed_level(samples: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """(frames,) RMS per frame, smoothed over BROW_SMOOTHING_S (the envelope the loudness brows follow)."""
    samples = np.asarray(samples, dtype=np.float64)
    edges = np.minimum((np.arange(frames + 1) * (rate / fps)).astype(np.int64), len(samples))
    energy = np.add.reduceat(samples ** 2, edges[:-1]) if len(samples) and frames else np.zeros(frames)
    energy = np.where(np.diff(edges) > 0, energy[:frames], 0.0)
    return gaussian_filter1d(np.sqrt(energy / np.maximum(np.diff(edges), 1)), BROW_SMOOTHING_S * fps) \
        if frames else np.zeros(0)
