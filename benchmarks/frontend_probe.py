"""The probe table for speech front ends: what a linear read-out of each front end hears on real speech, and the
front end's own delay.

Probes (numpy/scipy, L-BFGS, L2-regularised, features z-scored on the training frames, each frame stacked with
the frames 40 ms before and after): a bilabial detector (logistic, /p b m/ vs everything else) and a frame phone
classifier (softmax over the 39 ARPAbet phones + SIL). Trained on corpus audio only: the real Kathleen takes that
are NOT held out (every `--train-stride`-th of them) plus `--espeak` espeak-ng utterances of their prompts with
the engine's own phoneme times. Scored on the Kathleen held-out takes (backend.heldout: prompts ending in 8) and on
shared/speech/dev (5 other speakers); neither is ever trained on.
Rows: `logmel80`, the 80-bin log-mel of the shipped generators (training.generators.audio_encoder.LogMel, two
10 ms frames per 20 ms frame), `hama16`, backend.speech_frontend's log-posteriors + hidden layer (447), and
`whisper_tiny_en`, the Whisper tiny.en encoder states (384) of scripts/convert_whisper_encoder.py's ONNX graph
(`--whisper`; made by that script, not shipped; the row is left out when that file is absent), run on each clip's
real length, not padded to 30 s.

Metrics per set: bilabial AUC (frames inside a labelled /p b m/ against all others); closures found (share of
labelled /p b m/ with a detector probability ≥ 0.5 between 20 ms before their start and 40 ms after their end);
false-alarm frames (share of frames ≥ 40 ms away from every /p b m/ with probability ≥ 0.5); frame phone accuracy.
Delay: for each labelled /p b m/ of the held-out takes, the peak (parabolic sub-frame) of the front end's own
/p b m/ posterior within −100…+150 ms of the phone's centre, when it exceeds 0.5; median against the centre. Also
the first frame in that window whose argmax is a /p b m/ token (the CTC spike).
Labels are pocketsphinx forced alignments (10 ms), so the delay is relative to that aligner.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/frontend_probe.py [--train-stride 2] [--espeak 150] [--delay-only]
Front-end features are cached in .cache/speech_features (backend.speech_feature_cache): a second run is faster.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax
from scipy.stats import rankdata

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.audio import load_audio, resample  # noqa: E402
from backend.heldout import is_heldout  # noqa: E402
from backend.speech_feature_cache import SpeechFeatureCache  # noqa: E402
from backend.speech_frontend import (FRAME_RATE, POSTERIOR_DIM, SAMPLE_RATE, bilabial_columns,  # noqa: E402
                                     load_frontend)

SHARED = REPO.parent / "shared"
PHONES = ("SIL AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z "
          "ZH").split()
BILABIALS = {"P", "B", "M"}
CONTEXT = (-2, 0, 2)   # frames stacked around each frame (±40 ms)


def read_labels(path: Path) -> list:
    """[(start_s, end_s, PHONE)] of a `.phones.lab` file."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((float(parts[0]), float(parts[1]), parts[2].upper()))
    return rows


def frame_labels(timeline: list, frames: int) -> np.ndarray:
    """Phone index per 50 Hz frame (the phone containing the frame's centre), -1 where none or unknown."""
    labels = np.full(frames, -1, np.int64)
    centres = np.arange(frames) / FRAME_RATE
    for start, end, phone in timeline:
        if phone in PHONES:
            labels[(centres >= start) & (centres < end)] = PHONES.index(phone)
    return labels


class LogMel80:
    """The shipped generators' 80-bin log-mel (torch module, run here on one thread), two 10 ms frames per row."""

    def __init__(self):
        import torch
        from training.generators.audio_encoder import LogMel
        torch.set_num_threads(1)
        self.torch, self.module = torch, LogMel(80)

    def __call__(self, samples: np.ndarray, frames: int) -> np.ndarray:
        with self.torch.no_grad():
            mel = self.module(self.torch.from_numpy(samples[None]))[0].numpy()
        mel = np.pad(mel, ((0, max(0, 2 * frames - mel.shape[0])), (0, 0)), mode="edge")[:2 * frames]
        return mel.reshape(frames, 160)


class WhisperTinyEn:
    """Whisper tiny.en encoder states (T, 384) at 50 Hz on the clip's real length (≤ 30 s), onnxruntime, one thread."""

    def __init__(self, onnx_path: Path):
        import onnxruntime
        from backend.bilabial_detector import MAX_MEL_FRAMES
        from scripts.convert_whisper_encoder import window_mel
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.log_mel, self.max_frames = window_mel, MAX_MEL_FRAMES

    def __call__(self, samples: np.ndarray, frames: int) -> np.ndarray:
        mel = self.log_mel(samples)
        if mel.shape[1] > self.max_frames:
            raise SystemExit(f"a clip of {samples.size / SAMPLE_RATE:.1f} s: the Whisper row takes clips up to 30 s")
        states = self.session.run(None, {"mel": mel[None]})[0][0]
        return np.pad(states, ((0, max(0, frames - states.shape[0])), (0, 0)), mode="edge")[:frames]


