"""Runs INSIDE Blender (pip bpy or `blender -b -P demo_blender.py -- ARGS`): install the built add-on zip,
import a FLAME mesh, animate it from audio with the first generator found, save, render, print the scores.

Arguments after `--`: --zip Z --template PLY --audio WAV --out-blend B [--models DIR] [--render-dir D]
[--render-frames N] [--result-json J]. Exit code 0 on success, 3 when no generator
model is available (after saving what it could), 1 on any error. Used by demo.sh and the install test.
"""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import bpy

ADDON = "flame_talking_heads"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo_blender.py")
    for name in ("--zip", "--template", "--audio", "--out-blend"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--render-dir", type=Path)
    parser.add_argument("--render-frames", type=int, default=0)
    parser.add_argument("--result-json", type=Path)
    return parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])


def install(zip_path: Path) -> float:
    started = time.perf_counter()
    bpy.ops.preferences.addon_install(filepath=str(zip_path), overwrite=True)
    bpy.ops.preferences.addon_enable(module=ADDON)
    if ADDON not in bpy.context.preferences.addons:
        raise SystemExit(f"demo: enabling the add-on '{ADDON}' from {zip_path} failed (see the messages above)")
    return time.perf_counter() - started


def add_camera_and_light(head) -> None:
    """Camera 0.6 m in front of the face (FLAME looks along +z, turned to Blender's -y), one sun."""
    centre = head.matrix_world @ (sum((v.co for v in head.data.vertices), head.data.vertices[0].co * 0) /
                                  len(head.data.vertices))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (centre.x, centre.y - 0.6, centre.z)
    camera.rotation_euler = (1.5708, 0.0, 0.0)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.9, 0.0, 0.4)
    for obj in (camera, sun):
        bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = camera


def render(directory: Path, frames: int) -> list:
    """PNG frames with Cycles on the CPU (works headless without a GPU), small and quick."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 320, 320
    scene.render.image_settings.file_format = "PNG"
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    step = max(1, (scene.frame_end - scene.frame_start) // max(frames, 1))
    for frame in range(scene.frame_start, scene.frame_end + 1, step)[:frames]:
        scene.frame_set(frame)
        scene.render.filepath = str(directory / f"frame_{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        written.append(scene.render.filepath)
    return written


def main() -> int:
    args = parse()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = {"install_s": round(install(args.zip.resolve()), 2)}
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.template_path = str(args.template.resolve())
    if args.models:
        prefs.models_dir = str(args.models.resolve())
    if bpy.ops.talking_head.import_flame(filepath=str(args.template.resolve())) != {"FINISHED"}:
        return 1
    head = bpy.context.active_object
    head.rotation_euler = (1.5708, 0.0, 0.0)   # FLAME is y-up; Blender is z-up
    bpy.context.scene.render.fps = 30
    bpy.context.scene.talking_head.audio_path = str(args.audio.resolve())
    add_camera_and_light(head)
    args.out_blend.parent.mkdir(parents=True, exist_ok=True)
    operators = importlib.import_module(f"{ADDON}.operators")
    blocker = operators.animate_blocker(bpy.context)
    if blocker is not None:
        bpy.ops.wm.save_as_mainfile(filepath=str(args.out_blend.resolve()))
        print(f"demo: cannot animate: {blocker}\n"
              f"demo: saved {args.out_blend} with the imported FLAME head and camera only (no animation).")
        return 3
    started = time.perf_counter()
    if bpy.ops.talking_head.animate() != {"FINISHED"}:
        return 1
    result["animate_s"] = round(time.perf_counter() - started, 2)
    result["frames"] = bpy.context.scene.frame_end - bpy.context.scene.frame_start + 1
    result["max_abs_error_vs_backend"] = check_against_backend(head, args)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out_blend.resolve()))
    scores = json.loads(head.talking_head.scores_json)["scores"]
    result["scores"] = {score["name"]: score["value"] for score in scores}
    if args.render_dir and args.render_frames:
        result["rendered"] = render(args.render_dir, args.render_frames)
    for score in scores:
        shown = "n/a" if score["value"] is None else f"{score['value']:.3g} {score['unit']}".strip()
        print(f"demo: {score['name']}: {shown}" + (f" ({score['note']})" if score["note"] else ""))
    print(f"demo: saved {args.out_blend}")
    if args.result_json:
        args.result_json.write_text(json.dumps(result, indent=1))
    return 0


def check_against_backend(head, args) -> float:
    """Largest |baked - backend| over three frames: the generator run directly through backend (same audio,
    same template) against the mesh Blender evaluates at those frames. FLAME frame = local here."""
    import numpy as np
    from backend.audio import load_audio
    from backend.generators import load_generator
    from backend.mesh import load_flame_mesh
    models = importlib.import_module(f"{ADDON}.preferences").settings(bpy.context)[0]
    generator = load_generator(bpy.context.scene.talking_head.generator, models / "generators")
    samples, rate = load_audio(args.audio)
    expected = generator.animate(samples, rate, load_flame_mesh(args.template).vertices.astype(np.float32))
    worst = 0.0
    for frame in (0, len(expected) // 2, len(expected) - 1):
        bpy.context.scene.frame_set(bpy.context.scene.frame_start + frame)
        mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        local = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", local)
        worst = max(worst, float(np.abs(local.reshape(-1, 3) - expected[frame]).max()))
    return worst


if __name__ == "__main__":
    sys.exit(main())
