"""training.corpus.augment (and the backend.audio_conditions steps it chains): each augmentation measured back."""

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from backend import audio_conditions
from backend.audio import load_audio
from backend.errors import AudioError
from backend.generators import frame_count
from backend.heldout import is_heldout
from backend.rig.timeline import read_lab
from training.corpus import augment
from training.corpus.augment import CLEAN, AugmentPlan, apply_plan, augment_clip, plan_for, sample_plan

RATE = 16000
KATHLEEN = Path(__file__).resolve().parents[1].parent / "shared" / "speech" / "kathleen"


def _harmonic(f0=150.0, seconds=2.0, harmonics=20):
    """A steady harmonic buzz (SYNTHETIC vowel-like sound), peak below 1."""
    times = np.arange(int(seconds * RATE)) / RATE
    return 0.05 * sum(np.sin(2 * np.pi * f0 * k * times + k) / k for k in range(1, harmonics + 1))


def _bursts(onsets=(0.5, 1.0, 1.7), seconds=2.4, length=0.2):
    """140 Hz buzz bursts starting at `onsets`, silence between (SYNTHETIC)."""
    times = np.arange(int(seconds * RATE)) / RATE
    buzz = _harmonic(140.0, seconds)
    gate = np.zeros_like(times)
    for onset in onsets:
        gate[(times >= onset) & (times < onset + length)] = 1.0
    return buzz * gate


def _onsets(audio):
    """Times (s) where the power, averaged over a centred 20 ms window, rises through half its maximum."""
    power = np.convolve(np.asarray(audio, np.float64) ** 2, np.ones(RATE // 50) / (RATE // 50), mode="same")
    above = power > 0.5 * power.max()
    return (np.flatnonzero(above[1:] & ~above[:-1]) + 1) / RATE


def _f0(audio):
    """The strongest spectral peak between 80 and 400 Hz (Hann, zero-padded, parabolic interpolation)."""
    n = 8 * audio.size
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size), n=n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    band = np.flatnonzero((freqs > 80) & (freqs < 400))
    peak = band[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[peak - 1: peak + 2])
    return freqs[peak] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0])


def test_plans_are_deterministic_and_about_30_percent_clean():
    assert plan_for(3, 2, 17) == plan_for(3, 2, 17)
    plans = [plan_for(3, epoch, 17) for epoch in range(300)]
    assert len({plan.id for plan in plans}) > 150      # fresh variation every epoch
    assert 0.22 < np.mean([plan == CLEAN for plan in plans]) < 0.38
    assert plan_for(3, 5, 17, variants=4) == plan_for(3, 1, 17, variants=4)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert [sample_plan(rng_a) for _ in range(20)] == [sample_plan(rng_b) for _ in range(20)]
    assert all(plan.noise_kind != "babble" for plan in
               (plan_for(0, e, 1, babble=False) for e in range(200)))


def test_sampled_plans_stay_inside_the_ranges_the_front_end_check_kept():
    plans = [plan_for(5, epoch, clip) for epoch in range(50) for clip in range(20)]
    noisy = [plan for plan in plans if plan.noise_snr_db is not None]
    assert noisy and all(plan.noise_snr_db >= augment.SAMPLED_SNR_FLOOR_DB[plan.noise_kind] for plan in noisy)
    assert min(plan.noise_snr_db for plan in noisy if plan.noise_kind == "brown") < 5.0
    rooms = [plan.reverb_rt60_s for plan in plans if plan.reverb_rt60_s is not None]
    assert rooms and max(rooms) <= augment.SAMPLED_REVERB_RANGE[1]
    tempos = [plan.tempo for plan in plans if plan.tempo != 1.0]
    assert min(tempos) < 0.83 and max(tempos) > 1.2


def test_applying_a_plan_is_deterministic():
    audio = _bursts()
    babble = [_harmonic(110.0, 1.3), _harmonic(190.0, 0.7)]
    for plan in (AugmentPlan(noise_snr_db=5.0, noise_kind="babble", reverb_rt60_s=0.4, seed=4),
                 AugmentPlan(tempo=1.2, pitch_semitones=-3.0, noise_snr_db=12.0, noise_kind="pink", seed=8)):
        assert np.array_equal(apply_plan(audio, plan, babble), apply_plan(audio, plan, babble))
    other_seed = AugmentPlan(noise_snr_db=12.0, noise_kind="pink", seed=9)
    assert not np.array_equal(apply_plan(audio, other_seed), apply_plan(audio, AugmentPlan(
        noise_snr_db=12.0, noise_kind="pink", seed=8)))


