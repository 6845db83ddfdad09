"""Time each metric on SYNTHETIC 60 s and 10 min clips, and MTM's DTW against the plain double loop.

Usage: .venv/bin/python benchmarks/metrics.py [--quick]
Prints a Markdown table. Everything is synthetic: a random 5023-vertex "template", lip and upper-face
index sets of FLAME's sizes (254 and 1203), mouths opening with a random syllable envelope, noise audio
shaped by it, and random linear encoders for PLRS. The plain reference DTW (a Python double loop) runs
on the 60 s clip only: at 10 min it would take ~100x longer (hours of loop iterations), so the speed-up
is reported where both ran in this process. Run with OMP/MKL threads at 1 for the one-core figure.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from backend.flame import LOWER_LIP_CENTRE, NUM_VERTICES, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.metrics import (clip_fdd, clip_lve, clip_mtm, clip_plrs, clip_slcc, derivative_dtw_path,
                             estimate_av_offset, lip_intensity, speech_intensity)
from backend.metrics.mtm import lip_distance_curve, smooth_curve

RATE = 16000


def synthetic_clip(seconds: float, rng):
    """(vertices (T, 5023, 3) float32, audio float32, lips (254,), upper_face (1203,), template)."""
    frames = int(seconds * MESH_FPS)
    template = rng.normal(scale=0.05, size=(NUM_VERTICES, 3))
    envelope = np.convolve(rng.random(frames) < 0.12, np.hanning(7), mode="same")
    centres = [UPPER_LIP_CENTRE, LOWER_LIP_CENTRE]
    lips = np.r_[rng.choice(NUM_VERTICES, 250, replace=False), centres * 2]
    lips[:2] = [UPPER_LIP_CENTRE, LOWER_LIP_CENTRE]
    upper_face = rng.choice(np.setdiff1d(np.arange(NUM_VERTICES), lips), 1203, replace=False)
    vertices = np.repeat(template[None].astype(np.float32), frames, axis=0)
    vertices[:, LOWER_LIP_CENTRE, 1] -= 0.008 * envelope.astype(np.float32)
    vertices[:, upper_face] += rng.normal(scale=1e-4, size=(frames, 1203, 3)).astype(np.float32)
    loudness = np.interp(np.arange(int(seconds * RATE)) * MESH_FPS / RATE, np.arange(frames), envelope)
    audio = (0.4 * (loudness + 0.01) * rng.uniform(-1, 1, len(loudness))).astype(np.float32)
    return vertices, audio, lips, upper_face, template


class RandomLinearEncoders:
    """SYNTHETIC stand-in for the PLRS ONNX pair: fixed random projections to 64 dimensions."""

    def __init__(self, rng):
        self.speech = rng.normal(size=(20 * 128, 64)).astype(np.float32)
        self.mesh = rng.normal(size=(5 * NUM_VERTICES * 3, 64)).astype(np.float32)

    def embed_speech(self, fbank):
        return fbank.reshape(len(fbank), -1) @ self.speech

    def embed_mesh(self, vertices):
        return vertices.reshape(len(vertices), -1) @ self.mesh


def plain_dtw_cost_loop(x, y):
    """The plain reference: O(n m) Python double loop filling the cumulative cost (path omitted)."""
    dx, dy = np.diff(x, prepend=x[0]).tolist(), np.diff(y, prepend=y[0]).tolist()
    previous = [0.0] + [float("inf")] * len(dy)
    for i in range(len(dx)):
        current = [float("inf")] * (len(dy) + 1)
        for j in range(len(dy)):
            current[j + 1] = abs(dx[i] - dy[j]) + min(previous[j + 1], current[j], previous[j])
        previous = current
    return previous[-1]


def seconds_of(work, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 s clip only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    durations = (60.0,) if args.quick else (60.0, 600.0)
    encoders = RandomLinearEncoders(rng)
    rows = []
    for seconds in durations:
        gt, audio, lips, upper_face, template = synthetic_clip(seconds, rng)
        pred = np.concatenate([gt[:3], gt[:-3]])
        gt_curve, pred_curve = smooth_curve(lip_distance_curve(gt)), smooth_curve(lip_distance_curve(pred))
        repeats = 3 if seconds <= 60 else 1
        timings = {
            "MTM (whole clip)": seconds_of(lambda: clip_mtm(gt, pred, MESH_FPS), repeats),
            "  derivative DTW only": seconds_of(lambda: derivative_dtw_path(gt_curve, pred_curve), repeats),
            "LVE": seconds_of(lambda: clip_lve(gt, pred, lips), repeats),
            "FDD": seconds_of(lambda: clip_fdd(gt, pred, template, upper_face), repeats),
            "SLCC inputs (SI + LI)": seconds_of(lambda: (speech_intensity((audio * 32767).astype(np.int16)),
                                                         lip_intensity(pred, lips)), repeats),
            "clip SLCC (1-s windows)": seconds_of(lambda: clip_slcc(audio, RATE, pred, lips, MESH_FPS), repeats),
            "PLRS (random linear encoders)": seconds_of(lambda: clip_plrs(encoders, audio, RATE, pred), 1),
            "offset, envelope_velocity_xcorr": seconds_of(lambda: estimate_av_offset(audio, RATE, pred, MESH_FPS),
                                                          repeats),
        }
        if seconds <= 60:
            timings["  plain DTW double loop (reference)"] = seconds_of(lambda: plain_dtw_cost_loop(gt_curve,
                                                                                                 pred_curve))
            speed_up = timings["  plain DTW double loop (reference)"] / timings["  derivative DTW only"]
        rows.append((seconds, timings))
    print("SYNTHETIC clips (random 5023-vertex mesh, noise audio), 30 fps; best of 3 runs (1 run at 10 min).\n")
    names = list(dict.fromkeys(name for _, timings in rows for name in timings))
    print("| metric | " + " | ".join(f"{int(s)} s clip ({int(s * MESH_FPS)} frames)" for s, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in names:
        cells = [f"{timings[name] * 1000:.1f} ms" if name in timings else "not run (too slow)" for _, timings in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nMTM derivative DTW speed-up over the plain double loop (60 s clip, same run): {speed_up:.0f}x")


if __name__ == "__main__":
    main()
