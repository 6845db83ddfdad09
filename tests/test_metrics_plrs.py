"""PLRS: windowing as published, batching, clip/dataset means, ONNX contract and its errors.

The encoders here are test doubles: a pure-numpy pair built so that matching windows agree (speech
loudness shape vs lip-opening shape over the 5 frames), and tiny ONNX models (fixed random linear
projections) built with onnx.helper. SYNTHETIC data throughout.
"""

import numpy as np
import pytest

from backend import features
from backend.audio import resample
from backend.errors import MetricError, ModelError
from backend.metrics.plrs import (ClipPLRS, OnnxSpeechMeshEncoders, clip_plrs, cosine_similarities, dataset_plrs,
                                  find_encoder_directory, window_similarities)
from onnx_test_models import linear_model
from synthetic_talking import LoudnessLipEncoders, envelope_audio, speech_like_envelope, talking_sequence

RATE = 16000


@pytest.fixture(scope="module")
def talking_clip(flame_and_regions):
    template, regions = flame_and_regions
    envelope = speech_like_envelope(303, seed=5)
    return envelope_audio(envelope, RATE), talking_sequence(template, regions.lips, envelope)


def test_windows_are_non_overlapping_five_frame_chunks_with_matching_audio(talking_clip):
    samples, vertices = talking_clip
    encoders = LoudnessLipEncoders()
    result = clip_plrs(encoders, samples, RATE, vertices, batch_size=7)
    assert len(result.window_scores) == 303 // 5  # the 3 frames left over make no window
    assert [len(batch) for batch in encoders.mesh_batches] == [7] * 8 + [4]
    meshes = np.concatenate(encoders.mesh_batches)
    fbanks = np.concatenate(encoders.speech_batches)
    speech_19k2 = resample(samples, RATE, 19200)
    for window in (0, 1, 33, 59):
        assert np.array_equal(meshes[window], vertices[5 * window:5 * window + 5].astype(np.float32))
        chunk = speech_19k2[5 * window * 640:5 * window * 640 + 3200]
        assert np.allclose(fbanks[window], features.speech_window_features(chunk[None])[0], atol=1e-5)


def test_clip_score_is_the_mean_and_dataset_score_the_mean_of_clips(talking_clip):
    samples, vertices = talking_clip
    result = clip_plrs(LoudnessLipEncoders(), samples, RATE, vertices)
    assert result.score == pytest.approx(result.window_scores.mean())
    assert clip_plrs(LoudnessLipEncoders(), samples, RATE, vertices, batch_size=1).window_scores == pytest.approx(
        result.window_scores)
    assert dataset_plrs([ClipPLRS(np.array([0.2, 0.4])), ClipPLRS(np.array([0.9]))]) == pytest.approx(0.6)


def test_matched_windows_score_higher_than_shuffled_ones(talking_clip):
    samples, vertices = talking_clip
    encoders = LoudnessLipEncoders()
    matched = clip_plrs(encoders, samples, RATE, vertices).score
    starts = features.window_starts(len(vertices))
    shuffled_starts = np.random.default_rng(0).permutation(starts)
    shuffled = window_similarities(encoders, resample(samples, RATE, 19200), vertices, starts, shuffled_starts).mean()
    assert matched > 0.4 and matched > shuffled + 0.3, (matched, shuffled)


def test_cosine_similarity_normalises_both_embeddings():
    first = np.array([[3.0, 0.0], [1.0, 1.0]])
    second = np.array([[10.0, 0.0], [-2.0, -2.0]])
    assert cosine_similarities(first, second) == pytest.approx([1.0, -1.0])
    with pytest.raises(ModelError, match=r"embeddings of shapes \(2, 2\) and \(2, 3\)"):
        cosine_similarities(first, np.zeros((2, 3)))


