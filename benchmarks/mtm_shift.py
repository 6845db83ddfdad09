"""MTM of corpus clips against k-frame-shifted copies of themselves (the paper's Fig. S5 check).

Usage: .venv/bin/python benchmarks/mtm_shift.py --corpus DIR [--split test] [--max-shift 10]
                                                [--write-predictions OUT --shift K]
A pure shift by k frames should give MTM = k frames. The corpus is SYNTHETIC (rig animation driven by
phoneme timings; build one with `python -m training.corpus build --preset ci --out DIR`). With
--write-predictions, also writes every clip of the split shifted by K frames as `<clip>.npy`, a
prediction folder for `python -m backend score --pred-dir OUT --data-dir DIR --split SPLIT`.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from backend.datasets import open_dataset
from backend.mesh import save_vertex_sequence
from backend.metrics import clip_mtm
from backend.metrics.mtm import UnscorableClipError


def shifted(vertices: np.ndarray, k: int) -> np.ndarray:
    """The sequence delayed by k frames (the first frame repeated), same length."""
    return np.concatenate([np.repeat(vertices[:1], k, axis=0), vertices[:len(vertices) - k]]) if k else vertices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-shift", type=int, default=10)
    parser.add_argument("--write-predictions", type=Path)
    parser.add_argument("--shift", type=int, default=2)
    args = parser.parse_args()

    dataset = open_dataset(args.corpus, kind="corpus", split=args.split, fps=None)
    sequences = {clip_id: dataset.load(clip_id).vertices for clip_id in dataset.clip_ids()}
    kind = "SYNTHETIC corpus" if dataset.synthetic else "corpus"
    print(f"{kind} {args.corpus}, split {args.split}: {len(sequences)} clips")
    print("| shift (frames) | MTM (frames) | MTM (ms) | clips scored | matches |")
    print("|---|---|---|---|---|")
    for k in range(args.max_shift + 1):
        results = []
        for vertices in sequences.values():
            try:
                results.append(clip_mtm(vertices, shifted(vertices, k), fps=dataset.fps))
            except UnscorableClipError:
                pass
        frames = np.mean([r.frames for r in results])
        print(f"| {k} | {frames:.2f} | {np.mean([r.ms for r in results]):.1f} | {len(results)} | "
              f"{sum(r.matches for r in results)} |")
    if args.write_predictions:
        args.write_predictions.mkdir(parents=True, exist_ok=True)
        for clip_id, vertices in sequences.items():
            save_vertex_sequence(args.write_predictions / f"{clip_id}.npy", shifted(vertices, args.shift))
        print(f"wrote {len(sequences)} predictions shifted by {args.shift} frames to {args.write_predictions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
