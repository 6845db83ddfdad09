"""Runs INSIDE Blender: install the built add-on zip, import a FLAME mesh, animate it from audio with the first
generator found, save, render a few preview frames and print the scores. Used by demo.sh and the tests (the
window checks that drive this scene like a user live in tests/blender_window_harness.py).

blender -b -P demo_blender.py -- ARGS      (or pip bpy: python demo_blender.py -- ARGS)
Arguments after `--`: --zip Z --template PLY --audio WAV --out-blend B [--models DIR] [--render-dir D]
[--render-frames N] [--result-json J]. Exit code 0 on success, 3 when no generator model is available (after
saving what it could), 1 on any error.
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


def _aim(obj, target) -> None:
    """Point a camera or light (which look down their local -Z) at `target`, keeping +Y up."""
    obj.rotation_euler = (target - obj.location).to_track_quat("-Z", "Y").to_euler()


def _add(name: str, data, location):
    obj = bpy.data.objects.new(name, data)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    return obj


def stage_head(head) -> None:
    """A readable preview set-up: smooth matte skin-grey head, neutral grey world, a soft key and a soft fill
    area light, and two cameras: "Face" (whole face) and "Mouth" (a close-up of the lips). FLAME looks along
    +z, which the demo turns to Blender's -y."""
    from mathutils import Vector
    from backend.flame import LOWER_LIP_CENTRE   # importable once the add-on is enabled
    mesh = head.data
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    material = bpy.data.materials.new("Skin")
    material.use_nodes = True
    shader = material.node_tree.nodes["Principled BSDF"]
    shader.inputs["Base Color"].default_value = (0.72, 0.58, 0.5, 1.0)
    shader.inputs["Roughness"].default_value = 0.6
    mesh.materials.append(material)
    world = bpy.data.worlds.new("Grey")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.18, 0.18, 0.18, 1.0)
    bpy.context.scene.world = world
    bpy.context.view_layer.update()
    corners = [head.matrix_world @ Vector(corner) for corner in head.bound_box]
    centre = sum(corners, Vector()) / 8
    lips = head.matrix_world @ mesh.vertices[LOWER_LIP_CENTRE].co
    face = centre.lerp(lips, 0.35)
    for name, energy, size, offset in (("Key", 4.0, 0.5, (-0.45, -0.55, 0.35)), ("Fill", 1.5, 0.8, (0.55, -0.5, 0.0))):
        light = bpy.data.lights.new(name, "AREA")
        light.energy, light.size = energy, size
        _aim(_add(name, light, face + Vector(offset)), face)
    for name, target, distance in (("Face", face, 0.45), ("Mouth", lips + Vector((0, 0, 0.008)), 0.13)):
        camera = _add(name, bpy.data.cameras.new(name), target + Vector((0, -distance, 0)))
        camera.data.lens = 50
        _aim(camera, target)
    bpy.context.scene.camera = bpy.data.objects["Face"]


def pick_frames(head, count: int) -> list:
    """(scene frame, label) for the most open mouth, the most closed mouth while there is speech (the lip
    closures of p/b/m), and moments between, from the lip-opening and loudness curves the add-on stored."""
    import numpy as np
    curves = json.loads(head.talking_head.scores_json)
    opening, loudness = np.array(curves["lip_opening"]), np.array(curves["speech_envelope"])
    speaking = np.flatnonzero(loudness > np.median(loudness))
    picks = [(int(np.argmax(opening)), "open"), (int(speaking[np.argmin(opening[speaking])]), "closed")]
    for fraction in np.linspace(0, 1, count + 2)[1:-1][:max(count - 2, 0)]:
        index = int(np.argsort(opening)[int(fraction * (len(opening) - 1))])
        picks.append((index, "between"))
    from backend.frame_rate import MESH_FPS   # importable once the add-on is enabled
    scene = bpy.context.scene
    step = MESH_FPS / (scene.render.fps / scene.render.fps_base)   # the curves are at MESH_FPS
    return sorted((scene.frame_start + int(round(index / step)), label) for index, label in picks[:count])


def _render_camera(camera_name: str, path: Path):
    """Render the current frame through one camera; returns the image's (H, W, 4) pixels."""
    import numpy as np
    scene = bpy.context.scene
    scene.camera = bpy.data.objects[camera_name]
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(pixels)
    shape = (image.size[1], image.size[0], 4)
    bpy.data.images.remove(image)
    path.unlink()
    return pixels.reshape(shape)


