"""Peak memory of a long take: `backend animate` (CLI) and Animate from Audio (add-on, pip bpy), each in its own
subprocess, peak RSS read from the kernel (ru_maxrss of the finished child); for the add-on also the size of the
.blend saved right after Animate.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py [--minutes 10] [--only cli|addon]
                                                         [--bakes editable,per_frame]

Audio: SYNTHETIC speech-like noise (syllable-rate envelope) at 16 kHz, mono. The CLI runs the default shipped
generator; the add-on runs the same generator through the operator, once per bake (`--bakes`, default both): the
editable bake (the default: ARKit-named relative keys + F-curves in an NLA strip; the template preference points at
../shared's FLAME_sample.ply, whose FLAME_masks.npz it needs) and the exact per-frame bake (absolute shape keys).
A baseline subprocess that only imports the same modules is measured in the same run, so the figures can be read
as "above import". Targets: <= 1 GB for the CLI and <= 1.5 GB for the add-on at 10 minutes (issue 16 item 11),
<= 150 MB .blend (issue 17 item 4).
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
    bpy.context.preferences.addons["blender_addon"].preferences.template_path = {template!r}
    bpy.ops.talking_head.import_flame(filepath={template!r})
    bpy.context.scene.talking_head.audio_path = {audio!r}
    bpy.context.scene.talking_head.bake = {bake!r}
    assert bpy.ops.talking_head.animate() == {{"FINISHED"}}
    bpy.ops.wm.save_as_mainfile(filepath={blend!r})
sys.stdout.flush()
import os
os._exit(0)   # pip bpy can deadlock in its exit handlers (delayed-close thread vs. a static destructor)
'''
BAKES = {"editable": "EDITABLE", "per_frame": "PER_FRAME"}   # blender_addon.properties BAKE_* values


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
    parser.add_argument("--bakes", default="editable,per_frame", help="add-on bakes to run: editable, per_frame")
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
            rows.append(("CLI `backend animate`", baseline, peak, 1024, None))
        if args.only in (None, "addon"):
            def script(run: bool, bake: str) -> str:
                path = folder / f"addon_{run}_{bake}.py"
                path.write_text(ADDON_SCRIPT.format(repo=str(REPO), run=run, template=str(template), audio=str(audio),
                                                    bake=BAKES[bake], blend=str(folder / f"{bake}.blend")))
                return str(path)
            baseline = measure([sys.executable, script(False, "editable")])
            for bake in args.bakes.split(","):
                peak = measure([sys.executable, script(True, bake)])
                size = (folder / f"{bake}.blend").stat().st_size / 2 ** 20
                rows.append((f"add-on Animate from Audio, {bake} bake (pip bpy)", baseline, peak, 1536, size))
    print(f"| {args.minutes:g} min SYNTHETIC audio | peak RSS of imports only (MB) | peak RSS (MB) | target (MB) "
          "| .blend MB (target 150) |")
    print("|---|---|---|---|---|")
    for name, baseline, peak, target, size in rows:
        blend = "" if size is None else f"{size:.1f} {'met' if size <= 150 else 'MISSED'}"
        print(f"| {name} | {baseline:.0f} | {peak:.0f} | {target} {'met' if peak <= target else 'MISSED'} | {blend} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
