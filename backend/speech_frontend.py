"""The speech front end: a frozen phoneme recogniser pretrained on real speech, run with onnxruntime.

What generators and probes hear instead of (or beside) the 80-bin log-mel they learned from scratch. The model
is hama 1.6.0's CTC phoneme recogniser (`asr_waveform.hama` in the `hama==1.6.0` wheel): `scripts/convert_hama_asr.py`
reads that weight pack and builds our own ONNX graph of the network around it, `models/speech_frontend/hama16_asr.onnx`
(see the MODEL_CARD.md there). Checked frame by frame against the wheel's native engine (tests/test_speech_frontend.py).
Needs numpy and onnxruntime only, so it runs wherever the add-on runs.

Network (REFERENCE §6b; details read from the weights and the hama repository's description of its graph):
16 kHz waveform -> reflect-pad 200 -> STFT (400-sample window, hop 160) power -> 80 mel bands -> log(max(·, 1e-10)),
rounded to float16 -> stem conv (80 -> 256, kernel 3, stride 2) + GELU -> 11 blocks [depthwise conv (kernel 9,
dilations 1 1 2 2 4 1 1 2 2 4 1) -> pointwise conv -> SiLU -> squeeze-excitation over the whole input -> + residual]
-> 2 pre-norm transformer layers (4 heads, no positional encoding, FF 256 -> 512 -> 256 with GELU) = the 256-d
hidden layer -> linear 256 -> 191 -> log-softmax = CTC log-posteriors (189 IPA tokens, word boundary, blank).
Output frame t is centred on input sample 320 t (50 frames per second); T = n // 320 + 1.

The squeeze-excitation and the attention see the whole input, so a frame's features depend on its context (a
clip inside 7-18 s of other speech keeps 92-94 % of its frame argmaxes); the network takes at most 30 s.
`SpeechFrontend.features` therefore runs any length as 20 s chunks that overlap by `OVERLAP_FRAMES` and
crossfades the features inside each overlap, away from the chunk edges; memory holds one chunk's activations
plus the output.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from backend.audio import check_samples, resample
from backend.frame_rate import MESH_FPS, resample_frames
from backend.models import default_models_dir
from backend.onnx_session import open_session

SAMPLE_RATE = 16_000
FRAME_RATE = 50
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # 320
POSTERIOR_DIM = 191
HIDDEN_DIM = 256
FEATURE_DIM = POSTERIOR_DIM + HIDDEN_DIM  # 447
BLANK_TOKEN = 190
WORD_BOUNDARY_TOKEN = 189

MODEL_FILE = "hama16_asr.onnx"
TOKENS_FILE = "tokens.json"    # the 191 output names (IPA symbols, "<wb>", "<blank>")
BILABIAL_TOKENS = ("p", "pʰ", "p͈", "b", "m")
MODEL_NAME = "speech_frontend"

# The network (scripts/convert_hama_asr.py builds the graph from these).
N_FFT = 400
STFT_HOP = 160
STFT_PAD = 200
MEL_FLOOR = 1e-10
BLOCKS = 11
DILATIONS = (1, 1, 2, 2, 4, 1, 1, 2, 2, 4, 1)
DEPTHWISE_KERNEL = 9
LAYERS = 2
HEADS = 4
LAYER_NORM_EPS = 1e-5
GELU_SQRT2 = 1.4140625  # the original graph's float16-rounded sqrt(2)

# Chunking: the network takes at most 3000 STFT frames (30 s); chunks are shorter, 20 s, because the attention's
# cost grows with the square of the length (60 s in 4 chunks of 18 s ran ~15 % faster than in 3 of 23 s or 6 of 13 s).
MAX_FORWARD_FRAMES = 1500    # 30 s: the network's own limit
CHUNK_FRAMES = 1000          # 20 s of audio per chunk
OVERLAP_FRAMES = 200         # 4 s shared by neighbouring chunks
EDGE_FRAMES = 50             # frames next to a chunk edge that the crossfade never uses
# Level: inputs are scaled so that their loud frames sit at this RMS (see `level_gain`).
REFERENCE_LEVEL_DBFS = -20.0
LOUD_FRAME_PERCENTILE = 95.0
LEVEL_FRAME = 320            # 20 ms frames for the level estimate

# The network's own delay: its /p b m/ posterior peaks a median 15 ms after the centre of the labelled phone
# (Kathleen held-out takes, pocketsphinx labels; benchmarks/frontend_probe.py --delay-only; MODEL_CARD.md).
# A generator reading these features should look this far ahead (or shift its targets by it).
BILABIAL_DELAY_S = 0.015


@dataclass(frozen=True)
class SpeechFeatures:
    """Front-end output at FRAME_RATE: frame t is centred on t / FRAME_RATE seconds of the input.

    log_posteriors: (T, 191) float32 CTC log-probabilities (rows log-sum-exp to 0 outside crossfades);
    hidden: (T, 256) float32, the last transformer layer's output.
    """

    log_posteriors: np.ndarray
    hidden: np.ndarray

    @property
    def frames(self) -> int:
        return self.log_posteriors.shape[0]

    def stacked(self) -> np.ndarray:
        """(T, 447) float32: log-posteriors then hidden, the layout probes and generators read."""
        return np.concatenate([self.log_posteriors, self.hidden], axis=1)


def frame_count(num_samples: int) -> int:
    """Output frames for `num_samples` samples at 16 kHz."""
    return num_samples // SAMPLES_PER_FRAME + 1


def default_model_path() -> Path:
    return default_models_dir(MODEL_NAME) / MODEL_FILE


@lru_cache(maxsize=1)
def token_names() -> tuple:
    """The names of the 191 posterior columns (shipped tokens.json)."""
    return tuple(json.loads((default_models_dir(MODEL_NAME) / TOKENS_FILE).read_text(encoding="utf-8")))


def bilabial_columns() -> list:
    """Posterior columns of /p b m/ (BILABIAL_TOKENS)."""
    names = token_names()
    return [names.index(token) for token in BILABIAL_TOKENS]


def level_gain(samples: np.ndarray) -> float:
    """The gain that puts the loud 20 ms frames of `samples` (95th percentile of frame RMS) at
    REFERENCE_LEVEL_DBFS. The network is not level-invariant (its log-mel floor and squeeze-excitation are
    not), so a −20 dB copy must be brought back to the original's level; one gain per input keeps the speech's
    own dynamics. Computed frame by frame (no copy of the input)."""
    frames = samples[: samples.size // LEVEL_FRAME * LEVEL_FRAME].reshape(-1, LEVEL_FRAME)
    if frames.shape[0] == 0:
        frames = samples[None, :]
    energy = np.concatenate([np.square(frames[start:start + 4096]).mean(axis=1)   # blocks: no input-sized copy
                             for start in range(0, frames.shape[0], 4096)])
    rms = np.sqrt(energy)
    loud = float(np.percentile(rms, LOUD_FRAME_PERCENTILE))
    return 10 ** (REFERENCE_LEVEL_DBFS / 20) / loud if loud > 0.0 else 1.0


class SpeechFrontend:
    """hama 1.6.0's phoneme recogniser. `features(samples, rate)` for any length, rate and level;
    `forward(samples16k)` for one ≤ 30 s piece exactly as the original network computes it.
    `threads`: onnxruntime intra-op threads (1 keeps a shared machine or Blender's UI responsive)."""

    def __init__(self, model_path=None, threads: int = 1):
        path = Path(model_path) if model_path is not None else default_model_path()
        self.model_path = path
        if not path.is_file():
            raise FileNotFoundError(f"speech front end model not found: '{path}' (expected {MODEL_FILE} "
                                    "from scripts/convert_hama_asr.py)")
        self.session = open_session(path, threads)

    # ---- one piece, exactly the network ----

    def forward(self, samples: np.ndarray) -> tuple:
        """One piece of 16 kHz float audio, at most 30 s ((n,), 200 < n < 480,000) ->
        (log_posteriors (T, 191), hidden (T, 256)) float32, T = n // 320 + 1."""
        if samples.size <= STFT_PAD:
            raise ValueError(f"the speech front end needs more than {STFT_PAD} samples; got {samples.size}")
        if samples.size // STFT_HOP + 1 > 2 * MAX_FORWARD_FRAMES:
            raise ValueError(f"forward takes at most 30 s ({2 * MAX_FORWARD_FRAMES} STFT frames); got "
                             f"{samples.size / SAMPLE_RATE:.1f} s (use features(), which chunks)")
        waveform = np.ascontiguousarray(samples, dtype=np.float32)[None]
        log_posteriors, hidden = self.session.run(["log_posteriors", "hidden"], {"waveform": waveform})
        return log_posteriors[0], hidden[0]

    # ---- any length, rate and level ----

    def features(self, samples: np.ndarray, rate: int = SAMPLE_RATE, normalise: bool = True) -> SpeechFeatures:
        """Mono float audio in [-1, 1] at any rate backend.audio accepts (any length it accepts) ->
        SpeechFeatures at 50 Hz, T = frame_count(samples at 16 kHz).

        Resampled to 16 kHz with backend.audio.resample (a 16 kHz copy for other rates); scaled by `level_gain`
        unless `normalise` is False; run in overlapping 20 s chunks with the features crossfaded in each overlap.
        Memory beyond the output (T × 447 float32) is one chunk's activations, whatever the length.
        """
        samples = check_samples(samples, rate, max_seconds=np.inf)
        if rate != SAMPLE_RATE:
            samples = resample(samples, rate, SAMPLE_RATE).astype(np.float32)
        gain = np.float32(level_gain(samples) if normalise else 1.0)
        total = frame_count(samples.size)
        log_posteriors = np.empty((total, POSTERIOR_DIM), dtype=np.float32)
        hidden = np.empty((total, HIDDEN_DIM), dtype=np.float32)
        previous_end = 0
        for start, end in chunk_spans(total):
            piece = samples[start * SAMPLES_PER_FRAME:end * SAMPLES_PER_FRAME - 1]   # exactly end - start frames
            piece_posteriors, piece_hidden = self.forward(piece * gain)
            for out, new in ((log_posteriors, piece_posteriors[:end - start]), (hidden, piece_hidden[:end - start])):
                _stitch(out, new, start, previous_end)
            previous_end = end
        return SpeechFeatures(log_posteriors, hidden)


def chunk_spans(total: int) -> list:
    """(first, end) output frames of each chunk for an input of `total` frames: the fewest chunks of at most
    CHUNK_FRAMES that overlap by at least OVERLAP_FRAMES, all of one length (so every chunk of a long input has
    ≥ 12 s of context, and the attention's quadratic cost is spread evenly)."""
    if total <= CHUNK_FRAMES:
        return [(0, total)]
    count = -(-(total - OVERLAP_FRAMES) // (CHUNK_FRAMES - OVERLAP_FRAMES))
    length = -(-(total + (count - 1) * OVERLAP_FRAMES) // count)
    return [(k * (total - length) // (count - 1), k * (total - length) // (count - 1) + length) for k in range(count)]


def to_mesh_rate(features: np.ndarray, frames: int) -> np.ndarray:
    """(T50, D) front-end features at FRAME_RATE -> (frames, D) float32 at the mesh rate (30 fps): THE 50 -> 30 Hz
    resampling that generators are trained and run on. Mesh frame t lies at t / 30 s, i.e. at front-end position
    c = t * 50 / 30; its value is a triangle-weighted mean of the front-end frames within one mesh frame of c
    (half-width 5/3 front-end frames: linear interpolation widened so that every front-end frame, e.g. a 20 ms
    CTC spike, reaches at least one mesh frame with weight >= 1/3). Positions past the last frame use the last."""
    features = np.asarray(features, dtype=np.float32)
    width = FRAME_RATE / MESH_FPS
    centres = np.arange(frames) * width
    first = np.floor(centres - width).astype(np.int64) + 1
    taps = [first + k for k in range(int(np.ceil(2 * width)))]
    weights = [np.maximum(0.0, 1.0 - np.abs(tap - centres) / width) for tap in taps]
    total = np.sum(weights, axis=0)
    out = np.zeros((frames, features.shape[1]), dtype=np.float32)
    last = features.shape[0] - 1
    for tap, weight in zip(taps, weights):
        out += (weight / total).astype(np.float32)[:, None] * features[np.clip(tap, 0, last)]
    return out


def _stitch(out: np.ndarray, new: np.ndarray, start: int, previous_end: int) -> None:
    """Write a chunk's frames `new` (covering out[start:start + len(new)]) into `out`, crossfading linearly
    with what the previous chunk wrote up to `previous_end`, skipping EDGE_FRAMES at either chunk edge."""
    if previous_end <= start:
        out[start:start + new.shape[0]] = new
        return
    fade_start, fade_end = start + EDGE_FRAMES, previous_end - EDGE_FRAMES
    weight = ((np.arange(fade_start, fade_end) - fade_start + 0.5) / (fade_end - fade_start))[:, None]
    out[fade_start:fade_end] = ((1.0 - weight) * out[fade_start:fade_end]
                                + weight * new[fade_start - start:fade_end - start])
    out[fade_end:start + new.shape[0]] = new[fade_end - start:]


def features_at_fps(stacked: np.ndarray, num_frames: int, fps: float = MESH_FPS) -> np.ndarray:
    """(T, 447) features at FRAME_RATE -> (num_frames, 447) float32 at `fps`: row j is the features at time
    j / fps (linear interpolation, backend.frame_rate.resample_frames), the last row repeated past the end of the
    audio and rows past `num_frames` dropped, so row j pairs with mesh frame j. This is the speech-mesh
    representation's resampling (models/speech_mesh and models/plrs_evaluator were trained on it); generators use
    `to_mesh_rate`. Two rules for one concern until the representation is retrained on `to_mesh_rate`."""
    stacked = np.asarray(stacked, dtype=np.float32)
    if stacked.ndim != 2 or stacked.shape[0] == 0:
        raise ValueError(f"expected front-end features of shape (T >= 1, D); got {stacked.shape}")
    resampled = resample_frames(stacked, FRAME_RATE, fps).astype(np.float32)[:num_frames]
    if len(resampled) < num_frames:
        resampled = np.concatenate([resampled, np.repeat(resampled[-1:], num_frames - len(resampled), axis=0)])
    return np.ascontiguousarray(resampled)


@lru_cache(maxsize=2)
def load_frontend(model_path=None) -> SpeechFrontend:
    """The shipped front end (or the one at `model_path`), loaded once per process (one thread)."""
    return SpeechFrontend(model_path)