def render(directory: Path, head, frames: int) -> list:
    """For each picked frame one PNG: the whole face beside the mouth close-up (Cycles on the CPU, which works
    headless without a GPU; denoised when the build has OpenImageDenoise, else more samples)."""
    import numpy as np
    import _cycles
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.use_denoising = bool(getattr(_cycles, "with_openimagedenoise", False))
    scene.cycles.samples = 16 if scene.cycles.use_denoising else 32
    scene.cycles.max_bounces = 2
    scene.render.use_persistent_data = True   # keep the scene (BVH) between the six renders
    scene.render.resolution_x = scene.render.resolution_y = 360
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for frame, label in pick_frames(head, frames):
        scene.frame_set(frame)
        halves = [_render_camera(name, directory / f"_{name}.png") for name in ("Face", "Mouth")]
        both = np.concatenate(halves, axis=1)
        image = bpy.data.images.new("preview", both.shape[1], both.shape[0], alpha=True)
        image.pixels.foreach_set(both.ravel())
        image.filepath_raw = str(directory / f"frame_{frame:04d}_{label}.png")
        image.file_format = "PNG"
        image.save()
        bpy.data.images.remove(image)
        written.append(str(directory / f"frame_{frame:04d}_{label}.png"))
    scene.camera = bpy.data.objects["Face"]
    return written


def prepare_scene(args):
    """Empty scene, the zip installed and configured, the FLAME head imported (y-up turned to z-up) and
    selected, camera and lights, audio chosen. Returns (result dict, head)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = {"install_s": round(install(args.zip.resolve()), 2)}
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.template_path = str(args.template.resolve())
    if args.models:
        prefs.models_dir = str(args.models.resolve())
    if bpy.ops.talking_head.import_flame(filepath=str(args.template.resolve())) != {"FINISHED"}:
        raise SystemExit(f"demo: importing {args.template} failed")
    head = bpy.context.view_layer.objects.active
    head.rotation_euler = (1.5708, 0.0, 0.0)   # FLAME is y-up; Blender is z-up
    from backend.frame_rate import MESH_FPS   # importable once the add-on is enabled
    bpy.context.scene.render.fps = MESH_FPS
    bpy.context.scene.talking_head.audio_path = str(args.audio.resolve())
    stage_head(head)
    return result, head


def main() -> int:
    args = parse()
    result, head = prepare_scene(args)
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
        started = time.perf_counter()
        result["rendered"] = render(args.render_dir, head, args.render_frames)
        result["render_s"] = round(time.perf_counter() - started, 1)
    for score in scores:
        shown = "n/a" if score["value"] is None else f"{score['value']:.3g} {score['unit']}".strip()
        print(f"demo: {score['name']}: {shown}" + (f" ({score['note']})" if score["note"] else ""))
    print(f"demo: saved {args.out_blend}")
    if args.result_json:
        args.result_json.write_text(json.dumps(result, indent=1))
    return 0


def check_against_backend(head, args) -> float:
    """Largest |baked - backend| over the lip vertices at three frames: the generator run directly through backend
    (same audio, same template) against the mesh Blender evaluates at those frames (the lips only: the editable
    bake adds blinks and brow raises of its own above them). FLAME frame = local here."""
    import numpy as np
    from backend.flame import find_regions_beside
    from backend.audio import load_audio
    from backend.generators import load_generator
    from backend.mesh import load_flame_mesh
    models = importlib.import_module(f"{ADDON}.preferences").settings(bpy.context)[0]
    generator = load_generator(bpy.context.scene.talking_head.generator, models / "generators")
    samples, rate = load_audio(args.audio)
    expected = generator.animate(samples, rate, load_flame_mesh(args.template).vertices.astype(np.float32))
    regions = find_regions_beside(args.template)
    lips = np.unique(regions.masks["lips"]) if regions is not None else slice(None)
    worst = 0.0
    for frame in (0, len(expected) // 2, len(expected) - 1):
        bpy.context.scene.frame_set(bpy.context.scene.frame_start + frame)
        mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        local = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", local)
        worst = max(worst, float(np.abs(local.reshape(-1, 3)[lips] - expected[frame][lips]).max()))
    return worst


if __name__ == "__main__":
    sys.exit(main())
