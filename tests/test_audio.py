"""Tests for backend.audio: every bad-input error (type and message), format and rate paths, properties."""

import math

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import audio
from backend.audio import (
    AudioDecodeError,
    AudioNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    EmptyAudioError,
    InvalidSamplesError,
    NonFiniteAudioError,
    SilentAudioError,
    UnsupportedAudioFormatError,
    UnsupportedSampleRateError,
    audio_info,
    check_samples,
    from_int16,
    load_audio,
    resample,
    to_int16,
)
from backend.errors import AudioError

COMMON_RATES = (8000, 11025, 16000, 19200, 22000, 22050, 32000, 44100, 48000, 96000)


def tone(seconds: float, rate: int, freq: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    """Synthetic sine test signal, float64 (n,)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def write(path, samples, rate, subtype=None):
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def test_error_family():
    for error in (
        AudioNotFoundError, AudioDecodeError, UnsupportedAudioFormatError, UnsupportedSampleRateError,
        InvalidSamplesError, EmptyAudioError, AudioTooShortError, AudioTooLongError, SilentAudioError,
        NonFiniteAudioError,
    ):
        assert issubclass(error, AudioError)


# ---- file errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reader", [load_audio, audio_info])
def test_missing_file(tmp_path, reader):
    with pytest.raises(AudioNotFoundError, match=r"audio file not found: '.*nope\.wav'"):
        reader(tmp_path / "nope.wav")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(AudioNotFoundError, match=r"is not a file \(expected an audio file: \.wav, \.flac, \.ogg, \.opus\)"):
        load_audio(tmp_path)


@pytest.mark.parametrize("reader", [load_audio, audio_info])
def test_corrupt_wav(tmp_path, reader):
    path = tmp_path / "broken.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioDecodeError, match=r"cannot decode '.*broken\.wav' as \.wav audio .*corrupt or truncated"):
        reader(path)


def test_truncated_flac_fails_while_decoding(tmp_path):
    whole = write(tmp_path / "whole.flac", np.random.default_rng(1).uniform(-0.5, 0.5, 48000), 16000)
    path = tmp_path / "truncated.flac"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert audio_info(path).frames == 48000  # the header is intact...
    message = r"cannot decode the samples of '.*truncated\.flac' .*corrupt or truncated"
    with pytest.raises(AudioDecodeError, match=message):
        load_audio(path)  # ...the samples are not


@pytest.mark.parametrize("reader", [load_audio, audio_info])
def test_text_file_is_unsupported(tmp_path, reader):
    path = tmp_path / "notes.txt"
    path.write_text("this is not audio\n" * 100)
    with pytest.raises(
        UnsupportedAudioFormatError,
        match=r"not a supported audio file \(extension '\.txt', content not recognised\); "
        r"supported formats: \.wav, \.flac, \.ogg",
    ):
        reader(path)


@pytest.mark.parametrize("reader", [load_audio, audio_info])
def test_mp3_is_unsupported(tmp_path, reader):
    path = write(tmp_path / "speech.mp3", tone(1.0, 16000), 16000)
    with pytest.raises(
        UnsupportedAudioFormatError, match=r"contains MP3 .* not supported; supported formats: \.wav, \.flac, \.ogg"
    ):
        reader(path)


def test_fake_mp3_extension_without_audio(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3 but nothing else")
    with pytest.raises(UnsupportedAudioFormatError, match=r"extension '\.mp3', content not recognised"):
        load_audio(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match=r"'.*empty\.wav' is empty \(0 bytes\)"):
        load_audio(path)


def test_wav_with_no_frames(tmp_path):
    path = write(tmp_path / "header_only.wav", np.zeros(0), 16000)
    assert audio_info(path).frames == 0
    with pytest.raises(EmptyAudioError, match=r"header_only\.wav': audio has no samples \(0 frames\)"):
        load_audio(path)


def test_too_short_file(tmp_path):
    path = write(tmp_path / "short.wav", tone(0.1, 16000), 16000)
    with pytest.raises(AudioTooShortError, match=r"short\.wav': audio is 0\.100 s long .* at least 0\.2 s is needed"):
        load_audio(path)


def test_digital_silence(tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(16000), 16000)
    with pytest.raises(SilentAudioError, match=r"silent: peak level -inf dBFS \(digital silence\); .*above -60 dBFS"):
        load_audio(path)


def test_near_silence_reports_peak_level(tmp_path):
    path = write(tmp_path / "hiss.wav", tone(1.0, 16000, amplitude=10 ** (-70 / 20)), 16000, subtype="FLOAT")
    with pytest.raises(SilentAudioError, match=r"peak level -70\.0 dBFS; expected a peak above -60 dBFS"):
        load_audio(path)


def test_quiet_but_not_silent_loads(tmp_path):
    path = write(tmp_path / "quiet.wav", tone(1.0, 16000, amplitude=10 ** (-50 / 20)), 16000)
    samples, _ = load_audio(path)
    assert audio.peak_dbfs(samples) == pytest.approx(-50.0, abs=0.1)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_samples_in_float_wav(tmp_path, bad_value):
    samples = tone(1.0, 16000)
    samples[100:110] = bad_value
    path = write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match=r"nan\.wav': audio contains NaN or infinite samples \(10 of 16000\)"):
        load_audio(path)


def test_eleven_minute_file_is_refused_before_decoding(tmp_path):
    path = write(tmp_path / "long.wav", np.zeros(11 * 60 * 8000, dtype=np.int16), 8000)
    with pytest.raises(AudioTooLongError, match=r"audio is 660\.0 s \(11\.0 min\) long; the limit is 600 s"):
        load_audio(path)


def test_max_seconds_can_be_raised_and_lowered(tmp_path):
    path = write(tmp_path / "two.wav", tone(2.0, 8000), 8000)
    with pytest.raises(AudioTooLongError, match=r"audio is 2\.0 s .* the limit is 1\.5 s"):
        load_audio(path, max_seconds=1.5)
    assert load_audio(path, max_seconds=2.0)[0].size == 16000


@pytest.mark.parametrize("file_rate", [4000, 200_000])
def test_file_rate_outside_range(tmp_path, file_rate):
    path = write(tmp_path / "odd_rate.wav", tone(1.0, file_rate, freq=100), file_rate)
    message = rf"odd_rate\.wav': sample rate {file_rate} Hz is not supported; expected 8000\.\.192000 Hz"
    with pytest.raises(UnsupportedSampleRateError, match=message):
        audio_info(path)
    with pytest.raises(UnsupportedSampleRateError, match=message):
        load_audio(path)


@pytest.mark.parametrize("rate", [7999, 192_001, 0, -16000])
def test_requested_rate_outside_range(tmp_path, rate):
    path = write(tmp_path / "ok.wav", tone(1.0, 16000), 16000)
    with pytest.raises(UnsupportedSampleRateError, match=rf"sample rate {rate} Hz is not supported"):
        load_audio(path, rate=rate)


@pytest.mark.parametrize("rate", [16000.0, "16000", None, True])
def test_rate_must_be_an_integer(rate):
    with pytest.raises(UnsupportedSampleRateError, match=r"sample rate must be an integer number of Hz; got"):
        check_samples(tone(1.0, 16000), rate)


# ---- in-memory validation ----------------------------------------------------------------------------------

def test_check_samples_rejects_int_arrays():
    message = r"expected float samples in \[-1, 1\]; got dtype int16 \(int16 data: use from_int16\)"
    with pytest.raises(InvalidSamplesError, match=message):
        check_samples(np.ones(16000, dtype=np.int16), 16000)


def test_check_samples_rejects_multichannel():
    with pytest.raises(InvalidSamplesError, match=r"expected mono samples of shape \(n,\); got shape \(16000, 2\)"):
        check_samples(np.zeros((16000, 2)), 16000)


def test_check_samples_rejects_beyond_full_scale():
    message = r"samples exceed full scale: peak 1000; expected float samples in \[-1, 1\]"
    with pytest.raises(InvalidSamplesError, match=message):
        check_samples(tone(1.0, 16000, amplitude=1000.0), 16000)


def test_check_samples_errors():
    with pytest.raises(EmptyAudioError, match=r"audio has no samples \(0 frames\)"):
        check_samples(np.zeros(0), 16000)
    with pytest.raises(AudioTooShortError, match=r"0\.199 s long \(3184 samples at 16000 Hz\)"):
        check_samples(tone(0.199, 16000), 16000)
    with pytest.raises(AudioTooLongError, match=r"audio is 3\.0 s \(0\.1 min\) long; the limit is 2 s"):
        check_samples(tone(3.0, 8000), 8000, max_seconds=2.0)
    with pytest.raises(SilentAudioError, match=r"peak level -inf dBFS"):
        check_samples(np.zeros(8000), 8000)
    with pytest.raises(NonFiniteAudioError, match=r"NaN or infinite samples \(1 of 8000\)"):
        check_samples(np.r_[tone(1.0, 8000)[:-1], np.nan], 8000)


def test_check_samples_returns_float32():
    samples = check_samples(tone(0.2, 16000), 16000)
    assert samples.dtype == np.float32 and samples.shape == (3200,)


def test_to_int16_rejects_non_finite():
    with pytest.raises(NonFiniteAudioError, match=r"cannot convert NaN or infinite samples to int16"):
        to_int16(np.array([0.0, np.nan]))


def test_int16_conversions_round_trip_exactly():
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    assert np.array_equal(to_int16(from_int16(pcm)), pcm)
    assert np.array_equal(to_int16(np.array([-1.5, -1.0, 1.0, 1.5])), [-32768, -32768, 32767, 32767])


# ---- formats, channels, rates ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, subtype",
    [("a.wav", "PCM_16"), ("a.wav", "PCM_24"), ("a.wav", "FLOAT"), ("a.flac", "PCM_16"), ("a.ogg", "VORBIS")],
)
def test_format_round_trips(tmp_path, name, subtype):
    original = tone(1.0, 16000, amplitude=0.6)
    path = write(tmp_path / name, original, 16000, subtype=subtype)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, subtype)
    assert info.duration_s == pytest.approx(1.0)
    samples, rate = load_audio(path)
    assert rate == 16000 and samples.dtype == np.float32 and samples.shape == (16000,)
    if subtype == "VORBIS":  # lossy: compare the waveform, not the bits
        assert np.corrcoef(samples, original)[0, 1] > 0.999
    else:
        assert np.max(np.abs(samples - original)) <= 1.0 / 2**15


def test_int16_wav_scaling_matches_to_int16(tmp_path):
    pcm = (tone(1.0, 16000) * 32767).astype(np.int16)
    path = write(tmp_path / "pcm.wav", pcm, 16000)
    samples, _ = load_audio(path)
    assert np.array_equal(to_int16(samples), pcm)


def test_content_decides_when_extension_is_missing_or_odd(tmp_path):
    original = tone(1.0, 16000)
    for name in ("recording", "recording.audio"):
        path = tmp_path / name
        soundfile.write(path, original, 16000, format="FLAC")
        assert audio_info(path).format == "FLAC"
        assert load_audio(path)[0].shape == (16000,)


def test_stereo_and_multichannel_are_mixed_by_mean(tmp_path):
    channels = np.stack([tone(1.0, 16000, 200, 0.5), tone(1.0, 16000, 300, 0.25), np.full(16000, 0.1)], axis=1)
    path = write(tmp_path / "three.wav", channels, 16000, subtype="FLOAT")
    assert audio_info(path).channels == 3
    samples, _ = load_audio(path)
    np.testing.assert_allclose(samples, channels.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("rate_in, rate_out", [(16000, 16000), (8000, 16000), (44100, 16000), (48000, 16000),
                                               (16000, 19200), (22000, 19200), (44100, 19200), (192000, 8000)])
def test_every_rate_path(tmp_path, rate_in, rate_out):
    path = write(tmp_path / "rate.wav", tone(0.5, rate_in, freq=300), rate_in, subtype="FLOAT")
    samples, rate = load_audio(path, rate=rate_out)
    assert rate == rate_out and samples.dtype == np.float32
    assert samples.size == round(0.5 * rate_out)
    expected = 0.5 * np.sin(2 * np.pi * 300 * np.arange(samples.size) / rate_out)
    middle = slice(rate_out // 20, -rate_out // 20)  # the filter's edge transients are excluded
    assert np.max(np.abs(samples[middle] - expected[middle])) < 5e-3


def test_rate_none_keeps_the_file_rate(tmp_path):
    path = write(tmp_path / "native.wav", tone(0.5, 22050), 22050)
    assert load_audio(path)[1] == 22050


def test_resample_clip_when_overshooting(tmp_path):
    square = np.sign(tone(0.5, 8000, freq=50, amplitude=1.0))
    square[square == 0] = 1.0
    path = write(tmp_path / "square.wav", square, 8000, subtype="FLOAT")
    samples, _ = load_audio(path, rate=44100)
    assert np.max(np.abs(resample(square, 8000, 44100))) > 1.0  # the filter rings past full scale...
    assert np.max(np.abs(samples)) <= 1.0  # ...and load_audio clips it back


def test_hot_float_file_is_scaled_to_full_scale_not_clipped(tmp_path):
    speech_like = tone(0.5, 16000, freq=220, amplitude=1.0) * np.linspace(0.2, 1.0, 8000)
    hot = write(tmp_path / "hot.wav", 150.0 * speech_like, 16000, subtype="FLOAT")
    samples, _ = load_audio(hot)
    assert np.max(np.abs(samples)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(samples, speech_like / np.max(np.abs(speech_like)), atol=1e-6)  # shape kept
    assert np.mean(np.abs(samples) > 0.999) < 0.01  # a clipped copy would sit at full scale most of the time


def test_real_speech(speech_dir):
    path = sorted(speech_dir.glob("*.flac"))[0]
    info = audio_info(path)
    assert (info.format, info.sample_rate, info.channels) == ("FLAC", 16000, 1)
    samples, rate = load_audio(path)
    assert rate == 16000 and samples.size == info.frames
    assert -60 < audio.peak_dbfs(samples) <= 0
    resampled, rate = load_audio(path, rate=19200)
    assert rate == 19200 and resampled.size == (info.frames * 19200 * 2 + 16000) // 32000
    assert np.sqrt(np.mean(resampled**2)) == pytest.approx(np.sqrt(np.mean(samples**2)), rel=0.02)


# ---- properties --------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 6000), rate_in=st.sampled_from(COMMON_RATES), rate_out=st.sampled_from(COMMON_RATES))
def test_resample_length_rule(length, rate_in, rate_out):
    samples = np.random.default_rng(length).standard_normal(length)
    expected = math.floor(length * rate_out / rate_in + 0.5)
    assert resample(samples, rate_in, rate_out).shape == (expected,)


@settings(max_examples=30, deadline=None)
@given(
    rate_in=st.sampled_from(COMMON_RATES),
    rate_out=st.sampled_from(COMMON_RATES),
    freq_fraction=st.floats(0.01, 0.2),
    amplitude=st.floats(0.05, 0.9),
)
def test_resample_preserves_low_frequency_sine(rate_in, rate_out, freq_fraction, amplitude):
    freq = freq_fraction * min(rate_in, rate_out)
    resampled = resample(tone(0.25, rate_in, freq, amplitude), rate_in, rate_out)
    expected = amplitude * np.sin(2 * np.pi * freq * np.arange(resampled.size) / rate_out)
    middle = slice(rate_out // 40, -rate_out // 40)
    assert np.max(np.abs(resampled[middle] - expected[middle])) < 0.01 * amplitude


@settings(max_examples=20, deadline=None)
@given(channels=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_mono_mixing_is_the_mean(tmp_path_factory, channels, seed):
    data = np.random.default_rng(seed).uniform(-1, 1, size=(4000, channels)).astype(np.float32)
    path = write(tmp_path_factory.mktemp("mix") / "mix.wav", data, 16000, subtype="FLOAT")
    samples, _ = load_audio(path)
    np.testing.assert_allclose(samples, data.mean(axis=1), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seconds=st.floats(0.2, 1.0),
    rate_in=st.sampled_from(COMMON_RATES),
    rate_out=st.sampled_from((None,) + COMMON_RATES),
    subtype=st.sampled_from(("PCM_16", "PCM_24", "FLOAT")),
    seed=st.integers(0, 2**31),
)
def test_load_random_file(tmp_path_factory, seconds, rate_in, rate_out, subtype, seed):
    frames = max(int(seconds * rate_in), math.ceil(0.2 * rate_in))
    data = np.random.default_rng(seed).uniform(-1, 1, frames)
    path = write(tmp_path_factory.mktemp("random") / "random.wav", data, rate_in, subtype=subtype)
    samples, rate = load_audio(path, rate=rate_out)
    assert rate == (rate_in if rate_out is None else rate_out)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == math.floor(frames * rate / rate_in + 0.5)
    assert np.all(np.abs(samples) <= 1.0)
