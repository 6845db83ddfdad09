"""LVE, FDD and SLCC against small hand-computed cases, plus their bad-input errors."""

import numpy as np
import pytest

from backend.errors import MetricError
from backend.metrics.fdd import clip_fdd, dataset_fdd, upper_face_dynamics
from backend.metrics.lve import clip_lve, dataset_lve, lip_errors_per_frame
from backend.datasets.mead import MeadDataset
from backend.metrics.slcc import dataset_slcc, delta_slcc, lip_intensity, speech_intensity


def test_lve_takes_the_worst_lip_vertex_squared_per_frame():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [0.3, 0.4, 0.0]   # squared 0.25
    pred[0, 2] = [1.0, 0.0, 0.0]   # not a lip vertex
    pred[1, 1] = [0.0, 0.0, 0.2]   # squared 0.04
    lips = np.array([0, 1, 1])     # duplicates allowed, as in FLAME's 254-entry list
    assert lip_errors_per_frame(gt, pred, lips) == pytest.approx([0.25, 0.04])
    assert clip_lve(gt, pred, lips) == pytest.approx(0.145)


def test_dataset_lve_weights_every_frame_equally():
    assert dataset_lve([np.array([1.0, 3.0]), np.array([5.0])]) == pytest.approx(3.0)  # not (2 + 5) / 2
    with pytest.raises(MetricError, match="dataset LVE needs at least one clip"):
        dataset_lve([])


def test_lve_cuts_to_the_shorter_clip_and_accepts_flat_layout():
    gt = np.zeros((4, 2, 3))
    pred = np.ones((3, 2, 3))
    assert lip_errors_per_frame(gt.reshape(4, 6), pred, np.array([0])) == pytest.approx([3.0, 3.0, 3.0])


def test_fdd_is_the_signed_difference_of_upper_face_dynamics():
    template = np.zeros((2, 3))
    gt = np.zeros((3, 2, 3))
    gt[:, 0, 0] = [0.0, 1.0, 2.0]          # squared motion 0, 1, 4: std = sqrt(26/9)
    gt[:, 1, 1] = [1.0, 1.0, 1.0]          # constant motion: std 0
    pred = np.zeros((3, 2, 3))
    pred[:, 0, 0] = [0.0, 1.0, 0.0]        # 0, 1, 0: std = sqrt(2/9)
    upper = np.array([0, 1])
    dyn_gt = (np.sqrt(26 / 9) + 0) / 2
    dyn_pred = np.sqrt(2 / 9) / 2
    assert upper_face_dynamics(gt, template, upper) == pytest.approx(dyn_gt)
    assert clip_fdd(gt, pred, template, upper) == pytest.approx(dyn_gt - dyn_pred)
    assert clip_fdd(pred, gt, template, upper) == pytest.approx(dyn_pred - dyn_gt)  # signed
    assert dataset_fdd([0.5, -0.1]) == pytest.approx(0.2)


def test_fdd_rejects_a_template_of_the_wrong_shape():
    with pytest.raises(MetricError, match=r"template: expected shape \(2, 3\).*got shape \(3, 3\)"):
        upper_face_dynamics(np.zeros((3, 2, 3)), np.zeros((3, 3)), np.array([0]))


def test_speech_intensity_is_the_rms_of_raw_int16():
    assert speech_intensity(np.array([3, -4], dtype=np.int16)) == pytest.approx(np.sqrt(12.5))
    assert speech_intensity(np.full(4, -32768, dtype=np.int16)) == pytest.approx(32768.0)  # no overflow
    with pytest.raises(MetricError, match="expected raw int16 samples.*got float32"):
        speech_intensity(np.zeros(4, dtype=np.float32))


def test_lip_intensity_is_the_rms_over_frames_of_mean_lip_displacement():
    vertices = np.zeros((3, 2, 3))
    vertices[1, 0] = [3.0, 4.0, 0.0]   # frame 1: lip displacements 5 and 0 -> mean 2.5
    vertices[2, 0] = [3.0, 4.0, 0.0]   # frame 2: no motion -> 0
    vertices[2, 1] = [0.0, 0.0, 1.0]   # ... except vertex 1 moves 1 -> mean 0.5
    assert lip_intensity(vertices, np.array([0, 1])) == pytest.approx(np.sqrt((2.5 ** 2 + 0.5 ** 2) / 2))
    with pytest.raises(MetricError, match="lip intensity needs at least 2 frames; got 1"):
        lip_intensity(vertices[:1], np.array([0]))


