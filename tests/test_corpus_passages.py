"""Passages: sentences joined with natural pauses, edge silences and non-speech stretches, all labelled SIL."""

import numpy as np
import pytest

from backend.errors import AudioError
from backend.rig.timeline import check_timeline
from training.corpus.passages import EDGE_SILENCE_S, PAUSE_S, SAMPLE_RATE, assemble_passage


def fake_sentence(rng, seconds):
    """A SYNTHETIC stand-in for a spoken sentence: a loud tone with a 3-phone timeline."""
    length = int(seconds * SAMPLE_RATE)
    audio = (0.3 * np.sin(2 * np.pi * 180 * np.arange(length) / SAMPLE_RATE)).astype(np.float32)
    third = seconds / 3
    return audio, [(0.0, third, "B"), (third, 2 * third, "AA"), (2 * third, seconds, "M")]


def speech_runs(timeline):
    """(start, end) of each stretch without SIL."""
    runs, current = [], None
    for start, end, label in timeline:
        if label == "SIL":
            if current:
                runs.append(tuple(current))
            current = None
        elif current:
            current[1] = end
        else:
            current = [start, end]
    return runs + ([tuple(current)] if current else [])


def test_passage_joins_sentences_with_pauses_and_edge_silence():
    rng = np.random.default_rng(1)
    sentences = [fake_sentence(rng, seconds) for seconds in (2.0, 2.5, 1.5, 3.0, 2.2, 2.8, 2.0, 1.9, 2.4, 3.1)]
    audio, timeline, kinds = assemble_passage(sentences, np.random.default_rng(7), target_s=20.0)
    check_timeline(timeline, "passage")
    duration = len(audio) / SAMPLE_RATE
    assert timeline[0][0] == 0.0 and timeline[-1][1] == pytest.approx(duration, abs=1e-3)
    assert 10.0 <= duration <= 20.0 and audio.dtype == np.float32
    runs = speech_runs(timeline)
    assert len(runs) == len(kinds) + 1 >= 4
    assert EDGE_SILENCE_S[0] - 1e-3 <= runs[0][0] <= EDGE_SILENCE_S[1] + 1e-3
    assert EDGE_SILENCE_S[0] - 1e-3 <= duration - runs[-1][1] <= EDGE_SILENCE_S[1] + 1e-3
    gaps = [later[0] - earlier[1] for earlier, later in zip(runs, runs[1:])]
    assert all(PAUSE_S[0] - 1e-3 <= gap <= PAUSE_S[1] + 1e-3 for gap in gaps)
    assert [label for *_, label in timeline if label != "SIL"] == ["B", "AA", "M"] * len(runs)


def test_pauses_hold_quiet_non_speech_and_never_digital_silence():
    rng = np.random.default_rng(2)
    sentences = [fake_sentence(rng, 0.6) for _ in range(60)]
    audio, timeline, kinds = assemble_passage(sentences, np.random.default_rng(3), target_s=30.0)
    assert {"breath", "click", "room", "pause"} <= set(kinds)
    silent = np.concatenate([audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
                             for start, end, label in timeline if label == "SIL"])
    speech = np.concatenate([audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
                             for start, end, label in timeline if label != "SIL"])
    assert np.count_nonzero(silent == 0.0) < 0.01 * silent.size
    assert np.sqrt(np.mean(silent ** 2)) < 0.05 * np.sqrt(np.mean(speech ** 2))


def test_same_generator_same_passage_and_no_sentences_refused():
    rng = np.random.default_rng(4)
    sentences = [fake_sentence(rng, 2.0) for _ in range(8)]
    first = assemble_passage(sentences, np.random.default_rng(5))
    second = assemble_passage(sentences, np.random.default_rng(5))
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    with pytest.raises(AudioError, match="no sentences"):
        assemble_passage([], np.random.default_rng(0))
