"""Speech features for the speech-mesh representation and PLRS: Kaldi log-mel fbank and window pairing.

Published PLRS evaluation (REFERENCE §2): the mesh runs at 30 fps and the audio is resampled to
19,200 Hz, so 640 samples are one mesh frame. A window of 5 mesh frames is 3200 samples; its 128-bin
log-mel fbank is computed *as if the samples were 16 kHz* (8 ms frames, 10 ms shift -> exactly 20
frames of 128 samples every 160), then normalised `(x + 4.2677393) / (4.5689974 * 2)`.

Kaldi settings (our reading of the published description, the AudioMAE / CAV-MAE convention):
htk_compat=True, use_energy=False (so htk_compat changes nothing), window_type="hanning" (symmetric
Hann), dither=0.0, remove_dc_offset=True, preemphasis 0.97, snip_edges=True, round_to_power_of_two=True,
low_freq=20 Hz, high_freq=0 (Nyquist), use_log_fbank=True, use_power=True, log floor = float32 epsilon.
Input samples are float in [-1, 1] (not int16-scaled), as the normalisation constants assume.
"""

from functools import lru_cache

import numpy as np

from backend.errors import AudioError, MeshError
from backend.frame_rate import MESH_FPS

PLRS_AUDIO_RATE = 19_200
SAMPLES_PER_FRAME = PLRS_AUDIO_RATE // MESH_FPS  # 640
WINDOW_FRAMES = 5
WINDOW_SAMPLES = WINDOW_FRAMES * SAMPLES_PER_FRAME  # 3200
FBANK_RATE = 16_000  # the rate the PLRS fbank pretends its 19.2 kHz samples have
FBANK_BINS = 128
FBANK_FRAMES = 20
FBANK_MEAN = -4.2677393
FBANK_STD = 4.5689974

PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
LOG_FLOOR = float(np.finfo(np.float32).eps)


def _mel(freq_hz):
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(freq_hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=32)
def _frame_geometry(sample_rate: float, frame_length_ms: float, frame_shift_ms: float) -> tuple[int, int, int]:
    """(window size, window shift, FFT size) in samples, truncated the way Kaldi/torchaudio do."""
    window_size = int(sample_rate * frame_length_ms * 0.001)
    window_shift = int(sample_rate * frame_shift_ms * 0.001)
    if window_size < 2 or window_shift < 1:
        raise ValueError(
            f"frame length {frame_length_ms} ms / shift {frame_shift_ms} ms at {sample_rate} Hz give "
            f"{window_size} / {window_shift} samples; expected at least 2 / 1"
        )
    fft_size = 1 << (window_size - 1).bit_length()
    return window_size, window_shift, fft_size


@lru_cache(maxsize=32)
def _hann_window(window_size: int) -> np.ndarray:
    """Symmetric Hann window (Kaldi's "hanning"), shape (window_size,), read-only."""
    window = np.hanning(window_size)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=32)
