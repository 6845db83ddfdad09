"""Audio loading and validation: one place that turns a user's file (or a dataset's array) into clean mono float32.

Everything downstream (features, inference, metrics) assumes what this module guarantees: 1-D float32
samples in [-1, 1], finite, at least `MIN_SECONDS` long, at most `max_seconds` long, not silent, at a
sample rate between `MIN_RATE` and `MAX_RATE`. Bad input raises an `AudioError` subclass whose message
says what was found and what is expected.

File formats: WAV, FLAC and Ogg (Vorbis/Opus; `.ogg` or `.opus`), read with soundfile (libsndfile). The container is decided
by the file's content, not its name, so a WAV saved without an extension still loads; anything else
(MP3, AIFF, text...) is reported as unsupported with the list of supported formats.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from backend.errors import AudioError

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus")
# soundfile's container names for the supported extensions (WAVEX/RF64 are WAV variants).
SUPPORTED_CONTAINERS = ("WAV", "WAVEX", "RF64", "FLAC", "OGG")
DEFAULT_MAX_SECONDS = 600.0
MIN_SECONDS = 0.2
MIN_RATE = 8_000
MAX_RATE = 192_000
# Silence: the peak absolute sample is below -60 dBFS (0.001 of full scale), i.e. nothing but noise floor.
SILENCE_PEAK_DBFS = -60.0
INT16_SCALE = 32768.0


class AudioNotFoundError(AudioError):
    """The path does not exist or is not a file."""


class AudioPermissionError(AudioError):
    """A file the user may not read (a permission problem, not a corrupt file)."""


class AudioDecodeError(AudioError):
    """A file with a supported extension that cannot be read (corrupt or truncated)."""


class UnsupportedAudioFormatError(AudioError):
    """A file that is not WAV, FLAC or Ogg."""


class UnsupportedSampleRateError(AudioError):
    """A sample rate outside MIN_RATE..MAX_RATE (or not a positive integer)."""


class InvalidSamplesError(AudioError):
    """An in-memory array that is not 1-D float audio within [-1, 1]."""


class EmptyAudioError(AudioError):
    """Audio with zero samples."""


class AudioTooShortError(AudioError):
    """Audio shorter than MIN_SECONDS."""


class AudioTooLongError(AudioError):
    """Audio longer than the allowed maximum."""


class SilentAudioError(AudioError):
    """Audio whose peak level is below SILENCE_PEAK_DBFS."""


class NonFiniteAudioError(AudioError):
    """Audio containing NaN or infinite samples."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about it (no samples decoded)."""

    path: str
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str


def _supported_list() -> str:
    return ", ".join(SUPPORTED_EXTENSIONS)


def _open_checked(path) -> soundfile.SoundFile:
    """Open `path` with soundfile after checking it exists, holds a supported container and a supported rate."""
    path = Path(path)
    if not path.exists():
        raise AudioNotFoundError(f"audio file not found: '{path}'")
    if not path.is_file():
        raise AudioNotFoundError(f"'{path}' is not a file (expected an audio file: {_supported_list()})")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"audio file '{path}' is empty (0 bytes)")
    try:   # libsndfile reports an unreadable file like a corrupt one: ask the OS first
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise AudioPermissionError(f"cannot read '{path}': permission denied (check the file's permissions "
                                   "or owner)") from None
    extension = path.suffix.lower()
    try:
        sound = soundfile.SoundFile(path)
    except (soundfile.SoundFileError, OSError) as error:
        if extension in SUPPORTED_EXTENSIONS:
            raise AudioDecodeError(
                f"cannot decode '{path}' as {extension} audio ({error}); the file may be corrupt or truncated"
            ) from error
        raise UnsupportedAudioFormatError(
            f"'{path}' is not a supported audio file (extension '{extension or 'none'}', content not recognised); "
            f"supported formats: {_supported_list()}"
        ) from error
    if sound.format not in SUPPORTED_CONTAINERS:
        found = f"{sound.format} ({sound.format_info})"
        sound.close()
        raise UnsupportedAudioFormatError(
            f"'{path}' contains {found} audio, which is not supported; supported formats: {_supported_list()} "
            f"(convert it first, e.g. `ffmpeg -i '{path.name}' out.wav`)"
        )
    try:
        check_rate(sound.samplerate)
    except UnsupportedSampleRateError as error:
        sound.close()
        raise UnsupportedSampleRateError(f"'{path}': {error}") from None
    return sound


