"""Add-on speed with pip bpy: 10 s and 60 s of audio -> baked animation.

    .venv/bin/python benchmarks/addon.py [--template FLAME_sample.ply]

Reports, per clip length: inference / scoring (worker thread) / bake (UI thread, in slices) wall time,
the previous bake (per-key `data.foreach_set`, the baseline) timed in the same run with the speed-up of the
key-filling part, the whole threaded job as the modal operator runs it, the longest UI-thread stall while it
runs and where (each tick's kind, or how late the timer-paced main-thread loop wakes while the worker holds
the GIL), and playback cost per frame.
For the bake-representation choice it also measures the alternative: a .pc2 file + Mesh Cache modifier
(write time and playback per frame). Goals (issue 8): 60 s animated and baked in < 3 s; no stall > 100 ms.
Audio: the bundled synthetic espeak sentence repeated. Generator: the first shipped one, else the TEST-ONLY
RMS graph from tests/onnx_test_models.py (then inference time says nothing about a real model).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import bpy  # noqa: E402
import addon_utils  # noqa: E402  (bpy's module, importable once bpy is)

from backend.atomic import atomic_path  # noqa: E402
from backend.frame_rate import MESH_FPS  # noqa: E402
from backend.generators import default_models_dir, list_generators  # noqa: E402
from blender_addon import bake, operators, pipeline, scoring  # noqa: E402


def make_audio(seconds: float, folder: Path) -> Path:
    samples, rate = soundfile.read(REPO / "samples" / "sample_sentence.wav", dtype="float32")
    tiled = np.tile(samples, int(np.ceil(seconds * rate / len(samples))))[:int(seconds * rate)]
    path = folder / f"speech_{seconds:g}s.wav"
    with atomic_path(path) as temporary:
        soundfile.write(temporary, tiled, rate)
    return path


def setup_scene(template: Path, models: Path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True)
    bpy.context.preferences.addons["blender_addon"].preferences.models_dir = str(models)
    bpy.ops.talking_head.import_flame(filepath=str(template))
    bpy.context.scene.render.fps = MESH_FPS
    return bpy.context.active_object


def _phase(job) -> str:
    """What the next tick of `job` will do (for naming the longest stall)."""
    if job.state == "computing":
        return "tick: computing done? / bake start"
    if not job._bake.keys_done:
        return "tick: shape-key slice"
    return f"tick: {pipeline.FINISHING_STEPS[len(pipeline.FINISHING_STEPS) - len(job._finishing_steps)]}"


def threaded_run(audio: Path):
    """The modal operator's path: worker thread + UI-thread ticks. Returns (total s, {where: longest stall s},
    job); 'worker holds GIL' is how late the timer-paced UI loop wakes while the worker computes."""
    bpy.context.scene.talking_head.audio_path = str(audio)
    pipeline._loaded_generators.clear()   # measure the first run, which builds the onnxruntime session
    started = time.perf_counter()
    job = pipeline.AnimationJob(pipeline.gather_request(bpy.context))
    job.start_thread()
    stalls, last = {}, time.perf_counter()

    def record(where: str, seconds: float) -> None:
        stalls[where] = max(stalls.get(where, 0.0), seconds)

    while True:
        tick_start = time.perf_counter()
        if job.state == "computing":
            record("worker holds GIL", tick_start - last - operators.TIMER_SECONDS)
        where = _phase(job)
        state = job.tick(bpy.context)
        record(where, time.perf_counter() - tick_start)
        if state in ("finished", "failed", "cancelled"):
            break
        last = time.perf_counter()
        time.sleep(operators.TIMER_SECONDS)   # the modal timer's interval
    if state != "finished":
        raise SystemExit(f"benchmark: the job ended '{state}': {job.message}")
    return time.perf_counter() - started, stalls, job


def previous_bake(obj, frames: np.ndarray) -> float:
    """The bake as it was before (baseline): per key, shape_key_add + `data.foreach_set` (generic per-point
    RNA access) + a per-key interpolation assignment. Seconds for the keys alone; everything is removed."""
    carrier = bpy.data.objects.new("previous bake", bake.rest_mesh(obj).copy())
    carrier.shape_key_add(name="Basis", from_mix=False)
    flat = np.ascontiguousarray(frames, dtype=np.float32).reshape(len(frames), -1)
    started = time.perf_counter()
    for index, frame in enumerate(flat):
        block = carrier.shape_key_add(name=f"frame {index:05d}", from_mix=False)
        block.data.foreach_set("co", frame)
        block.interpolation = "KEY_LINEAR"
    seconds = time.perf_counter() - started
    mesh = carrier.data
    bpy.data.objects.remove(carrier)
    bpy.data.meshes.remove(mesh)
    return seconds


def split_timings(audio: Path, obj):
    """Inference, scoring and bake timed one after another on this thread."""
    request = pipeline.gather_request(bpy.context)
    request.audio_path = str(audio)
    from backend.audio import load_audio
    from backend.generators import load_generator
    samples, rate = load_audio(audio)
    generator = load_generator(request.generator, Path(request.models_dir) / "generators")
    started = time.perf_counter()
    flame = generator.animate(samples, rate, request.rest_vertices)
    inference = time.perf_counter() - started
    started = time.perf_counter()
    scoring.score_animation(samples, rate, flame, request.models_dir, template_path="")
    scored = time.perf_counter() - started
    started = time.perf_counter()
    job = bake.ShapeKeyBake(obj, flame, "bench")
    while job.step(float("inf")) < 1.0:
        pass
    keys_baked = time.perf_counter() - started
    job.finish(1, "bench")
    baked = time.perf_counter() - started
    job.discard()
    return inference, scored, baked, keys_baked, flame


def playback_ms(frames: int, count: int = 200) -> float:
    scene = bpy.context.scene
    started = time.perf_counter()
    for index in range(count):
        scene.frame_set(scene.frame_start + index % frames)
    return (time.perf_counter() - started) / count * 1000


def pc2_alternative(obj, flame: np.ndarray, folder: Path):
    """Write a .pc2 (header + float32 frames) and play it through a Mesh Cache modifier on a copy."""
    path = folder / "bench.pc2"
    started = time.perf_counter()
    with open(path, "wb") as stream:
        stream.write(b"POINTCACHE2\0" + np.array([1, flame.shape[1]], "<i4").tobytes()
                     + np.array([0.0, 1.0], "<f4").tobytes() + np.array([len(flame)], "<i4").tobytes())
        stream.write(np.ascontiguousarray(flame, "<f4").tobytes())
    written = time.perf_counter() - started
    copy = bpy.data.objects.new("pc2 copy", bake.rest_mesh(obj).copy())
    bpy.context.scene.collection.objects.link(copy)
    modifier = copy.modifiers.new("cache", "MESH_CACHE")
    modifier.cache_format, modifier.filepath, modifier.frame_start = "PC2", str(path), 1
    obj.hide_viewport = True
    return written, playback_ms(len(flame))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=os.environ.get("FLAME_TEMPLATE") or
                        REPO.parent / "shared" / "flame" / "FLAME_sample.ply")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    shipped = list_generators()
    if shipped:
        models, label = default_models_dir().parent, f"shipped generator '{shipped[0].name}'"
    else:
        from onnx_test_models import write_rms_generator
        models = folder / "models"
        write_rms_generator(models / "generators" / "rms_jaw")
        label = "TEST-ONLY RMS generator (no shipped generator yet: inference time is not a real model's)"
    print(f"generator: {label}; machine: {os.cpu_count()} CPUs; bpy {bpy.app.version_string}")
    rows, stall_rows = [], []
    for seconds in (10, 60):
        audio = make_audio(seconds, folder)
        obj = setup_scene(args.template, models)
        bpy.context.scene.talking_head.audio_path = str(audio)
        inference, scored, baked, keys_baked, flame = split_timings(audio, obj)
        keys_before = previous_bake(obj, flame)
        total, stalls, job = threaded_run(audio)
        frames = len(job.result.local_frames)
        keys_ms = playback_ms(frames)
        pc2_write, pc2_ms = pc2_alternative(obj, flame, folder)
        worst = max(stalls, key=stalls.get)
        rows.append(f"| {seconds} s | {frames} | {inference:.3f} | {scored:.3f} | {baked:.3f} | {keys_before:.3f} | "
                    f"{keys_before / keys_baked:.1f}x | {total:.3f} | {stalls[worst] * 1000:.0f} ({worst}) | "
                    f"{keys_ms:.2f} | {pc2_write:.3f} | {pc2_ms:.2f} |")
        stall_rows.append(f"| {seconds} s | " + " | ".join(f"{where} {value * 1000:.0f}"
                                                            for where, value in sorted(stalls.items())) + " |")
    print("| audio | frames | inference s | scoring s | bake s | previous bake: keys s | keys speed-up "
          "| threaded job total s | longest UI stall ms (where) | playback ms/frame (shape keys) | pc2 write s "
          "| playback ms/frame (pc2) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nLongest UI-thread stall per step (ms):")
    print("\n".join(stall_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