@pytest.mark.parametrize("tempo", [0.8, 1.25])
def test_tempo_moves_events_to_t_over_tempo_and_scales_timeline_and_motion(tempo):
    onsets = (0.5, 1.0, 1.7)
    audio = _bursts(onsets)
    timeline = [(0.0, 0.5, "SIL"), (0.5, 0.7, "AA"), (0.7, 1.0, "SIL"), (1.0, 1.2, "M"), (1.2, 2.4, "SIL")]
    motion = np.arange(frame_count(audio.size), dtype=np.float32)[:, None] / 30.0 * np.ones((1, 5), np.float32)
    plan = AugmentPlan(tempo=tempo)
    new_audio, new_timeline, new_motion = augment_clip(audio, timeline, motion, plan)
    assert new_audio.size == int(np.floor(audio.size / tempo + 0.5))
    assert np.allclose(_onsets(new_audio), np.array(onsets) / tempo, atol=0.015)
    assert [label for *_, label in new_timeline] == [label for *_, label in timeline]
    assert np.allclose([start for start, *_ in new_timeline], [start / tempo for start, *_ in timeline])
    assert new_timeline[-1][1] == pytest.approx(new_audio.size / RATE, abs=1e-3)
    assert new_motion.shape == (frame_count(new_audio.size), 5) and new_motion.dtype == np.float32
    times = np.arange(len(new_motion)) / 30.0
    inside = times * tempo <= (len(motion) - 1) / 30.0
    assert np.allclose(new_motion[inside, 0], times[inside] * tempo, atol=1e-5)   # clip time t*tempo
    assert augment.scale_motion(motion, tempo).shape[0] == int(np.floor(len(motion) / tempo + 0.5))


def test_only_tempo_changes_the_motion_and_timeline():
    audio, motion = _bursts(), np.random.default_rng(0).standard_normal((72, 3, 2))
    timeline = [(0.0, 2.4, "SIL")]
    plan = AugmentPlan(pitch_semitones=2.0, formant_warp=0.9, noise_snr_db=20.0, reverb_rt60_s=0.3,
                       telephone=True, gain_db=-6.0, codec="opus16", seed=1)
    new_audio, new_timeline, new_motion = augment_clip(audio, timeline, motion, plan)
    assert new_audio.shape == audio.shape and new_timeline == timeline and np.array_equal(new_motion, motion)


@pytest.mark.parametrize("semitones", [-4.0, 4.0])
def test_pitch_shift_moves_f0_by_the_ratio_and_keeps_duration(semitones):
    audio = _harmonic(150.0)
    shifted = apply_plan(audio, AugmentPlan(pitch_semitones=semitones))
    assert shifted.shape == audio.shape
    assert _f0(shifted) == pytest.approx(150.0 * 2 ** (semitones / 12), rel=0.01)


def _harmonic_amplitudes(audio, f0, count):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    freqs = np.fft.rfftfreq(audio.size, 1 / RATE)
    return np.array([spectrum[np.argmin(np.abs(freqs - f0 * k))] for k in range(1, count + 1)])


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_formant_warp_moves_the_envelope_not_the_pitch(factor):
    """A 100 Hz buzz shaped by one resonance at 1.2 kHz: the resonance moves to 1.2 kHz x factor."""
    times = np.arange(2 * RATE) / RATE
    harmonics = np.arange(1, 60)
    weights = np.exp(-0.5 * ((harmonics * 100.0 - 1200.0) / 300.0) ** 2) + 0.01
    audio = 0.02 * sum(w * np.sin(2 * np.pi * 100.0 * k * times + k) for k, w in zip(harmonics, weights))
    warped = apply_plan(audio, AugmentPlan(formant_warp=factor))
    before, after = (_harmonic_amplitudes(a, 100.0, 59) for a in (audio, warped))
    centroid = [np.sum(harmonics * 100.0 * a ** 2) / np.sum(a ** 2) for a in (before, after)]
    assert centroid[1] / centroid[0] == pytest.approx(factor, abs=0.04)
    spectrum = np.abs(np.fft.rfft(warped * np.hanning(warped.size))) ** 2
    freqs = np.fft.rfftfreq(warped.size, 1 / RATE)
    on_harmonics = np.abs(freqs - 100.0 * np.round(freqs / 100.0)) < 5.0
    assert spectrum[on_harmonics].sum() > 0.98 * spectrum.sum()   # still a 100 Hz voice