def stacked(features: np.ndarray) -> np.ndarray:
    frames = features.shape[0]
    index = np.clip(np.arange(frames)[:, None] + np.array(CONTEXT)[None], 0, frames - 1)
    return features[index].reshape(frames, -1)


def clips_of(folder: Path, keep) -> list:
    return [path for path in sorted(folder.glob("*.flac")) if path.with_suffix(".phones.lab").is_file()
            and keep(path.stem)]


def espeak_clips(count: int, train_prompts: list) -> list:
    """(samples 16 kHz, timeline) of espeak-ng speaking the training prompts' texts, varied voice settings."""
    from training.corpus.espeak import EspeakSynth
    synth, rng, out = EspeakSynth(), np.random.default_rng(0), []
    for path in train_prompts[:count]:
        text = path.with_suffix(".txt").read_text().strip()
        audio, timeline = synth.synthesise(text, voice=str(rng.choice(["en-us", "en", "en-us+f3", "en-us+m3"])),
                                           rate=int(rng.integers(140, 200)), pitch=int(rng.integers(30, 70)))
        out.append((resample(audio, synth.sample_rate, SAMPLE_RATE).astype(np.float32), timeline))
    return out


def collect(sources: list, cache: SpeechFeatureCache, logmel: LogMel80, whisper: WhisperTinyEn | None,
            frame_stride: int = 1) -> dict:
    """{row: stacked features (N, D)}, labels (N,), and per-clip (features, labels, timeline) for scoring; no
    Whisper row when `whisper` is None."""
    rows, labels, clips = {"logmel80": [], "hama16": []}, [], []
    if whisper is not None:
        rows["whisper_tiny_en"] = []
    for samples, timeline in sources:
        hama = cache.features(samples, SAMPLE_RATE)
        frames = hama.shape[0]
        per_row = {"hama16": stacked(hama), "logmel80": stacked(logmel(samples, frames))}
        if whisper is not None:
            per_row["whisper_tiny_en"] = stacked(whisper(samples, frames))
        clip_labels = frame_labels(timeline, frames)
        clips.append((per_row, clip_labels, timeline, hama[:, :POSTERIOR_DIM]))
        keep = np.arange(0, frames, frame_stride)
        for row in rows:
            rows[row].append(per_row[row][keep])
        labels.append(clip_labels[keep])
    return {"rows": {row: np.concatenate(parts) for row, parts in rows.items()}, "labels": np.concatenate(labels),
            "clips": clips}


def train_softmax(x: np.ndarray, y: np.ndarray, classes: int, l2: float, iterations: int) -> np.ndarray:
    """(D + 1, classes) weights of an L2-regularised softmax (classes = 1: logistic) regression."""
    design = np.hstack([x, np.ones((x.shape[0], 1), np.float32)])
    width = max(classes, 1)
    targets = np.eye(classes, dtype=np.float32)[y] if classes > 1 else y.astype(np.float32)[:, None]

    def loss(flat):
        weights = flat.reshape(-1, width).astype(np.float32)
        logits = design @ weights
        if classes > 1:
            log_p = log_softmax(logits, axis=1)
            value = -np.mean(np.sum(targets * log_p, axis=1))
            residual = np.exp(log_p) - targets
        else:
            value = np.mean(np.logaddexp(0, logits) - targets * logits)
            residual = expit(logits) - targets
        gradient = design.T @ residual / design.shape[0]
        value += 0.5 * l2 * np.sum(weights[:-1] ** 2)
        gradient[:-1] += l2 * weights[:-1]
        return float(value), gradient.ravel().astype(np.float64)

    result = minimize(loss, np.zeros(design.shape[1] * width), jac=True, method="L-BFGS-B",
                      options={"maxiter": iterations})
    return result.x.reshape(-1, width).astype(np.float32)


def apply(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ weights[:-1] + weights[-1]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    ranks = rankdata(scores)
    count = positive.sum()
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * (~positive).sum()))


def score(clips: list, row: str, detector, classifier, mean, std) -> dict:
    probabilities, positives, found, closures, alarms, far, correct, labelled = [], [], 0, 0, 0, 0, 0, 0
    for per_row, labels, timeline, _ in clips:
        x = (per_row[row] - mean) / std
        probability = expit(apply(detector, x)[:, 0])
        times = np.arange(labels.size) / FRAME_RATE
        inside = np.zeros(labels.size, bool)
        near = np.zeros(labels.size, bool)
        for start, end, phone in timeline:
            if phone in BILABIALS:
                inside |= (times >= start) & (times < end)
                near |= (times >= start - 0.04) & (times < end + 0.04)
                window = (times >= start - 0.02) & (times < end + 0.04)
                closures += 1
                found += bool(window.any() and probability[window].max() >= 0.5)
        probabilities.append(probability)
        positives.append(inside)
        alarms += int(np.sum((probability >= 0.5) & ~near))
        far += int(np.sum(~near))
        predicted = apply(classifier, x).argmax(axis=1)
        known = labels >= 0
        correct += int(np.sum(predicted[known] == labels[known]))
        labelled += int(known.sum())
    return {"auc": auc(np.concatenate(probabilities), np.concatenate(positives)), "found": found / closures,
            "closures": closures, "false_alarms": alarms / far, "phone_accuracy": correct / labelled}


