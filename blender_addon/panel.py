"""The N-panel tab: audio, generator, style and intensity, the lip closure toggle, life toggles, the key-mapping table (driving a
character's own keys), the buttons (with why they are disabled), the
scores with a colour cue, a rating word and a one-line explanation each, and the speech-envelope vs
lip-opening plot. Text is wrapped to the sidebar's width so nothing is cut off with '...'."""

import bpy

from backend.generators import INPUT_SPEECH_FEATURES

from . import operators, properties, scoring

# Traffic-light colour cues (Blender's coloured collection icons exist in 3.4 and 4.x alike).
RATING_ICONS = {"good": "COLLECTION_COLOR_04", "fair": "COLLECTION_COLOR_03", "poor": "COLLECTION_COLOR_01",
                "n/a": "QUESTION"}
AVERAGE_CHAR_PIXELS = 5.6   # Blender's default UI font at scale 1 (measured on screenshots)
ICON_PIXELS = 20            # template_icon's unit of `scale` at UI scale 1


def _chars_per_line(context) -> int:
    """How many characters fit on a label line of the sidebar at its current width."""
    width = context.region.width / context.preferences.system.ui_scale
    return max(18, int((width - 36) / AVERAGE_CHAR_PIXELS))


def _wrap(text: str, width: int) -> list:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def _small_lines(layout, text: str, width: int, icon: str = "NONE") -> None:
    column = layout.column(align=True)
    column.scale_y = 0.75
    for index, line in enumerate(_wrap(text, width)):
        column.label(text=line, icon=icon if index == 0 else "NONE")


def _button(layout, operator_class, blocker, width: int, icon: str) -> None:
    column = layout.column()
    column.enabled = blocker is None
    column.operator(operator_class.bl_idname, icon=icon)
    if blocker is not None:
        _small_lines(layout, blocker, width - 3, icon="ERROR")


def draw_scores(layout, scores: scoring.ClipScores, width: int) -> None:
    for score in scores.scores:
        box = layout.box()
        row = box.row()
        row.alert = score.rating == "poor"
        rating = f"   {score.rating}" if score.value is not None else ""
        row.label(text=f"{score.name}  {score.shown_value}{rating}", icon=RATING_ICONS[score.rating])
        _small_lines(box, scoring.EXPLANATIONS[score.name], width - 4)
        if score.note:
            _small_lines(box, f"({score.note})", width - 4)


def draw_plot(layout, context, image) -> None:
    layout.label(text="Speech loudness", icon="COLLECTION_COLOR_05")
    layout.label(text="Lip opening (below it)", icon="COLLECTION_COLOR_02")
    width = context.region.width / context.preferences.system.ui_scale
    icon = image.preview.icon_id if image.preview is not None else layout.icon(image)   # None: file made elsewhere
    layout.template_icon(icon_value=icon, scale=max(4.0, (width - 30) / ICON_PIXELS))
    _small_lines(layout, "One grey line per second; in sync when the orange peaks sit under the blue ones.",
                 _chars_per_line(context))


class TALKINGHEAD_UL_mapping(bpy.types.UIList):
    """One row per basis key -> target key: the basis key and the character's key (red when the mesh has no such
    key; 'unmapped' when empty); the active row's key and gain are edited below the list (the sidebar is narrow)."""

    bl_idname = "TALKINGHEAD_UL_mapping"

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        keys = properties.own_key_names(context.active_object)
        split = layout.split(factor=0.5)
        split.label(text=item.basis_key)
        row = split.row()
        row.alert = bool(item.target_key) and item.target_key not in keys
        gain = f" x{item.gain:.2g}" if item.target_key and item.gain != 1.0 else ""
        row.label(text=(item.target_key + gain) if item.target_key else "(unmapped)")


