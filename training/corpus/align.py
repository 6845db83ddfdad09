"""Forced alignment of recordings with their transcripts (pocketsphinx 5.1.1) into `.phones.lab` / `.words.lab`.

Bring your own speech: a folder of recordings and one of transcripts become labelled speech in the layout
of `shared/speech/kathleen` (`start_s end_s LABEL`, 10 ms resolution; phones ARPAbet 39 + SIL, words
lowercase with `<sil>` for pauses), which the corpus builder reads like any other recorded speech.

pocketsphinx's wheel ships the en-us acoustic model and CMUdict; a word missing from the dictionary gets
espeak-ng's pronunciation (mapped to ARPAbet). A training-only dependency, never one of the add-on. If an
utterance cannot be aligned with the default beams it is tried again with wider ones (synthetic or noisy
speech needs them). The audio gets a seeded -80 dBFS dither (see _dither, _ATTEMPTS): results are repeatable.
"""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from backend.atomic import write_text
from backend.audio import load_audio, to_int16
from backend.errors import AudioError
from training.corpus.cmu_phones import cmu_to_arpabet
from backend.rig.timeline import check_timeline

SAMPLE_RATE = 16000
FRAME_S = 0.01
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")
_WIDE_BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}
# (beams, seconds of silence added at both ends, dither seed): pocketsphinx's phone-level pass fails on
# about 4 % of the trimmed Kathleen recordings, erratically: another padding or dither usually succeeds.
# Synthetic speech may need wider beams.
_ATTEMPTS = (({}, 0.0, 0), ({}, 0.0, 1), ({}, 0.1, 1), ({}, 0.2, 0), ({}, 0.2, 1), ({}, 0.1, 2), ({}, 0.3, 2),
             (_WIDE_BEAMS, 0.0, 0), (_WIDE_BEAMS, 0.2, 1))


@dataclass(frozen=True)
class Alignment:
    """Phone and word timelines of one utterance, contiguous from 0 to the audio's end."""

    phones: list
    words: list


def transcript_words(text: str) -> list[str]:
    """Lowercase words of a transcript: letters, digits and inner apostrophes; everything else separates."""
    words = [word.strip("'") for word in re.split(r"[^a-z0-9']+", text.lower())]
    return [word for word in words if word]


class Aligner:
    """One pocketsphinx decoder (en-us model, CMUdict); `align(audio, text)` -> Alignment."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise AudioError("align: pocketsphinx is not installed; install pocketsphinx==5.1.1 (training only)") from None
        model = Path(get_model_path()) / "en-us"

        def new_decoder(beams):
            return Decoder(hmm=str(model / "en-us"), dict=str(model / "cmudict-en-us.dict"), samprate=SAMPLE_RATE,
                           loglevel="FATAL", **beams)
        self._new_decoder = new_decoder
        self._decoder = new_decoder({})
        self._espeak = None

    def align(self, audio: np.ndarray, text: str, name: str = "utterance") -> Alignment:
        """Align float32 16 kHz mono `audio` with its transcript; AudioError naming `name` when it cannot."""
        words = transcript_words(text)
        if not words:
            raise AudioError(f"{name}: the transcript has no words; expected the words spoken in the recording")
        duration = len(audio) / SAMPLE_RATE
        if duration < 0.1:
            raise AudioError(f"{name}: the recording lasts {duration:.3f} s; expected at least 0.1 s of speech")
        for beams, pad_s, seed in _ATTEMPTS:
            decoder = self._decoder if not beams else self._new_decoder(beams)
            for word in words:
                self._ensure_word(decoder, word, name)
            padding = np.zeros(int(round(pad_s * SAMPLE_RATE)), np.float32)
            padded = np.concatenate([padding, np.asarray(audio, np.float32), padding])
            samples = to_int16(np.clip(padded + _dither(len(padded), seed), -1.0, 1.0)).tobytes()
            entries = self._run(decoder, samples, " ".join(words))
            if entries:
                return _to_alignment(entries, duration, pad_s, name)
            if not beams:                  # a failed pass can leave the decoder unusable: start afresh
                self._decoder = self._new_decoder({})
        raise AudioError(f"{name}: pocketsphinx could not align the recording with its transcript, even with wide "
                         "beams and padding; expected speech of exactly the transcript's words")

    @staticmethod
    def _run(decoder, samples: bytes, text: str) -> list:
        """Word-level then phone-level alignment pass; [(word, [(phone, start_frame, frames), ...]), ...] or []."""
        try:
            decoder.set_align_text(text)
            decoder.start_utt()
            decoder.process_raw(samples, full_utt=True)
            decoder.end_utt()
            if decoder.hyp() is None:
                return []
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(samples, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError:
            return []
        if alignment is None:
            return []
        return [(word.name, [(phone.name, phone.start, phone.duration) for phone in word]) for word in alignment]

    def _ensure_word(self, decoder, word: str, name: str) -> None:
        """Add a word missing from CMUdict with espeak-ng's pronunciation."""
        if decoder.lookup_word(word) is not None:
            return
        if self._espeak is None:
            from training.corpus.espeak import EspeakSynth
            self._espeak = EspeakSynth()
        _, timeline = self._espeak.synthesise(word, "en-us")
        phones = [label for _, _, label in timeline if label != "SIL"]
        if not phones:
            raise AudioError(f"{name}: the word {word!r} is not in CMUdict and espeak-ng gives it no phones; "
                             "expected English words")
        decoder.add_word(word, " ".join(phones), True)


