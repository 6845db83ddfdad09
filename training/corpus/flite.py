"""flite (Debian package `flite`) with exact phone timings: `flite -voice V -psdur` prints `phone:end_s` pairs.

The voices awb, rms, slt (statistical, trained on CMU ARCTIC recordings) and kal16 (diphone) speak at 16 kHz.
flite is deterministic: the same text and settings give the same samples.
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from backend.errors import AudioError
from training.corpus.cmu_phones import timeline_from_ends

FLITE_VOICES = ("awb", "rms", "slt", "kal16")
_PHONE_TIME = re.compile(r"([a-z#0-9]+):(\d+(?:\.\d*)?)")


def flite_available() -> bool:
    return shutil.which("flite") is not None


def flite_synthesise(text: str, voice: str, duration_stretch: float = 1.0,
                     f0_mean_hz: float | None = None) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """Speak `text` with a flite voice: (float32 mono audio, its sample rate, ARPAbet timeline in seconds).

    duration_stretch > 1 speaks slower (flite's `duration_stretch`); f0_mean_hz moves the voice's mean pitch
    (`int_f0_target_mean`; None keeps the voice's own).
    """
    if voice not in FLITE_VOICES:
        raise AudioError(f"flite: voice {voice!r} is not supported; expected one of {', '.join(FLITE_VOICES)}")
    if not text.strip():
        raise AudioError("flite: text is empty; expected at least one word to speak")
    if not flite_available():
        raise AudioError("flite: the flite program is not installed; install the Debian package 'flite'")
    if not 0.25 <= duration_stretch <= 4.0:
        raise AudioError(f"flite: duration_stretch {duration_stretch} is out of range; expected 0.25..4")
    with tempfile.TemporaryDirectory(prefix="flite_") as folder:
        text_path, wav_path = Path(folder) / "text.txt", Path(folder) / "speech.wav"
        text_path.write_text(text, encoding="utf-8")
        command = ["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={duration_stretch:.4f}"]
        if f0_mean_hz is not None:
            command += ["--setf", f"int_f0_target_mean={f0_mean_hz:.2f}"]
        result = subprocess.run(command + ["-f", str(text_path), "-o", str(wav_path)],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or not wav_path.is_file():
            raise AudioError(f"flite: voice {voice} failed (exit {result.returncode}): "
                             f"{result.stderr.strip()[-200:] or 'no audio written'}")
        audio, rate = soundfile.read(wav_path, dtype="float32")
    ends = [(float(end), phone) for phone, end in _PHONE_TIME.findall(result.stdout)]
    return audio, rate, timeline_from_ends(ends, len(audio) / rate, f"flite {voice}")
