"""Runs INSIDE Blender with a real window (e.g. under `xvfb-run`): set up the demo scene (demo_blender.py's
prepare_scene), then drive the panel like a user and check what only a window can show. Used by
tests/test_addon_install.py.

xvfb-run -a blender --factory-startup --enable-event-simulate -P tests/blender_window_harness.py -- \\
    --zip Z --template PLY --audio WAV [--models DIR] [--screenshot-dir S] [--result-json J]

Step by step from `bpy.app.timers` (Blender keeps drawing between steps): screenshot the panel with nothing
selected (disabled buttons say why), select the head, open the sidebar tab, run Animate from Audio through its
modal operator (recording its longest modal() call), screenshot the panel with scores and plot, Edit > Undo and
compare the whole scene with the state before animating, Redo and compare with the state after, then start
again and press Esc (real event) and check the scene is unchanged. Results go to --result-json; Blender quits
with exit code 0 when every step ran, 1 on any error.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

import bpy


def _load_demo():
    """demo_blender.py by path (not via sys.path, so `backend` still comes from the installed add-on)."""
    path = Path(__file__).resolve().parents[1] / "demo_blender.py"
    spec = importlib.util.spec_from_file_location("demo_blender", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo()
ADDON = demo.ADDON


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blender_window_harness.py")
    for name in ("--zip", "--template", "--audio"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--screenshot-dir", type=Path)
    parser.add_argument("--result-json", type=Path)
    return parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])


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
    result.update(demo.prepare_scene(args)[0])
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
        raise SystemExit("window harness: needs Blender started with --enable-event-simulate")
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
        print("window harness:", json.dumps(result), flush=True)
        if result["ok"]:
            bpy.ops.wm.quit_blender()
        else:
            os._exit(1)
        return None

    bpy.app.timers.register(advance, first_interval=0.5, persistent=True)   # survives read_factory_settings


if __name__ == "__main__":
    run_window_checks(parse())   # returns at once; Blender's event loop runs the checks