def test_too_short_clips_and_bad_batch_sizes_are_refused(talking_clip):
    samples, vertices = talking_clip
    with pytest.raises(MetricError, match="PLRS needs at least 5 frames; the clip has 4"):
        clip_plrs(LoudnessLipEncoders(), samples, RATE, vertices[:4])
    with pytest.raises(MetricError, match="batch_size must be a positive integer; got 0"):
        clip_plrs(LoudnessLipEncoders(), samples, RATE, vertices, batch_size=0)


class NumpyLinearEncoders:
    def __init__(self, speech_weights, mesh_weights):
        self.speech_weights, self.mesh_weights = speech_weights, mesh_weights

    def embed_speech(self, fbank):
        return fbank.reshape(len(fbank), -1) @ self.speech_weights

    def embed_mesh(self, vertices):
        return vertices.reshape(len(vertices), -1) @ self.mesh_weights


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders")
    rng = np.random.default_rng(0)
    speech_weights = rng.normal(size=(20 * 128, 8)).astype(np.float32)
    mesh_weights = rng.normal(size=(5 * 15069, 8)).astype(np.float32)
    linear_model(folder / "speech_encoder.onnx", "fbank", (20, 128), speech_weights)
    linear_model(folder / "mesh_encoder.onnx", "vertices", (5, 15069), mesh_weights)
    return folder, NumpyLinearEncoders(speech_weights, mesh_weights)


def test_onnx_encoders_follow_the_contract_and_agree_with_numpy(onnx_pair, talking_clip):
    folder, reference = onnx_pair
    samples, vertices = talking_clip
    encoders = OnnxSpeechMeshEncoders.from_directory(find_encoder_directory(folder))
    onnx_scores = clip_plrs(encoders, samples, RATE, vertices, batch_size=16).window_scores
    numpy_scores = clip_plrs(reference, samples, RATE, vertices).window_scores
    assert np.allclose(onnx_scores, numpy_scores, atol=1e-4)


def test_missing_and_corrupt_models_raise_model_errors(onnx_pair, tmp_path):
    folder, _ = onnx_pair
    with pytest.raises(ModelError, match=r"missing speech_encoder.onnx, mesh_encoder.onnx"):
        find_encoder_directory(tmp_path)
    with pytest.raises(ModelError, match="encoder model not found"):
        OnnxSpeechMeshEncoders(tmp_path / "nothing.onnx", folder / "mesh_encoder.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="broken.onnx: not a loadable ONNX model"):
        OnnxSpeechMeshEncoders(tmp_path / "broken.onnx", folder / "mesh_encoder.onnx")


def test_models_with_other_inputs_or_outputs_are_refused(onnx_pair, tmp_path):
    folder, _ = onnx_pair
    weights = np.zeros((20 * 64, 4))
    mesh = folder / "mesh_encoder.onnx"
    wrong_name = linear_model(tmp_path / "a.onnx", "audio", (20, 128), np.zeros((2560, 4)))
    with pytest.raises(ModelError, match=r"model inputs are \['audio'\]; the PLRS contract needs one input named 'fbank'"):
        OnnxSpeechMeshEncoders(wrong_name, mesh)
    wrong_shape = linear_model(tmp_path / "b.onnx", "fbank", (20, 64), weights)
    with pytest.raises(ModelError, match=r"input 'fbank' has shape \['B', 20, 64\]; the PLRS contract needs \(B, 20, 128\)"):
        OnnxSpeechMeshEncoders(wrong_shape, mesh)
    wrong_output = linear_model(tmp_path / "c.onnx", "fbank", (20, 128), np.zeros((2560, 4)), output_name="features")
    with pytest.raises(ModelError, match=r"outputs are \['features'\]; the PLRS contract needs an output named 'embedding'"):
        OnnxSpeechMeshEncoders(wrong_output, mesh)
    encoders = OnnxSpeechMeshEncoders(folder / "speech_encoder.onnx", mesh)
    with pytest.raises(ModelError, match="mesh encoder expects 15069 values per frame \\(5023 vertices\\); got 10 vertices"):
        encoders.embed_mesh(np.zeros((2, 5, 10, 3)))