def _dither(length: int, seed: int) -> np.ndarray:
    """A seeded noise of about 3 int16 steps (-80 dBFS): without any, runs of digital silence make
    pocketsphinx's phone-level pass fail more often."""
    return np.random.default_rng(seed).normal(0.0, 1e-4, length).astype(np.float32)


def _to_alignment(entries, duration: float, pad_s: float, name: str) -> Alignment:
    """pocketsphinx words/phones (10 ms frames, `pad_s` of padding first) -> contiguous phone and word
    timelines from 0 to `duration`."""
    phones, words = [], []
    for word, word_phones in entries:
        label = "<sil>" if word in ("<sil>", "<s>", "</s>") or word.startswith("+") or word.startswith("[") else \
            re.sub(r"\(\d+\)$", "", word)
        for phone, start, frames in word_phones:
            _append(phones, start * FRAME_S - pad_s, (start + frames) * FRAME_S - pad_s, cmu_to_arpabet(phone), "SIL")
        if word_phones:
            first, last = word_phones[0], word_phones[-1]
            _append(words, first[1] * FRAME_S - pad_s, (last[1] + last[2]) * FRAME_S - pad_s, label, "<sil>")
    for timeline, silence in ((phones, "SIL"), (words, "<sil>")):
        _finish(timeline, duration, silence)
    phones, words = _rounded(phones), _rounded(words)
    check_timeline(phones, name)
    return Alignment(phones, words)


def _rounded(timeline: list) -> list:
    """Times to 10 ms (as the shipped labels); a segment that rounds to nothing is dropped (the next one
    starts where the one before it ends)."""
    result = []
    for _, end, label in timeline:
        start, end = (result[-1][1] if result else 0.0), round(end, 2)
        if end > start:
            result.append((start, end, label))
    return result


def _append(timeline: list, start: float, end: float, label: str, silence: str) -> None:
    """Add a segment, filling a gap before it with silence and merging adjacent silences."""
    previous_end = timeline[-1][1] if timeline else 0.0
    if end <= previous_end + 1e-9:
        return
    start = max(start, previous_end)
    if start > previous_end + 1e-9:
        _append(timeline, previous_end, start, silence, silence)
    if timeline and label == silence == timeline[-1][2]:
        timeline[-1][1] = end
    else:
        timeline.append([start, end, label])


