"""Runs in a Python that has pip `bpy` (4.5 on 3.11, 5.2 on 3.13): install the built add-on zip the way a user
does, enable it, run its operators on a FLAME head (default preferences, then the editable bake with the template
preference set and an artist's own shape key), drive a non-FLAME mesh's own shape keys through the mapping table,
print one JSON line with what happened.

    python tests/blender_install_check.py --zip Z --mode extension|legacy --user-dir D --template PLY
        --audio WAV --models DIR

`extension`: Edit > Preferences > Get Extensions > Install from Disk (`extensions.package_install_files` into the
user repository; Blender installs the bundled wheels itself). `legacy`: Add-ons > Install (`addon_install`, then
enable; the add-on unpacks the wheels for this Python itself). The BLENDER_USER_* folders must point at
--user-dir before bpy is imported (set by the caller), so nothing of the real user's Blender is touched.
Exit code 0 whatever happened (the JSON says it); 2 when the environment is not isolated.
"""

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

ADDON_ID = "flame_talking_heads"
USER_FOLDERS = ("RESOURCES", "SCRIPTS", "CONFIG", "EXTENSIONS")


def isolated_environment(user_dir: Path) -> dict:
    """The BLENDER_USER_* variables that keep an install inside `user_dir`."""
    return {f"BLENDER_USER_{name}": str(user_dir / name.lower()) for name in USER_FOLDERS}


def install(bpy, zip_path: Path, mode: str) -> tuple:
    """(module name of the enabled add-on, operator result)."""
    if mode == "extension":
        result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                          enable_on_install=True)
        return f"bl_ext.user_default.{ADDON_ID}", result
    result = bpy.ops.preferences.addon_install(filepath=str(zip_path), overwrite=True)
    import addon_utils
    addon_utils.enable(ADDON_ID, default_set=True, handle_error=None)
    return ADDON_ID, result


def animate_head(bpy, module: str, template: Path, audio: Path, models: Path) -> dict:
    """Import Import FLAME Mesh, Animate from Audio, Score, Remove through the installed add-on's operators."""
    bpy.context.preferences.addons[module].preferences.models_dir = str(models)
    steps = {"import": bpy.ops.talking_head.import_flame(filepath=str(template))}
    head = bpy.context.view_layer.objects.active
    bpy.context.scene.talking_head.audio_path = str(audio)
    steps["animate"] = bpy.ops.talking_head.animate()
    keys = head.data.shape_keys
    frames = len(keys.key_blocks) - 1 if keys is not None else 0
    steps["score"] = bpy.ops.talking_head.score()
    scores = json.loads(head.talking_head.scores_json)["scores"]
    steps["remove"] = bpy.ops.talking_head.remove()
    return {"steps": {name: sorted(result) for name, result in steps.items()}, "frames": frames,
            "scores": {score["name"]: score["value"] for score in scores}}


def editable_bake_check(bpy, module: str, template: Path, audio: Path) -> dict:
    """The editable bake (template preference set, FLAME_masks.npz beside it) on a head with the artist's own
    relative key `smile` at 0.7: the NLA strip of the add-on's action, the smile still acting (depsgraph), and
    what Remove leaves."""
    import numpy
    bpy.context.preferences.addons[module].preferences.template_path = str(template)
    bpy.ops.talking_head.import_flame(filepath=str(template))
    head = bpy.context.view_layer.objects.active
    head.shape_key_add(name="Basis", from_mix=False)
    smile = head.shape_key_add(name="smile", from_mix=False)
    smile.data[3000].co.z += 0.01
    smile.value = 0.7
    bpy.context.scene.talking_head.audio_path = str(audio)
    result = {"animate": sorted(bpy.ops.talking_head.animate())}
    key = head.data.shape_keys
    tracks = key.animation_data.nla_tracks if key.animation_data else []
    strips = [strip for track in tracks for strip in track.strips]
    result["relative"] = key.use_relative
    result["keys"] = len(key.key_blocks)
    result["strip_is_owned_action"] = len(strips) == 1 and strips[0].action == head.talking_head.action \
        and strips[0].action.get("talking_head_owner") == head

    def shown(frame):
        bpy.context.scene.frame_set(frame)
        mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
        values = numpy.empty(len(mesh.vertices) * 3, numpy.float32)
        mesh.vertices.foreach_get("co", values)
        return values.reshape(-1, 3)

    frame = bpy.context.scene.frame_start + 30
    with_smile = shown(frame)
    key.key_blocks["smile"].mute = True
    without_smile = shown(frame)
    key.key_blocks["smile"].mute = False
    result["smile_moves_mm"] = float((with_smile - without_smile)[3000, 2] * 1000)
    result["lip_sync_moves_mm"] = float(numpy.abs(without_smile - shown(bpy.context.scene.frame_start + 60)).max()
                                        * 1000)
    ours = head.talking_head.action.name
    result["remove"] = sorted(bpy.ops.talking_head.remove())
    blocks = head.data.shape_keys.key_blocks
    result["left_keys"] = [block.name for block in blocks]
    result["left_smile_value"] = blocks["smile"].value
    result["action_removed"] = ours not in bpy.data.actions
    return result


