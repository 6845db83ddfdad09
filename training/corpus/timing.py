"""Check a voice's phone times on its own audio: where does each labelled /p b m/ closure really fall?

While the lips are shut, almost no energy above 1 kHz leaves the mouth (a nasal or voice bar is low-pass),
so each bilabial shows as a dip of the high-band level. For every labelled bilabial the dip is the
contiguous run of frames, within ±SEARCH_S of the label's centre, whose level is within DIP_DB of the
lowest level there; its offset is (dip centre − label centre). A voice whose times are right has a median
offset near the other voices' (a small common bias comes from the measure itself: stop bursts, nasal
murmur); `confirmed` is the share of bilabials whose labelled centre lies inside the dip.

This is how PIPER_TIMING_SHIFT_S was measured (piper's raw times against the other engines on the same
sentences): `python -m training.corpus timing --sentences 60` (ARCTIC a-prompts).
"""

from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfiltfilt

from backend.errors import AudioError
from backend.heldout import is_heldout
from backend.rig.timeline import BILABIALS

SAMPLE_RATE = 16000
HOP_S = 0.0025
WINDOW_S = 0.010
SEARCH_S = 0.08
DIP_DB = 6.0


def high_band_level_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames,) level in dB of the audio above 1 kHz, one frame every HOP_S, WINDOW_S long, centred."""
    high = sosfiltfilt(butter(4, 1000, "highpass", fs=sample_rate, output="sos"), np.asarray(audio, np.float64))
    hop, window = int(round(HOP_S * sample_rate)), int(round(WINDOW_S * sample_rate))
    padded = np.pad(high ** 2, (window // 2, window))
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    starts = np.arange(0, len(high), hop)
    energy = (cumulative[starts + window] - cumulative[starts]) / window
    return 10 * np.log10(energy + 1e-10)


def bilabial_offsets(audio: np.ndarray, timeline, sample_rate: int = SAMPLE_RATE) -> list[tuple[float, bool]]:
    """[(dip centre − labelled centre in s, labelled centre inside the dip), ...] for each /p b m/."""
    level = high_band_level_db(audio, sample_rate)
    results = []
    for start, end, label in timeline:
        if label not in BILABIALS:
            continue
        centre = (start + end) / 2
        first = max(0, int(round((centre - SEARCH_S) / HOP_S)))
        last = min(len(level), int(round((centre + SEARCH_S) / HOP_S)) + 1)
        if last - first < 3:
            continue
        window = level[first:last]
        lowest = int(np.argmin(window))
        low = window <= window[lowest] + DIP_DB
        left = lowest
        while left > 0 and low[left - 1]:
            left -= 1
        right = lowest
        while right < len(low) - 1 and low[right + 1]:
            right += 1
        dip_start, dip_end = (first + left) * HOP_S, (first + right + 1) * HOP_S
        results.append(((dip_start + dip_end) / 2 - centre, dip_start <= centre <= dip_end))
    return results


def summarise_offsets(offsets) -> dict:
    """Median offset (ms), its bootstrap-free spread (interquartile range, ms), confirmed share, count."""
    values = np.array([offset for offset, _ in offsets], dtype=np.float64)
    if values.size == 0:
        return {"bilabials": 0}
    quartiles = np.percentile(values, [25, 75]) * 1000
    return {"bilabials": int(values.size), "median_offset_ms": round(float(np.median(values)) * 1000, 1),
            "iqr_ms": round(float(quartiles[1] - quartiles[0]), 1),
            "confirmed": round(float(np.mean([inside for _, inside in offsets])), 3)}


def arctic_texts(speech_dir=None, count: int = 40) -> list[str]:
    """The first `count` distinct ARCTIC a-prompt transcripts (never a held-out prompt) of a speech folder."""
    from training.corpus.build import default_paths
    folder = Path(speech_dir) if speech_dir else default_paths()[2]
    prompts = [path for path in sorted(folder.glob("arctic_a*.txt")) if not is_heldout(path.stem)]
    texts = list(dict.fromkeys(path.read_text(encoding="utf-8").strip() for path in prompts))[:count]
    if not texts:
        raise AudioError(f"{folder}: no ARCTIC a-prompt transcripts (arctic_a*.txt); expected shared/speech/kathleen")
    return texts


def measure_voices(texts, voice_ids, raw_piper: bool = True) -> dict:
    """{voice id: summarise_offsets(...)} over the same texts; piper with its raw times when raw_piper
    (also reported corrected, as 'piper:joe (corrected)')."""
    from training.corpus.voices import synthesise_many
    report = {}
    for voice_id in voice_ids:
        if voice_id == "piper:joe":
            from training.corpus.piper_tts import PIPER_TIMING_SHIFT_S, piper_synthesise
            from backend.audio import resample
            offsets = {"raw": [], "corrected": []}
            for text in texts:
                for kind, shift in (("raw", 0.0), ("corrected", PIPER_TIMING_SHIFT_S)):
                    audio, rate, timeline = piper_synthesise(text, timing_offset_s=shift)
                    offsets[kind] += bilabial_offsets(resample(audio, rate, SAMPLE_RATE), timeline)
            if raw_piper:
                report["piper:joe (raw)"] = summarise_offsets(offsets["raw"])
            report["piper:joe (corrected)"] = summarise_offsets(offsets["corrected"])
            continue
        offsets = []
        for audio, timeline in synthesise_many(texts, voice_id):
            offsets += bilabial_offsets(audio, timeline)
        report[voice_id] = summarise_offsets(offsets)
    return report
