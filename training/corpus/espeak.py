"""espeak-ng through its C library (ctypes), with exact phoneme onsets from its phoneme events.

The library and its voice data come from the `espeakng-loader` wheel, so nothing is needed from the
system (POSIX: each utterance is spoken in a forked child, see EspeakSynth). Audio is synthesised synchronously at the library's rate (22050 Hz); every phoneme event's
`audio_position` is its onset in ms. Phonemes are asked for in IPA and mapped to ARPAbet.
"""

import ctypes
import json
import os
import zlib

import numpy as np

from backend.errors import AudioError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME, _EVENT_END, _EVENT_MSG_TERMINATED = 0, 7, 5, 6
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_PARAMETER = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# IPA (as espeak-ng writes it for English voices, stress and length marks removed) -> ARPAbet.
IPA_TO_ARPABET = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V", "θ": "TH",
    "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "tʃ": "CH", "dʒ": "JH", "m": "M",
    "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L", "r": "R", "ɹ": "R", "w": "W", "j": "Y", "ʔ": "T", "ɾ": "T",
    "n̩": "N", "l̩": "L", "m̩": "M", "x": "HH", "ʍ": "W",
    "i": "IY", "iə": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "eɪ": "EY", "ɛ": "EH", "æ": "AE", "a": "AE",
    "ɑ": "AA", "ɒ": "AA", "ɔ": "AO", "ɔː": "AO", "o": "OW", "oʊ": "OW", "əʊ": "OW", "ʊ": "UH",
    "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER", "ɝ": "ER", "aɪ": "AY",
    "aʊ": "AW", "ɔɪ": "OY", "ɛɹ": "EH", "ɪɹ": "IH", "ʊɹ": "UH", "ɔɹ": "AO", "ɑɹ": "AA", "oːɹ": "AO",
    "aɪə": "AY", "aɪɚ": "AY", "eə": "EH", "ɪə": "IH", "ʊə": "UH", "ɑː": "AA", "iː": "IY", "uː": "UW",
    "ɜː": "ER", "ɐɹ": "AA", "əl": "L",
}
_IGNORED_MARKS = "ˈˌː̃ˑ"


def ipa_to_arpabet(ipa: str) -> str | None:
    """ARPAbet for one espeak IPA phoneme; 'SIL' for pauses; None when it is not a known English phone."""
    name = ipa.strip()
    if name in ("", "_", "_:", "_!", "||", "|"):
        return "SIL"
    if name in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[name]
    bare = "".join(character for character in name if character not in _IGNORED_MARKS)
    return "SIL" if not bare else IPA_TO_ARPABET.get(bare)


class EspeakSynth:
    """espeak-ng synthesis with phoneme timings: `synthesise(text, voice, rate, pitch, volume, pitch_range)`.

    libespeak-ng keeps state from one utterance to the next (and draws noise from it), so repeated calls
    in one process give different samples. For identical bytes from identical requests, the library is
    initialised here and every utterance is spoken in a fresh child (os.fork from the calling thread)
    that starts from that state; the child sends back JSON (events) and the raw float32 samples.
    """

    def __init__(self):
        self.sample_rate = _initialise()

    def synthesise(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, volume: int = 100,
                   pitch_range: int = 50) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        """Speak `text`; return (float32 mono audio at self.sample_rate, ARPAbet timeline in seconds).

        rate: words per minute (80..450); pitch, pitch_range: 0..100; volume: 0..200 (espeak's amplitude).
        Phonemes with no ARPAbet equivalent are merged into the phone before them.
        """
        if not text.strip():
            raise AudioError("espeak: text is empty; expected at least one word to speak")
        audio, events = _speak_in_child(text, voice, rate, pitch, volume, pitch_range)
        return audio, events_to_timeline(events, len(audio) / self.sample_rate)


_library = None
_sample_rate = 0


def _initialise() -> int:
    """Load and initialise libespeak-ng once per process; returns its sample rate."""
    global _library, _sample_rate
    if _library is None:
        _library, _sample_rate = _load_library()
    return _sample_rate


