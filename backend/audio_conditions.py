"""Degraded listening conditions: noise, room reverb, telephone band, gain, a lossy codec (numpy/scipy/soundfile).

The real-speech benchmark replays held-out speech through these to see whether a generator's lip sync
survives the audio users actually have; training-time augmentation (training/corpus/augment.py) draws from
the same functions, plus the voice changes at the end of the list. Every function takes and returns mono
float samples (n,) at `rate` Hz, returns the same length (except `change_tempo`), and is deterministic for
a given `seed`.

    apply(audio, rate, "noise_10db", seed=0)      one named condition (CONDITIONS)
    add_noise(audio, snr_db, seed, colour)         white / pink / brown Gaussian noise at an SNR over the whole clip
    mix_at_snr(audio, noise, snr_db)               any noise track (e.g. `babble`) scaled to an SNR and added
    babble(sources, length, seed, talkers)         a crowd of other talkers from other clips' audio
    reverberate(audio, rate, rt60_s, seed)         convolution with a synthetic room impulse response
    room_impulse_response(rate, rt60_s, seed)      the response itself (direct path + exponential tail)
    telephone_band(audio, rate)                    8 kHz narrowband line: 300-3400 Hz, down to 8 kHz and back
    change_gain(audio, gain_db)                    level change, clipped to full scale
    codec_round_trip(audio, rate, kbps, codec)     Ogg Opus or MP3 encode/decode through libsndfile, in memory
    change_tempo(audio, rate, tempo)               faster / slower speech at the same pitch (WSOLA)
    shift_pitch(audio, rate, semitones, warp)      F0 moved, duration and formants kept (or warped by `warp`)
    warp_formants(audio, rate, factor)             spectral envelope stretched in frequency (vocal tract length)
"""

import io
from fractions import Fraction

import numpy as np
import soundfile
from scipy.fft import irfft, next_fast_len, rfft
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from backend.audio import resample
from backend.errors import AudioError

TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)   # the rates libopus encodes
# libsndfile maps compression_level 0..1 onto Opus bitrates; measured at 16 kHz mono speech:
# 0.8 -> 58 kbps, 0.9 -> 32 kbps, 0.95 -> 20 kbps, 1.0 -> 7 kbps (roughly linear in between above 0.9).
_OPUS_LEVEL_BY_KBPS = ((7.0, 1.0), (20.0, 0.95), (32.0, 0.9), (58.0, 0.8))
# MP3 (MPEG-2 layer III, variable bitrate) at 16 kHz on Kathleen speech, compression_level -> kbps: 0.95 -> 23.5,
# 0.9 -> 26.2, 0.7 -> 29.9, 0.5 -> 40.8, 0.3 -> 51.8, 0.0 -> 67.1. Constant-bitrate levels above 0.8 drop the rate
# to 8 kHz and delay the stream by ~25 ms, so VBR it is. Decoding is gapless (no delay, exact length).
_MP3_LEVEL_BY_KBPS = ((23.5, 0.95), (26.2, 0.9), (29.9, 0.7), (40.8, 0.5), (51.8, 0.3), (67.1, 0.0))
CODECS = ("opus", "mp3")
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}   # power spectrum ~ 1 / f^exponent

# WSOLA tempo change: 25 ms Hann frames at 50 % overlap, each placed up to +-10 ms (one 100 Hz pitch period)
# from its nominal input position where it best continues the previous frame's waveform.
WSOLA_FRAME_S = 0.025
WSOLA_TOLERANCE_S = 0.010
TEMPO_RANGE = (0.5, 2.0)
# Envelope warp: 32 ms frames, hop 8 ms; the spectral envelope is the log spectrum's first 1.5 ms of cepstrum
# (below the period of a 650 Hz voice, so it never holds the harmonics).
ENVELOPE_FRAME_S = 0.032
ENVELOPE_HOP_S = 0.008
ENVELOPE_LIFTER_S = 0.0015

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


def add_noise(audio, snr_db: float, seed: int = 0, colour: str = "white") -> np.ndarray:
    """audio + Gaussian noise of `colour` (NOISE_COLOURS) whose power is the clip's mean power / 10^(snr_db / 10)."""
    audio = _mono(audio)
    if colour not in NOISE_COLOURS:
        raise AudioError(f"unknown noise colour {colour!r}; expected one of {', '.join(NOISE_COLOURS)}")
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    if NOISE_COLOURS[colour]:   # shaped in the frequency domain, on a fast FFT length (cut back after)
        size = next_fast_len(audio.size, real=True)
        spectrum = rfft(noise, n=size)
        bins = np.arange(spectrum.size, dtype=np.float64)
        bins[0] = bins[1] if bins.size > 1 else 1.0   # no infinite DC
        noise = irfft(spectrum * bins ** (-NOISE_COLOURS[colour] / 2), n=size)[:audio.size]
    return mix_at_snr(audio, noise, snr_db)


