"""espeak-ng through ctypes: phoneme timing sanity, determinism, IPA mapping and errors."""

import numpy as np
import pytest

from backend.errors import AudioError
from training.corpus.espeak import EspeakSynth, events_to_timeline, ipa_to_arpabet
from backend.rig.timeline import check_timeline


@pytest.fixture(scope="module")
def synth():
    return EspeakSynth()


def test_phoneme_events_are_monotonic_and_cover_the_audio(synth):
    audio, timeline = synth.synthesise("Measure the pleasure of a fine watch, Philip.", "en-us+f3", rate=160)
    duration = len(audio) / synth.sample_rate
    assert audio.dtype == np.float32 and duration > 1.5 and np.abs(audio).max() > 0.05
    check_timeline(timeline, "espeak")
    assert timeline[0][0] == 0.0 and timeline[-1][1] == pytest.approx(duration, abs=1e-3)
    assert all(end == pytest.approx(start) for (_, end, _), (start, _, _) in zip(timeline, timeline[1:]))
    labels = [label for _, _, label in timeline]
    for phone in ("M", "ZH", "P", "F", "W", "CH"):
        assert phone in labels


def test_rate_changes_duration_and_same_request_gives_same_samples(synth):
    slow, _ = synth.synthesise("A short test sentence.", "en-us", rate=120)
    fast, _ = synth.synthesise("A short test sentence.", "en-us", rate=260)
    again, _ = synth.synthesise("A short test sentence.", "en-us", rate=120)
    assert len(fast) < 0.75 * len(slow)
    assert np.array_equal(slow, again)


def test_unknown_voice_and_empty_text_are_refused(synth):
    with pytest.raises(AudioError, match="voice 'no-such-voice' not found"):
        synth.synthesise("hello", "no-such-voice")
    with pytest.raises(AudioError, match="text is empty"):
        synth.synthesise("   ")


def test_ipa_mapping():
    assert ipa_to_arpabet("ˈaɪ") == "AY"
    assert ipa_to_arpabet("ɑːɹ") == "AA"
    assert ipa_to_arpabet("tʃ") == "CH"
    assert ipa_to_arpabet("_:") == "SIL"
    assert ipa_to_arpabet("ʙ") is None


def test_events_to_timeline_merges_unknown_and_fills_gaps():
    events = [(0.0, "_:"), (0.1, "h"), (0.15, "ʙ"), (0.2, "ˈɛ"), (0.35, "l"), (0.4, "oʊ")]
    assert events_to_timeline(events, 0.6) == [(0.0, 0.1, "SIL"), (0.1, 0.2, "HH"), (0.2, 0.35, "EH"),
                                               (0.35, 0.4, "L"), (0.4, 0.6, "OW")]
