"""Scene settings (audio, generator, style, intensity, life, the key-mapping table) and per-object records of what
the add-on made."""

from pathlib import Path

import bpy

from backend.generators import DEFAULT_GENERATOR, GENERATORS, scan_generators
from backend.retarget.basis import KEY_NAMES
from backend.retarget.mapping import (BUILTIN_PRESETS, MAX_GAIN, KeyMapping, MappingRow, best_builtin_for,
                                      user_presets)

from . import preferences

BAKE_EDITABLE, BAKE_PER_FRAME, BAKE_TARGET_KEYS = "EDITABLE", "PER_FRAME", "TARGET_KEYS"
AUTO_PRESET = "(match the mesh's keys)"
# Blender keeps only pointers to enum item strings: the lists must stay referenced from Python.
_enum_items: dict = {}


def generator_infos(context) -> tuple:
    """(usable GeneratorInfos, DEFAULT_GENERATOR first so the panel preselects it; [(name, reason)] of broken
    generator folders) for the models folder in the preferences."""
    models_dir = preferences.settings(context)[0]
    try:
        infos, broken = scan_generators(Path(models_dir) / GENERATORS)
    except OSError as error:   # an unreadable models folder
        return [], [(str(models_dir), f"cannot be read ({error.strerror})")]
    return sorted(infos, key=lambda info: info.name != DEFAULT_GENERATOR), broken


def _generator_items(self, context):
    infos, _ = generator_infos(context)
    items = [(info.name, info.name + (" (default)" if info.name == DEFAULT_GENERATOR else ""), info.description)
             for info in infos] or [("NONE", "(no generators)", "")]
    _enum_items["generators"] = items
    return items


def selected_generator(context):
    """The GeneratorInfo picked in the panel, or None."""
    infos, _ = generator_infos(context)
    chosen = context.scene.talking_head.generator
    return next((info for info in infos if info.name == chosen), None)


def _style_items(self, context):
    info = selected_generator(context)
    styles = info.styles if info is not None else ()
    items = [(style, style, f"speaking style '{style}'") for style in styles] or [("NONE", "(default)", "")]
    _enum_items["styles"] = items
    return items


def presets_dir():
    """The user's key-mapping presets: a folder in Blender's user config folder."""
    return Path(bpy.utils.user_resource("CONFIG", path="talking_head_key_mappings"))


def available_presets() -> tuple:
    """({name: KeyMapping}: the built-in presets, then the user's; [(file, reason)] of unreadable preset files)."""
    presets, broken = user_presets(presets_dir())
    return {**BUILTIN_PRESETS, **{name: mapping for name, mapping in presets.items() if name not in BUILTIN_PRESETS}}, \
        broken


def _preset_items(self, context):
    items = [(AUTO_PRESET, AUTO_PRESET, "The built-in preset matching most of the active mesh's keys")]
    items += [(name, name, "built-in" if name in BUILTIN_PRESETS else f"saved in {presets_dir()}")
              for name in available_presets()[0]]
    _enum_items["presets"] = items
    return items


class TalkingHeadMappingRow(bpy.types.PropertyGroup):
    """One row of the mapping table: a basis key drives a target shape key (empty: unmapped) with a gain."""

    basis_key: bpy.props.StringProperty(name="Basis key")
    target_key: bpy.props.StringProperty(name="Target key", description="The character's shape key this basis "
                                         "key drives (empty: unmapped)")
    gain: bpy.props.FloatProperty(name="Gain", default=1.0, min=0.0, max=MAX_GAIN,
                                  description="The target key's value per unit of the basis weight")


def mapping_from_table(settings) -> KeyMapping:
    return KeyMapping(settings.mapping_name, tuple(MappingRow(row.basis_key, row.target_key.strip(), row.gain)
                                                   for row in settings.mapping_rows))


def mapping_for(settings, key_names) -> KeyMapping:
    """The table's mapping; while the table is empty, the built-in preset that matches most of `key_names` (so a
    character with ARKit-named keys is driven out of the box)."""
    return mapping_from_table(settings) if len(settings.mapping_rows) else best_builtin_for(key_names)


def own_key_names(obj) -> list:
    """The relative shape keys of `obj`'s mesh that can be driven (all but the Basis)."""
    keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    return [block.name for block in keys.key_blocks[1:]] if keys is not None else []


def fill_table(settings, mapping: KeyMapping) -> None:
    """The table shows `mapping`: one row per mapping row, plus an unmapped row for every basis key it leaves
    out, in the basis's order."""
    settings.mapping_rows.clear()
    unmapped = set(mapping.unmapped())
    for name in KEY_NAMES:
        rows = [row for row in mapping.rows if row.basis_key == name and row.target_key]
        for row in rows or ([MappingRow(name, "")] if name in unmapped else []):
            item = settings.mapping_rows.add()
            item.basis_key, item.target_key, item.gain = row.basis_key, row.target_key, row.gain
    settings.mapping_name = mapping.name
    settings.mapping_index = 0


