"""Property measures and PLRS calibration on constructed cases: an encoder pair built to be offset-sensitive scores
the aligned pairing above shifted and shuffled ones, the offset curve's monotonicity count, the t-SNE picture,
and the calibration bands (ground truth never poor, a static face never good) read from the evaluator's JSON."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from backend.errors import ModelError
from backend.metrics.plrs import FRONTEND_INPUT, read_bands
from training.representation import calibrate, properties
from training.representation.clips import PairedClip

pytestmark = pytest.mark.training


class SignalEncoders:
    """Offset-sensitive by construction: both sides embed the 5-frame course of one hidden signal (front-end
    column 0; mesh value 0), centred, so a window matches only the window of the same time."""

    speech_input = FRONTEND_INPUT

    def embed_speech(self, speech):
        course = np.asarray(speech)[:, :, 0]
        return course - course.mean(1, keepdims=True)

    def embed_mesh(self, vertices):
        course = np.asarray(vertices).reshape(len(vertices), 5, -1)[:, :, 0]
        return course - course.mean(1, keepdims=True)


def signal_clip(seed: int, frames: int = 150) -> PairedClip:
    signal = gaussian_filter1d(np.random.default_rng(seed).normal(size=frames), 5.0)
    rows = np.zeros((frames, 447), dtype=np.float32)
    rows[:, 0] = signal
    vertices = np.zeros((frames, 15069), dtype=np.float32)
    vertices[:, 0] = signal
    return PairedClip(f"c{seed}", np.zeros(frames * 640, dtype=np.float32), vertices, 30.0, frontend=rows)


def test_an_offset_sensitive_pair_scores_aligned_above_shifted_above_shuffled():
    clips = [signal_clip(seed) for seed in range(6)]
    plrs = properties.plrs_pairings(SignalEncoders(), clips)
    assert plrs["ground_truth"] == pytest.approx(1.0, abs=1e-6)
    assert plrs["ground_truth"] > plrs["shift_+1"] > plrs["shift_+3"] > plrs["shift_+5"]
    assert plrs["margin_shift_3"] > 0.1 and plrs["margin_shuffled"] > 0.5
    curve = properties.offset_curve([properties.clip_embeddings(SignalEncoders(), clip) for clip in clips])
    assert properties.OFFSETS[curve.argmax()] == 0 and curve[10] == pytest.approx(1.0, abs=1e-6)


def test_monotonic_violations_count_rises_away_from_zero_on_either_side():
    falling = 1.0 - np.abs(properties.OFFSETS) / 10.0
    assert properties.monotonic_violations(falling) == 0
    bumped = falling.copy()
    bumped[10 + 7] = 0.9     # +7 higher than +6: one violation going out, none coming back since +8 is lower
    bumped[10 - 9] = 0.5     # -9 higher than -8
    assert properties.monotonic_violations(bumped) == 2


def test_tsne_keeps_two_clusters_apart():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (30, 8)), rng.normal(3, 0.1, (30, 8))])
    layout = properties.tsne(points, perplexity=10, iterations=300)
    labels = np.repeat([0, 1], 30)
    distances = np.linalg.norm(layout[:, None] - layout[None], axis=-1) + np.eye(60) * 1e9
    assert np.mean(labels[distances.argmin(1)] == labels) == 1.0


def test_bands_never_call_ground_truth_poor_nor_a_static_face_good():
    rng = np.random.default_rng(0)
    scores = {"ground_truth": rng.normal(0.5, 0.1, 100), "shuffled": rng.normal(0.1, 0.1, 100),
              "static": rng.normal(0.0, 0.05, 100)}
    bands = calibrate.derive_bands(scores)
    assert all(calibrate.rating(value, bands) != "poor" for value in scores["ground_truth"])
    assert all(calibrate.rating(value, bands) != "good" for value in scores["static"])
    assert np.mean([calibrate.rating(value, bands) == "good" for value in scores["ground_truth"]]) > 0.9


def test_bands_are_read_from_the_evaluator_json_only(tmp_path):
    assert read_bands(tmp_path) is None
    (tmp_path / "evaluator.json").write_text(json.dumps({"bands": {"good": 0.3, "fair": 0.1}}))
    assert read_bands(tmp_path) == (0.3, 0.1)
    (tmp_path / "evaluator.json").write_text(json.dumps({"bands": {"good": 0.1, "fair": 0.3}}))
    with pytest.raises(ModelError, match="expected finite numbers with good > fair"):
        read_bands(tmp_path)
    (tmp_path / "evaluator.json").write_text("{}")
    with pytest.raises(ModelError, match="no usable PLRS bands"):
        read_bands(tmp_path)