def _finish(timeline: list, duration: float, silence: str) -> None:
    """Clip the timeline to the audio and pad its end with silence."""
    while timeline and timeline[-1][0] >= duration - 1e-9:
        timeline.pop()
    if timeline and timeline[-1][1] > duration:
        timeline[-1][1] = duration
    if not timeline or timeline[-1][1] < duration - 1e-9:
        _append(timeline, timeline[-1][1] if timeline else 0.0, duration, silence, silence)


def boundary_errors(reference, hypothesis) -> np.ndarray:
    """|hypothesis − reference| (s) of the phone boundaries the two timelines share.

    Phone sequences are matched (difflib, SIL included); a boundary counts when the phones on both sides of
    it match in both timelines, so a different pronunciation or an extra pause costs only its own edges.
    """
    labels_ref, labels_hyp = [label for *_, label in reference], [label for *_, label in hypothesis]
    pairs = {}
    for block in SequenceMatcher(None, labels_ref, labels_hyp, autojunk=False).get_matching_blocks():
        for offset in range(block.size):
            pairs[block.a + offset] = block.b + offset
    errors = [abs(hypothesis[pairs[index]][1] - reference[index][1]) for index in range(len(reference) - 1)
              if index in pairs and index + 1 in pairs and pairs[index + 1] == pairs[index] + 1]
    return np.array(errors, dtype=np.float64)


def write_lab(path: Path, timeline) -> None:
    """Write `start_s<TAB>end_s<TAB>LABEL` lines (2 decimals, as the shipped labels), atomically."""
    write_text(path, "".join(f"{start:.2f}\t{end:.2f}\t{label}\n" for start, end, label in timeline))


def align_folder(audio_dir, text_dir, out_dir, report=print, force: bool = False) -> dict:
    """Align every recording in `audio_dir` that has `<id>.txt` in `text_dir`; write `<id>.phones.lab` and
    `<id>.words.lab` into `out_dir`. One failing utterance is reported and skipped, never the rest. A recording
    whose labels already exist in `out_dir` (perhaps corrected by hand) is kept as it is unless `force`.

    Returns {"aligned": [...ids], "failed": {id: message}, "no_transcript": [...ids], "kept": [...ids]}.
    """
    audio_dir, text_dir, out_dir = Path(audio_dir), Path(text_dir), Path(out_dir)
    for folder, what in ((audio_dir, "audio"), (text_dir, "transcript")):
        if not folder.is_dir():
            raise AudioError(f"{folder}: {what} folder not found; expected a folder of <id>"
                             f"{'.flac/.wav' if what == 'audio' else '.txt'} files")
    recordings = sorted(path for path in audio_dir.iterdir() if path.suffix.lower() in AUDIO_SUFFIXES)
    if not recordings:
        raise AudioError(f"{audio_dir}: no recordings; expected <id>.flac, <id>.wav or <id>.ogg files")
    out_dir.mkdir(parents=True, exist_ok=True)
    aligner = Aligner()
    result = {"aligned": [], "failed": {}, "no_transcript": [], "kept": []}
    for recording in recordings:
        name, transcript = recording.stem, text_dir / f"{recording.stem}.txt"
        if not transcript.is_file():
            result["no_transcript"].append(name)
            continue
        if not force and any((out_dir / f"{name}.{kind}.lab").exists() for kind in ("phones", "words")):
            result["kept"].append(name)
            continue
        try:
            audio, _ = load_audio(recording, SAMPLE_RATE)
            alignment = aligner.align(audio, transcript.read_text(encoding="utf-8"), name)
        except AudioError as error:
            result["failed"][name] = str(error)
            report(f"skipped {name}: {error}")
            continue
        write_lab(out_dir / f"{name}.phones.lab", alignment.phones)
        write_lab(out_dir / f"{name}.words.lab", alignment.words)
        result["aligned"].append(name)
    return result
