"""Clip shapes beyond single sentences: 10-30 s passages with natural pauses and non-speech stretches.

A passage joins sentences (each a 16 kHz float32 audio with its ARPAbet timeline, from any voice or a
recording) with pauses of 0.2-1.5 s, starts and ends with 0.1-1.0 s of silence, and puts non-speech
sounds into some pauses (and makes clips of nothing else, `non_speech_clip`): a breath (band-limited noise with a swell), a click (a few ms decaying burst),
or room noise alone. All of it is labelled SIL, so the rig keeps the face at rest there. A faint noise
floor (-66 to -54 dBFS) runs under the whole passage: real pauses are never digital silence.
Deterministic for a given numpy Generator.
"""

import numpy as np
from scipy.signal import butter, sosfilt

from backend.errors import AudioError
from backend.rig.timeline import check_timeline

SAMPLE_RATE = 16000
PAUSE_S = (0.2, 1.5)
EDGE_SILENCE_S = (0.1, 1.0)
PASSAGE_S = (10.0, 30.0)
NON_SPEECH_SHARE = 0.4          # share of pauses that hold a breath, click or room noise


def assemble_passage(sentences, rng: np.random.Generator, target_s: float | None = None):
    """Join (audio, timeline) sentences into one passage: (float32 audio, contiguous ARPAbet timeline, kinds).

    Sentences are used in order until the passage would pass `target_s` (drawn from PASSAGE_S when None);
    at least one is always used. `kinds` lists what each pause holds ('pause', 'breath', 'click', 'room').
    """
    sentences = list(sentences)
    if not sentences:
        raise AudioError("passage: no sentences given; expected at least one (audio, timeline) pair")
    target = float(rng.uniform(*PASSAGE_S)) if target_s is None else float(target_s)
    parts, timeline, kinds = [], [], []
    lead = _silence(rng.uniform(*EDGE_SILENCE_S))
    parts.append(lead)
    position = _add_silence(timeline, 0, len(lead))
    for index, (audio, sentence_timeline) in enumerate(sentences):
        audio = np.asarray(audio, dtype=np.float32)
        if index and (position + len(audio)) / SAMPLE_RATE > target - EDGE_SILENCE_S[0]:
            break
        if index:
            gap, kind = _pause(rng, rng.uniform(*PAUSE_S))
            parts.append(gap)
            kinds.append(kind)
            position = _add_silence(timeline, position, len(gap))
        start_s = position / SAMPLE_RATE
        for start, end, label in sentence_timeline:
            end = min(end, len(audio) / SAMPLE_RATE)
            if end > start:
                _extend(timeline, start_s + end, label)
        parts.append(audio)
        position += len(audio)
        timeline[-1][1] = position / SAMPLE_RATE
    trail = _silence(rng.uniform(*EDGE_SILENCE_S))
    parts.append(trail)
    position = _add_silence(timeline, position, len(trail))
    audio = np.concatenate(parts)
    audio = np.clip(audio + _noise_floor(rng, len(audio)), -1.0, 1.0).astype(np.float32)
    result = [(round(start, 4), round(end, 4), label) for start, end, label in timeline]
    check_timeline(result, "passage")
    return audio, result, kinds


def _extend(timeline: list, end: float, label: str) -> None:
    """Append a segment from the timeline's end to `end` (timelines stay contiguous); silences merge."""
    start = timeline[-1][1] if timeline else 0.0
    if timeline and label == timeline[-1][2] == "SIL":
        timeline[-1][1] = max(timeline[-1][1], end)
    elif end > start:
        timeline.append([start, end, label])


def _add_silence(timeline: list, position: int, samples: int) -> int:
    _extend(timeline, (position + samples) / SAMPLE_RATE, "SIL")
    return position + samples


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)


def _noise_floor(rng: np.random.Generator, length: int) -> np.ndarray:
    """Low-passed white noise at -66..-54 dBFS RMS (room tone and microphone hiss)."""
    noise = sosfilt(butter(2, 3000, "lowpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(length))
    noise *= 10 ** (rng.uniform(-66, -54) / 20) / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
    return noise.astype(np.float32)


def _pause(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, str]:
    """A pause of `seconds`: silent, or holding a breath, a click or louder room noise."""
    gap = _silence(seconds)
    if rng.uniform() >= NON_SPEECH_SHARE:
        return gap, "pause"
    kind = str(rng.choice(["breath", "click", "room"]))
    if kind == "breath":
        length = min(len(gap), int(rng.uniform(0.15, 0.45) * SAMPLE_RATE))
        band = sosfilt(butter(2, [rng.uniform(300, 700), rng.uniform(2500, 5000)], "bandpass", fs=SAMPLE_RATE,
                              output="sos"), rng.standard_normal(length))
        swell = np.sin(np.linspace(0, np.pi, length)) ** 2
        start = int(rng.integers(0, len(gap) - length + 1))
        gap[start:start + length] = band * swell * 10 ** (rng.uniform(-42, -30) / 20) / (np.std(band) + 1e-12)
    elif kind == "click":
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.uniform(0.002, 0.008) * SAMPLE_RATE)
            start = int(rng.integers(0, len(gap) - length + 1))
            gap[start:start + length] += (rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
                                          * 10 ** (rng.uniform(-35, -22) / 20))
    else:
        noise = sosfilt(butter(2, 1500, "lowpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(len(gap)))
        gap[:] = noise * 10 ** (rng.uniform(-50, -40) / 20) / (np.std(noise) + 1e-12)
    return gap.astype(np.float32), kind


def non_speech_clip(rng: np.random.Generator, seconds: float):
    """A clip with no speech at all, `seconds` long: stretches of breath, clicks or room noise over the noise
    floor, all labelled SIL (the face rests throughout): (float32 audio, [(0, end, 'SIL')], kinds)."""
    parts, kinds, total = [], [], int(round(seconds * SAMPLE_RATE))
    while sum(len(part) for part in parts) < total:
        gap, kind = _pause(rng, rng.uniform(*PAUSE_S))
        parts.append(gap)
        kinds.append(kind)
    audio = np.concatenate(parts)[:total]
    audio = np.clip(audio + _noise_floor(rng, total), -1.0, 1.0).astype(np.float32)
    return audio, [(0.0, round(total / SAMPLE_RATE, 4), "SIL")], kinds
