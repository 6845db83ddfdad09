"""backend.audio_conditions: each degradation measured back from its output."""

import io

import numpy as np
import pytest
import soundfile
from scipy.signal import welch

from backend import audio_conditions as conditions
from backend.errors import AudioError

RATE = 16000


def _speechlike(seconds=2.0, seed=1):
    """Noise bursts with syllable-rate loudness changes and short pauses (SYNTHETIC)."""
    rng = np.random.default_rng(seed)
    times = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 4 * times), 0, None) ** 2
    return 0.3 * envelope * rng.standard_normal(times.size)


def test_noise_is_added_at_the_requested_snr():
    clean = _speechlike()
    for snr in (0.0, 10.0, 20.0):
        noise = conditions.add_noise(clean, snr, seed=3) - clean
        measured = 10 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2))
        assert measured == pytest.approx(snr, abs=1e-6)
    assert np.array_equal(conditions.add_noise(clean, 10, 5), conditions.add_noise(clean, 10, 5))
    assert not np.array_equal(conditions.add_noise(clean, 10, 5), conditions.add_noise(clean, 10, 6))


def _schroeder_rt60(response, rate):
    """RT60 from the -5..-35 dB slope of the backward-integrated energy decay (T30 x 2)."""
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    start, stop = np.argmax(decay_db <= -5), np.argmax(decay_db <= -35)
    slope = np.polyfit(np.arange(start, stop) / rate, decay_db[start:stop], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.3, 0.5, 1.0])
def test_room_response_decays_60_db_in_rt60(rt60):
    response = conditions.room_impulse_response(RATE, rt60, seed=2)
    assert response[0] == 1.0
    assert _schroeder_rt60(response[1:], RATE) == pytest.approx(rt60, rel=0.1)


def test_reverb_keeps_length_and_level_and_smears_pauses():
    clean = _speechlike()
    wet = conditions.reverberate(clean, RATE, 0.5, seed=0)
    assert wet.shape == clean.shape
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(clean ** 2)), rel=1e-6)
    pause = slice(int(0.13 * RATE), int(0.24 * RATE))   # the envelope is 0 here
    assert np.abs(clean[pause]).max() == 0 and np.abs(wet[pause]).max() > 0.01


def test_telephone_band_removes_energy_outside_300_to_3400_hz():
    noise = np.random.default_rng(0).standard_normal(4 * RATE) * 0.1
    frequencies, before = welch(noise, RATE, nperseg=1024)
    _, after = welch(conditions.telephone_band(noise, RATE), RATE, nperseg=1024)
    gain_db = 10 * np.log10(after / before)
    assert np.all(gain_db[(frequencies > 500) & (frequencies < 3000)] > -3)
    assert np.all(gain_db[frequencies > 4100] < -30)     # above the 8 kHz line's Nyquist
    assert np.all(gain_db[(frequencies > 20) & (frequencies < 120)] < -20)


def test_gain_in_db_and_clipping():
    clean = _speechlike()
    quieter = conditions.change_gain(clean, -20)
    assert 20 * np.log10(np.abs(clean).max() / np.abs(quieter).max()) == pytest.approx(20, abs=1e-9)
    assert np.abs(conditions.change_gain(clean, 30)).max() == 1.0


def _voiced(seconds=3.0):
    """A 140 Hz harmonic buzz under a syllable envelope (SYNTHETIC vowel-like sound)."""
    times = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 140 * k * times) / k for k in range(1, 20))
    return 0.2 * np.clip(np.sin(2 * np.pi * 3 * times), 0, None) * buzz


def test_opus_round_trip_is_lossy_low_bitrate_and_aligned():
    clean = _voiced()
    coded = conditions.codec_round_trip(clean, RATE, 16.0)
    assert coded.shape == clean.shape
    error = np.sqrt(np.mean((coded - clean) ** 2) / np.mean(clean ** 2))
    assert 0.01 < error < 0.6     # lossy, but the same signal in the same place (no delay)
    shifted = np.sqrt(np.mean((coded[80:] - clean[:-80]) ** 2) / np.mean(clean ** 2))
    assert error < shifted
    buffer = io.BytesIO()
    level = float(np.interp(16.0, *zip(*conditions._OPUS_LEVEL_BY_KBPS)))
    soundfile.write(buffer, clean, RATE, format="OGG", subtype="OPUS", compression_level=level)
    assert 8 < buffer.tell() * 8 / 3.0 / 1000 < 24     # kbps of the encoded stream


def test_apply_names_every_condition_and_rejects_unknown_ones():
    clean = _speechlike()
    for name in conditions.CONDITIONS:
        out = conditions.apply(clean, RATE, name, seed=1)
        assert out.dtype == np.float32 and out.shape == clean.shape and np.abs(out).max() <= 1.0
        assert not np.allclose(out, clean, atol=1e-3)
    with pytest.raises(AudioError, match="unknown audio condition 'radio'"):
        conditions.apply(clean, RATE, "radio")
    with pytest.raises(AudioError, match="mono"):
        conditions.apply(np.zeros((2, 100)), RATE, "telephone")


def test_mp3_round_trip_is_lossy_and_aligned():
    clean = _voiced()
    coded = conditions.codec_round_trip(clean, RATE, 24.0, codec="mp3")
    assert coded.shape == clean.shape
    error = np.sqrt(np.mean((coded - clean) ** 2) / np.mean(clean ** 2))
    shifted = np.sqrt(np.mean((coded[80:] - clean[:-80]) ** 2) / np.mean(clean ** 2))
    assert 0.001 < error < 0.6 and error < shifted
    with pytest.raises(AudioError, match="unknown codec 'aac'"):
        conditions.codec_round_trip(clean, RATE, 24.0, codec="aac")


def test_babble_is_a_unit_rms_crowd_of_the_sources():
    sources = [_speechlike(1.0, seed=s) for s in range(3)]
    crowd = conditions.babble(sources, 3 * RATE, seed=2, talkers=4)
    assert crowd.shape == (3 * RATE,) and np.sqrt(np.mean(crowd ** 2)) == pytest.approx(1.0)
    assert np.array_equal(crowd, conditions.babble(sources, 3 * RATE, seed=2, talkers=4))
    with pytest.raises(AudioError, match="at least one source"):
        conditions.babble([], 100)


def test_tempo_one_is_the_identity_and_out_of_range_tempos_are_refused():
    clean = _speechlike()
    assert np.allclose(conditions.change_tempo(clean, RATE, 1.0), clean, atol=1e-6)
    with pytest.raises(AudioError, match="tempo 3 is out of range"):
        conditions.change_tempo(clean, RATE, 3)
