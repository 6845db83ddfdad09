"""MTM, Mean Temporal Misalignment: how far apart in time matching lip extrema are (REFERENCE §2).

Per clip, with ground truth G and prediction P at the same frame rate:
1. lip distance d_t = ||v[t, 3531] - v[t, 3504]|| (`lip_distance_curve`);
2. Gaussian smoothing, sigma = 2 frames (`smooth_curve`);
3. derivative DTW between the smoothed curves (`derivative_dtw_path`);
4. local maxima and minima of each smoothed curve with `scipy.signal.find_peaks`, default parameters;
5. the neighbouring-extrema rule, as implemented: list G's maxima and minima together in frame order.
   For G extremum i, its neighbours are the previous and next entries of that list (frame 0 when i is
   the first, frame len(G)-1 when it is the last). A DTW path pair (i, j) is a match when i is a G
   extremum, j is a P extremum of the same kind (maximum with maximum, minimum with minimum), and
   left(i) <= j <= right(i), both ends included. Each match records |i - j| frames; one G extremum may
   match more than once if the path visits it with several P extrema.
6. clip MTM = mean of the matches (frames; ms = frames * 1000 / fps); dataset MTM = mean of clip MTMs.

Clips of different lengths are cut to the shorter one. A clip whose smoothed curves have fewer than
MIN_EXTREMA extrema (either curve), or that yields no match, raises UnscorableClipError; dataset
scoring counts such clips as skipped instead of scoring them 0.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.metrics import inputs

SMOOTHING_SIGMA_FRAMES = 2.0
MIN_EXTREMA = 3


class UnscorableClipError(MetricError):
    """A clip a metric cannot score (too few extrema, no matches, too few windows); datasets skip it."""


@dataclass(frozen=True)
class ClipMTM:
    """One clip's MTM. matched_pairs: (K, 2) int (G frame, P frame) in path order; fps: frame rate."""

    matched_pairs: np.ndarray
    fps: float

    @property
    def deltas(self) -> np.ndarray:
        """(K,) int |i - j| of each match, in frames (the published Δt list)."""
        return np.abs(self.matched_pairs[:, 0] - self.matched_pairs[:, 1])

    @property
    def matches(self) -> int:
        return len(self.matched_pairs)

    @property
    def frames(self) -> float:
        return float(np.mean(self.deltas))

    @property
    def ms(self) -> float:
        return self.frames * 1000.0 / self.fps


def lip_distance_curve(vertices, upper: int = UPPER_LIP_CENTRE, lower: int = LOWER_LIP_CENTRE) -> np.ndarray:
    """(T,) distance between the upper and lower lip-centre vertices of a (T, V, 3) sequence."""
    sequence = inputs.vertex_sequence(vertices)
    pair = inputs.vertex_indices(np.array([upper, lower]), sequence.shape[1], "lip-centre vertex ids")
    centres = inputs.vertices_at(sequence, pair, "vertices")
    return np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1)


def smooth_curve(curve, sigma: float = SMOOTHING_SIGMA_FRAMES) -> np.ndarray:
    """Gaussian-smoothed copy of a 1-D curve (scipy's default 'reflect' ends, as published)."""
    return gaussian_filter1d(inputs.curve(curve), sigma=sigma)