def delay(clips: list) -> dict:
    """The front end's /p b m/ posterior peak against the labelled phone centres (seconds)."""
    columns = bilabial_columns()
    delays, spikes, total = [], [], 0
    for _, _, timeline, log_posteriors in clips:
        posterior = np.exp(log_posteriors[:, columns]).sum(axis=1)
        emitted = np.isin(log_posteriors.argmax(axis=1), columns)
        for start, end, phone in timeline:
            if phone not in BILABIALS:
                continue
            total += 1
            centre = 0.5 * (start + end)
            first = max(1, int(np.ceil((centre - 0.10) * FRAME_RATE)))
            last = min(posterior.size - 2, int(np.floor((centre + 0.15) * FRAME_RATE)))
            if last < first:
                continue
            emissions = np.flatnonzero(emitted[first:last + 1])
            if emissions.size:
                spikes.append((first + emissions[0]) / FRAME_RATE - centre)
            peak = first + int(np.argmax(posterior[first:last + 1]))
            if posterior[peak] < 0.5:
                continue
            left, middle, right = posterior[peak - 1:peak + 2]
            curvature = left - 2 * middle + right
            offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
            delays.append((peak + offset) / FRAME_RATE - centre)
    delays = np.array(delays)
    return {"median_s": float(np.median(delays)), "mean_s": float(delays.mean()),
            "quartiles_s": [float(q) for q in np.percentile(delays, [25, 75])], "peaks": int(delays.size),
            "bilabials": total, "spike_median_s": float(np.median(spikes)), "spikes": len(spikes)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-stride", type=int, default=2, help="every n-th non-held-out Kathleen take")
    parser.add_argument("--frame-stride", type=int, default=2, help="every n-th training frame")
    parser.add_argument("--espeak", type=int, default=150, help="espeak-ng utterances added to training")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--delay-only", action="store_true")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "speech_features")
    parser.add_argument("--whisper", type=Path, default=REPO / ".cache" / "whisper_tiny_en_encoder.onnx",
                        help="the Whisper tiny.en encoder graph of scripts/convert_whisper_encoder.py")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    kathleen, dev = SHARED / "speech" / "kathleen", SHARED / "speech" / "dev"
    cache = SpeechFeatureCache(args.cache, load_frontend())
    logmel = LogMel80()
    whisper = WhisperTinyEn(args.whisper) if args.whisper.is_file() else None
    if whisper is None:
        print(f"no Whisper row: {args.whisper} not found (make it with scripts/convert_whisper_encoder.py)")

    def real(paths):
        return [(load_audio(path, rate=SAMPLE_RATE)[0], read_labels(path.with_suffix(".phones.lab"))) for path in paths]

    heldout = collect(real(clips_of(kathleen, is_heldout)), cache, logmel, whisper)
    measured = delay(heldout["clips"])
    print(f"delay of the /p b m/ posterior peak after the labelled centre (Kathleen held-out, {measured['peaks']} of "
          f"{measured['bilabials']} bilabials peak ≥ 0.5): median {1000 * measured['median_s']:+.1f} ms, mean "
          f"{1000 * measured['mean_s']:+.1f} ms, quartiles {1000 * measured['quartiles_s'][0]:+.1f} / "
          f"{1000 * measured['quartiles_s'][1]:+.1f} ms; first frame whose argmax is /p b m/ (the CTC spike, "
          f"{measured['spikes']} found): median {1000 * measured['spike_median_s']:+.1f} ms")
    if args.delay_only:
        return 0
    train_paths = clips_of(kathleen, lambda stem: not is_heldout(stem))
    sources = real(train_paths[::args.train_stride])
    if args.espeak:
        sources += espeak_clips(args.espeak, train_paths)
    train = collect(sources, cache, logmel, whisper, args.frame_stride)
    sets = {"Kathleen held-out": heldout["clips"], "dev (5 other speakers)": collect(real(clips_of(dev, bool)), cache,
                                                                                     logmel, whisper)["clips"]}
    labels = train["labels"]
    known = labels >= 0
    bilabial = np.isin(labels, [PHONES.index(phone) for phone in BILABIALS])
    print(f"training frames: {labels.size} ({len(train_paths[::args.train_stride])} real takes + {args.espeak} "
          f"espeak-ng utterances); cache hits {cache.hits}, misses {cache.misses}")
    print("| front end | set | bilabial AUC | closures found | false-alarm frames | frame phone accuracy |")
    print("|---|---|---|---|---|---|")
    for row, x in train["rows"].items():
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std
        detector = train_softmax(z, bilabial, 1, args.l2, args.iterations)
        classifier = train_softmax(z[known], labels[known], len(PHONES), args.l2, args.iterations)
        for name, clips in sets.items():
            result = score(clips, row, detector, classifier, mean, std)
            print(f"| {row} | {name} | {result['auc']:.3f} | {100 * result['found']:.0f} % of {result['closures']} "
                  f"| {100 * result['false_alarms']:.1f} % | {result['phone_accuracy']:.3f} |")
    print(f"({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
