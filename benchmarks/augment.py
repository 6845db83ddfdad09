"""Training-time augmentation (training/corpus/augment.py): speed, and what each augmentation leaves of the phones.

Real speech: `--clips` held-IN Kathleen recordings from ../shared/speech/kathleen (never a held-out prompt,
backend/heldout.py; read only), every k-th of the sorted list.

Speed: seconds of processing per second of audio for each augmentation alone (best of `--repeats`, one
thread, on the clips concatenated), against two baselines in the same run: a plain copy of the samples and
the speech front end's own `features` (hama 1.6) on the same audio.

Quality: the front end on each clip clean and augmented (each augmentation alone at its extreme, plus
sampled plans). Per condition, over all clips:
  agree      frame-level agreement of the CTC argmax token with the clean clip's (tempo: augmented frame j
             is compared with clean frame round(j * tempo), i.e. after time alignment);
  agree/sp   the same over the frames whose clean argmax is a phone (not blank or word boundary);
  tok err    edit distance between the greedy CTC token sequences (repeats and blanks collapsed), augmented
             vs clean, over the clean sequence's length (a phone error rate with the clean decode as truth);
  bilabial   share of the labelled /p b m/ (.phones.lab) with a bilabial argmax frame from 30 ms before to
             60 ms after the phone (times scaled by 1 / tempo); the clean row is the ceiling.

    .venv/bin/python benchmarks/augment.py [--clips 24] [--repeats 3] [--plans 24]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"   # before numpy loads its BLAS: one thread

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.audio import load_audio  # noqa: E402
from backend.heldout import is_heldout  # noqa: E402
from backend.rig.timeline import BILABIALS, read_lab  # noqa: E402
from backend.speech_frontend import (BLANK_TOKEN, FRAME_RATE, WORD_BOUNDARY_TOKEN, bilabial_columns,  # noqa: E402
                                     load_frontend)
from training.corpus.augment import SAMPLE_RATE, AugmentPlan, apply_plan, babble_sources, plan_for  # noqa: E402

KATHLEEN = REPO.parent / "shared" / "speech" / "kathleen"

# Each augmentation alone at a middle setting (speed) and at its extremes (quality).
SPEED_PLANS = {
    "tempo 0.9": AugmentPlan(tempo=0.9),
    "pitch +2": AugmentPlan(pitch_semitones=2.0),
    "formant 1.1": AugmentPlan(formant_warp=1.1),
    "pink noise 10 dB": AugmentPlan(noise_snr_db=10.0, noise_kind="pink", seed=1),
    "babble 10 dB": AugmentPlan(noise_snr_db=10.0, noise_kind="babble", seed=1),
    "reverb 0.6 s": AugmentPlan(reverb_rt60_s=0.6, seed=1),
    "telephone": AugmentPlan(telephone=True),
    "gain +10 dB": AugmentPlan(gain_db=10.0),
    "opus 16 kbps": AugmentPlan(codec="opus16"),
    "mp3 24 kbps": AugmentPlan(codec="mp3_24"),
}
EXTREME_PLANS = {
    "clean": AugmentPlan(),
    "tempo 0.8": AugmentPlan(tempo=0.8),
    "tempo 1.25": AugmentPlan(tempo=1.25),
    "tempo 0.9": AugmentPlan(tempo=0.9),
    "tempo 1.1": AugmentPlan(tempo=1.1),
    "pitch -4": AugmentPlan(pitch_semitones=-4.0),
    "pitch +4": AugmentPlan(pitch_semitones=4.0),
    "formant 0.85": AugmentPlan(formant_warp=0.85),
    "formant 1.15": AugmentPlan(formant_warp=1.15),
    "white noise 0 dB": AugmentPlan(noise_snr_db=0.0, noise_kind="white", seed=1),
    "pink noise 0 dB": AugmentPlan(noise_snr_db=0.0, noise_kind="pink", seed=1),
    "brown noise 0 dB": AugmentPlan(noise_snr_db=0.0, noise_kind="brown", seed=1),
    "babble 0 dB": AugmentPlan(noise_snr_db=0.0, noise_kind="babble", seed=1),
    "white noise 5 dB": AugmentPlan(noise_snr_db=5.0, noise_kind="white", seed=1),
    "pink noise 5 dB": AugmentPlan(noise_snr_db=5.0, noise_kind="pink", seed=1),
    "babble 5 dB": AugmentPlan(noise_snr_db=5.0, noise_kind="babble", seed=1),
    "white noise 10 dB": AugmentPlan(noise_snr_db=10.0, noise_kind="white", seed=1),
    "pink noise 10 dB": AugmentPlan(noise_snr_db=10.0, noise_kind="pink", seed=1),
    "babble 10 dB": AugmentPlan(noise_snr_db=10.0, noise_kind="babble", seed=1),
    "babble 15 dB": AugmentPlan(noise_snr_db=15.0, noise_kind="babble", seed=1),
    "reverb 0.5 s": AugmentPlan(reverb_rt60_s=0.5, seed=1),
    "reverb 0.7 s": AugmentPlan(reverb_rt60_s=0.7, seed=1),
    "reverb 1.0 s": AugmentPlan(reverb_rt60_s=1.0, seed=1),
    "telephone": AugmentPlan(telephone=True),
    "gain -20 dB": AugmentPlan(gain_db=-20.0),
    "gain +20 dB (clips)": AugmentPlan(gain_db=20.0),
    "opus 8 kbps": AugmentPlan(codec="opus8"),
    "mp3 24 kbps": AugmentPlan(codec="mp3_24"),
}


def held_in_clips(count: int) -> list:
    """(samples, timeline) of `count` held-in Kathleen recordings, spread over the sorted list."""
    paths = [path for path in sorted(KATHLEEN.glob("*.flac")) if not is_heldout(path.name.split(".")[0])]
    if not paths:
        sys.exit(f"no Kathleen recordings in {KATHLEEN}; this benchmark needs ../shared/speech/kathleen")
    chosen = paths[:: max(len(paths) // count, 1)][:count]
    return [(load_audio(path, SAMPLE_RATE)[0], read_lab(path.with_suffix(".phones.lab"))) for path in chosen]


def best_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def speed_table(clips: list, frontend, repeats: int) -> None:
    audio = np.concatenate([samples for samples, _ in clips])
    seconds = audio.size / SAMPLE_RATE
    babble = [samples for samples, _ in clips[:4]]
    frontend.features(audio[:SAMPLE_RATE])   # warm-up
    rows = {"plain copy (baseline)": best_seconds(lambda: np.array(audio, copy=True), repeats),
            "speech front end features (baseline)": best_seconds(lambda: frontend.features(audio), repeats)}
    for name, plan in SPEED_PLANS.items():
        rows[name] = best_seconds(lambda plan=plan: apply_plan(audio, plan, babble), repeats)
    sampled = [plan_for(0, 0, index) for index in range(20)]
    rows["20 sampled plans, mean"] = np.mean([best_seconds(lambda plan=plan: apply_plan(audio, plan, babble), 1)
                                              for plan in sampled])
    frontend_cost = rows["speech front end features (baseline)"]
    print(f"\nSpeed on {seconds:.0f} s of held-in Kathleen speech, one thread, best of {repeats}")
    print("| augmentation | ms per s of audio | x front end |")
    print("|---|---|---|")
    for name, elapsed in rows.items():
        print(f"| {name} | {1000 * elapsed / seconds:.2f} | {elapsed / frontend_cost:.2f} |")


def greedy_tokens(tokens: np.ndarray) -> list:
    collapsed = [int(t) for index, t in enumerate(tokens) if index == 0 or t != tokens[index - 1]]
    return [t for t in collapsed if t not in (BLANK_TOKEN, WORD_BOUNDARY_TOKEN)]


def edit_distance(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def quality_table(clips: list, frontend, plans: int) -> None:
    bilabial = set(bilabial_columns())
    clean_tokens = [frontend.features(samples).log_posteriors.argmax(axis=1) for samples, _ in clips]
    conditions = dict(EXTREME_PLANS)
    print(f"\nFront-end agreement with the clean clip, {len(clips)} held-in Kathleen clips "
          f"({sum(s.size for s, _ in clips) / SAMPLE_RATE:.0f} s)")
    print("| condition | agree | agree/sp | tok err | bilabial |")
    print("|---|---|---|---|---|")
    sampled_rows = []
    for name in list(conditions) + [f"sampled plan {k}" for k in range(plans)]:
        totals = np.zeros(6)   # agree, frames, agree on speech, speech frames, edits, clean length
        found = labelled = 0
        for index, ((samples, timeline), clean) in enumerate(zip(clips, clean_tokens)):
            plan = conditions.get(name) or plan_for(1, int(name.split()[-1]), index)
            babble = [clips[i][0] for i in babble_sources(plan, len(clips), index)]
            tokens = frontend.features(apply_plan(samples, plan, babble)).log_posteriors.argmax(axis=1)
            aligned = np.round(np.arange(tokens.size) * plan.tempo).astype(np.int64)
            keep = aligned < clean.size
            reference, tokens_kept = clean[aligned[keep]], tokens[keep]
            speech = (reference != BLANK_TOKEN) & (reference != WORD_BOUNDARY_TOKEN)
            totals += [np.sum(reference == tokens_kept), reference.size, np.sum((reference == tokens_kept) & speech),
                       np.sum(speech), edit_distance(greedy_tokens(clean), greedy_tokens(tokens)),
                       len(greedy_tokens(clean))]
            for start, end, label in timeline:
                if label in BILABIALS:
                    labelled += 1
                    first = max(int(np.floor((start - 0.03) / plan.tempo * FRAME_RATE)), 0)
                    last = int(np.ceil((end + 0.06) / plan.tempo * FRAME_RATE))
                    found += any(int(t) in bilabial for t in tokens[first:last + 1])
        row = (totals[0] / totals[1], totals[2] / totals[3], totals[4] / totals[5], found / max(labelled, 1))
        if name in conditions:
            print(f"| {name} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} | {row[3]:.3f} |")
        else:
            sampled_rows.append(row)
    if sampled_rows:
        mean = np.mean(sampled_rows, axis=0)
        print(f"| sampled plans (plan_for(1, k, clip), k < {plans}), mean | {mean[0]:.3f} | {mean[1]:.3f} | "
              f"{mean[2]:.3f} | {mean[3]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24, help="held-in Kathleen clips (default 24)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats, best kept (default 3)")
    parser.add_argument("--plans", type=int, default=8, help="sampled plans per clip in the quality table")
    args = parser.parse_args()
    clips = held_in_clips(args.clips)
    frontend = load_frontend()
    speed_table(clips, frontend, args.repeats)
    quality_table(clips, frontend, args.plans)


if __name__ == "__main__":
    main()