class TalkingHeadSettings(bpy.types.PropertyGroup):
    audio_path: bpy.props.StringProperty(name="Audio", subtype="FILE_PATH",
                                         description="Speech recording (WAV, FLAC or Ogg)")
    generator: bpy.props.EnumProperty(name="Generator", items=_generator_items,
                                      description="Speech-to-face model (from the models folder)")
    style: bpy.props.EnumProperty(name="Style", items=_style_items,
                                  description="Speaking style (subject) the generator was trained with")
    intensity: bpy.props.FloatProperty(name="Intensity", default=1.0, min=0.0, max=2.0,
                                       description="Scales the motion around the neutral face (1 = as generated)")
    lip_closure: bpy.props.BoolProperty(
        name="Close lips on /p b m/", default=True,
        description="Where the speech front end hears /p b m/, shut the lips the generator left open (the lip "
                    "closure guard; v2 generators only, v1 generators have no front end to hear with). Turn it off "
                    "for a stylised character whose rest pose has the lips apart (the guard pulls the mouth towards "
                    "the rest pose) or to see the generator's own output")
    bake: bpy.props.EnumProperty(
        name="Bake", default=BAKE_EDITABLE,
        items=[(BAKE_EDITABLE, "Editable keys", "ARKit-named relative shape keys driven by F-curves in an NLA strip: "
                "scale, shift, blend or hand-fix it; your own shape keys keep acting. Needs FLAME_masks.npz beside "
                "the FLAME template set in the preferences"),
               (BAKE_PER_FRAME, "Exact per frame", "One absolute shape key per frame: the generator's output "
                "exactly, nothing to edit, your own shape keys are off while it is attached, ~60 KB per frame"),
               (BAKE_TARGET_KEYS, "Character's own keys", "Drive the active mesh's own shape keys (any topology) "
                "through the mapping table: F-curves in an NLA strip; nothing of the character is edited. Needs "
                "the FLAME template (with FLAME_masks.npz beside it) set in the preferences")],
        description="How the animation is put on the head")
    blinks: bpy.props.BoolProperty(name="Blinks", default=True,
                                   description="Editable bake: natural blinks (~17 a minute, ~0.26 s each) on the "
                                               "eyeBlink_L/R keys")
    brows: bpy.props.BoolProperty(name="Brows", default=True,
                                  description="Editable bake: brow raises on the loudest moments of the voice "
                                              "(browInnerUp)")
    pitch_brows: bpy.props.BoolProperty(name="Pitch brows", default=True,
                                        description="Editable bakes: outer brows rise where the voice's pitch rises "
                                                    "(browOuterUp_L/R)")
    head_motion: bpy.props.BoolProperty(name="Head motion", default=True,
                                        description="Editable bakes: a small seeded head sway that follows the "
                                                    "voice's loudness, as object rotation curves on their own NLA "
                                                    "track (XYZ Euler rotation mode only)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0, description="Seed of the blink timing and head sway")
    mapping_rows: bpy.props.CollectionProperty(type=TalkingHeadMappingRow)
    mapping_index: bpy.props.IntProperty(name="Row", default=0)
    mapping_name: bpy.props.StringProperty(name="Preset name", default="My character",
                                           description="Name the table is saved under (Save Preset)")
    mapping_preset: bpy.props.EnumProperty(name="Preset", items=_preset_items,
                                           description="Key-naming scheme to load into the table")
    mouth_gain: bpy.props.FloatProperty(name="Mouth", default=1.0, min=0.0, max=2.0,
                                        description="Editable bake: gain on the mouth keys (Apply Controls)")
    jaw_gain: bpy.props.FloatProperty(name="Jaw", default=1.0, min=0.0, max=2.0,
                                      description="Editable bake: gain on the jaw keys (Apply Controls)")
    smoothing_ms: bpy.props.FloatProperty(name="Smoothing ms", default=0.0, min=0.0, max=200.0,
                                          description="Editable bake: Gaussian smoothing of every key's curve")
    shift_ms: bpy.props.FloatProperty(name="Lead/Lag ms", default=0.0, min=-300.0, max=300.0,
                                      description="Editable bake: > 0 moves the motion later, < 0 earlier")


class TalkingHeadObject(bpy.types.PropertyGroup):
    """What Animate from Audio attached to an object (all empty when nothing is)."""

    original_mesh: bpy.props.PointerProperty(type=bpy.types.Mesh)
    baked_mesh: bpy.props.PointerProperty(type=bpy.types.Mesh)
    action: bpy.props.PointerProperty(type=bpy.types.Action)
    head_action: bpy.props.PointerProperty(type=bpy.types.Action)
    sound: bpy.props.PointerProperty(type=bpy.types.Sound)
    plot_image: bpy.props.PointerProperty(type=bpy.types.Image)
    audio_path: bpy.props.StringProperty()
    scores_json: bpy.props.StringProperty()
    basis_key_names: bpy.props.StringProperty(description="The add-on's relative shape keys on the baked mesh, one "
                                              "name a line (empty for the per-frame bake)")
    previous_frame_end: bpy.props.IntProperty(description="The scene's frame end before Animate set it")
    frame_end_set: bpy.props.IntProperty(description="The frame end Animate set (restored on Remove only if unchanged)")


CLASSES = (TalkingHeadMappingRow, TalkingHeadSettings, TalkingHeadObject)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.talking_head = bpy.props.PointerProperty(type=TalkingHeadSettings)
    bpy.types.Object.talking_head = bpy.props.PointerProperty(type=TalkingHeadObject)


def unregister() -> None:
    del bpy.types.Object.talking_head
    del bpy.types.Scene.talking_head
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