def _pearson_by_hand(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    da, db = a - a.mean(), b - b.mean()
    return float((da * db).sum() / np.sqrt((da ** 2).sum() * (db ** 2).sum()))


def test_slcc_z_normalises_within_each_identity_before_pearson():
    speech = [1.0, 2.0, 3.0, 100.0, 200.0, 300.0]
    lips = [2.0, 1.0, 3.0, 10.0, 30.0, 20.0]
    identities = ["a", "a", "a", "b", "b", "b"]
    z = lambda v: (np.array(v) - np.mean(v)) / np.std(v)  # noqa: E731
    expected = _pearson_by_hand(np.r_[z(speech[:3]), z(speech[3:])], np.r_[z(lips[:3]), z(lips[3:])])
    assert expected == pytest.approx(0.5)
    assert dataset_slcc(speech, lips, identities) == {"all": pytest.approx(expected)}
    # Without per-identity normalisation the speaker offset would dominate: r would be near 1.
    assert _pearson_by_hand(speech, lips) > 0.85


def test_slcc_per_level_uses_the_identity_z_scores_restricted_to_the_level():
    speech = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    lips = [1.0, 3.0, 2.0, 6.0, 4.0, 5.0]
    identities = ["a"] * 6
    levels = [1, 1, 1, 2, 2, 2]
    result = dataset_slcc(speech, lips, identities, levels)
    assert result["all"] == pytest.approx(_pearson_by_hand(speech, lips))
    assert result["level_1"] == pytest.approx(_pearson_by_hand(speech[:3], lips[:3]))
    assert result["level_2"] == pytest.approx(_pearson_by_hand(speech[3:], lips[3:]))
    assert delta_slcc(0.26, 0.34) == pytest.approx(0.08)


def test_mead_names_give_levels_and_other_names_none():
    assert MeadDataset.parse_name("M003_angry_level_2_001") == ("M003", "angry_001", 2)
    assert MeadDataset.parse_name("SYN01_kathleen_level_3_arctic_a0001")[2] == 3   # the clip part may hold '_'
    assert MeadDataset.parse_name("FaceTalk_170809_00138_TA_sentence21") is None


@pytest.mark.parametrize("speech, lips, identities, message", [
    ([1, 2, 3], [1, 2], ["a", "a", "a"], "got 3 speech intensities, 2 lip intensities and 3 identities"),
    ([1, 2, 3, 4], [1, 2, 3, 4], ["a", "a", "a", "b"], "identity 'b' has 1 clip"),
    ([1, 2, 3], [5, 5, 5], ["a", "a", "a"], "identity 'a' has 3 clip.*lip intensity spread 0"),
    ([1, 2], [1, 3], ["a", "a"], "Pearson r needs at least 3 clips; got 2"),
    ([1, np.nan, 3], [1, 2, 3], ["a", "a", "a"], r"speech intensities: has 1 non-finite"),
])
def test_slcc_bad_input_raises_metric_errors(speech, lips, identities, message):
    with pytest.raises(MetricError, match=message):
        dataset_slcc(speech, lips, identities)


@pytest.mark.parametrize("lips, message", [
    (np.array([0, 5]), "lip vertex indices: vertex indices run from 0 to 5, but the mesh has 3 vertices"),
    (np.array([0.5]), "expected a non-empty 1-D integer array of vertex indices"),
])
def test_bad_lip_indices_raise_metric_errors(lips, message):
    with pytest.raises(MetricError, match=message):
        clip_lve(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), lips)


def test_lve_rejects_different_topologies():
    with pytest.raises(MetricError, match="ground truth has 3 vertices per frame but prediction has 4"):
        clip_lve(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)), np.array([0]))


def test_a_level_with_too_few_clips_is_left_out_but_all_still_stands():
    speech = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    lips = np.array([1.1, 1.9, 3.2, 3.9, 5.1, 6.2])
    result = dataset_slcc(speech, lips, ["a"] * 6, [1, 1, 2, 2, 2, 2])
    assert set(result) == {"all", "level_2"}
    assert result["all"] == pytest.approx(_pearson_by_hand(speech, lips))
