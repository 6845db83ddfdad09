"""Nothing the artist made is lost (issue 16 item 4): materials, UV maps, vertex-group weights and Basis edits
made on the animated head survive the next Animate and Remove Animation; Import FLAME Mesh keeps the template's
UV map. pip bpy; fixtures from test_addon."""

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

from test_addon import blender, head, models, run_animate  # noqa: F401,E402

from backend.mesh import load_flame_mesh  # noqa: E402
from blender_addon import bake  # noqa: E402

EDITED_VERTEX = 100   # on the forehead: the test generator moves only the lower lip
SHIFT = 0.01


def _artist_works_on_the_animated_head(obj):
    material = bpy.data.materials.new("Skin")
    obj.data.materials.append(material)
    obj.data.polygons[5].material_index = 0
    layer = obj.data.uv_layers.new(name="paint")
    layer.data[7].uv = (0.25, 0.75)
    group = obj.vertex_groups.new(name="jaw")
    group.add([1, 2, 3], 0.5, "REPLACE")
    basis = obj.data.shape_keys.reference_key
    basis.data[EDITED_VERTEX].co.x += SHIFT          # what an edit-mode move of the Basis does
    obj.data.vertices[EDITED_VERTEX].co.x += SHIFT
    return material


def _weights(mesh, group_index) -> dict:
    return {vertex.index: element.weight for vertex in mesh.vertices for element in vertex.groups
            if element.group == group_index}


def _check_artist_work(mesh, material, rest_x):
    assert list(mesh.materials) == [material]
    assert "paint" in mesh.uv_layers and tuple(mesh.uv_layers["paint"].data[7].uv) == pytest.approx((0.25, 0.75))
    assert _weights(mesh, 0) == pytest.approx({1: 0.5, 2: 0.5, 3: 0.5})


def test_materials_uvs_groups_and_basis_edits_survive_the_next_animate_and_remove(head):
    rest_x = bake.mesh_vertices(head.data)[EDITED_VERTEX, 0]
    run_animate()
    material = _artist_works_on_the_animated_head(head)
    assert run_animate() == {"FINISHED"}            # animate again: the new bake starts from the edited head
    _check_artist_work(head.data, material, rest_x)
    bpy.context.scene.frame_set(bpy.context.scene.frame_start + 10)
    evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    assert evaluated.vertices[EDITED_VERTEX].co.x == pytest.approx(rest_x + SHIFT, abs=1e-6)   # the edit acts
    assert bpy.ops.talking_head.remove() == {"FINISHED"}
    assert head.data == bpy.data.meshes["Head"]     # the artist's own mesh is back, with everything
    _check_artist_work(head.data, material, rest_x)
    assert head.data.vertices[EDITED_VERTEX].co.x == pytest.approx(rest_x + SHIFT, abs=1e-6)


def test_remove_right_after_editing_keeps_the_edits(head):
    rest_x = bake.mesh_vertices(head.data)[EDITED_VERTEX, 0]
    run_animate()
    material = _artist_works_on_the_animated_head(head)
    bpy.ops.talking_head.remove()
    _check_artist_work(head.data, material, rest_x)
    assert head.data.vertices[EDITED_VERTEX].co.x == pytest.approx(rest_x + SHIFT, abs=1e-6)


def test_import_flame_mesh_keeps_the_templates_uv_map(blender, flame_obj):
    assert bpy.ops.talking_head.import_flame(filepath=str(flame_obj)) == {"FINISHED"}
    mesh = bpy.context.active_object.data
    source = load_flame_mesh(flame_obj)
    assert len(source.uvs) == 5118 and len(mesh.uv_layers) == 1
    corners = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[0].data.foreach_get("uv", corners)
    expected = source.uvs[source.uv_faces.reshape(-1)].astype(np.float32)
    np.testing.assert_allclose(corners.reshape(-1, 2), expected, atol=1e-6)
    assert len(np.unique(np.round(corners.reshape(-1, 2), 6), axis=0)) == len(np.unique(np.round(expected, 6), axis=0))