def _speak_in_child(*request):
    """Run `_speak(*request)` in a forked child; returns its result or raises its AudioError."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        try:
            audio, events = _speak(*request)
            header, payload = {"events": events}, audio.astype("<f4").tobytes()
        except AudioError as error:
            header, payload = {"error": str(error)}, b""
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(json.dumps(header).encode("utf-8") + b"\n" + payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read()
    os.waitpid(child, 0)
    header_bytes, _, payload = message.partition(b"\n")
    if not header_bytes:
        raise AudioError("espeak: the synthesis worker died without an answer; expected audio and phoneme events")
    header = json.loads(header_bytes)
    if "error" in header:
        raise AudioError(header["error"])
    return np.frombuffer(payload, dtype="<f4").astype(np.float32), [tuple(event) for event in header["events"]]


def _speak(text: str, voice: str, rate: int, pitch: int, volume: int, pitch_range: int):
    """Synthesise in this process: (float32 audio, [(onset_s, ipa), ...]). Runs in the forked child."""
    chunks, events = [], []

    def on_synth(wave, count, event_pointer):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wave, shape=(count,)).copy())
        index = 0
        while event_pointer[index].type != _EVENT_LIST_TERMINATED:
            event = event_pointer[index]
            if event.type == _EVENT_PHONEME:
                events.append((event.audio_position / 1000.0, event.id.string.decode("utf-8", "replace")))
            index += 1
        return 0

    callback = _CALLBACK(on_synth)
    _library.espeak_ng_SetRandSeed(zlib.crc32(f"{voice}|{text}".encode("utf-8")))   # breathy voices draw noise
    if _library.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
        raise AudioError(f"espeak: voice {voice!r} not found; expected a name such as 'en-us' or 'en-us+f3'")
    for name, value in (("rate", rate), ("pitch", pitch), ("volume", volume), ("range", pitch_range)):
        _library.espeak_SetParameter(_PARAMETER[name], int(value), 0)
    _library.espeak_SetSynthCallback(callback)
    encoded = text.encode("utf-8") + b"\0"
    _library.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    _library.espeak_Synchronize()
    audio = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    return audio, events


def events_to_timeline(events, duration_s: float) -> list[tuple[float, float, str]]:
    """Phoneme onsets [(onset_s, ipa), ...] -> contiguous ARPAbet timeline ending at `duration_s`.

    Each phoneme ends where the next begins; zero-length phonemes are dropped, unknown ones and
    repeated silences merge into the phone before them.
    """
    timeline: list[list] = []
    for position, (onset, ipa) in enumerate(events):
        end = events[position + 1][0] if position + 1 < len(events) else duration_s
        end = min(end, duration_s)
        if end <= onset:
            continue
        label = ipa_to_arpabet(ipa)
        if timeline and (label is None or (label == timeline[-1][2] == "SIL")):
            timeline[-1][1] = end
            continue
        if timeline and timeline[-1][1] < onset:
            timeline.append([timeline[-1][1], onset, "SIL"])
        timeline.append([onset if timeline else 0.0, end, label or "SIL"])
    if timeline and timeline[-1][1] < duration_s:
        timeline.append([timeline[-1][1], duration_s, "SIL"])
    return [(round(start, 4), round(end, 4), label) for start, end, label in timeline]


def _load_library():
    """Load libespeak-ng from the espeakng-loader wheel and initialise it for phoneme events in IPA."""
    try:
        import espeakng_loader
    except ImportError:
        raise AudioError("espeak: the espeakng-loader package is not installed; run ./scripts/setup.sh") from None
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
    sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                            espeakng_loader.get_data_path().encode("utf-8"), options)
    if sample_rate <= 0:
        raise AudioError(f"espeak: initialising libespeak-ng failed (returned {sample_rate}); "
                         "expected its sample rate. Reinstall espeakng-loader")
    return library, sample_rate
