"""The speech front end (backend.speech_frontend): parity with hama 1.6.0's own engine on real speech, any length
(chunks without seams, bounded memory), any rate and level, the shipped files, the add-on bundle."""

import sys
import tracemalloc
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from backend.audio import load_audio, resample
from backend.speech_frontend import (CHUNK_FRAMES, FEATURE_DIM, OVERLAP_FRAMES, SAMPLES_PER_FRAME, SpeechFrontend,
                                     chunk_spans, default_model_path, frame_count, load_frontend)

REPO = Path(__file__).resolve().parents[1]
KATHLEEN_PROMPTS = ("arctic_a0008", "arctic_a0018", "arctic_b0128")   # held out (prompt numbers ending in 8)
DEV_CLIPS = ("jfk", "cmu_arctic_us_aew_a0001", "cmu_arctic_us_axb_a0004", "arctic_a0024")


@pytest.fixture(scope="module")
def frontend() -> SpeechFrontend:
    return load_frontend()


@pytest.fixture(scope="module")
def real_clips(speech_dir) -> dict:
    """A few held-out Kathleen takes and the unseen-speaker clips, 16 kHz (never trained on: read only)."""
    paths = [sorted(speech_dir.glob(f"{prompt}_*.flac"))[0] for prompt in KATHLEEN_PROMPTS]
    paths += [speech_dir.parent / "dev" / f"{name}.flac" for name in DEV_CLIPS]
    return {path.stem: load_audio(path, rate=16_000)[0] for path in paths}


def _engine_log_posteriors(samples: np.ndarray) -> np.ndarray:
    """hama 1.6.0's native engine (the test oracle): (T, 191) log-posteriors."""
    from hama import _engine
    session = _engine.AsrSession(resources.files("hama.assets").joinpath("asr_waveform.hama").read_bytes())
    return session.run(["log_probs"], {"waveform": samples[None], "waveform_lengths": np.array([samples.size])})[0][0]


def _argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def test_matches_the_wheels_own_engine_frame_by_frame_on_real_speech(frontend, real_clips):
    assert len(real_clips) == 7
    for name, samples in real_clips.items():
        ours, hidden = frontend.forward(samples)
        reference = _engine_log_posteriors(samples)
        assert ours.shape == reference.shape == (frame_count(samples.size), 191), name
        assert hidden.shape == (ours.shape[0], 256)
        difference = np.abs(ours - reference)
        assert _argmax_agreement(ours, reference) == 1.0, name
        assert difference.mean() < 5e-4, name
        assert difference.max() < 0.02, name
        assert np.abs(np.exp(ours) - np.exp(reference)).max() < 2e-3, name


def test_short_input_is_one_forward_and_long_input_is_chunked_into_overlapping_pieces(frontend, real_clips):
    samples = real_clips["jfk"]
    features = frontend.features(samples, normalise=False)
    log_posteriors, hidden = frontend.forward(samples)
    np.testing.assert_array_equal(features.log_posteriors, log_posteriors)
    np.testing.assert_array_equal(features.hidden, hidden)
    assert features.stacked().shape == (features.frames, FEATURE_DIM)
    for total in (CHUNK_FRAMES + 1, 3001, 30_001):
        spans = chunk_spans(total)
        assert spans[0][0] == 0 and spans[-1][1] == total
        assert all(end - start <= CHUNK_FRAMES for start, end in spans)
        assert all(previous[1] - following[0] >= OVERLAP_FRAMES for previous, following in zip(spans, spans[1:]))


