"""Runs INSIDE Blender: install the built add-on zip, import a FLAME mesh, animate it from audio with the first
generator found, then either (headless, `-b`) save, render and print the scores, or (`--window`, Blender with
a real window, e.g. under `xvfb-run`) drive the panel like a user and check what only a window can show.

Headless:  blender -b -P demo_blender.py -- ARGS      (or pip bpy: python demo_blender.py -- ARGS)
Window:    xvfb-run -a blender --factory-startup --enable-event-simulate -P demo_blender.py -- ARGS --window
Arguments after `--`: --zip Z --template PLY --audio WAV --out-blend B [--models DIR] [--render-dir D]
[--render-frames N] [--result-json J] [--window --screenshot-dir S]. Exit code 0 on success, 3 when no
generator model is available (after saving what it could), 1 on any error. Used by demo.sh and the tests.

Window mode, step by step from `bpy.app.timers` (Blender keeps drawing between steps): screenshot the panel
with nothing selected (disabled buttons say why), select the head, open the sidebar tab, run Animate from
Audio through its modal operator (recording its longest modal() call), screenshot the panel with scores and plot, Edit > Undo and compare the whole scene with
the state before animating, Redo and compare with the state after, then start again and press Esc (real
event) and check the scene is unchanged. Results go to --result-json.
"""

import argparse
import importlib
import json
import os
import sys
import time
import traceback
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
    parser.add_argument("--window", action="store_true", help="run the window checks (needs a real window)")
    parser.add_argument("--screenshot-dir", type=Path)
    return parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])


def install(zip_path: Path) -> float:
    started = time.perf_counter()
    bpy.ops.preferences.addon_install(filepath=str(zip_path), overwrite=True)
    bpy.ops.preferences.addon_enable(module=ADDON)
    if ADDON not in bpy.context.preferences.addons:
        raise SystemExit(f"demo: enabling the add-on '{ADDON}' from {zip_path} failed (see the messages above)")
    return time.perf_counter() - started


LOWER_LIP_VERTEX = 3504   # FLAME topology: the centre of the lower lip


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
    lips = head.matrix_world @ mesh.vertices[LOWER_LIP_VERTEX].co
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
    scene = bpy.context.scene
    step = 30.0 / (scene.render.fps / scene.render.fps_base)   # the curves are at 30 fps
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
    bpy.context.scene.render.fps = 30
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


# ------------------------------------------------------------------------------------------ window mode

def scene_state() -> dict:
    """Everything Animate from Audio could change, as plain values (datablocks by name, the head's mesh, frame
    range, sound strips, the add-on's records), to compare before/after undo, redo and cancel."""
    scene = bpy.context.scene
    state = {kind: sorted(item.name for item in getattr(bpy.data, kind))
             for kind in ("objects", "meshes", "actions", "shape_keys", "sounds", "images")}
    state["object_data"] = {obj.name: obj.data.name if obj.data else None for obj in bpy.data.objects}
    state["records"] = {obj.name: (obj.talking_head.scores_json, obj.talking_head.audio_path)
                        for obj in bpy.data.objects if obj.type == "MESH"}
    state["frames"] = [scene.frame_start, scene.frame_end]
    editor = scene.sequence_editor
    strips = (editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all) if editor else []
    state["strips"] = sorted([strip.name, strip.channel, strip.frame_start] for strip in strips)
    return state


def _view3d():
    window = bpy.context.window_manager.windows[0]
    area = next(area for area in window.screen.areas if area.type == "VIEW_3D")
    return window, area, next(region for region in area.regions if region.type == "WINDOW")


def _screenshot(path: Path) -> str:
    window, area, _ = _view3d()
    path.parent.mkdir(parents=True, exist_ok=True)
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.screen.screenshot_area(filepath=str(path))
    return str(path)


class ModalMeter:
    """Wraps Animate from Audio's modal() to record the longest single call (the most UI-thread time the add-on
    takes per event in a real window) and what the last call returned. (Whole event-loop gaps are no measure under Xvfb: with software OpenGL on
    a busy machine Blender's own loop idles at up to ~1 s per iteration before the add-on does anything.)"""

    def __init__(self):
        self.operator = importlib.import_module(f"{ADDON}.operators").TALKINGHEAD_OT_animate
        self.original = self.operator.modal
        self.longest = 0.0
        self.last_return = None
        meter = self

        def timed_modal(operator, context, event):
            started = time.perf_counter()
            try:
                meter.last_return = meter.original(operator, context, event)
                return meter.last_return
            finally:
                meter.longest = max(meter.longest, time.perf_counter() - started)

        self.operator.modal = timed_modal

    def stop(self) -> float:
        """Unwrap; returns the longest call in ms."""
        self.operator.modal = self.original
        return round(self.longest * 1000, 1)


