"""Every TTS voice the corpus may use, behind one call: text, voice id -> 16 kHz float32 audio + ARPAbet timeline.

Voice ids are `<engine>:<name>`: `espeak:<accent>+<variant>`, `flite:awb|slt|kal16|rms`,
`festival:slt_hts|kal|ked`, `piper:joe`. The timeline has the form `backend.rig.timeline.read_lab`
gives: contiguous `(start_s, end_s, PHONE)` tuples from 0 to the audio's end, ARPAbet 39 + SIL.

Each voice is either a TRAINING voice or HELD OUT: the real-speech benchmark scores generators on the
held-out voices (flite rms, festival ked) as voices no model has heard, so no corpus may use them
(`require_training_voice`).
"""

from dataclasses import dataclass

import numpy as np

from backend.audio import resample
from backend.errors import AudioError
from training.corpus.speakers import ESPEAK_ACCENTS, ESPEAK_VARIANTS

SAMPLE_RATE = 16000
TRAINING, HELDOUT = "training", "heldout"


@dataclass(frozen=True)
class Voice:
    """One voice: `engine` and its own `name` for it; `role` TRAINING or HELDOUT; `speaker` in words."""

    engine: str
    name: str
    role: str
    speaker: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


def _registry() -> dict[str, Voice]:
    voices = [
        Voice("flite", "awb", TRAINING, "Scottish English male (CMU ARCTIC awb), statistical"),
        Voice("flite", "slt", TRAINING, "US English female (CMU ARCTIC slt), statistical"),
        Voice("flite", "kal16", TRAINING, "US English male (kal), diphone"),
        Voice("flite", "rms", HELDOUT, "US English male (CMU ARCTIC rms), statistical"),
        Voice("festival", "slt_hts", TRAINING, "US English female (CMU ARCTIC slt), HTS"),
        Voice("festival", "kal", TRAINING, "US English male (kal), diphone"),
        Voice("festival", "ked", HELDOUT, "US English male (ked), diphone"),
        Voice("piper", "joe", TRAINING, "US English male (joe), neural VITS; piper-tts is GPL-3: a training tool only"),
    ]
    voices += [Voice("espeak", f"{accent}+{variant}", TRAINING, f"espeak-ng {accent} accent, {variant} variant")
               for accent in ESPEAK_ACCENTS for variant in ESPEAK_VARIANTS]
    return {voice.id: voice for voice in voices}


VOICES = _registry()


def voice(voice_id: str) -> Voice:
    """The registered voice; AudioError naming the engines for an unknown id."""
    if voice_id not in VOICES:
        engines = sorted({known.engine for known in VOICES.values()})
        raise AudioError(f"voice {voice_id!r} is not registered; expected '<engine>:<name>' with engine one of "
                         f"{', '.join(engines)} (e.g. 'flite:slt', 'espeak:en-us+f3')")
    return VOICES[voice_id]


def training_voices(engine: str | None = None) -> list[str]:
    """Ids of the voices a corpus may use (optionally of one engine), in registry order."""
    return [key for key, known in VOICES.items() if known.role == TRAINING and engine in (None, known.engine)]


def heldout_voices() -> list[str]:
    """Ids of the voices kept for the benchmark: no corpus may use them."""
    return [key for key, known in VOICES.items() if known.role == HELDOUT]


def require_training_voice(voice_id: str) -> Voice:
    """The voice if a corpus may use it; AudioError for a held-out or unknown voice."""
    known = voice(voice_id)
    if known.role != TRAINING:
        raise AudioError(f"voice {voice_id} is held out for the benchmark (unseen voices); no corpus may use it. "
                         f"Training voices: {', '.join(training_voices(known.engine))}")
    return known


def engine_available(engine: str) -> bool:
    """Whether this machine can run the engine (flite/festival are Debian programs, piper a pip package)."""
    if engine == "flite":
        from training.corpus.flite import flite_available
        return flite_available()
    if engine == "festival":
        from training.corpus.festival import festival_available
        return festival_available()
    if engine == "piper":
        from training.corpus.piper_tts import piper_available
        return piper_available()
    if engine == "espeak":
        try:
            import espeakng_loader   # noqa: F401
        except ImportError:
            return False
        return True
    raise AudioError(f"engine {engine!r} is unknown; expected one of espeak, flite, festival, piper")


def synthesise(text: str, voice_id: str, rate: float = 1.0, seed: int = 0):
    """Speak `text`: (float32 mono audio at 16 kHz, ARPAbet timeline). See synthesise_many."""
    return synthesise_many([text], voice_id, rate, seed)[0]


def synthesise_many(texts, voice_id: str, rate: float = 1.0, seed: int = 0) -> list:
    """Speak each text with one voice: [(float32 audio at 16 kHz, ARPAbet timeline), ...].

    rate: speaking-rate factor (>1 faster; 0.5..2), mapped to each engine's own control (espeak words per
    minute, flite/festival duration stretch, piper length scale); festival's HTS voice speaks at 1.0 only.
    seed: piper's sampling noise (mixed with the text; the other engines are deterministic without one).
    Held-out voices are
    allowed here (the benchmark speaks with them); corpus builders call require_training_voice first.
    """
    known = voice(voice_id)
    texts = list(texts)
    if not 0.5 <= rate <= 2.0:
        raise AudioError(f"speaking rate {rate} is out of range; expected 0.5..2 (1 = the voice's own)")
    if known.engine == "festival":
        from training.corpus.festival import festival_synthesise_many
        spoken = festival_synthesise_many(texts, known.name, duration_stretch=round(1.0 / rate, 4))
    elif known.engine == "piper":
        from training.corpus.piper_tts import piper_synthesise
        spoken = [piper_synthesise(text, length_scale=round(1.0 / rate, 4), seed=seed) for text in texts]
    elif known.engine == "flite":
        from training.corpus.flite import flite_synthesise
        spoken = [flite_synthesise(text, known.name, duration_stretch=round(1.0 / rate, 4)) for text in texts]
    else:
        from training.corpus.espeak import EspeakSynth
        synth, spoken = EspeakSynth(), []
        for text in texts:
            audio, timeline = synth.synthesise(text, known.name, rate=int(round(175 * rate)))
            spoken.append((audio, synth.sample_rate, timeline))
    return [(_at_16k(audio, sample_rate), timeline) for audio, sample_rate, timeline in spoken]


def _at_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    return np.asarray(resample(np.asarray(audio, dtype=np.float32), sample_rate, SAMPLE_RATE), dtype=np.float32)
