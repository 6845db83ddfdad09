"""festival (Debian `festival`, `festvox-us-slt-hts`, `festvox-kallpc16k`, `festvox-kdlpc16k`, `festlex-cmu`)
with exact phone timings from `utt.save.segs` (segment end times).

Starting festival and loading a voice takes about a second, so `festival_synthesise_many` speaks a list
of texts in one festival run. Voices: `slt_hts` (CMU ARCTIC SLT, HTS, 48 kHz), `kal` and `ked` (diphones,
16 kHz). Festival is deterministic: the same text and settings give the same samples.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from backend.errors import AudioError
from training.corpus.cmu_phones import timeline_from_ends

FESTIVAL_VOICES = {"slt_hts": "voice_cmu_us_slt_arctic_hts", "kal": "voice_kal_diphone",
                   "ked": "voice_ked_diphone"}
_STRETCHABLE = ("kal", "ked")      # festival's HTS engine ignores Duration_Stretch


def festival_available() -> bool:
    return shutil.which("festival") is not None


def festival_synthesise(text: str, voice: str, duration_stretch: float = 1.0):
    """One text: (float32 mono audio, sample rate, ARPAbet timeline). See festival_synthesise_many."""
    return festival_synthesise_many([text], voice, duration_stretch)[0]


def festival_synthesise_many(texts, voice: str, duration_stretch: float = 1.0) -> list:
    """Speak every text with one festival voice in one run: [(float32 audio, rate, ARPAbet timeline), ...].

    duration_stretch > 1 speaks slower (festival's Duration_Stretch; diphone voices only).
    """
    texts = list(texts)
    if voice not in FESTIVAL_VOICES:
        raise AudioError(f"festival: voice {voice!r} is not supported; expected one of {', '.join(FESTIVAL_VOICES)}")
    if not texts or any(not text.strip() for text in texts):
        raise AudioError("festival: a text is empty; expected at least one word in every text")
    if duration_stretch != 1.0 and voice not in _STRETCHABLE:
        raise AudioError(f"festival: voice {voice} ignores duration_stretch; expected 1.0 (or use "
                         f"{' or '.join(_STRETCHABLE)})")
    if not 0.25 <= duration_stretch <= 4.0:
        raise AudioError(f"festival: duration_stretch {duration_stretch} is out of range; expected 0.25..4")
    if not festival_available():
        raise AudioError("festival: the festival program is not installed; install the Debian packages "
                         "festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k festlex-cmu")
    with tempfile.TemporaryDirectory(prefix="festival_") as folder:
        folder = Path(folder)
        lines = [f"({FESTIVAL_VOICES[voice]})", f"(Parameter.set 'Duration_Stretch {duration_stretch:.4f})"]
        for index, text in enumerate(texts):
            lines += [f'(set! utt (utt.synth (Utterance Text "{_scheme_string(text)}")))',
                      f'(utt.save.wave utt "{folder / f"{index}.wav"}" \'riff)',
                      f'(utt.save.segs utt "{folder / f"{index}.segs"}")']
        script = folder / "speak.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True,
                                timeout=60 + 20 * len(texts))
        spoken = []
        for index in range(len(texts)):
            wav_path, segs_path = folder / f"{index}.wav", folder / f"{index}.segs"
            if result.returncode != 0 or not wav_path.is_file() or not segs_path.is_file():
                raise AudioError(f"festival: voice {voice} failed on text {index} (exit {result.returncode}): "
                                 f"{(result.stderr + result.stdout).strip()[-200:] or 'no audio written'}")
            audio, rate = soundfile.read(wav_path, dtype="float32")
            timeline = timeline_from_ends(_read_segs(segs_path), len(audio) / rate, f"festival {voice}")
            spoken.append((audio.astype(np.float32), rate, timeline))
    return spoken


def _scheme_string(text: str) -> str:
    """Text inside a Scheme string literal: backslashes and quotes escaped, line breaks as spaces."""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"')


def _read_segs(path: Path) -> list[tuple[float, str]]:
    """festival's segs file (`#` header line, then `end_s 100 phone`) -> [(end_s, phone), ...]."""
    ends = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] != "#":
            ends.append((float(fields[0]), fields[2]))
    return ends