def draw_mapping(layout, context, settings, width: int) -> None:
    """The key-mapping table with its presets (bake: the character's own keys)."""
    box = layout.box()
    box.label(text="Shape-key mapping", icon="SHAPEKEY_DATA")
    row = box.row(align=True)
    row.prop(settings, "mapping_preset", text="")
    row.operator(operators.TALKINGHEAD_OT_load_mapping.bl_idname, text="Load", icon="IMPORT")
    if not settings.mapping_rows:
        keys = properties.own_key_names(context.active_object)
        mapping = properties.mapping_for(settings, keys)
        _small_lines(box, f"Table empty: '{mapping.name}' names drive {len(mapping.mapped_rows)} of the mesh's keys. "
                     "Load a preset to edit the table.", width - 4)
        return
    unmapped = properties.mapping_from_table(settings).unmapped()
    box.template_list(TALKINGHEAD_UL_mapping.bl_idname, "", settings, "mapping_rows", settings, "mapping_index",
                      rows=8)
    if 0 <= settings.mapping_index < len(settings.mapping_rows):   # the active row, editable
        item = settings.mapping_rows[settings.mapping_index]
        obj = context.active_object
        keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
        column = box.column(align=True)
        column.label(text=f"{item.basis_key} drives:")
        if keys is not None:
            column.prop_search(item, "target_key", keys, "key_blocks", text="")
        else:
            column.prop(item, "target_key", text="")
        column.prop(item, "gain", slider=True)
    if unmapped:
        _small_lines(box, f"Unmapped ({len(unmapped)}): {', '.join(unmapped)}", width - 4, icon="INFO")
    row = box.row(align=True)
    row.prop(settings, "mapping_name", text="")
    row.operator(operators.TALKINGHEAD_OT_save_mapping.bl_idname, text="Save", icon="FILE_TICK")


class TALKINGHEAD_PT_panel(bpy.types.Panel):
    bl_label = "Talking Head"
    bl_idname = "TALKINGHEAD_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"

    def draw(self, context):
        layout = self.layout
        width = _chars_per_line(context)
        settings = context.scene.talking_head
        layout.operator(operators.TALKINGHEAD_OT_import_flame.bl_idname, icon="IMPORT")
        layout.label(text="Audio (speech recording)")
        layout.prop(settings, "audio_path", text="")
        for name in ("generator", "style", "intensity", "bake"):   # short labels left, wide fields (long model names)
            split = layout.split(factor=0.38)
            split.label(text=settings.bl_rna.properties[name].name)
            split.prop(settings, name, text="", slider=True)
        row = layout.row()
        info = properties.selected_generator(context)
        row.active = info is not None and info.input == INPUT_SPEECH_FEATURES   # v1 graphs have no guard to switch
        row.prop(settings, "lip_closure")
        if settings.bake != properties.BAKE_PER_FRAME:
            column = layout.column(align=True)
            row = column.row(align=True)
            row.prop(settings, "blinks", toggle=True)
            row.prop(settings, "brows", toggle=True)
            row.prop(settings, "pitch_brows", toggle=True)
            row = column.row(align=True)
            row.prop(settings, "head_motion", toggle=True)
            row.prop(settings, "seed")
        if settings.bake == properties.BAKE_TARGET_KEYS:
            draw_mapping(layout, context, settings, width)
        for name, reason in properties.generator_infos(context)[1]:   # broken folders hide nothing, but are named
            _small_lines(layout, f"Broken generator '{name}': {reason}", width - 3, icon="ERROR")
        _button(layout, operators.TALKINGHEAD_OT_animate, operators.animate_blocker(context), width, "PLAY_SOUND")
        _button(layout, operators.TALKINGHEAD_OT_score, operators.score_blocker(context), width, "SORTTIME")
        _button(layout, operators.TALKINGHEAD_OT_remove, operators.remove_blocker(context), width, "TRASH")
        if operators.controls_blocker(context) is None:
            box = layout.box()
            box.label(text="Editable bake controls")
            for name in ("mouth_gain", "jaw_gain", "smoothing_ms", "shift_ms"):
                box.prop(settings, name, slider=True)
            box.operator(operators.TALKINGHEAD_OT_apply_controls.bl_idname, icon="MODIFIER")
        obj = context.active_object
        if obj is None or obj.type != "MESH" or not obj.talking_head.scores_json:
            return
        layout.separator()
        layout.label(text="Lip-sync scores")
        draw_scores(layout, scoring.ClipScores.from_json(obj.talking_head.scores_json), width)
        if obj.talking_head.plot_image is not None:
            draw_plot(layout, context, obj.talking_head.plot_image)


CLASSES = (TALKINGHEAD_UL_mapping, TALKINGHEAD_PT_panel)
