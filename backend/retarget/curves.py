"""Weight curves as animators get them: thinned to the keyframes that matter, and adjusted by animator controls.

`thin_linear` keeps the fewest frames (greedily, Douglas-Peucker style) such that linear interpolation between the
kept ones stays within `tolerance` of every frame's value; the first and last frame are always kept. Rounds are
vectorised over the whole curve: each round splits every segment that is off by more than the tolerance at its
worst frame, so a curve of T frames takes O(T) numpy work per round and ~log2(T) rounds.
"""

import numpy as np

THIN_TOLERANCE = 0.01   # weight units: 1 % of a key's full shape (under 0.26 mm on jawOpen, the largest key)


def thin_linear(values: np.ndarray, tolerance: float = THIN_TOLERANCE) -> np.ndarray:
    """Sorted frame indices to keep for (T,) `values` (see module doc)."""
    values = np.asarray(values, dtype=np.float64)
    count = len(values)
    if count <= 2:
        return np.arange(count)
    keep = np.zeros(count, dtype=bool)
    keep[[0, -1]] = True
    frames = np.arange(count)
    while True:
        kept = np.flatnonzero(keep)
        segment = np.searchsorted(kept, frames, side="right") - 1   # index of the kept frame at or before each frame
        segment = np.minimum(segment, len(kept) - 2)
        left, right = kept[segment], kept[segment + 1]
        position = (frames - left) / (right - left)
        error = np.abs(values - (values[left] + position * (values[right] - values[left])))
        error[keep] = 0.0
        worst = np.zeros(len(kept) - 1)
        np.maximum.at(worst, segment, error)
        split = (error > tolerance) & (error == worst[segment])
        if not split.any():
            return kept
        # one frame per segment (the first of equal worst ones)
        first = np.zeros(count, dtype=bool)
        candidates = np.flatnonzero(split)
        _, unique = np.unique(segment[candidates], return_index=True)
        first[candidates[unique]] = True
        keep |= first


def adjust_weights(weights: np.ndarray, names, fps: float, mouth_gain: float = 1.0, jaw_gain: float = 1.0,
                   smoothing_ms: float = 0.0, shift_ms: float = 0.0) -> np.ndarray:
    """Animator controls on solved (T, K) weights at `fps`, without re-running the generator: gain on the jaw keys
    (names starting 'jaw') and on the other mouth keys ('mouth', 'cheek'), a Gaussian smoothing of sigma
    `smoothing_ms`, and a time shift (`shift_ms` > 0: the motion comes later, the first frame held; < 0: earlier,
    the last frame held). Weights stay in [0, 1]; eye and brow keys are only smoothed and shifted."""
    from scipy.ndimage import gaussian_filter1d
    adjusted = np.asarray(weights, dtype=np.float64).copy()
    gains = np.array([jaw_gain if name.startswith("jaw") else mouth_gain if name.startswith(("mouth", "cheek"))
                      else 1.0 for name in names])
    adjusted *= gains[None, :]
    if smoothing_ms > 0 and len(adjusted) > 1:
        adjusted = gaussian_filter1d(adjusted, smoothing_ms / 1000.0 * fps, axis=0, mode="nearest")
    shift = shift_ms / 1000.0 * fps
    if shift and len(adjusted) > 1:
        source = np.clip(np.arange(len(adjusted)) - shift, 0, len(adjusted) - 1)
        lower = np.minimum(np.floor(source).astype(np.int64), len(adjusted) - 2)
        fraction = (source - lower)[:, None]
        adjusted = (1 - fraction) * adjusted[lower] + fraction * adjusted[lower + 1]
    return np.clip(adjusted, 0.0, 1.0).astype(np.float32)
