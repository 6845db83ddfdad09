"""Weight curves as animators get them: thinned to the keyframes that matter.

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