def check_rate(rate) -> int:
    """Return `rate` as an int, or raise UnsupportedSampleRateError unless it is an integer in MIN_RATE..MAX_RATE."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer)):
        raise UnsupportedSampleRateError(f"sample rate must be an integer number of Hz; got {rate!r}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedSampleRateError(
            f"sample rate {int(rate)} Hz is not supported; expected {MIN_RATE}..{MAX_RATE} Hz"
        )
    return int(rate)


def audio_info(path) -> AudioInfo:
    """Read a file's header: duration, rate, channels, container and encoding. Same errors as `load_audio`
    for missing, unsupported or corrupt files and unsupported sample rates."""
    with _open_checked(path) as sound:
        return AudioInfo(
            path=str(path),
            duration_s=sound.frames / sound.samplerate,
            sample_rate=sound.samplerate,
            channels=sound.channels,
            frames=sound.frames,
            format=sound.format,
            subtype=sound.subtype,
        )


def _too_long_message(duration_s: float, max_seconds: float) -> str:
    return (
        f"audio is {duration_s:.1f} s ({duration_s / 60:.1f} min) long; the limit is {max_seconds:g} s "
        "(split it, or raise max_seconds)"
    )


def load_audio(path, rate: int | None = None, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Load an audio file as mono float32 in [-1, 1]; resample to `rate` when given.

    Channels are mixed by their mean; a float file that peaks above full scale is scaled to peak 1. The length
    limit is checked on the header before decoding, so a long file is refused cheaply. Returns (samples (n,), sample_rate).
    """
    out_rate = None if rate is None else check_rate(rate)
    with _open_checked(path) as sound:
        file_rate = sound.samplerate
        if sound.frames / file_rate > max_seconds:
            raise AudioTooLongError(f"'{path}': " + _too_long_message(sound.frames / file_rate, max_seconds))
        try:
            frames = sound.read(dtype="float32", always_2d=True)
        except (soundfile.SoundFileError, OSError) as error:
            raise AudioDecodeError(
                f"cannot decode the samples of '{path}' ({error}); the file may be corrupt or truncated"
            ) from error
    samples = frames.mean(axis=1, dtype=np.float32)
    if frames.shape[1] > 1 and peak_dbfs(samples) < SILENCE_PEAK_DBFS <= peak_dbfs(frames):
        raise SilentAudioError(
            f"'{path}': its {frames.shape[1]} channels cancel each other (one is the other inverted; "
            f"each peaks at {peak_dbfs(frames):.1f} dBFS), so their mono mix is silent; export one channel only")
    del frames
    out_rate = out_rate or file_rate
    try:
        _require_finite(samples)  # before clipping, which would turn inf into full scale
        # Float files have no full scale: a hot float recording (peaks of 2 or 150) is scaled down to peak 1,
        # keeping its waveform; clipping it would feed the front end a square wave.
        peak = 10 ** (peak_dbfs(samples) / 20)
        if peak > 1.0:
            samples = samples / np.float32(peak)
        if samples.size and out_rate != file_rate:
            samples = resample(samples, file_rate, out_rate)
        # Resampling (and lossy or float files) can overshoot full scale slightly: clip back to [-1, 1].
        samples = np.clip(samples, -1.0, 1.0)
        return check_samples(samples, out_rate, max_seconds), out_rate
    except AudioError as error:
        raise type(error)(f"'{path}': {error}") from error


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak absolute level in dB relative to full scale (1.0); -inf for digital silence.
    (max and -min rather than abs: no copy of a long input.)"""
    peak = max(float(np.max(samples)), -float(np.min(samples))) if samples.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def _require_finite(samples: np.ndarray) -> None:
    # A float64 sum is finite exactly when every float32/float64 sample is (no overflow at these magnitudes),
    # and needs no input-sized temporary; the per-sample count runs only on bad input.
    if not np.isfinite(np.sum(samples, dtype=np.float64)) and not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise NonFiniteAudioError(
            f"audio contains NaN or infinite samples ({bad} of {samples.size}); expected finite audio"
        )


def check_samples(samples: np.ndarray, rate: int, max_seconds: float = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Validate in-memory audio (samples (n,) float in [-1, 1] at `rate` Hz); return it as float32.

    Raises InvalidSamplesError (not 1-D float, or beyond full scale), EmptyAudioError, NonFiniteAudioError,
    AudioTooShortError (< MIN_SECONDS), AudioTooLongError (> max_seconds), SilentAudioError (peak below
    SILENCE_PEAK_DBFS) or UnsupportedSampleRateError.
    """
    rate = check_rate(rate)
    samples = np.asarray(samples)
    if not np.issubdtype(samples.dtype, np.floating):
        hint = " (int16 data: use from_int16)" if samples.dtype == np.int16 else ""
        raise InvalidSamplesError(f"expected float samples in [-1, 1]; got dtype {samples.dtype}{hint}")
    if samples.ndim != 1:
        raise InvalidSamplesError(
            f"expected mono samples of shape (n,); got shape {samples.shape} (mix channels to mono first)"
        )
    if samples.size == 0:
        raise EmptyAudioError("audio has no samples (0 frames)")
    _require_finite(samples)
    duration_s = samples.size / rate
    if duration_s < MIN_SECONDS:
        raise AudioTooShortError(
            f"audio is {duration_s:.3f} s long ({samples.size} samples at {rate} Hz); "
            f"at least {MIN_SECONDS} s is needed"
        )
    if duration_s > max_seconds:
        raise AudioTooLongError(_too_long_message(duration_s, max_seconds))
    level = peak_dbfs(samples)
    if level < SILENCE_PEAK_DBFS:
        found = "-inf dBFS (digital silence)" if level == -math.inf else f"{level:.1f} dBFS"
        raise SilentAudioError(
            f"audio is silent: peak level {found}; expected a peak above {SILENCE_PEAK_DBFS:g} dBFS"
        )
    if level > 0.0:
        raise InvalidSamplesError(
            f"samples exceed full scale: peak {10 ** (level / 20):.4g}; expected float samples in [-1, 1]"
        )
    return samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter: (..., n) -> (..., round(n * rate_out / rate_in)).

    The up/down factors are reduced by their gcd; the length is rounded half up. Identity when the rates match.
    """
    rate_in, rate_out = check_rate(rate_in), check_rate(rate_out)
    samples = np.asarray(samples)
    if rate_in == rate_out:
        return samples
    common = math.gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    length = samples.shape[-1]
    out_length = (2 * length * up + down) // (2 * down)
    return resample_poly(samples, up, down, axis=-1)[..., :out_length]


def from_int16(samples: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) (divide by 32768, as soundfile does)."""
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / np.float32(INT16_SCALE)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (times 32768, rounded, clipped): the exact inverse of `from_int16`."""
    samples = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(samples)):
        raise NonFiniteAudioError("cannot convert NaN or infinite samples to int16; expected finite audio")
    return np.clip(np.round(samples * INT16_SCALE), -32768, 32767).astype(np.int16)