@pytest.mark.parametrize("kind", augment.NOISE_KINDS)
@pytest.mark.parametrize("snr", [0.0, 12.5, 30.0])
def test_added_noise_has_the_requested_snr(kind, snr):
    audio = _bursts()
    babble = [_harmonic(120.0, 1.1), _bursts((0.1, 0.4)), _harmonic(210.0, 0.6)]
    noisy = apply_plan(audio, AugmentPlan(noise_snr_db=snr, noise_kind=kind, seed=5), babble)
    noise = noisy.astype(np.float64) - audio
    measured = 10 * np.log10(np.mean(audio ** 2) / np.mean(noise ** 2))
    assert measured == pytest.approx(snr, abs=0.5)


def test_noise_colours_have_their_spectral_slopes():
    white = np.random.default_rng(0).standard_normal(4 * RATE)
    for colour, slope in (("white", 0.0), ("pink", -10 * np.log10(2)), ("brown", -20 * np.log10(2))):
        noise = audio_conditions.add_noise(1e-6 * white, -100.0, 1, colour)   # the noise alone, in effect
        freqs, power = welch(noise, RATE, nperseg=2048)
        band = (freqs > 100) & (freqs < 6000)
        per_octave = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]
        assert per_octave == pytest.approx(slope, abs=0.6)


def test_gain_scales_and_clips_like_a_recorder():
    audio = _bursts() * 8.0   # peak about 0.5
    quieter = apply_plan(audio, AugmentPlan(gain_db=-20.0))
    assert np.abs(quieter).max() == pytest.approx(0.1 * np.abs(audio).max(), rel=1e-5)
    louder = apply_plan(audio, AugmentPlan(gain_db=20.0))
    assert np.abs(louder).max() == 1.0 and np.mean(np.abs(louder) == 1.0) > 0.05


def test_telephone_removes_energy_above_3400_hz():
    noise = 0.05 * np.random.default_rng(1).standard_normal(3 * RATE)
    freqs, before = welch(noise, RATE, nperseg=1024)
    _, after = welch(apply_plan(noise, AugmentPlan(telephone=True)), RATE, nperseg=1024)
    gain_db = 10 * np.log10(after / before)
    assert np.all(gain_db[freqs > 3800] < -25) and np.all(gain_db[(freqs > 500) & (freqs < 3000)] > -3)


def test_plan_ids_are_empty_for_clean_and_name_each_plan():
    assert CLEAN.id == "" and sample_plan(np.random.default_rng(0), probability=0.0).id == ""
    plans = {plan_for(7, epoch, clip) for epoch in range(40) for clip in range(10)}
    ids = {}
    for plan in plans:
        assert ids.setdefault(plan.id, plan) == plan, f"two plans share id {plan.id!r}"
    assert AugmentPlan(noise_snr_db=10.0, seed=1).id != AugmentPlan(noise_snr_db=10.0, seed=2).id
    assert AugmentPlan(tempo=1.1).id == "t1.1" and AugmentPlan(codec="mp3_24", telephone=True).id == "tel_mp3_24"


def test_every_output_is_finite_float32_and_keeps_length():
    audio = _bursts()
    babble = [_harmonic(130.0, 0.9)]
    plans = [AugmentPlan(pitch_semitones=4.0, formant_warp=1.15), AugmentPlan(pitch_semitones=-4.0,
             formant_warp=0.85), AugmentPlan(noise_snr_db=0.0, noise_kind="brown", seed=2),
             AugmentPlan(reverb_rt60_s=1.0, seed=3), AugmentPlan(gain_db=20.0, telephone=True)]
    plans += [AugmentPlan(codec=codec) for codec in augment.CODECS]
    plans += [plan_for(11, epoch, 0) for epoch in range(12)]
    for plan in plans:
        out = apply_plan(audio, plan, babble)
        assert out.dtype == np.float32 and np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
        expected = int(np.floor(audio.size / plan.tempo + 0.5))
        assert out.shape == (expected,), plan.id