def _concatenated(real_clips: dict, seconds: float) -> tuple:
    """Real clips padded to whole frames and repeated to `seconds`: (samples, [(first frame, name)])."""
    pieces, placed, length = [], [], 0
    names = sorted(real_clips)
    while length < seconds * 16_000:
        name = names[len(pieces) % len(names)]
        clip = real_clips[name]
        padded = np.zeros(-(-clip.size // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME, np.float32)
        padded[:clip.size] = clip
        placed.append((length // SAMPLES_PER_FRAME, name))
        pieces.append(padded)
        length += padded.size
    return np.concatenate(pieces), placed


def _seam_frames(total: int) -> np.ndarray:
    seams = np.zeros(total, bool)
    for start, _ in chunk_spans(total)[1:]:
        seams[start:start + OVERLAP_FRAMES] = True
    return seams


def test_a_long_file_gives_the_features_of_its_short_pieces(frontend, real_clips):
    """The network itself hears context (squeeze-excitation and attention span its whole input): a clip inside
    7-18 s of other speech keeps 92-94 % of its frame argmaxes (mean |Δ posterior| 0.0007-0.0008). A 150 s file
    keeps its pieces' features to the same order."""
    samples, placed = _concatenated(real_clips, 150.0)
    features = frontend.features(samples, normalise=False)
    assert features.frames == frame_count(samples.size)
    alone = {name: frontend.forward(clip)[0] for name, clip in real_clips.items()}
    agree, differences = [], []
    for first, name in placed:
        reference = alone[name][5:-5]   # the clip's own edge frames see its reflect padding
        ours = features.log_posteriors[first + 5:first + 5 + reference.shape[0]]
        agree.append(ours.argmax(1) == reference.argmax(1))
        differences.append(np.abs(np.exp(ours) - np.exp(reference)).mean(axis=1))
    assert np.concatenate(agree).mean() >= 0.85
    assert np.concatenate(differences).mean() < 0.002


def test_chunk_seams_are_invisible_against_a_shifted_chunk_grid(frontend, real_clips):
    """The same audio chunked on a grid shifted by 10 s has its seams mid-chunk: at the first grid's seams
    the two agree as well as anywhere else."""
    samples, _ = _concatenated(real_clips, 150.0)
    shift = 500
    features = frontend.features(samples, normalise=False)
    shifted = frontend.features(samples[shift * SAMPLES_PER_FRAME:], normalise=False)
    ours = features.log_posteriors[shift:]
    other = shifted.log_posteriors[:ours.shape[0]]
    difference = np.abs(np.exp(ours) - np.exp(other)).mean(axis=1)
    seams = _seam_frames(features.frames)[shift:] & ~_seam_frames(shifted.frames)[:ours.shape[0]]
    assert seams.sum() > 500
    assert difference[seams].mean() < 1.5 * difference[~seams].mean() + 1e-4
    assert _argmax_agreement(ours, other) >= 0.9
    steps = np.abs(np.diff(features.hidden, axis=0)).mean(axis=1)
    assert steps[_seam_frames(features.frames)[1:]].mean() < 1.2 * steps.mean()


def test_memory_beyond_the_output_does_not_grow_with_the_length(frontend, real_clips):
    """numpy-side allocations (tracemalloc; onnxruntime's arena is sized by the ≤ 20 s chunk, not the input)."""
    peaks = {}
    for seconds in (60.0, 180.0):
        samples, _ = _concatenated(real_clips, seconds)
        tracemalloc.start()
        features = frontend.features(samples)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peaks[seconds] = peak - features.log_posteriors.nbytes - features.hidden.nbytes
    assert peaks[180.0] < 80e6
    assert peaks[180.0] < peaks[60.0] + 8e6, peaks


RATE_TOLERANCES = {   # rate: (least argmax agreement, largest mean |Δ posterior|, largest mean |Δ hidden| / mean |hidden|)
    44_100: (0.99, 2e-4, 0.03),
    48_000: (0.99, 2e-4, 0.03),
    8_000: (0.88, 3e-3, 0.60),   # 8 kHz has nothing above 4 kHz (/s/, /f/ lose their cues): the loosest
}


@pytest.mark.parametrize("rate", sorted(RATE_TOLERANCES))
def test_any_rate_gives_the_features_of_16_khz(frontend, real_clips, rate):
    least_agreement, posterior_tolerance, hidden_tolerance = RATE_TOLERANCES[rate]
    for name in ("jfk", "cmu_arctic_us_aew_a0001"):
        samples = real_clips[name]
        reference = frontend.features(samples)
        features = frontend.features(resample(samples, 16_000, rate).astype(np.float32), rate)
        assert features.frames == reference.frames
        assert _argmax_agreement(features.log_posteriors, reference.log_posteriors) >= least_agreement
        assert np.abs(np.exp(features.log_posteriors) - np.exp(reference.log_posteriors)).mean() < posterior_tolerance
        relative = np.abs(features.hidden - reference.hidden).mean() / np.abs(reference.hidden).mean()
        assert relative < hidden_tolerance, (name, rate, relative)


def test_a_quieter_copy_gives_the_same_features_and_without_normalising_it_would_not(frontend, real_clips):
    samples = real_clips["jfk"]
    reference = frontend.features(samples)
    quiet = frontend.features(samples * np.float32(0.1))   # −20 dB
    assert _argmax_agreement(quiet.log_posteriors, reference.log_posteriors) >= 0.999
    assert np.abs(quiet.hidden - reference.hidden).max() < 0.05
    raw_quiet = frontend.features(samples * np.float32(0.1), normalise=False)
    raw = frontend.features(samples, normalise=False)
    assert _argmax_agreement(raw_quiet.log_posteriors, raw.log_posteriors) < 0.99


def test_bad_input_says_what_was_expected(frontend, tmp_path):
    from backend.errors import AudioError
    with pytest.raises(AudioError, match="silent"):
        frontend.features(np.zeros(16_000, np.float32))
    with pytest.raises(ValueError, match="at most 30 s"):
        frontend.forward(np.zeros(16_000 * 31, np.float32))
    with pytest.raises(FileNotFoundError, match="hama16_asr.onnx"):
        SpeechFrontend(tmp_path / "hama16_asr.onnx")


def test_shipped_weights_card_and_licences_are_bundled_in_the_addon():
    folder = default_model_path().parent
    for name in ("hama16_asr.onnx", "MODEL_CARD.md", "LICENSE-MIT.txt", "LICENSE-Apache-2.0.txt"):
        assert (folder / name).is_file(), name
    assert default_model_path().stat().st_size < 6e6
    sys.path.insert(0, str(REPO))
    import build_addon
    entries = build_addon.zip_entries("linux-x64", [])
    for name in ("hama16_asr.onnx", "MODEL_CARD.md", "LICENSE-MIT.txt", "LICENSE-Apache-2.0.txt"):
        assert f"{build_addon.ADDON_ID}/lib/models/speech_frontend/{name}" in entries
    assert f"{build_addon.ADDON_ID}/lib/backend/speech_frontend.py" in entries


def test_feature_cache_reads_back_a_second_call_and_misses_changed_audio_or_augmentation(frontend, real_clips,
                                                                                          tmp_path):
    from backend.speech_feature_cache import SpeechFeatureCache
    cache = SpeechFeatureCache(tmp_path / "cache", frontend)
    samples = real_clips["cmu_arctic_us_aew_a0001"]
    first = cache.features(samples, 16_000)
    assert (cache.hits, cache.misses) == (0, 1)
    expected = frontend.features(samples).stacked()
    assert first.shape == expected.shape and first.dtype == np.float32
    np.testing.assert_allclose(first, expected, atol=0.02 * np.abs(expected).max())
    second = cache.features(samples, 16_000)
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(second, first)
    changed = samples.copy()
    changed[1000] += np.float32(1e-4)
    cache.features(changed, 16_000)
    cache.features(samples, 16_000, augmentation="noise-15dB-seed0")
    assert (cache.hits, cache.misses) == (1, 3)
    stored = sorted(path.name for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert len(stored) == 3 and all(name.endswith(".npy") for name in stored)   # no temporary files left
    assert SpeechFeatureCache(tmp_path / "cache", frontend).features(samples, 16_000).shape == first.shape


def test_int8_candidate_keeps_the_phones_of_real_speech_within_its_stated_parity(frontend, real_clips, tmp_path):
    """scripts/quantize_hama_asr.py (the unshipped int8 front end): the transformer's eight weight products become
    int8 and nothing else, and on real speech its features stay within the parity benchmarks/README.md states
    (60 s: argmax 0.996, mean |Δ posterior| 4e-5, hidden 2.7 %), with margin."""
    import onnx
    sys.path.insert(0, str(REPO))
    from scripts.quantize_hama_asr import quantize
    path = tmp_path / "int8.onnx"
    quantize(default_model_path(), path)
    kinds = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert kinds.count("MatMulInteger") == 8 and kinds.count("MatMul") == 6   # mel, proj and 4 attention products
    quantised = SpeechFrontend(path)
    for name, samples in real_clips.items():
        reference, candidate = frontend.features(samples), quantised.features(samples)
        assert _argmax_agreement(candidate.log_posteriors, reference.log_posteriors) >= 0.98, name
        assert np.abs(np.exp(candidate.log_posteriors) - np.exp(reference.log_posteriors)).mean() < 2e-4, name
        hidden_error = np.linalg.norm(candidate.hidden - reference.hidden) / np.linalg.norm(reference.hidden)
        assert 1e-4 < hidden_error < 0.06, name   # int8 for real (not a float copy), yet close