def _mel_filterbank(num_mel_bins: int, fft_size: int, sample_rate: float) -> np.ndarray:
    """Kaldi triangular mel filters on the power spectrum, shape (fft_size // 2 + 1, num_mel_bins), read-only.

    Filters are equally spaced in mel from LOW_FREQ_HZ to Nyquist; the Nyquist FFT bin gets weight 0.
    """
    nyquist = 0.5 * sample_rate
    if num_mel_bins <= 3:
        raise ValueError(f"num_mel_bins must be at least 4; got {num_mel_bins}")
    if not LOW_FREQ_HZ < nyquist:
        raise ValueError(f"sample rate {sample_rate} Hz is too low: Nyquist must exceed {LOW_FREQ_HZ} Hz")
    mel_low, mel_high = _mel(LOW_FREQ_HZ), _mel(nyquist)
    mel_step = (mel_high - mel_low) / (num_mel_bins + 1)
    edges = mel_low + mel_step * np.arange(num_mel_bins + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fft_mel = _mel(sample_rate / fft_size * np.arange(fft_size // 2))[None, :]
    rising = (fft_mel - left) / (centre - left)
    falling = (right - fft_mel) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (bins, fft_size // 2)
    filterbank = np.zeros((fft_size // 2 + 1, num_mel_bins))
    filterbank[:-1] = weights.T
    filterbank.flags.writeable = False
    return filterbank


def kaldi_fbank(
    samples: np.ndarray,
    sample_rate: int = FBANK_RATE,
    num_mel_bins: int = FBANK_BINS,
    frame_length_ms: float = 8.0,
    frame_shift_ms: float = 10.0,
) -> np.ndarray:
    """Kaldi log-mel filterbank with the settings in the module docstring.

    samples (N,) -> (frames, num_mel_bins), or batched (B, N) -> (B, frames, num_mel_bins); float32.
    frames = 1 + (N - window) // shift (snip_edges). Computed in float64 and vectorised over the batch.
    """
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2) or not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(
            f"fbank expects float samples of shape (N,) or (B, N); got dtype {samples.dtype}, shape {samples.shape}"
        )
    window_size, window_shift, fft_size = _frame_geometry(float(sample_rate), frame_length_ms, frame_shift_ms)
    if samples.shape[-1] < window_size:
        raise AudioError(
            f"fbank needs at least one frame of {window_size} samples ({frame_length_ms} ms at {sample_rate} Hz); "
            f"got {samples.shape[-1]}"
        )
    if not np.all(np.isfinite(samples)):
        raise AudioError("fbank input contains NaN or infinite samples; expected finite audio")
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64, copy=False), window_size, axis=-1)
    frames = frames[..., ::window_shift, :]  # (..., frames, window_size), a view
    frames = frames - frames.mean(axis=-1, keepdims=True)  # remove DC offset per frame
    previous = np.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)  # first sample repeats
    frames = (frames - PREEMPHASIS * previous) * _hann_window(window_size)
    power = np.abs(np.fft.rfft(frames, n=fft_size, axis=-1)) ** 2  # zero-padded to fft_size
    mel_energy = power @ _mel_filterbank(num_mel_bins, fft_size, float(sample_rate))
    return np.log(np.maximum(mel_energy, LOG_FLOOR)).astype(np.float32)


def normalise_fbank(fbank: np.ndarray) -> np.ndarray:
    """AudioMAE normalisation used by PLRS: (x - mean) / (2 std) with mean -4.2677393, std 4.5689974."""
    return ((np.asarray(fbank) - FBANK_MEAN) / (FBANK_STD * 2)).astype(np.float32)


def window_starts(num_frames: int, stride: int = WINDOW_FRAMES) -> np.ndarray:
    """Start frames (int64) of the WINDOW_FRAMES-frame windows that fit entirely in `num_frames` frames.

    stride 5 gives non-overlapping windows (PLRS); stride 1 a window at every frame (perceptual loss).
    """
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer; got {stride!r}")
    if int(num_frames) != num_frames or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative integer; got {num_frames!r}")
    return np.arange(0, int(num_frames) - WINDOW_FRAMES + 1, int(stride), dtype=np.int64)


def _check_starts(starts) -> np.ndarray:
    starts = np.asarray(starts)
    if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(f"starts must be a 1-D integer array; got dtype {starts.dtype}, shape {starts.shape}")
    if starts.size and starts.min() < 0:
        raise ValueError(f"starts must be non-negative; got minimum {starts.min()}")
    return starts.astype(np.int64)


def speech_windows(samples_19k2: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cut the speech windows paired with mesh windows: (N,) audio at 19.2 kHz -> (len(starts), 3200) float32.

    Window i is samples[s * 640 : s * 640 + 3200] for s = starts[i], zero-padded past the end of the audio.
    """
    samples = np.asarray(samples_19k2)
    if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(
            f"expected mono float audio of shape (N,) at {PLRS_AUDIO_RATE} Hz; "
            f"got dtype {samples.dtype}, shape {samples.shape}"
        )
    starts = _check_starts(starts)
    needed = int(starts.max()) * SAMPLES_PER_FRAME + WINDOW_SAMPLES if starts.size else 0
    padded = np.zeros(max(needed, samples.size), dtype=np.float32)
    padded[: samples.size] = samples
    index = starts[:, None] * SAMPLES_PER_FRAME + np.arange(WINDOW_SAMPLES)
    return padded[index]


def speech_window_features(windows: np.ndarray) -> np.ndarray:
    """Speech-encoder input: (B, 3200) windows -> (B, 20, 128) normalised fbank, computed as if 16 kHz."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise AudioError(f"expected speech windows of shape (B, {WINDOW_SAMPLES}); got shape {windows.shape}")
    return normalise_fbank(kaldi_fbank(windows, FBANK_RATE, FBANK_BINS, 8.0, 10.0))


def mesh_windows(vertices: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The mesh frames paired with each speech window: (T, V, 3) -> (len(starts), 5, V, 3).

    Every window must fit entirely in the T frames (use `window_starts`).
    """
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise MeshError(f"expected vertices of shape (T, V, 3); got shape {vertices.shape}")
    starts = _check_starts(starts)
    if starts.size and starts.max() + WINDOW_FRAMES > vertices.shape[0]:
        raise MeshError(
            f"window starting at frame {starts.max()} needs {WINDOW_FRAMES} frames but the clip has "
            f"{vertices.shape[0]} frames"
        )
    return vertices[starts[:, None] + np.arange(WINDOW_FRAMES)]