def test_bad_plans_and_inputs_say_what_was_expected():
    with pytest.raises(AudioError, match="tempo = 1.5 is out of range; expected 0.8 to 1.25"):
        AugmentPlan(tempo=1.5)
    with pytest.raises(AudioError, match="unknown codec 'aac'"):
        AugmentPlan(codec="aac")
    with pytest.raises(AudioError, match="pass babble="):
        apply_plan(_bursts(), AugmentPlan(noise_snr_db=5.0, noise_kind="babble"))
    with pytest.raises(AudioError, match="mono samples"):
        apply_plan(np.zeros((2, 100)), CLEAN)


def test_babble_sources_follow_the_plan_and_skip_the_clip():
    plan = plan_for(1, 0, 3)
    chosen = augment.babble_sources(plan, 10, 3)
    assert chosen == augment.babble_sources(plan, 10, 3) and 3 not in chosen and len(chosen) == 4


def test_a_real_recording_keeps_its_labels_in_step():
    paths = [p for p in sorted(KATHLEEN.glob("arctic_a000*.flac")) if not is_heldout(p.name.split(".")[0])]
    if not paths:
        pytest.skip(f"no Kathleen recordings in {KATHLEEN}")
    audio, _ = load_audio(paths[0], RATE)
    timeline = read_lab(paths[0].with_suffix(".phones.lab"))
    motion = np.zeros((frame_count(audio.size), 7), np.float32)
    for plan in (AugmentPlan(tempo=0.8, noise_snr_db=15.0, seed=1), AugmentPlan(tempo=1.25, codec="mp3_24")):
        new_audio, new_timeline, new_motion = augment_clip(audio, timeline, motion, plan)
        assert new_timeline[-1][1] == pytest.approx(timeline[-1][1] / plan.tempo)
        assert abs(new_timeline[-1][1] - new_audio.size / RATE) < 0.02
        assert new_motion.shape == (frame_count(new_audio.size), 7)


class _CountingFrontend:
    """Stands in for the speech front end: (T, 447) features whose first column is the samples' RMS."""

    model_path = Path(__file__)

    def __init__(self):
        self.calls = []

    def features(self, samples, rate):
        from backend.speech_frontend import FEATURE_DIM, HIDDEN_DIM, SpeechFeatures
        self.calls.append(samples)
        rms = np.full((3, FEATURE_DIM - HIDDEN_DIM), np.sqrt(np.mean(np.square(samples))), np.float32)
        return SpeechFeatures(rms, np.zeros((3, HIDDEN_DIM), np.float32))


def test_feature_cache_keys_a_variant_by_clean_clip_and_plan_and_augments_only_on_a_miss(tmp_path):
    from backend.speech_feature_cache import SpeechFeatureCache
    frontend = _CountingFrontend()
    cache = SpeechFeatureCache(tmp_path, frontend)
    clean = _bursts()
    plan = AugmentPlan(gain_db=-20.0)
    first = cache.features(clean, RATE, plan.id, augment=lambda samples: apply_plan(samples, plan))
    again = cache.features(clean, RATE, plan.id, augment=lambda samples: apply_plan(samples, plan))
    assert (cache.hits, cache.misses, len(frontend.calls)) == (1, 1, 1)
    assert np.array_equal(first, again)
    assert first[0, 0] == pytest.approx(0.1 * np.sqrt(np.mean(clean ** 2)), rel=1e-2)   # the augmented audio's
    assert cache.features(clean, RATE, CLEAN.id)[0, 0] == pytest.approx(np.sqrt(np.mean(clean ** 2)), rel=1e-2)


def test_motion_without_audio_matches_the_whole_clip():
    audio = _bursts()
    motion = np.random.default_rng(2).standard_normal((frame_count(audio.size), 4)).astype(np.float32)
    timeline = [(0.0, 1.0, "SIL"), (1.0, 2.4, "AA")]
    for plan in (AugmentPlan(tempo=0.83), AugmentPlan(tempo=1.17, gain_db=3.0), CLEAN):
        new_audio, new_timeline, new_motion = augment_clip(audio, timeline, motion, plan)
        assert augment.augmented_length(audio.size, plan) == new_audio.size
        only_timeline, only_motion = augment.augment_motion(timeline, motion, plan, audio.size)
        assert only_timeline == new_timeline and np.array_equal(only_motion, new_motion)