def mix_at_snr(audio, noise, snr_db: float) -> np.ndarray:
    """audio + noise scaled so that mean(audio^2) / mean(noise^2) is 10^(snr_db / 10); noise is cut or looped."""
    audio, noise = _mono(audio), _mono(noise)
    noise = np.resize(noise, audio.size)
    noise_power = float(np.mean(noise ** 2))
    if noise_power <= 0.0:
        raise AudioError("the noise track is silent; expected a noise with some energy")
    return audio + noise * np.sqrt(float(np.mean(audio ** 2)) / 10 ** (snr_db / 10) / noise_power)


def babble(sources, length: int, seed: int = 0, talkers: int = 4) -> np.ndarray:
    """A crowd of `talkers` voices (n = length): each a source clip, looped from a random point, at equal RMS.

    `sources` are other clips' samples (each (m,), any m > 0); with fewer sources than talkers some speak twice
    from different points. The sum has unit RMS.
    """
    sources = [_mono(source) for source in sources]
    if not sources:
        raise AudioError("babble needs at least one source clip; got none")
    rng = np.random.default_rng(seed)
    crowd = np.zeros(length)
    for talker in range(talkers):
        source = sources[(talker + int(rng.integers(len(sources)))) % len(sources)]
        voice = np.roll(np.resize(source, max(length, source.size)), -int(rng.integers(source.size)))[:length]
        crowd += voice / max(float(np.sqrt(np.mean(voice ** 2))), 1e-9)
    return crowd / max(float(np.sqrt(np.mean(crowd ** 2))), 1e-9)


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


def noisy_and_room_copies(audio, rate: int, rng: np.random.Generator) -> list:
    """[noisy, room]: `audio` with 10-20 dB white or pink noise and in a room of RT60 0.3-0.8 s, each float32 with its
    peak kept within 0.99, drawn from `rng`: a clip as users record it (the bilabial detector's training copies, the
    lip closure guard's tuning takes)."""
    noisy = add_noise(audio, float(rng.uniform(10, 20)), seed=int(rng.integers(1 << 31)),
                      colour=str(rng.choice(["white", "pink"])))
    room = reverberate(audio, rate, float(rng.uniform(0.3, 0.8)), seed=int(rng.integers(1 << 31)))
    return [(copy / max(1.0, float(np.abs(copy).max()) / 0.99)).astype(np.float32) for copy in (noisy, room)]


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


def codec_round_trip(audio, rate: int, kbps: float = 16.0, codec: str = "opus") -> np.ndarray:
    """Encode in memory at about `kbps` and decode: Ogg Opus (7 to 58 kbps) or MP3 (VBR, 23.5 to 67 kbps).

    Both go through 16 kHz when `rate` is one the codec lacks (Opus: OPUS_RATES; MP3 here: 16 kHz only).
    """
    audio = _mono(audio)
    if codec not in CODECS:
        raise AudioError(f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}")
    table = _OPUS_LEVEL_BY_KBPS if codec == "opus" else _MP3_LEVEL_BY_KBPS
    if not table[0][0] <= kbps <= table[-1][0]:
        raise AudioError(f"{codec} bitrate {kbps} kbps is out of range; expected {table[0][0]:g} to "
                         f"{table[-1][0]:g} kbps")
    coded_rate = rate if codec == "opus" and rate in OPUS_RATES else 16000
    level = float(np.interp(kbps, *zip(*table)))
    buffer = io.BytesIO()
    samples = np.clip(resample(audio, rate, coded_rate), -1.0, 1.0)
    if codec == "opus":
        soundfile.write(buffer, samples, coded_rate, format="OGG", subtype="OPUS", compression_level=level)
    else:
        soundfile.write(buffer, samples, coded_rate, format="MP3", subtype="MPEG_LAYER_III",
                        compression_level=level, bitrate_mode="VARIABLE")
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float64")
    return _fit_length(resample(decoded, coded_rate, rate), audio.size)


def change_tempo(audio, rate: int, tempo: float) -> np.ndarray:
    """Speech `tempo` times as fast at the same pitch: (n,) -> (round-half-up(n / tempo),), WSOLA.

    An event at t s moves to t / tempo s (to within the +-10 ms search tolerance). `tempo` in TEMPO_RANGE.
    """
    audio = _mono(audio)
    if not TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]:
        raise AudioError(f"tempo {tempo} is out of range; expected {TEMPO_RANGE[0]:g} to {TEMPO_RANGE[1]:g}")
    return _wsola(audio, rate, tempo, int(np.floor(audio.size / tempo + 0.5)))


