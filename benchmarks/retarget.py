"""Speed of the shape-key weight solver (backend.retarget.solver) on 60 s of a FLAME clip, against a baseline.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/retarget.py [--seconds 60] [--shared ../shared]

Clip: the articulatory rig driven by the phone labels of held-out Kathleen utterances, joined to the length asked
(so the motion is speech-like; any (T, 5023, 3) clip costs the same). Rows, all in one run: building the basis on
the template, projecting the clip onto it (`Projector.project`, the part that touches vertices), the solve
(FISTA, all frames at once), and as the baseline the textbook way: scipy's bounded least squares
(`scipy.optimize.lsq_linear`) frame by frame on the region's vertices (no smoothness, no sparsity), timed on a
tenth of the frames and scaled up. Also how far the rebuilt clip is from the clip (lip gap, worst vertex). Target
(issue 17 item 2): 60 s (1800 frames) solved in < 0.5 s.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.flame import FlameRegions  # noqa: E402
from backend.heldout import is_heldout  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics import phone_checks  # noqa: E402
from backend.metrics.mtm import lip_distance_curve  # noqa: E402
from backend.retarget.basis import ShapeBasis  # noqa: E402
from backend.retarget.solver import LIP_FIT_WEIGHT, Projector, solve_weights  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402
from backend.rig.timeline import read_lab  # noqa: E402

DEFAULT_SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))


def speech_clip(rig: FlameRig, shared: Path, seconds: float) -> np.ndarray:
    labels = [path for path in sorted((shared / "speech" / "kathleen").glob("*.phones.lab"))
              if is_heldout(path.name[:-len(".phones.lab")])]
    clips, frames = [], 0
    for path in labels:
        timeline = read_lab(path)
        clip = phone_checks.rig_from_labels(rig, timeline, int(timeline[-1][1] * 30)).astype(np.float32)
        clips.append(clip)
        frames += len(clip)
        if frames >= seconds * 30:
            break
    return np.concatenate(clips)[:int(seconds * 30)]


def baseline_seconds(clip: np.ndarray, projector: Projector, frames: int) -> float:
    from scipy.optimize import lsq_linear
    fit = np.sqrt(np.where(np.isin(projector.region, projector.basis.lips), LIP_FIT_WEIGHT, 1.0))
    keys = projector.basis.displacements[:, projector.region].astype(np.float64)   # (K, R, 3)
    matrix = (keys * fit[None, :, None]).reshape(len(keys), -1).T
    rest = projector.basis.template[projector.region]
    started = time.perf_counter()
    for frame in clip[:frames]:
        target = ((frame[projector.region] - rest) * fit[:, None]).ravel()
        lsq_linear(matrix, target, bounds=(0.0, 1.0))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args()
    mesh = load_flame_mesh(args.shared / "flame" / "FLAME_sample.ply")
    regions = FlameRegions.load(args.shared / "flame" / "FLAME_masks.npz")
    started = time.perf_counter()
    rig = FlameRig(mesh.vertices, mesh.faces, regions.masks)
    basis = ShapeBasis.build(rig)
    built = time.perf_counter() - started
    clip = speech_clip(rig, args.shared, args.seconds)
    started = time.perf_counter()
    projector = Projector(basis)
    projections = np.concatenate([projector.project(clip[start:start + 600]) for start in range(0, len(clip), 600)])
    projected = time.perf_counter() - started
    started = time.perf_counter()
    weights = solve_weights(projections, projector.gram)
    solved = time.perf_counter() - started
    tenth = max(len(clip) // 10, 1)
    baseline = baseline_seconds(clip, projector, tenth) * len(clip) / tenth
    rebuilt = basis.rebuild(weights)
    gap_error = np.abs(lip_distance_curve(rebuilt) - lip_distance_curve(clip)).max() * 1000
    vertex_error = np.linalg.norm(rebuilt - clip, axis=2).max() * 1000
    print(f"{len(clip)} frames ({len(clip) / 30:.0f} s), {len(basis.names)} keys, {len(basis.region)} region vertices")
    print("| step | seconds |")
    print("|---|---|")
    print(f"| rig + basis on the template | {built:.3f} |")
    print(f"| project the clip | {projected:.3f} |")
    print(f"| solve (FISTA, all frames) | {solved:.3f} |")
    print(f"| project + solve | {projected + solved:.3f} (target < 0.5: {'met' if projected + solved < 0.5 else 'MISSED'}) |")
    print(f"| baseline: scipy lsq_linear per frame (scaled from {tenth} frames) | {baseline:.3f} "
          f"({baseline / (projected + solved):.0f}x slower) |")
    print(f"\nrebuilt vs clip: lip gap within {gap_error:.2f} mm, worst vertex {vertex_error:.2f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
