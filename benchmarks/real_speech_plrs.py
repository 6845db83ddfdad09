"""Independent PLRS (models/plrs_evaluator) of generators on the real-speech benchmark's sets b (unseen real
speakers) and c (unseen TTS voices): the number the "+ perceptual" variants should raise, which
benchmarks/real_speech.py does not report. Rows are generators and the benchmark's reference rows (rig, static_rest).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_speech_plrs.py --models NAME,... [--out out/real_speech_plrs.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import real_speech  # noqa: E402
from backend.atomic import write_text  # noqa: E402
from backend.flame import FlameRegions  # noqa: E402
from backend.generators import SAMPLE_RATE, frame_count  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics.plrs import OnnxSpeechMeshEncoders, clip_plrs  # noqa: E402
from backend.models import PLRS_EVALUATOR, default_models_dir  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="comma-separated generator names and/or rig, static_rest")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "real_speech_plrs.json")
    parser.add_argument("--shared", type=Path, default=real_speech.DEFAULT_SHARED)
    args = parser.parse_args(argv)
    mesh = load_flame_mesh(args.shared / "flame" / "FLAME_sample.ply")
    rig = FlameRig(mesh.vertices, mesh.faces, FlameRegions.load(args.shared / "flame" / "FLAME_masks.npz").masks)
    names = args.models.split(",")
    rows = real_speech.Rows(names, mesh.vertices, rig)
    encoders = OnnxSpeechMeshEncoders.from_directory(default_models_dir(PLRS_EVALUATOR), 1)
    started = time.monotonic()
    sets = {"b": real_speech.dev_clips(args.shared), "c": real_speech.tts_clips(args.shared)[0]}
    result = {}
    for key, clips in sets.items():
        for name in names:
            scores = [clip_plrs(encoders, clip.audio, SAMPLE_RATE,
                                rows.animate(name, clip, frame_count(len(clip.audio)))).score for clip in clips]
            result.setdefault(name, {})[key] = float(np.mean(scores))
            print(f"{name} {key}: PLRS {np.mean(scores):.3f} ({len(scores)} clips)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps({"plrs": result, "seconds": round(time.monotonic() - started, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
