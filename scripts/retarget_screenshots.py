"""Screenshots for the README: the panel with the shape-key mapping table, and a head that is not FLAME topology
speaking (issue 17 item 3). Runs INSIDE Blender with a real window:

xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --enable-event-simulate \\
    -P scripts/retarget_screenshots.py -- --zip dist/flame_talking_heads-*.zip \\
    --template ../shared/flame/FLAME_sample.ply --audio samples/sample_sentence.wav --out docs/screenshots

The character is the FLAME template remeshed by vertex clustering (tests/remeshed_head.py: another topology,
made at run time, nothing of FLAME is stored) with the project's basis transferred onto it by surface binding
(backend.retarget.binding) as its own shape keys named the FaceIt / Live Link way (eyeBlinkLeft...), without a
cheekPuff key (so the table shows an unmapped row). Animate from Audio drives those keys with the default
generator; the frame shown is the one with the widest lip gap. Writes panel_mapping.png and character_speaking.png
(downscaled, small) to --out; exit code 0 when both were written.
"""

import argparse
import importlib.util
import sys
import traceback
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]
WIDTH = 900   # pixels of the written PNGs


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _module("blender_window_harness", REPO / "tests" / "blender_window_harness.py")
demo = harness.demo


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="retarget_screenshots.py")
    for name in ("--zip", "--template", "--audio", "--out"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--models", type=Path)
    return parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])


def add_character(template_path: Path):
    """The remeshed template with the transferred basis as FaceIt-style keys (cheekPuff left out)."""
    import numpy as np
    from backend.flame import FlameRegions, find_regions_beside   # importable once the add-on is enabled
    from backend.mesh import load_flame_mesh
    from backend.retarget.basis import KEY_NAMES, ShapeBasis
    from backend.retarget.binding import transfer_fields
    from backend.retarget.mapping import BUILTIN_PRESETS
    from backend.rig.flame_rig import FlameRig
    remesh = _module("remeshed_head", REPO / "tests" / "remeshed_head.py")
    template = load_flame_mesh(template_path)
    regions = find_regions_beside(template_path) or FlameRegions.load(template_path.parent / "FLAME_masks.npz")
    vertices, faces = remesh.remesh_by_clustering(template.vertices, template.faces)
    basis = ShapeBasis.build(FlameRig(template.vertices, template.faces, regions.masks))
    keys = vertices[None] + transfer_fields(basis.displacements, template.vertices, template.faces, vertices)
    names = {row.basis_key: row.target_key for row in BUILTIN_PRESETS["ARKit Left/Right (FaceIt-style)"].rows}
    mesh = bpy.data.meshes.new("Character")
    mesh.from_pydata(vertices.tolist(), [], faces.tolist())
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    character = bpy.data.objects.new("Character", mesh)
    bpy.context.scene.collection.objects.link(character)
    character.rotation_euler = (1.5708, 0.0, 0.0)   # y-up like FLAME; Blender is z-up
    character.shape_key_add(name="Basis", from_mix=False)
    for name, positions in zip(KEY_NAMES, keys):
        if name != "cheekPuff":
            block = character.shape_key_add(name=names[name], from_mix=False)
            block.data.foreach_set("co", positions.astype(np.float32).ravel())
    return character


def _save_small(source: Path, target: Path) -> str:
    image = bpy.data.images.load(str(source))
    width, height = image.size
    image.scale(WIDTH, max(1, round(height * WIDTH / width)))
    scene = bpy.context.scene
    scene.view_settings.view_transform = "Standard"   # the screenshot's colours as they are
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.compression = "PNG", "RGB", 100
    image.save_render(str(target), scene=scene)
    bpy.data.images.remove(image)
    source.unlink()
    return str(target)


def steps(args, written: list):
    result, head = demo.prepare_scene(args)
    head.hide_set(True)
    head.hide_render = True
    character = add_character(args.template.resolve())
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    character.select_set(True)
    bpy.context.view_layer.objects.active = character
    settings = bpy.context.scene.talking_head
    settings.bake = "TARGET_KEYS"
    settings.mapping_preset = "(match the mesh's keys)"
    bpy.ops.talking_head.load_mapping()
    settings.mapping_index = 0
    yield 0.5
    window, area, region = harness._view3d()
    space = area.spaces.active
    space.show_region_ui = True
    space.shading.type = "SOLID"
    space.overlay.show_extras = False
    space.overlay.show_wireframes = True         # the other topology, visible
    yield from harness._open_sidebar_tab(window, area)
    with bpy.context.temp_override(window=window, area=area, region=region):
        result = bpy.ops.talking_head.animate("EXEC_DEFAULT")
    if result != {"FINISHED"}:
        raise RuntimeError(f"Animate from Audio returned {result}")
    key = character.data.shape_keys
    scene = bpy.context.scene
    openings = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        openings.append(key.key_blocks["jawOpen"].value)
    scene.frame_set(scene.frame_start + max(range(len(openings)), key=openings.__getitem__))
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_selected()
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=region.x + region.width // 2, y=region.y + 40)
    yield 1.0
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "panel_mapping.raw.png"
    harness._screenshot(raw)
    written.append(_save_small(raw, args.out / "panel_mapping.png"))
    space.show_region_ui = False
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_selected()
        bpy.ops.view3d.zoom(delta=2)
    character.select_set(False)   # the wireframe in black, not the selection's orange
    yield 1.0
    raw = args.out / "character_speaking.raw.png"
    harness._screenshot(raw)
    written.append(_save_small(raw, args.out / "character_speaking.png"))


def main() -> None:
    args = parse()
    written: list = []
    generator = steps(args, written)

    def tick():
        try:
            return next(generator)
        except StopIteration:
            print(f"retarget_screenshots: wrote {', '.join(written)}")
            bpy.ops.wm.quit_blender()
        except Exception:
            traceback.print_exc()
            sys.stdout.flush()
            import os
            os._exit(1)
        return None

    bpy.context.preferences.view.show_splash = False
    bpy.app.timers.register(tick, first_interval=0.5, persistent=True)   # survives read_factory_settings


main()