def find_extrema(smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maxima, minima) frame indices of a smoothed curve: find_peaks on s and on -s, defaults."""
    return find_peaks(smoothed)[0], find_peaks(-smoothed)[0]


def derivative_dtw_path(x, y) -> np.ndarray:
    """(K, 2) int64 derivative-DTW path from (0, 0) to (len(x)-1, len(y)-1).

    Derivative: np.diff(s, prepend=s[0]); local cost |dx_i - dy_j|; moves (i-1, j), (i, j-1),
    (i-1, j-1); backtracking from the end takes the smallest predecessor, ties preferring the diagonal,
    then (i-1, j). The cumulative cost is filled one anti-diagonal at a time (cells i + j = s depend
    only on diagonals s-1 and s-2), so each step is a few numpy operations on a slice and the sums are
    bit-identical to the plain double loop. Only the two backtracking decisions per cell are kept, as bits
    (2 bits per cell: 81 MB for two 10-minute curves, where a byte each took 648 MB), not the cost matrix.
    """
    x = inputs.curve(x, "first curve")
    y = inputs.curve(y, "second curve")
    dx = np.diff(x, prepend=x[0])
    dy_reversed = np.diff(y, prepend=y[0])[::-1].copy()
    n, m = len(dx), len(dy_reversed)
    # Padded cumulative cost P (n+1, m+1): P[0, 0] = 0, the rest of row 0 and column 0 infinite.
    # Diagonal s of P is held in a length n+1 buffer indexed by i (three rolling buffers).
    diagonals = np.full((3, n + 1), np.inf)
    diagonals[0, 0] = 0.0
    first_row = np.maximum(1, np.arange(n + m + 1) - m)
    cells_per_diagonal = np.minimum(n, np.arange(n + m + 1) - 1) - first_row + 1
    offsets = np.concatenate([[0], np.cumsum(-(-np.maximum(cells_per_diagonal, 0) // 8))])   # bytes per diagonal
    take_diagonal = np.empty(offsets[-1], dtype=np.uint8)   # diagonal s's decisions, packed, from offsets[s]
    take_up = np.empty(offsets[-1], dtype=np.uint8)
    decided = np.empty((2, n + 1), dtype=bool)
    side = np.empty(n + 1)
    step = np.empty(n + 1)
    for s in range(2, n + m + 1):
        current, previous, before = diagonals[s % 3], diagonals[(s - 1) % 3], diagonals[(s - 2) % 3]
        lo, count, at = first_row[s], cells_per_diagonal[s], offsets[s]
        hi = lo + count
        diagonal, up, left = before[lo - 1:hi - 1], previous[lo - 1:hi - 1], previous[lo:hi]
        best_side = np.minimum(up, left, out=side[:count])
        np.less_equal(diagonal, best_side, out=decided[0, :count])
        np.less_equal(up, left, out=decided[1, :count])
        take_diagonal[at:offsets[s + 1]] = np.packbits(decided[0, :count])
        take_up[at:offsets[s + 1]] = np.packbits(decided[1, :count])
        np.minimum(diagonal, best_side, out=best_side)
        cost = np.subtract(dx[lo - 1:hi - 1], dy_reversed[m - s + lo:m - s + hi], out=step[:count])
        np.abs(cost, out=cost)
        np.add(best_side, cost, out=current[lo:hi])
        if s <= m:
            current[0] = np.inf
        if s <= n:
            current[s] = np.inf
    path = []
    i, j = n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        cell = i - first_row[i + j]
        byte, bit = offsets[i + j] + cell // 8, 7 - cell % 8
        if take_diagonal[byte] >> bit & 1:
            i, j = i - 1, j - 1
        elif take_up[byte] >> bit & 1:
            i -= 1
        else:
            j -= 1
    return np.array(path[::-1], dtype=np.int64)


def _extremum_kinds(smoothed: np.ndarray, name: str) -> np.ndarray:
    """(T,) int8: +1 at maxima, -1 at minima, 0 elsewhere; UnscorableClipError below MIN_EXTREMA."""
    maxima, minima = find_extrema(smoothed)
    if len(maxima) + len(minima) < MIN_EXTREMA:
        raise UnscorableClipError(f"{name} lip-distance curve has {len(maxima)} maxima and {len(minima)} minima "
                                  f"after smoothing; MTM needs at least {MIN_EXTREMA} extrema (clip skipped)")
    kinds = np.zeros(len(smoothed), dtype=np.int8)
    kinds[maxima] = 1
    kinds[minima] = -1
    return kinds


def mtm_from_curves(gt_curve, pred_curve, fps: float = MESH_FPS) -> ClipMTM:
    """MTM of two raw (unsmoothed) lip-distance curves at the same `fps`; cut to the shorter length."""
    fps = inputs.check_fps(fps)
    gt, pred = inputs.truncate_to_shorter(inputs.curve(gt_curve, "ground-truth lip curve", 2),
                                          inputs.curve(pred_curve, "predicted lip curve", 2))
    gt_smooth, pred_smooth = smooth_curve(gt), smooth_curve(pred)
    gt_kinds = _extremum_kinds(gt_smooth, "ground-truth")
    pred_kinds = _extremum_kinds(pred_smooth, "predicted")
    extrema = np.flatnonzero(gt_kinds)
    left_neighbour = np.zeros(len(gt), dtype=np.int64)
    right_neighbour = np.full(len(gt), len(gt) - 1, dtype=np.int64)
    left_neighbour[extrema[1:]] = extrema[:-1]
    right_neighbour[extrema[:-1]] = extrema[1:]
    path = derivative_dtw_path(gt_smooth, pred_smooth)
    i, j = path[:, 0], path[:, 1]
    matched = ((gt_kinds[i] != 0) & (gt_kinds[i] == pred_kinds[j])
               & (left_neighbour[i] <= j) & (j <= right_neighbour[i]))
    if not matched.any():
        raise UnscorableClipError("no DTW path pair joins extrema of the same kind within the neighbouring "
                                  "extrema of the ground truth; MTM is undefined for this clip (clip skipped)")
    return ClipMTM(matched_pairs=path[matched], fps=fps)


def clip_mtm(gt_vertices, pred_vertices, fps: float = MESH_FPS, upper: int = UPPER_LIP_CENTRE,
             lower: int = LOWER_LIP_CENTRE) -> ClipMTM:
    """MTM of two (T, V, 3) vertex sequences (or (T, V*3)) at the same `fps`."""
    return mtm_from_curves(lip_distance_curve(gt_vertices, upper, lower),
                           lip_distance_curve(pred_vertices, upper, lower), fps)


def dataset_mtm(clips: list[ClipMTM]) -> float:
    """Dataset MTM in ms: mean of clip means (each converted with its own fps)."""
    if not clips:
        raise MetricError("dataset MTM needs at least one scored clip; got none")
    return float(np.mean([clip.ms for clip in clips]))