def target_keys_check(bpy, audio: Path) -> dict:
    """Driving a non-FLAME mesh's own shape keys (a UV sphere with ARKit-style Left/Right keys and an artist's
    key) through the mapping table loaded from the matching preset, saved and loaded as a user preset; head
    motion on its own track; what Remove leaves."""
    import numpy
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.1)
    sphere = bpy.context.view_layer.objects.active
    sphere.shape_key_add(name="Basis", from_mix=False)
    for name in ("jawOpen", "mouthClose", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "grin"):
        block = sphere.shape_key_add(name=name, from_mix=False)
        block.data[len(block.data) // 3].co.z -= 0.01
    sphere.data.shape_keys.key_blocks["grin"].value = 0.4
    settings = bpy.context.scene.talking_head
    settings.audio_path, settings.bake = str(audio), "TARGET_KEYS"
    settings.mapping_preset = "(match the mesh's keys)"
    result = {"load": sorted(bpy.ops.talking_head.load_mapping()), "preset": settings.mapping_name}
    settings.mapping_name = "Sphere"
    result["save"] = sorted(bpy.ops.talking_head.save_mapping())
    settings.mapping_preset = "Sphere"
    result["load_saved"] = sorted(bpy.ops.talking_head.load_mapping())
    result["animate"] = sorted(bpy.ops.talking_head.animate())
    key = sphere.data.shape_keys
    strips = [strip for track in key.animation_data.nla_tracks for strip in track.strips]
    result["strip_is_owned_action"] = len(strips) == 1 and strips[0].action == sphere.talking_head.action
    action = sphere.talking_head.action
    curves = action.layers[0].strips[0].channelbags[0].fcurves if hasattr(action, "layers") else action.fcurves
    result["curves"] = sorted(curve.data_path for curve in curves)
    values = []
    for frame in range(bpy.context.scene.frame_start, bpy.context.scene.frame_end + 1):
        bpy.context.scene.frame_set(frame)
        values.append([block.value for block in key.key_blocks])
    ranges = numpy.ptp(numpy.array(values), axis=0)
    result["moving_keys"] = [block.name for block, size in zip(key.key_blocks, ranges) if size > 0.01]
    result["head_track"] = [track.name for track in sphere.animation_data.nla_tracks]
    result["remove"] = sorted(bpy.ops.talking_head.remove())
    result["left_keys"] = [block.name for block in key.key_blocks]
    result["left_grin"] = key.key_blocks["grin"].value
    result["left_animation"] = key.animation_data is not None or sphere.animation_data is not None
    result["left_rotation"] = list(sphere.rotation_euler)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--mode", choices=("extension", "legacy"), required=True)
    parser.add_argument("--user-dir", type=Path, required=True)
    for name in ("--template", "--audio", "--models"):
        parser.add_argument(name, type=Path, required=True)
    args = parser.parse_args()
    expected = isolated_environment(args.user_dir)
    if any(os.environ.get(name) != value for name, value in expected.items()):
        print(json.dumps({"error": f"set {expected} before running"}))
        return 2
    import bpy
    report = {"blender": list(bpy.app.version), "python": list(sys.version_info[:2]), "mode": args.mode}
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        module, result = install(bpy, args.zip, args.mode)
        report["install_result"] = sorted(result)
        report["enabled"] = module in bpy.context.preferences.addons
        report["installed_dir"] = next((str(path) for path in args.user_dir.rglob(ADDON_ID) if path.is_dir()), None)
        if report["enabled"]:
            report.update(animate_head(bpy, module, args.template, args.audio, args.models))
            report["editable"] = editable_bake_check(bpy, module, args.template, args.audio)
            report["target_keys"] = target_keys_check(bpy, args.audio)
            import numpy
            report["numpy"] = numpy.__version__
    except Exception as error:  # the report carries the failure; the test shows it
        report["error"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc()[-3000:]
    print("INSTALL-CHECK " + json.dumps(report))
    sys.stdout.flush()
    os._exit(0)   # bpy's atexit handlers can hang or crash after add-on threads; the JSON is already out


if __name__ == "__main__":
    sys.exit(main())