def _wsola(audio: np.ndarray, rate: int, tempo: float, length: int) -> np.ndarray:
    """Waveform-similarity overlap-add: output frame k (centre k * hop) copies the input frame near k * hop *
    tempo that best continues the previous copied frame (normalised cross-correlation), Hann-windowed;
    after digital silence it takes the nominal frame."""
    frame = 2 * int(round(WSOLA_FRAME_S * rate / 2))
    hop, tolerance = frame // 2, int(round(WSOLA_TOLERANCE_S * rate))
    frames = -(-length // hop) + 1
    margin = frame + tolerance + hop
    padded = np.pad(audio, (margin, margin + int(np.ceil(frames * hop * tempo))))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)   # periodic Hann: sums to 1 at 50 %
    out = np.zeros(frames * hop + frame)
    squares = np.concatenate(([0.0], np.cumsum(padded ** 2)))
    previous = 0
    for k in range(frames):
        nominal = margin + int(round(k * hop * tempo)) - hop
        template = padded[previous + hop: previous + hop + frame]
        if k == 0 or not np.any(template):
            start = nominal   # silence: back to the nominal position (no drift through pauses)
        else:
            region = padded[nominal - tolerance: nominal + tolerance + frame]
            correlation = np.correlate(region, template, mode="valid")
            energy = squares[frame:][nominal - tolerance: nominal + tolerance + 1] - \
                squares[nominal - tolerance: nominal + tolerance + 1]
            start = nominal - tolerance + int(np.argmax(correlation / np.sqrt(energy + 1e-12)))
        out[k * hop: k * hop + frame] += window * padded[start: start + frame]
        previous = start
    return out[hop: hop + length]


def warp_formants(audio, rate: int, factor: float) -> np.ndarray:
    """Move every formant from f to f x `factor` (0.5 to 2) at the same pitch and duration.

    A shorter vocal tract (child, many women) is factor > 1. Per 32 ms frame the spectral envelope (low
    quefrency cepstrum of the log magnitude) is replaced by the same envelope read at f / factor; phases and
    the harmonic fine structure stay.
    """
    audio = _mono(audio)
    if not 0.5 <= factor <= 2.0:
        raise AudioError(f"formant warp factor {factor} is out of range; expected 0.5 to 2")
    if factor == 1.0:
        return audio.copy()
    frame, hop = int(round(ENVELOPE_FRAME_S * rate)), int(round(ENVELOPE_HOP_S * rate))
    lifter = max(int(round(ENVELOPE_LIFTER_S * rate)), 2)
    window = np.hanning(frame + 2)[1:-1]
    padded = np.pad(audio, (frame, frame + hop))
    starts = np.arange(0, padded.size - frame + 1, hop)
    frames = padded[starts[:, None] + np.arange(frame)] * window
    spectrum = np.fft.rfft(frames, axis=1)
    log_magnitude = np.log(np.abs(spectrum) + 1e-9)
    cepstrum = np.fft.irfft(log_magnitude, n=frame, axis=1)
    cepstrum[:, lifter:frame - lifter + 1] = 0.0
    envelope = np.fft.rfft(cepstrum, axis=1).real
    source = np.minimum(np.arange(envelope.shape[1]) / factor, envelope.shape[1] - 1)
    lower = np.minimum(np.floor(source).astype(np.int64), envelope.shape[1] - 2)
    weight = source - lower
    warped = (1.0 - weight) * envelope[:, lower] + weight * envelope[:, lower + 1]
    frames = np.fft.irfft(spectrum * np.exp(warped - envelope), n=frame, axis=1) * window
    out = np.zeros(padded.size)
    norm = np.zeros(padded.size)
    for index, start in enumerate(starts):
        out[start:start + frame] += frames[index]
        norm[start:start + frame] += window ** 2
    return (out / np.maximum(norm, 1e-9))[frame: frame + audio.size]


def shift_pitch(audio, rate: int, semitones: float, formant_warp: float = 1.0) -> np.ndarray:
    """F0 x 2^(semitones / 12) (-12 to 12), duration kept; formants kept, or moved by `formant_warp`.

    Resampling by the pitch ratio (a rational approximation, denominator <= 1000) raises pitch and formants and
    shortens the clip; WSOLA restores the duration and an envelope warp by formant_warp / ratio puts the
    formants where asked, in one pass.
    """
    audio = _mono(audio)
    if not -12.0 <= semitones <= 12.0:
        raise AudioError(f"pitch shift {semitones} semitones is out of range; expected -12 to 12")
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(1000)
    if ratio == 1:
        return warp_formants(audio, rate, formant_warp)
    faster = resample_poly(audio, ratio.denominator, ratio.numerator)
    restored = _wsola(faster, rate, faster.size / audio.size, audio.size)
    return warp_formants(restored, rate, formant_warp / float(ratio))


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