def window_steps(args, result: dict):
    """The window checks as a generator: each `yield seconds` hands control back to Blender for that long."""
    result.update(prepare_scene(args)[0])
    head = bpy.context.view_layer.objects.active
    yield 0.5   # let Blender rebuild the screen after read_factory_settings before touching it (3.4 crashes)
    window, area, region = _view3d()
    space = area.spaces.active
    space.show_region_ui = True
    space.shading.type = "SOLID"
    space.overlay.show_extras = False   # no camera and light outlines across the face
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_selected()
    yield from _open_sidebar_tab(window, area)
    # the pointer rests over the viewport (over the tabs Blender redraws them on every loop iteration)
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=region.x + region.width // 2, y=region.y + 40)
    head.select_set(False)
    bpy.context.view_layer.objects.active = None
    yield 0.5
    shots = args.screenshot_dir
    if shots:
        result["screenshot_disabled"] = _screenshot(shots / "panel_disabled.png")
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    bpy.ops.ed.undo_push(message="Head ready")
    yield 0.5
    before = scene_state()
    meter = ModalMeter()
    started = time.perf_counter()
    with bpy.context.temp_override(window=window, area=area, region=region):
        result["invoke"] = sorted(bpy.ops.talking_head.animate("INVOKE_DEFAULT"))
    while not head.talking_head.scores_json and time.perf_counter() - started < 120:
        yield 0.02
    result["animate_window_s"] = round(time.perf_counter() - started, 2)
    result["animate_longest_modal_call_ms"] = meter.stop()
    after = scene_state()
    result["animated"] = after != before and bool(head.talking_head.scores_json)
    yield 0.5
    if shots:
        result["screenshot_panel"] = _screenshot(shots / "panel.png")
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.ed.undo()
    yield 0.5
    result["undo_restores_scene"] = scene_state() == before
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.ed.redo()
    yield 0.5
    result["redo_restores_animation"] = scene_state() == after
    # Esc: (another intensity, so a run that finished anyway would change the scores)
    bpy.context.scene.talking_head.intensity = 0.5
    meter = ModalMeter()
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.talking_head.animate("INVOKE_DEFAULT")
    yield 0.05
    x, y = region.x + region.width // 2, region.y + region.height // 2
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    window.event_simulate(type="ESC", value="PRESS", x=x, y=y)
    waited = time.perf_counter()
    while meter.last_return not in ({"CANCELLED"}, {"FINISHED"}) and time.perf_counter() - waited < 30:
        yield 0.05
    meter.stop()
    result["esc_cancels"] = meter.last_return == {"CANCELLED"}
    result["esc_leaves_scene_unchanged"] = scene_state() == after


def _open_sidebar_tab(window, area):
    """Make the add-on's sidebar tab the active one: Ctrl+Wheel over the tabs (simulated events) until the panel
    draws (Blender 3.4 has no Python setting for the active tab)."""
    panel_class = importlib.import_module(f"{ADDON}.panel").TALKINGHEAD_PT_panel
    drawn = []
    original_draw = panel_class.draw

    def counting_draw(self, context):
        drawn.append(True)
        original_draw(self, context)

    panel_class.draw = counting_draw
    sidebar = next(region for region in area.regions if region.type == "UI")
    x, y = sidebar.x + sidebar.width - 8, sidebar.y + sidebar.height // 2
    for _ in range(8):
        yield 0.3
        if drawn:
            break
        window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=x, y=y, ctrl=True)
    panel_class.draw = original_draw
    if not drawn:
        raise RuntimeError("the Talking Head sidebar tab could not be opened")


def run_window_checks(args) -> None:
    """Start the window checks from a timer; they write --result-json and quit Blender (exit code 1 on error)."""
    if not bpy.app.use_event_simulate:
        raise SystemExit("demo: --window needs Blender started with --enable-event-simulate")
    bpy.context.preferences.view.show_splash = False
    result = {}
    steps = window_steps(args, result)

    def advance():
        try:
            return next(steps)
        except StopIteration:
            result["ok"] = True
        except Exception:  # report any failure in the JSON and the log, then quit with an error
            traceback.print_exc()
            result["ok"] = False
            result["error"] = traceback.format_exc(limit=3)
        if args.result_json:
            args.result_json.write_text(json.dumps(result, indent=1))
        print("demo: window checks:", json.dumps(result), flush=True)
        if result["ok"]:
            bpy.ops.wm.quit_blender()
        else:
            os._exit(1)
        return None

    bpy.app.timers.register(advance, first_interval=0.5, persistent=True)   # survives read_factory_settings


if __name__ == "__main__":
    if parse().window:
        run_window_checks(parse())   # returns at once; Blender's event loop runs the checks
    else:
        sys.exit(main())
