"""Degraded listening conditions: noise, room reverb, telephone band, gain, a lossy codec (numpy/scipy/soundfile).

The real-speech benchmark replays held-out speech through these to see whether a generator's lip sync
survives the audio users actually have; corpus builders can use the same functions for training-time
augmentation. Every function takes and returns mono float samples (n,) at `rate` Hz, returns the same
length, and is deterministic for a given `seed`.

    apply(audio, rate, "noise_10db", seed=0)      one named condition (CONDITIONS)
    add_noise(audio, snr_db, seed)                 white Gaussian noise at an SNR over the whole clip
    reverberate(audio, rate, rt60_s, seed)         convolution with a synthetic room impulse response
    room_impulse_response(rate, rt60_s, seed)      the response itself (direct path + exponential tail)
    telephone_band(audio, rate)                    8 kHz narrowband line: 300-3400 Hz, down to 8 kHz and back
    change_gain(audio, gain_db)                    level change, clipped to full scale
    codec_round_trip(audio, rate, kbps)            Ogg Opus encode/decode through libsndfile
"""

import io

import numpy as np
import soundfile
from scipy.signal import butter, fftconvolve, sosfilt

from backend.audio import resample
from backend.errors import AudioError

TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)   # the rates libopus encodes
# libsndfile maps compression_level 0..1 onto Opus bitrates; measured at 16 kHz mono speech:
# 0.8 -> 58 kbps, 0.9 -> 32 kbps, 0.95 -> 20 kbps, 1.0 -> 7 kbps (roughly linear in between above 0.9).
_OPUS_LEVEL_BY_KBPS = ((7.0, 1.0), (20.0, 0.95), (32.0, 0.9), (58.0, 0.8))

CONDITIONS = {
    "noise_10db": "white noise at 10 dB SNR",
    "reverb_0.5s": "synthetic room reverb, RT60 0.5 s",
    "telephone": "8 kHz telephone band, 300-3400 Hz",
    "gain_-20db": "level -20 dB",
    "opus_16kbps": "Ogg Opus round trip at about 16 kbps",
}


def _mono(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1 or audio.size == 0:
        raise AudioError(f"audio conditions need mono samples of shape (n,) with n > 0; got shape {audio.shape}")
    return audio


def add_noise(audio, snr_db: float, seed: int = 0) -> np.ndarray:
    """audio + white Gaussian noise whose power is the clip's mean power / 10^(snr_db / 10)."""
    audio = _mono(audio)
    power = float(np.mean(audio ** 2))
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    return audio + noise


def room_impulse_response(rate: int, rt60_s: float = 0.5, seed: int = 0) -> np.ndarray:
    """A synthetic room: a unit direct path, then from 5 ms Gaussian noise whose energy falls 60 dB in rt60_s.

    Length 1.2 x rt60_s. The tail's energy equals the direct path's (a listener a few metres from the talker).
    """
    if not 0.05 <= rt60_s <= 5.0:
        raise AudioError(f"RT60 {rt60_s} s is out of range; expected 0.05 to 5 s")
    length = int(round(1.2 * rt60_s * rate))
    times = np.arange(length) / rate
    tail = np.random.default_rng(seed).standard_normal(length) * np.exp(-np.log(1000.0) * times / rt60_s)
    tail[times < 0.005] = 0.0
    response = tail / np.sqrt(np.sum(tail ** 2))
    response[0] = 1.0
    return response


def reverberate(audio, rate: int, rt60_s: float = 0.5, seed: int = 0) -> np.ndarray:
    """audio convolved with room_impulse_response, cut to the input length and scaled back to its RMS."""
    audio = _mono(audio)
    wet = fftconvolve(audio, room_impulse_response(rate, rt60_s, seed))[: audio.size]
    return wet * np.sqrt(np.mean(audio ** 2) / max(float(np.mean(wet ** 2)), 1e-20))


def telephone_band(audio, rate: int) -> np.ndarray:
    """A narrowband phone line: resample to 8 kHz, 4th-order Butterworth band-pass 300-3400 Hz, resample back."""
    audio = _mono(audio)
    narrow = resample(audio, rate, TELEPHONE_RATE)
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    back = resample(sosfilt(sos, narrow), TELEPHONE_RATE, rate)
    return _fit_length(back, audio.size)


def change_gain(audio, gain_db: float) -> np.ndarray:
    """audio x 10^(gain_db / 20), clipped to [-1, 1] (a louder copy clips like a real recording would)."""
    return np.clip(_mono(audio) * 10 ** (gain_db / 20), -1.0, 1.0)


def codec_round_trip(audio, rate: int, kbps: float = 16.0) -> np.ndarray:
    """Encode to Ogg Opus in memory at about `kbps` (7 to 58) and decode; rates Opus lacks go through 16 kHz."""
    audio = _mono(audio)
    if not _OPUS_LEVEL_BY_KBPS[0][0] <= kbps <= _OPUS_LEVEL_BY_KBPS[-1][0]:
        raise AudioError(f"Opus bitrate {kbps} kbps is out of range; expected {_OPUS_LEVEL_BY_KBPS[0][0]:g} to "
                         f"{_OPUS_LEVEL_BY_KBPS[-1][0]:g} kbps")
    coded_rate = rate if rate in OPUS_RATES else 16000
    level = float(np.interp(kbps, *zip(*_OPUS_LEVEL_BY_KBPS)))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(resample(audio, rate, coded_rate), -1.0, 1.0), coded_rate, format="OGG",
                    subtype="OPUS", compression_level=level)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float64")
    return _fit_length(resample(decoded, coded_rate, rate), audio.size)


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    return np.pad(samples[:length], (0, max(length - samples.size, 0)))


def apply(audio, rate: int, condition: str, seed: int = 0) -> np.ndarray:
    """One named condition from CONDITIONS -> float32 samples (n,) in [-1, 1]; AudioError for an unknown name."""
    if condition == "noise_10db":
        out = add_noise(audio, 10.0, seed)
    elif condition == "reverb_0.5s":
        out = reverberate(audio, rate, 0.5, seed)
    elif condition == "telephone":
        out = telephone_band(audio, rate)
    elif condition == "gain_-20db":
        out = change_gain(audio, -20.0)
    elif condition == "opus_16kbps":
        out = codec_round_trip(audio, rate, 16.0)
    else:
        raise AudioError(f"unknown audio condition {condition!r}; expected one of {', '.join(CONDITIONS)}")
    return np.clip(out, -1.0, 1.0).astype(np.float32)
