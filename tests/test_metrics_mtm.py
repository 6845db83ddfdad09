"""MTM: the vectorised DTW against a plain double loop, the shift -> MTM table, the matching rule, errors."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.metrics.mtm import (ClipMTM, UnscorableClipError, clip_mtm, dataset_mtm, derivative_dtw_path,
                                 lip_distance_curve, mtm_from_curves)
from synthetic_talking import SILENT_FRAMES, speech_like_envelope, talking_sequence


def plain_derivative_dtw(x, y):
    """Reference: REFERENCE §2 step 3 written as the obvious O(n m) double loop."""
    dx, dy = np.diff(x, prepend=x[0]), np.diff(y, prepend=y[0])
    n, m = len(dx), len(dy)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = abs(dx[i - 1] - dy[j - 1]) + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        move = int(np.argmin([cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]]))  # first minimum: diagonal
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    return np.array(path[::-1])


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_dtw_matches_the_plain_loop_on_random_curves(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 40, size=2)
    x, y = rng.normal(size=n), rng.normal(size=m)
    assert np.array_equal(derivative_dtw_path(x, y), plain_derivative_dtw(x, y))


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_dtw_breaks_ties_like_the_plain_loop(seed):
    rng = np.random.default_rng(100 + seed)
    n, m = rng.integers(1, 30, size=2)
    # Small integer curves make many equal cumulative costs, so the tie order decides the path.
    x, y = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, m).astype(float)
    assert np.array_equal(derivative_dtw_path(x, y), plain_derivative_dtw(x, y))


def test_dtw_of_equal_curves_is_the_diagonal_because_ties_prefer_it():
    flat = np.zeros(6)
    assert derivative_dtw_path(flat, flat).tolist() == [[t, t] for t in range(6)]


def test_mtm_matches_the_plain_pipeline_on_smooth_random_curves():
    rng = np.random.default_rng(7)
    gt = gaussian_filter1d(rng.normal(size=200), 3)
    pred = gaussian_filter1d(rng.normal(size=190), 3)
    result = mtm_from_curves(gt, pred)
    smooth_gt, smooth_pred = gaussian_filter1d(gt[:190], 2), gaussian_filter1d(pred, 2)
    from scipy.signal import find_peaks
    kind_gt = {**{i: 1 for i in find_peaks(smooth_gt)[0]}, **{i: -1 for i in find_peaks(-smooth_gt)[0]}}
    kind_pred = {**{i: 1 for i in find_peaks(smooth_pred)[0]}, **{i: -1 for i in find_peaks(-smooth_pred)[0]}}
    order = sorted(kind_gt)
    expected = []
    for i, j in plain_derivative_dtw(smooth_gt, smooth_pred):
        if i in kind_gt and kind_pred.get(j) == kind_gt[i]:
            at = order.index(i)
            left = order[at - 1] if at > 0 else 0
            right = order[at + 1] if at + 1 < len(order) else len(smooth_gt) - 1
            if left <= j <= right:
                expected.append(abs(i - j))
    assert result.deltas.tolist() == expected and result.frames == pytest.approx(np.mean(expected))


def shifted_pair(template, lips, shift, frames=600, seed=3):
    """Ground truth and a prediction that lags it by `shift` frames (leads when negative)."""
    envelope = speech_like_envelope(frames + 20, seed)
    gt = talking_sequence(template, lips, envelope[10:10 + frames])
    pred = talking_sequence(template, lips, envelope[10 - shift:10 - shift + frames])
    return gt, pred


@pytest.mark.parametrize("shift", range(11))
def test_a_k_frame_shift_gives_mtm_of_k_frames(flame_and_regions, shift):
    template, regions = flame_and_regions
    gt, pred = shifted_pair(template, regions.lips, shift)
    result = clip_mtm(gt, pred, fps=30)
    assert result.matches >= 5
    assert result.frames == shift
    assert result.ms == pytest.approx(shift * 1000 / 30)


@pytest.mark.parametrize("shift", [-7, -3])
def test_a_prediction_that_leads_gives_the_same_positive_misalignment(flame_and_regions, shift):
    template, regions = flame_and_regions
    assert clip_mtm(*shifted_pair(template, regions.lips, shift)).frames == -shift


def test_identical_clips_have_zero_mtm_with_every_extremum_matched(flame_and_regions):
    template, regions = flame_and_regions
    gt, _ = shifted_pair(template, regions.lips, 0)
    result = clip_mtm(gt, gt.copy())
    smooth = gaussian_filter1d(lip_distance_curve(gt), 2)
    from scipy.signal import find_peaks
    assert result.frames == 0.0
    assert result.matches == len(find_peaks(smooth)[0]) + len(find_peaks(-smooth)[0])


def test_units_follow_the_frame_rate_and_flattened_layout_gives_the_same_result(flame_and_regions):
    template, regions = flame_and_regions
    gt, pred = shifted_pair(template, regions.lips, 4)
    at_30 = clip_mtm(gt, pred, fps=30)
    at_60 = clip_mtm(gt.reshape(len(gt), -1), pred.reshape(len(pred), -1), fps=60)
    assert at_30.frames == at_60.frames == 4
    assert at_30.ms == pytest.approx(2 * at_60.ms) == pytest.approx(4000 / 30)
    # Scaling the geometry (metres -> millimetres) changes no timing.
    assert clip_mtm(gt * 1000, pred * 1000).frames == 4


def test_clips_of_different_length_are_cut_to_the_shorter(flame_and_regions):
    template, regions = flame_and_regions
    gt, pred = shifted_pair(template, regions.lips, 2)
    assert np.array_equal(clip_mtm(gt, pred[:500]).matched_pairs, clip_mtm(gt[:500], pred[:500]).matched_pairs)


def test_the_neighbouring_extrema_rule_on_a_hand_built_example():
    # The example of REFERENCE: the clip value is the mean of its Δt list (23 / 14 = 1.64 frames).
    deltas = [2, 2, 1, 0, 1, 0, 1, 2, 1, 1, 3, 2, 1, 6]
    pairs = np.array([[10 * k, 10 * k + d] for k, d in enumerate(deltas)])
    published = ClipMTM(matched_pairs=pairs, fps=30)
    assert published.matches == 14 and round(published.frames, 2) == 1.64
    # A cosine prediction 4 frames late: every extremum matches 4 frames away.
    frames = np.arange(120, dtype=float)
    gt = np.cos(2 * np.pi * (frames - 40) / 20)
    assert mtm_from_curves(gt, np.cos(2 * np.pi * (frames - 44) / 20)).frames == 4
    # 12 frames late on a 20-frame period is 8 frames early: DTW takes the nearer alignment.
    assert mtm_from_curves(gt, np.cos(2 * np.pi * (frames - 52) / 20)).deltas.tolist() == [8] * 10


def test_dataset_mtm_is_the_mean_of_clip_means_in_ms():
    clips = [ClipMTM(np.array([[0, 1], [5, 8]]), 30.0), ClipMTM(np.array([[0, 0]]), 30.0)]
    assert dataset_mtm(clips) == pytest.approx((2 + 0) / 2 * 1000 / 30)
    with pytest.raises(MetricError, match="at least one scored clip"):
        dataset_mtm([])


def test_curves_with_fewer_than_three_extrema_are_unscorable():
    bump = np.exp(-0.5 * ((np.arange(60) - 30) / 5.0) ** 2)  # one maximum only
    with pytest.raises(UnscorableClipError, match=r"ground-truth lip-distance curve has 1 maxima and 0 minima.*at least 3"):
        mtm_from_curves(bump, np.sin(np.arange(60) / 3))
    with pytest.raises(UnscorableClipError, match="predicted lip-distance curve has 1 maxima"):
        mtm_from_curves(np.sin(np.arange(60) / 3), bump)


def test_no_matches_is_unscorable_rather_than_zero():
    # Found by a random search: both curves have >= 3 extrema but the path never joins two of a kind.
    gt = [1.5, 1.1, -1.7, -0.3, -0.2, -0.0, 1.6, -0.5, -0.3, 0.0, 0.0, 0.5]
    pred = [-1.2, 0.2, 0.0, 0.7, -0.8, -0.5, -1.0, -0.7, 0.3, 0.1, 1.0, -0.9]
    with pytest.raises(UnscorableClipError, match="no DTW path pair joins extrema"):
        mtm_from_curves(gt, pred)


@pytest.mark.parametrize("gt, pred, message", [
    (np.array([1.0, np.nan, 2.0, 3.0]), np.ones(4), r"ground-truth lip curve: has 1 non-finite value\(s\).*index \(1,\)"),
    (np.ones((4, 2)), np.ones(4), r"ground-truth lip curve: expected a 1-D curve.*shape \(4, 2\)"),
    (np.ones(4), np.ones(1), r"predicted lip curve: has 1 samples; expected at least 2"),
])
def test_bad_curves_raise_metric_errors(gt, pred, message):
    with pytest.raises(MetricError, match=message):
        mtm_from_curves(gt, pred)


def test_bad_vertex_input_raises_metric_errors():
    with pytest.raises(MetricError, match=r"expected a vertex sequence of shape \(frames, vertices, 3\).*\(5, 4, 2\)"):
        lip_distance_curve(np.zeros((5, 4, 2)))
    with pytest.raises(MetricError, match="lip-centre vertex ids: vertex indices run from 3504 to 3531, but the mesh has 10"):
        lip_distance_curve(np.zeros((5, 10, 3)))
    nan_frames = np.zeros((5, 5023, 3))
    nan_frames[2, 3504, 1] = np.nan
    with pytest.raises(MetricError, match=r"vertices: has 1 non-finite vertex position\(s\).*frame 2, vertex 3504"):
        lip_distance_curve(nan_frames)
    with pytest.raises(MetricError, match="fps must be a positive number"):
        mtm_from_curves(np.ones(5), np.ones(5), fps=0)


def test_synthetic_sequence_opens_the_mouth_with_the_envelope(flame_and_regions):
    """The fixture the MTM tests rely on: lip distance follows the envelope, at rest while silent."""
    template, regions = flame_and_regions
    envelope = speech_like_envelope(300)
    sequence = talking_sequence(template, regions.lips, envelope)
    distance = np.linalg.norm(sequence[:, UPPER_LIP_CENTRE] - sequence[:, LOWER_LIP_CENTRE], axis=1)
    rest = np.linalg.norm(template[UPPER_LIP_CENTRE] - template[LOWER_LIP_CENTRE])
    assert np.allclose(distance[:SILENT_FRAMES], rest)
    assert np.corrcoef(distance, envelope)[0, 1] > 0.99
