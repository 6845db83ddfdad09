"""The N-panel tab: audio, generator, style and intensity, the buttons (with why they are disabled), the
scores with a one-line explanation and a colour cue each, and the lip-opening vs speech-envelope plot."""

import bpy

from . import bake, operators, scoring

RATING_ICONS = {"good": "CHECKMARK", "fair": "INFO", "poor": "ERROR", "n/a": "QUESTION"}


def _button(layout, operator_class, blocker) -> None:
    column = layout.column()
    column.enabled = blocker is None
    column.operator(operator_class.bl_idname)
    if blocker is not None:
        reason = layout.column()
        reason.scale_y = 0.7
        for line in _wrap(blocker, 44):
            reason.label(text=line)


def _wrap(text: str, width: int) -> list:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def draw_scores(layout, scores: scoring.ClipScores) -> None:
    for score in scores.scores:
        box = layout.box()
        row = box.row()
        row.alert = score.rating == "poor"
        row.label(text=score.text if score.value is not None else f"{score.name}: n/a",
                  icon=RATING_ICONS[score.rating])
        detail = box.column()
        detail.scale_y = 0.7
        lines = _wrap(scoring.EXPLANATIONS[score.name], 44)
        if score.value is None:
            lines += _wrap(f"({score.note})", 44)
        for line in lines:
            detail.label(text=line)


class TALKINGHEAD_PT_panel(bpy.types.Panel):
    bl_label = "Talking Head"
    bl_idname = "TALKINGHEAD_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.talking_head
        layout.operator(operators.TALKINGHEAD_OT_import_flame.bl_idname, icon="IMPORT")
        layout.prop(settings, "audio_path")
        layout.prop(settings, "generator")
        layout.prop(settings, "style")
        layout.prop(settings, "intensity", slider=True)
        _button(layout, operators.TALKINGHEAD_OT_animate, operators.animate_blocker(context))
        _button(layout, operators.TALKINGHEAD_OT_score, operators.score_blocker(context))
        _button(layout, operators.TALKINGHEAD_OT_remove, operators.remove_blocker(context))
        obj = context.active_object
        if obj is None or obj.type != "MESH" or not obj.talking_head.scores_json:
            return
        layout.label(text="Lip sync")
        draw_scores(layout, scoring.ClipScores.from_json(obj.talking_head.scores_json))
        image = obj.talking_head.plot_image
        if image is not None:
            layout.label(text="Lip opening (orange) vs loudness (blue)")
            layout.template_icon(icon_value=layout.icon(image), scale=8.0)


CLASSES = (TALKINGHEAD_PT_panel,)
