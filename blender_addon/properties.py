"""Scene settings (audio, generator, style, intensity) and per-object records of what the add-on made."""

from pathlib import Path

import bpy

from backend.generators import DEFAULT_GENERATOR, GENERATORS, scan_generators

from . import preferences

BAKE_EDITABLE, BAKE_PER_FRAME = "EDITABLE", "PER_FRAME"
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


class TalkingHeadSettings(bpy.types.PropertyGroup):
    audio_path: bpy.props.StringProperty(name="Audio", subtype="FILE_PATH",
                                         description="Speech recording (WAV, FLAC or Ogg)")
    generator: bpy.props.EnumProperty(name="Generator", items=_generator_items,
                                      description="Speech-to-face model (from the models folder)")
    style: bpy.props.EnumProperty(name="Style", items=_style_items,
                                  description="Speaking style (subject) the generator was trained with")
    intensity: bpy.props.FloatProperty(name="Intensity", default=1.0, min=0.0, max=2.0,
                                       description="Scales the motion around the neutral face (1 = as generated)")
    bake: bpy.props.EnumProperty(
        name="Bake", default=BAKE_EDITABLE,
        items=[(BAKE_EDITABLE, "Editable keys", "ARKit-named relative shape keys driven by F-curves in an NLA strip: "
                "scale, shift, blend or hand-fix it; your own shape keys keep acting. Needs FLAME_masks.npz beside "
                "the FLAME template set in the preferences"),
               (BAKE_PER_FRAME, "Exact per frame", "One absolute shape key per frame: the generator's output "
                "exactly, nothing to edit, your own shape keys are off while it is attached, ~60 KB per frame")],
        description="How the animation is put on the head")
    blinks: bpy.props.BoolProperty(name="Blinks", default=True,
                                   description="Editable bake: natural blinks (~17 a minute, ~0.26 s each) on the "
                                               "eyeBlink_L/R keys")
    brows: bpy.props.BoolProperty(name="Brows", default=True,
                                  description="Editable bake: brow raises on the loudest moments of the voice "
                                              "(browInnerUp)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0, description="Seed of the blink timing")
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
    sound: bpy.props.PointerProperty(type=bpy.types.Sound)
    plot_image: bpy.props.PointerProperty(type=bpy.types.Image)
    audio_path: bpy.props.StringProperty()
    scores_json: bpy.props.StringProperty()
    basis_key_names: bpy.props.StringProperty(description="The add-on's relative shape keys on the baked mesh, one "
                                              "name a line (empty for the per-frame bake)")
    previous_frame_end: bpy.props.IntProperty(description="The scene's frame end before Animate set it")
    frame_end_set: bpy.props.IntProperty(description="The frame end Animate set (restored on Remove only if unchanged)")


CLASSES = (TalkingHeadSettings, TalkingHeadObject)


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
