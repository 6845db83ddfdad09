"""Upper-face life the speech generators do not make: blinks and brow raises, as weight curves of the basis keys.

- Blinks: the rig's blink model (backend.rig.coarticulation.blink_curve: 70 ms closing, 40 ms closed, 150 ms
  opening, about 0.26 s in all; Poisson onsets at least 0.4 s apart) at BLINK_RATE_HZ, seeded, both eyes together
  (eyeBlink_L and eyeBlink_R). People blink ~10-20 times a minute while talking, each blink 0.1-0.4 s.
- Brows: browInnerUp raised on the loudest moments of the voice: the speech loudness (RMS per frame, smoothed
  over 0.25 s) above its 85th percentile, scaled to BROW_PEAK at the clip's peak.
Each is its own key (so its own F-curve in the bake) and can be switched off.
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
    samples = np.asarray(samples, dtype=np.float64)
    hop = rate / fps
    edges = np.minimum((np.arange(frames + 1) * hop).astype(np.int64), len(samples))
    energy = np.add.reduceat(samples ** 2, edges[:-1]) if len(samples) else np.zeros(frames)
    counts = np.maximum(np.diff(edges), 1)
    energy = np.where(np.diff(edges) > 0, energy[:frames], 0.0)
    level = gaussian_filter1d(np.sqrt(energy / counts), BROW_SMOOTHING_S * fps)
    threshold, peak = np.percentile(level, BROW_PERCENTILE), level.max()
    if peak <= threshold:
        return np.zeros(frames, dtype=np.float32)
    return (BROW_PEAK * np.clip((level - threshold) / (peak - threshold), 0.0, 1.0)).astype(np.float32)
