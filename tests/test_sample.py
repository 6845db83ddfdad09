"""The bundled demo sample: its audio, transcript and phone timeline belong together."""

import json
from pathlib import Path

import soundfile

from backend.rig.timeline import check_timeline

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_sample_timeline_covers_the_audio_and_has_a_long_pause():
    description = json.loads((SAMPLES / "sample_sentence.json").read_text())
    info = soundfile.info(SAMPLES / "sample_sentence.wav")
    assert info.samplerate == description["sample_rate"] == 16000
    assert abs(info.frames / info.samplerate - description["duration_s"]) < 1e-3
    timeline = [(entry["start"], entry["end"], entry["phone"]) for entry in description["timeline"]]
    check_timeline(timeline, "samples/sample_sentence.json")
    assert abs(timeline[-1][1] - description["duration_s"]) < 1e-3
    pauses = [end - start for start, end, phone in timeline[1:-1] if phone == "SIL"]
    assert max(pauses) >= 0.6, "the demo must show the mouth at rest in a pause between sentences"
    bilabials = [phone for _, _, phone in timeline if phone in ("P", "B", "M")]
    assert len(bilabials) >= 4
    assert description["synthetic"] is True
    assert (SAMPLES / "sample_sentence.txt").read_text().strip() == description["text"]
