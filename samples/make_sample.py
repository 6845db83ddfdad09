"""Regenerate the bundled SYNTHETIC sample sentence (espeak-ng) with its phoneme timeline.

Run from the repository root: `.venv/bin/python -m samples.make_sample`. Writes
samples/sample_sentence.wav (16-bit PCM, 22050 Hz), .json (ARPAbet timeline in seconds) and .txt.
The speech is synthetic (espeak-ng), so it may be committed; real recordings may not.
"""

import json
from pathlib import Path

import soundfile

from training.corpus.espeak import EspeakSynth

TEXT = "The quick brown fox jumps over the lazy dog, then naps by the warm fire."
VOICE, RATE_WPM = "en-us", 150
SAMPLES = Path(__file__).resolve().parent


def main() -> None:
    synth = EspeakSynth()
    audio, timeline = synth.synthesise(TEXT, voice=VOICE, rate=RATE_WPM)
    stem = SAMPLES / "sample_sentence"
    soundfile.write(stem.with_suffix(".wav"), audio, synth.sample_rate, subtype="PCM_16")
    stem.with_suffix(".txt").write_text(TEXT + "\n")
    description = {"text": TEXT, "voice": VOICE, "rate_wpm": RATE_WPM, "synthetic": True,
                   "tool": "espeak-ng (espeakng-loader wheel)", "sample_rate": synth.sample_rate,
                   "duration_s": round(len(audio) / synth.sample_rate, 4),
                   "timeline": [{"start": start, "end": end, "phone": phone} for start, end, phone in timeline]}
    stem.with_suffix(".json").write_text(json.dumps(description, indent=1) + "\n")
    print(f"wrote {stem}.wav ({len(audio) / synth.sample_rate:.2f} s), .json ({len(timeline)} phones), .txt")


if __name__ == "__main__":
    main()
