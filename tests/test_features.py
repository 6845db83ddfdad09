"""Tests for backend.features: Kaldi fbank against torchaudio's implementation, and speech/mesh window pairing.

Oracle tolerance: max |ours - torchaudio| < 1e-3 in log-mel (natural log). We compute in float64.
torchaudio builds its mel filters in float32 whatever the input dtype, which leaves ~3.5e-4 against its
float64 mode (filters whose triangle catches one FFT bin with a tiny weight). Its float32 mode adds FFT
rounding that grows with a frame's dynamic range: on speech and noise it stays under 1e-3 (measured
5.4e-4), but on the synthetic multi-tone signals bins ~80 dB below a frame's peak move by up to 1.2e-3
between torchaudio's own float32 and float64 results, so those are compared with its float64 mode.
"""

import numpy as np
import pytest

from backend.audio import load_audio, resample
from backend.errors import AudioError, MeshError
from backend.features import (
    FBANK_BINS,
    FBANK_FRAMES,
    SAMPLES_PER_FRAME,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    kaldi_fbank,
    mesh_windows,
    normalise_fbank,
    speech_window_features,
    speech_windows,
    window_starts,
)
from fbank_oracle import torchaudio_fbank

ORACLE_TOLERANCE = 1e-3


def synthetic_signal(length: int, seed: int) -> np.ndarray:
    """Synthetic test audio: a few tones plus white noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    tones = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(80, 7000) * t) for _ in range(4))
    return np.clip(tones + 0.05 * rng.standard_normal(length), -1, 1).astype(np.float32)


def test_published_window_geometry():
    assert (SAMPLES_PER_FRAME, WINDOW_SAMPLES, FBANK_FRAMES, FBANK_BINS) == (640, 3200, 20, 128)
    fbank = kaldi_fbank(synthetic_signal(WINDOW_SAMPLES, 0))
    assert fbank.shape == (FBANK_FRAMES, FBANK_BINS) and fbank.dtype == np.float32


@pytest.mark.parametrize("sample_rate", [16000, 19200])
@pytest.mark.parametrize("length", [3200, 4001, 16037])
@pytest.mark.parametrize("frame_ms, bins", [((8.0, 10.0), 128), ((25.0, 10.0), 128), ((25.0, 10.0), 80)])
def test_matches_torchaudio_on_synthetic_signals(sample_rate, length, frame_ms, bins):
    samples = synthetic_signal(length, seed=length + sample_rate)
    expected = torchaudio_fbank(samples, sample_rate, bins, *frame_ms, dtype=np.float64)
    ours = kaldi_fbank(samples, sample_rate, bins, *frame_ms)
    assert ours.shape == expected.shape
    assert np.max(np.abs(ours - expected)) < ORACLE_TOLERANCE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torchaudio_on_white_noise(dtype):
    samples = np.random.default_rng(3).uniform(-1, 1, 8000).astype(np.float32)
    assert np.max(np.abs(kaldi_fbank(samples) - torchaudio_fbank(samples, dtype=dtype))) < ORACLE_TOLERANCE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sample_rate", [16000, 19200])
@pytest.mark.parametrize("frame_length_ms", [8.0, 25.0])
def test_matches_torchaudio_on_real_speech(speech_dir, sample_rate, frame_length_ms, dtype):
    for path in sorted(speech_dir.glob("*.flac"))[::500]:
        samples, _ = load_audio(path, rate=sample_rate)
        expected = torchaudio_fbank(samples, sample_rate, 128, frame_length_ms, 10.0, dtype=dtype)
        ours = kaldi_fbank(samples, sample_rate, 128, frame_length_ms, 10.0)
        assert ours.shape == expected.shape
        assert np.max(np.abs(ours - expected)) < ORACLE_TOLERANCE


def test_plrs_windows_of_real_speech_match_torchaudio(speech_dir):
    samples, _ = load_audio(sorted(speech_dir.glob("*.flac"))[0], rate=19200)
    windows = speech_windows(samples, window_starts(len(samples) // SAMPLES_PER_FRAME))
    features = speech_window_features(windows)
    assert features.shape == (len(windows), FBANK_FRAMES, FBANK_BINS) and features.dtype == np.float32
    expected = np.stack([normalise_fbank(torchaudio_fbank(window, 16000)) for window in windows])
    assert np.max(np.abs(features - expected)) < ORACLE_TOLERANCE / (4.5689974 * 2)


def test_batch_equals_one_by_one():
    batch = np.stack([synthetic_signal(3200, seed) for seed in range(6)])
    batched = kaldi_fbank(batch)
    assert batched.shape == (6, FBANK_FRAMES, FBANK_BINS)
    for row, samples in zip(batched, batch):
        np.testing.assert_array_equal(row, kaldi_fbank(samples))


def test_silence_hits_the_log_floor():
    fbank = kaldi_fbank(np.zeros(3200))
    np.testing.assert_allclose(fbank, np.log(np.finfo(np.float32).eps))


def test_normalise_fbank_constants():
    mean, std = -4.2677393, 4.5689974
    np.testing.assert_allclose(normalise_fbank(np.array([mean, mean + 2 * std])), [0.0, 1.0], atol=1e-6)


def test_fbank_bad_inputs():
    with pytest.raises(AudioError, match=r"fbank expects float samples of shape \(N,\) or \(B, N\); got dtype int16"):
        kaldi_fbank(np.zeros(3200, dtype=np.int16))
    with pytest.raises(AudioError, match=r"got dtype float64, shape \(2, 2, 3200\)"):
        kaldi_fbank(np.zeros((2, 2, 3200)))
    with pytest.raises(AudioError, match=r"needs at least one frame of 128 samples \(8.0 ms at 16000 Hz\); got 100"):
        kaldi_fbank(np.zeros(100))
    with pytest.raises(AudioError, match=r"fbank input contains NaN or infinite samples"):
        kaldi_fbank(np.full(3200, np.nan))


def test_fbank_bad_parameters():
    with pytest.raises(ValueError, match=r"give 0 / 160 samples; expected at least 2 / 1"):
        kaldi_fbank(np.zeros(3200), frame_length_ms=0.01)
    with pytest.raises(ValueError, match=r"num_mel_bins must be at least 4; got 3"):
        kaldi_fbank(np.zeros(3200), num_mel_bins=3)


# ---- window pairing ----------------------------------------------------------------------------------------

def test_window_starts():
    np.testing.assert_array_equal(window_starts(17), [0, 5, 10])
    np.testing.assert_array_equal(window_starts(15), [0, 5, 10])
    np.testing.assert_array_equal(window_starts(8, stride=1), [0, 1, 2, 3])
    assert window_starts(4).size == 0 and window_starts(0).size == 0
    assert window_starts(5).tolist() == [0]


@pytest.mark.parametrize("num_frames, stride, expected", [(1000, 5, 200), (1003, 5, 200), (1000, 1, 996), (60, 2, 28)])
def test_window_count(num_frames, stride, expected):
    starts = window_starts(num_frames, stride)
    assert len(starts) == expected and starts.dtype == np.int64
    assert starts[-1] + WINDOW_FRAMES <= num_frames


def test_window_starts_bad_arguments():
    with pytest.raises(ValueError, match=r"stride must be a positive integer; got 0"):
        window_starts(10, stride=0)
    with pytest.raises(ValueError, match=r"stride must be a positive integer; got 2.5"):
        window_starts(10, stride=2.5)
    with pytest.raises(ValueError, match=r"num_frames must be a non-negative integer; got -1"):
        window_starts(-1)


def test_speech_windows_cut_at_frame_boundaries():
    samples = np.arange(12 * SAMPLES_PER_FRAME, dtype=np.float32)
    windows = speech_windows(samples, np.array([0, 3, 7]))
    assert windows.shape == (3, WINDOW_SAMPLES) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[1], samples[3 * 640 : 3 * 640 + 3200])
    np.testing.assert_array_equal(windows[2], samples[7 * 640 : 12 * 640])


def test_speech_windows_zero_pad_past_the_end():
    samples = np.ones(10 * SAMPLES_PER_FRAME - 100, dtype=np.float32)
    window = speech_windows(samples, np.array([5]))[0]
    assert np.all(window[: 3200 - 100] == 1.0) and np.all(window[3200 - 100 :] == 0.0)
    beyond = speech_windows(samples, np.array([20]))[0]
    assert np.all(beyond == 0.0)


@pytest.mark.parametrize("click_frame", [0, 4, 5, 13, 29])
def test_click_lands_in_the_window_holding_its_frame(click_frame):
    num_frames = 30
    samples = np.zeros(num_frames * SAMPLES_PER_FRAME, dtype=np.float32)
    samples[click_frame * SAMPLES_PER_FRAME + 100] = 1.0
    starts = window_starts(num_frames)
    windows = speech_windows(samples, starts)
    holding = np.flatnonzero(np.abs(windows).max(axis=1) > 0)
    assert holding.tolist() == [click_frame // WINDOW_FRAMES]
    vertices = np.zeros((num_frames, 4, 3))
    vertices[click_frame, :, 0] = 1.0
    meshes = mesh_windows(vertices, starts)
    assert np.flatnonzero(meshes.max(axis=(1, 2, 3)) > 0).tolist() == holding.tolist()


def test_click_with_stride_one_reaches_every_covering_window():
    samples = np.zeros(20 * SAMPLES_PER_FRAME, dtype=np.float32)
    samples[9 * SAMPLES_PER_FRAME] = 1.0
    windows = speech_windows(samples, window_starts(20, stride=1))
    assert np.flatnonzero(windows.max(axis=1) > 0).tolist() == [5, 6, 7, 8, 9]


def test_click_shows_in_its_fbank_frame():
    samples = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    samples[1000] = 1.0  # 16 kHz view: frame i covers samples 160 i .. 160 i + 127 -> only frame 6
    energy = speech_window_features(samples[None])[0].max(axis=1)
    assert np.argmax(energy) == 6 and np.sum(energy > energy.min()) == 1


def test_mesh_windows_shapes_and_content():
    vertices = np.random.default_rng(0).standard_normal((23, 7, 3))
    starts = window_starts(23)
    windows = mesh_windows(vertices, starts)
    assert windows.shape == (4, WINDOW_FRAMES, 7, 3)
    np.testing.assert_array_equal(windows[2], vertices[10:15])


def test_window_pairing_bad_inputs():
    with pytest.raises(MeshError, match=r"expected vertices of shape \(T, V, 3\); got shape \(10, 15069\)"):
        mesh_windows(np.zeros((10, 15069)), np.array([0]))
    with pytest.raises(MeshError, match=r"window starting at frame 6 needs 5 frames but the clip has 10 frames"):
        mesh_windows(np.zeros((10, 4, 3)), np.array([0, 6]))
    with pytest.raises(ValueError, match=r"starts must be non-negative; got minimum -1"):
        mesh_windows(np.zeros((10, 4, 3)), np.array([-1]))
    with pytest.raises(ValueError, match=r"starts must be a 1-D integer array; got dtype float64"):
        speech_windows(np.zeros(3200, dtype=np.float32), np.array([0.0]))
    message = r"expected mono float audio of shape \(N,\) at 19200 Hz; got dtype float32, shape \(2, 3200\)"
    with pytest.raises(AudioError, match=message):
        speech_windows(np.zeros((2, 3200), dtype=np.float32), np.array([0]))
    with pytest.raises(AudioError, match=r"expected speech windows of shape \(B, 3200\); got shape \(3200,\)"):
        speech_window_features(np.zeros(3200))


def test_resampled_speech_windows_line_up_with_frames(speech_dir):
    samples_16k, _ = load_audio(sorted(speech_dir.glob("*.flac"))[0])
    samples = resample(samples_16k, 16000, 19200)
    num_frames = len(samples) // SAMPLES_PER_FRAME
    starts = window_starts(num_frames)
    windows = speech_windows(samples, starts)
    assert windows.shape == (num_frames // WINDOW_FRAMES, WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows.reshape(-1), samples[: windows.size])


def test_clip_shorter_than_one_window_gives_empty_batches():
    starts = window_starts(4)
    assert speech_windows(np.ones(4 * SAMPLES_PER_FRAME, dtype=np.float32), starts).shape == (0, WINDOW_SAMPLES)
    assert mesh_windows(np.zeros((4, 7, 3)), starts).shape == (0, WINDOW_FRAMES, 7, 3)
    assert speech_window_features(np.zeros((0, WINDOW_SAMPLES))).shape == (0, FBANK_FRAMES, FBANK_BINS)
