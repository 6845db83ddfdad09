"""Peak memory of a long take: `backend animate` (CLI) and Animate from Audio (add-on, pip bpy), each in its own
subprocess, peak RSS read from the kernel (ru_maxrss of the finished child).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py [--minutes 10] [--only cli|addon]

Audio: SYNTHETIC speech-like noise (syllable-rate envelope) at 16 kHz, mono. The CLI runs the default shipped
generator; the add-on runs the same generator through the operator (bake into absolute shape keys included).
A baseline subprocess that only imports the same modules is measured in the same run, so the figures can be read
as "above import". Targets (issue 16 item 11): <= 1 GB for the CLI and <= 1.5 GB for the add-on at 10 minutes.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))

CLI_BASELINE = "import backend.cli, backend.generators, backend.mesh, backend.audio"
ADDON_SCRIPT = r'''
import sys, bpy, addon_utils
sys.path.insert(0, {repo!r})
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("blender_addon", default_set=True)
if {run}:
    bpy.ops.talking_head.import_flame(filepath={template!r})
    bpy.context.scene.talking_head.audio_path = {audio!r}
    print(bpy.ops.talking_head.animate())
'''


def make_audio(minutes: float, folder: Path) -> Path:
    """SYNTHETIC: noise shaped by a 4 Hz syllable envelope, -12 dBFS peak."""
    rate = 16000
    rng = np.random.default_rng(0)
    t = np.arange(int(minutes * 60 * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    samples = (0.25 * envelope * rng.standard_normal(t.size)).astype(np.float32)
    path = folder / "long_take.wav"
    soundfile.write(path, np.clip(samples, -1, 1), rate)
    return path


def measure(command: list) -> float:
    """Peak RSS of `command` in a fresh Python parent, so every figure is its own maximum."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    run = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    if run.returncode != 0:
        raise SystemExit(f"memory: {' '.join(command[:6])} failed:\n{run.stderr[-2000:]}")
    return float(run.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", choices=("cli", "addon"))
    args = parser.parse_args()
    template = SHARED / "flame" / "FLAME_sample.ply"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        audio = make_audio(args.minutes, folder)
        if args.only in (None, "cli"):
            baseline = measure([sys.executable, "-c", CLI_BASELINE])
            peak = measure([sys.executable, "-m", "backend", "animate", "--audio", str(audio), "--template",
                            str(template), "--out", str(folder / "seq.npy")])
            rows.append(("CLI `backend animate`", baseline, peak, 1024))
        if args.only in (None, "addon"):
            scripts = []
            for run in (False, True):
                script = folder / f"addon_{run}.py"
                script.write_text(ADDON_SCRIPT.format(repo=str(REPO), run=run, template=str(template),
                                                      audio=str(audio)))
                scripts.append(script)
            baseline = measure([sys.executable, str(scripts[0])])
            peak = measure([sys.executable, str(scripts[1])])
            rows.append(("add-on Animate from Audio (pip bpy)", baseline, peak, 1536))
    print(f"| {args.minutes:g} min SYNTHETIC audio | peak RSS of imports only (MB) | peak RSS (MB) | target (MB) |")
    print("|---|---|---|---|")
    for name, baseline, peak, target in rows:
        print(f"| {name} | {baseline:.0f} | {peak:.0f} | {target} {'met' if peak <= target else 'MISSED'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
