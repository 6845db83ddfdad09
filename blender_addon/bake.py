"""Moving animations between numpy and Blender: reading a FLAME mesh, baking, removing, sampling.

Three bakes, each with an Action the add-on owns. The first two work on a COPY of the artist's FLAME mesh (the
object is pointed at the copy; Remove puts the original back, so the artist's mesh is never edited):

- `BasisBake` (the default, "editable"): the project's ARKit-named shape-key basis (backend.retarget.basis, made
  from the user's own FLAME template) as RELATIVE shape keys added after the artist's own keys, whose `value`s
  are driven by one F-curve per key (the solved weights, thinned where linear) in an Action placed as a strip
  on an NLA track of the copy's shape keys. An animator can scale, shift, blend or hand-fix the strip or its
  keys, and the artist's own relative keys (a smile at 0.7, their own action or drivers) keep acting: the copy
  keeps them, and an NLA strip animates only the channels it has curves for. 10 minutes are ~35 keys and a few
  MB of keyframes instead of 18,000 frames of vertices.
- `ShapeKeyBake` ("exact per frame"): absolute shape keys driven by `Key.eval_time` (one key per scene frame,
  linear key interpolation, one eval_time keyframe per scene frame hitting its key exactly): the generator's
  output bit for bit, but nothing to edit, the artist's own keys cannot act beside absolute ones (they are left
  out of the copy, and come back on Remove), and a .blend grows by 60 KB per frame. Chosen over a Mesh Cache
  modifier + .pc2 file because both play back in ~0.2-0.3 ms/frame (benchmarks/addon.py measures both) while
  shape keys live inside the .blend: undo restores them, save/reload keeps them, and no file beside the .blend
  can go missing or go stale.
- `TargetKeysBake` ("character's own keys", any topology): no copy; the solved weights drive the character's
  own shape keys by name through a mapping table (backend.retarget.mapping), as F-curves in an NLA strip.

Head motion (backend.retarget.life) is its own Action of object rotation curves on its own NLA track.
All bake in slices (`step(budget_s)`, one shared loop) so the UI thread never stalls for long; nothing in the
scene changes until `attach_animation`, so a cancelled or failed bake leaves the scene as it was.
"""

import json
import time
from dataclasses import dataclass
from typing import Optional

import bpy
import numpy as np

from backend.errors import MeshError
from backend.flame import NUM_VERTICES, check_flame_topology

from backend.retarget.curves import THIN_TOLERANCE, thin_linear
from backend.retarget.life import head_motion_eulers

LINEAR_INTERPOLATION = 1   # Blender's BEZT_IPO_LIN, the keyframe enum value foreach_set expects
KEY_LINEAR = 0             # Blender's KEY_LINEAR, the shape-key interpolation enum value foreach_set expects
NLA_TRACK = "Talking Head lip sync"
RAW_WEIGHTS, FIRST_FRAME = "talking_head_weights", "talking_head_first_frame"   # ID properties of the editable action
MAPPING = "talking_head_mapping"   # ID property of a TargetKeysBake action: its KeyMapping as JSON
HEAD_TRACK = "Talking Head head motion"
REST_ROTATION = "talking_head_rest_rotation"   # ID property of the head-motion action: the object's own rotation
_topology_cache: dict = {}


def mesh_vertices(mesh) -> np.ndarray:
    """(V, 3) float32 vertex positions of a Blender mesh (its rest/basis shape), in local coordinates."""
    coordinates = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coordinates)
    return coordinates.reshape(-1, 3)


def mesh_triangles(mesh) -> np.ndarray:
    """(F, 3) int64 vertex ids of a triangle-only mesh's faces (a FLAME mesh: the topology check passed)."""
    corners = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    return corners.reshape(-1, 3)


def flame_topology_problem(mesh) -> Optional[str]:
    """None when `mesh` has FLAME topology, else the reason (cached per mesh and size, so panels can ask)."""
    cache_key = (mesh.name_full, len(mesh.vertices), len(mesh.polygons), len(mesh.loops))
    if cache_key not in _topology_cache:
        _topology_cache[cache_key] = _check_topology(mesh)
    return _topology_cache[cache_key]


def _check_topology(mesh) -> Optional[str]:
    source = f"mesh '{mesh.name}'"
    sizes = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    faces = None
    if len(mesh.vertices) == NUM_VERTICES and np.all(sizes == 3):
        faces = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", faces)
        faces = faces.reshape(-1, 3)
    try:
        check_flame_topology(np.zeros((len(mesh.vertices), 3)), faces, source, face_sizes=sizes)
    except MeshError as error:
        return str(error)
    return None


def _key_points(block):
    """The collection to fill a key block's positions through: `points` (Blender 4.1+, a raw array, ~10x faster
    with foreach_set than `data`, whose items are generic per-point structs) or `data` before 4.1."""
    return block.points if hasattr(block, "points") else block.data


def rest_mesh(obj):
    """The artist's mesh behind `obj`: the original when the add-on's bake is attached, else obj.data."""
    return obj.talking_head.original_mesh or obj.data


def carry_artist_work_back(obj) -> None:
    """Copy what the artist added or changed on the add-on's mesh copy (materials, face material indices, UV maps,
    vertex-group weights, Basis vertex positions) onto the artist's own mesh `obj.talking_head.original_mesh`.
    A no-op unless `obj` shows the add-on's copy."""
    props = obj.talking_head
    copy, original = props.baked_mesh, props.original_mesh
    if copy is None or original is None or obj.data != copy or len(copy.vertices) != len(original.vertices):
        return
    original.materials.clear()
    for material in copy.materials:
        original.materials.append(material)
    indices = np.empty(len(copy.polygons), dtype=np.int32)
    copy.polygons.foreach_get("material_index", indices)
    original.polygons.foreach_set("material_index", indices)
    for layer in [layer for layer in original.uv_layers if layer.name not in copy.uv_layers]:
        original.uv_layers.remove(layer)
    corners = np.empty(len(copy.loops) * 2, dtype=np.float32)
    for layer in copy.uv_layers:
        target = original.uv_layers.get(layer.name) or original.uv_layers.new(name=layer.name)
        layer.data.foreach_get("uv", corners)
        target.data.foreach_set("uv", corners)
    _carry_vertex_weights(obj, copy, original)
    basis = mesh_vertices(copy) if copy.shape_keys is None else _block_vertices(copy.shape_keys.reference_key)
    delta = basis - mesh_vertices(original)
    if np.any(delta):
        original.vertices.foreach_set("co", basis.ravel())
        if original.shape_keys is not None:   # move every relative key with the Basis: the artist's keys keep
            for block in original.shape_keys.key_blocks:   # their offsets
                _key_points(block).foreach_set("co", (_block_vertices(block) + delta).ravel())
        original.update()
    if copy.shape_keys is not None and copy.shape_keys.use_relative:
        _carry_shape_keys(obj, copy, original, set(props.basis_key_names.split("\n")) - {""})


def _carry_shape_keys(obj, copy, original, ours: set) -> None:
    """The artist's own relative keys on the copy (every key but the Basis and the add-on's `ours`): their values,
    mute states and shapes onto the original's keys of the same name, and keys the artist added on the copy as
    new keys of the original (made through the object, which points at `original` meanwhile)."""
    blocks = [block for block in copy.shape_keys.key_blocks[1:] if block.name not in ours]
    if not blocks:
        return
    obj.data = original
    try:
        if original.shape_keys is None:
            obj.shape_key_add(name=copy.shape_keys.reference_key.name, from_mix=False)
        targets = original.shape_keys.key_blocks
        for block in blocks:
            target = targets.get(block.name) or obj.shape_key_add(name=block.name, from_mix=False)
            target.value, target.mute = block.value, block.mute
            target.slider_min, target.slider_max = block.slider_min, block.slider_max
            _key_points(target).foreach_set("co", _block_vertices(block).ravel())
    finally:
        obj.data = copy


def _block_vertices(block) -> np.ndarray:
    values = np.empty(len(block.data) * 3, dtype=np.float32)
    _key_points(block).foreach_get("co", values)
    return values.reshape(-1, 3)


def _carry_vertex_weights(obj, copy, original) -> None:
    """Vertex groups (names and weights) belong to the mesh and are written through the object's groups, so the
    object points at `original` for the writes and back at `copy` afterwards."""
    names = [group.name for group in obj.vertex_groups]
    weights = {name: {} for name in names}
    for vertex in copy.vertices:
        for element in vertex.groups:
            weights[names[element.group]][vertex.index] = element.weight
    everything = list(range(len(original.vertices)))
    obj.data = original
    try:
        for group in [group for group in obj.vertex_groups if group.name not in weights]:
            obj.vertex_groups.remove(group)
        for name in names:
            group = obj.vertex_groups.get(name) or obj.vertex_groups.new(name=name)
            group.remove(everything)
            for index, weight in weights[name].items():
                group.add([index], weight, "REPLACE")
    finally:
        obj.data = copy


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


class _SlicedBake:
    """The budgeted loop every bake shares: `step(budget_s)` calls `_add(index)` for the next items until all
    `total` are added or the budget is spent (one item at least), so the UI thread never stalls for long; and
    `discard`, which removes what the bake made."""

    total = 0
    done = 0
    carrier = mesh = action = None   # what a bake made: carrier object, mesh copy (None: none of its own), Action

    @property
    def keys_done(self) -> bool:
        return self.done == self.total

    def _add(self, index: int) -> None:
        raise NotImplementedError

    def step(self, budget_s: float) -> float:
        """Add items for at most ~budget_s seconds (at least one); returns the fraction done."""
        deadline = time.perf_counter() + budget_s
        while self.done < self.total:
            self._add(self.done)
            self.done += 1
            if time.perf_counter() >= deadline:
                break
        return self.done / self.total if self.total else 1.0

    def discard(self) -> None:
        """Remove everything this bake created (carrier object, mesh copy with its shape keys, action); never the
        character's own data (a bake that drives the character's keys has no mesh of its own)."""
        if self.carrier is not None:
            bpy.data.objects.remove(self.carrier)
            self.carrier = None
        if self.mesh is not None:
            bpy.data.meshes.remove(self.mesh)
            self.mesh = None
        if self.action is not None:
            bpy.data.actions.remove(self.action)
            self.action = None


class ShapeKeyBake(_SlicedBake):
    """Bake (K, V, 3) local-coordinate frames into absolute shape keys on a copy of `obj`'s mesh, in slices.

    Call `step(budget_s)` until it returns 1.0, then `finish(first_frame)`; or `discard()` at any point before the
    result is attached. The copy hangs on a carrier object that is never linked to a scene.
    """

    def __init__(self, obj, frames: np.ndarray, name: str):
        self.frames = np.ascontiguousarray(frames, dtype=np.float32)
        self.mesh = rest_mesh(obj).copy()
        self.mesh.name = name
        self.carrier = bpy.data.objects.new(name + " (baking)", self.mesh)
        if self.mesh.shape_keys is not None:   # the copy's own copy of the artist's shape keys: drop it
            copied_keys = self.mesh.shape_keys.name
            self.carrier.shape_key_clear()
            orphan = bpy.data.shape_keys.get(copied_keys)
            if orphan is not None:
                bpy.data.batch_remove([orphan])
        self.carrier.shape_key_add(name="Basis", from_mix=False)
        self.mesh.shape_keys.name = name
        self.mesh.shape_keys.use_relative = False
        self.action = None
        self.total = len(self.frames)

    def _add(self, index: int) -> None:
        block = self.carrier.shape_key_add(name=f"frame {index:05d}", from_mix=False)
        _key_points(block).foreach_set("co", self.frames[index].ravel())

    def finish(self, first_frame: int, action_name: str):
        """Key eval_time so scene frame first_frame + k shows key k exactly; returns (mesh, action)."""
        key = self.mesh.shape_keys
        blocks = key.key_blocks
        blocks.foreach_set("interpolation", np.full(len(blocks), KEY_LINEAR, dtype=np.int32))
        positions = np.empty(len(blocks), dtype=np.float32)
        blocks.foreach_get("frame", positions)
        positions = positions[1:]   # key 0 is the basis
        action = self.action = bpy.data.actions.new(action_name)
        key.animation_data_create()
        key.animation_data.action = action
        if hasattr(action, "fcurve_ensure_for_datablock"):   # Blender 4.4+ (slotted actions)
            curve = action.fcurve_ensure_for_datablock(key, "eval_time")
        else:
            curve = action.fcurves.new("eval_time")
        points = np.stack([first_frame + np.arange(len(positions), dtype=np.float32), positions], axis=1)
        curve.keyframe_points.add(len(positions))
        curve.keyframe_points.foreach_set("co", points.ravel())
        curve.keyframe_points.foreach_set("interpolation", np.full(len(positions), LINEAR_INTERPOLATION,
                                                                   dtype=np.int32))
        curve.update()
        key.eval_time = float(positions[0])
        bpy.data.objects.remove(self.carrier)
        self.carrier = None
        return self.mesh, action


class BasisBake(_SlicedBake):
    """Bake the shape-key basis and its weight curves onto a copy of `obj`'s mesh (keeping the artist's keys).

    keys: (K, V, 3) local-coordinate positions of each basis key at weight 1; names: the K key names; weights:
    (F, K) per scene frame; kept: the K curves' `thin_linear` frames when the worker thread thinned them already
    (thinning 35 curves of a minute costs the UI thread ~0.15 s otherwise). Same protocol as ShapeKeyBake:
    `step(budget_s)` until 1.0 (one key per step at least), `finish(first_frame, action_name)`, or `discard()`.
    `key_names` are the names the keys got (Blender appends .001 when the artist already has a key of that name).
    """

    def __init__(self, obj, keys: np.ndarray, names, weights: np.ndarray, name: str, kept=None):
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.names = tuple(names)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.kept = kept
        self.mesh = rest_mesh(obj).copy()   # with the copy's own copy of the artist's shape keys and their animation
        self.mesh.name = name
        self.carrier = bpy.data.objects.new(name + " (baking)", self.mesh)
        self.action = None
        self.key_names: list = []
        self.total = len(self.names)
        if self.mesh.shape_keys is not None and not self.mesh.shape_keys.use_relative:
            self.discard()
            raise MeshError(f"'{obj.name}' has absolute shape keys (Relative is off), which relative lip-sync "
                            "keys cannot mix with; turn Relative on or choose the exact per-frame bake")
        if self.mesh.shape_keys is None:
            self.carrier.shape_key_add(name="Basis", from_mix=False)
        self.mesh.shape_keys.name = name

    def _add(self, index: int) -> None:
        block = self.carrier.shape_key_add(name=self.names[index], from_mix=False)
        _key_points(block).foreach_set("co", self.keys[index].ravel())
        block.slider_min, block.slider_max, block.value = 0.0, 1.0, 0.0
        self.key_names.append(block.name)

    def finish(self, first_frame: int, action_name: str):
        """One thinned F-curve per key in a new Action, placed as the strip of an NLA track on the copy's shape
        keys starting at first_frame; returns (mesh, action). The unthinned weights stay on the action (RAW_WEIGHTS,
        ~140 bytes a frame) for the animator controls (`write_weight_curves`)."""
        key = self.mesh.shape_keys
        action = self.action = bpy.data.actions.new(action_name)
        action[RAW_WEIGHTS] = self.weights.ravel()
        action[FIRST_FRAME] = int(first_frame)
        _channels_for(action, key)
        write_weight_curves(action, self.key_names, self.weights, self.kept)
        _place_on_nla_track(key, action, NLA_TRACK, first_frame)
        bpy.data.objects.remove(self.carrier)
        self.carrier = None
        return self.mesh, action


class TargetKeysBake(_SlicedBake):
    """Drive a character's OWN shape keys (any topology) by name: one thinned F-curve per mapped key (its basis
    weight times the row's gain, backend.retarget.mapping) in an Action the add-on owns, placed as a strip of an
    NLA track on the character's shape keys. The character's mesh, keys, materials and own actions are never
    edited: its active action (if any) keeps playing above the strip, and Remove deletes only the track and the
    action. A bad mapping (a key the mesh lacks, a key driven twice) raises a one-line MappingError before
    anything is made.

    weights: (F, K) basis weights (columns `names`) per scene frame; one curve per step.
    """

    def __init__(self, obj, mapping, names, weights: np.ndarray, name: str, first_frame: int):
        key = obj.data.shape_keys
        if key is None or not key.use_relative:
            raise MeshError(f"'{obj.name}' has no relative shape keys to drive; add its ARKit-style keys, or "
                            "choose the editable or per-frame bake for a FLAME head")
        mapping.check([block.name for block in key.key_blocks[1:]], f"'{obj.name}'")
        self.key = key
        self.targets, self.curves = mapping.target_curves(weights, names)
        self.total = len(self.targets)
        self.action = bpy.data.actions.new(name)
        self.action[RAW_WEIGHTS] = np.asarray(weights, dtype=np.float32).ravel()
        self.action[FIRST_FRAME] = int(first_frame)
        self.action[MAPPING] = json.dumps(mapping.to_dict())
        self.channels = _channels_for(self.action, key)
        self.mesh = None

    def _add(self, index: int) -> None:
        _write_curve(self.channels, f'key_blocks["{self.targets[index]}"].value', self.curves[:, index],
                     self.action[FIRST_FRAME])

    def finish(self, first_frame: int, action_name: str):
        """Returns (None, action): no mesh of the add-on's; `attach_animation` puts the strip on the character's
        shape keys (the scene is untouched until then)."""
        return None, self.action



def _place_on_nla_track(datablock, action, track_name: str, first_frame: int) -> None:
    """`action` as the one strip of a new NLA track `track_name` on `datablock`, from first_frame, holding its
    last values after its end."""
    data = datablock.animation_data or datablock.animation_data_create()
    track = data.nla_tracks.new()
    track.name = track_name
    strip = track.strips.new(action.name, int(first_frame), action)
    strip.extrapolation = "HOLD_FORWARD"
    if hasattr(strip, "action_slot") and strip.action_slot is None:
        strip.action_slot = action.slots[0]


def _remove_tracks_of(datablock, action) -> None:
    """Remove the NLA tracks of `datablock` whose strips play `action` (the add-on's), and the animation data
    when nothing else is left on it."""
    data = getattr(datablock, "animation_data", None)
    if data is None or action is None:
        return
    for track in [track for track in data.nla_tracks if any(strip.action == action for strip in track.strips)]:
        data.nla_tracks.remove(track)
    if data.action is None and not data.nla_tracks and not data.drivers:
        datablock.animation_data_clear()


def _channels_for(action, datablock=None):
    """The F-curve collection of `action`: a keyframe strip's channel bag for the action's slot on Blender 4.4+
    (slotted actions; `Action.fcurves` is gone in 5.0; the slot is made for `datablock`, shape keys or an object,
    when given), `action.fcurves` before."""
    if not hasattr(action, "slots"):
        return action.fcurves
    if datablock is not None:
        slot = action.slots.new(id_type=datablock.id_type, name=datablock.name)
        strip = action.layers.new("Lip sync").strips.new(type="KEYFRAME")
        return strip.channelbag(slot, ensure=True).fcurves
    return action.layers[0].strips[0].channelbag(action.slots[0]).fcurves


def raw_weights(action, key_count: int) -> np.ndarray:
    """(F, K) the solved weights per scene frame as baked (before any animator control)."""
    return np.array(action[RAW_WEIGHTS].to_list(), dtype=np.float32).reshape(-1, key_count)


def write_weight_curves(action, key_names, weights: np.ndarray, kept=None) -> None:
    """(Re)write one linear F-curve per key of `key_names` on `action` from (F, K) `weights` (frame k at the action's
    FIRST_FRAME + k), keeping only the keyframes `thin_linear` needs (`kept`: the K curves' frames, already thinned)."""
    channels = _channels_for(action)
    for column, block_name in enumerate(key_names):
        kept_frames = None if kept is None else kept[column]
        _write_curve(channels, f'key_blocks["{block_name}"].value', weights[:, column], action[FIRST_FRAME],
                     kept=kept_frames)


def _write_curve(channels, path: str, values: np.ndarray, first_frame: int, index: int = 0,
                 tolerance: float = THIN_TOLERANCE, kept=None) -> None:
    """(Re)write the linear F-curve `path`[index] of a channel collection from per-frame `values` (frame k at
    first_frame + k), keeping only the keyframes `thin_linear` needs at `tolerance` (`kept`: those frames, when
    already thinned)."""
    existing = channels.find(path, index=index)
    if existing is not None:
        channels.remove(existing)
    kept = thin_linear(values, tolerance) if kept is None else kept
    curve = channels.new(path, index=index)
    points = np.stack([first_frame + kept.astype(np.float32), np.asarray(values, dtype=np.float32)[kept]], axis=1)
    curve.keyframe_points.add(len(kept))
    curve.keyframe_points.foreach_set("co", points.ravel())
    curve.keyframe_points.foreach_set("interpolation", np.full(len(kept), LINEAR_INTERPOLATION, dtype=np.int32))
    curve.update()


def write_plot_image(image, name: str, plot: np.ndarray):
    """Put (H, W, 4) float32 RGBA `plot` into `image` (a new packed image when None, so it is saved in the
    .blend) and into its preview, which the panel shows (written here, so the panel never waits for
    Blender's deferred preview rendering); returns the image."""
    if image is None:
        image = bpy.data.images.new(name, plot.shape[1], plot.shape[0], alpha=True)
    image.pixels.foreach_set(plot.ravel())
    image.pack()
    preview = image.preview_ensure()
    preview.image_size = plot.shape[1], plot.shape[0]
    preview.image_pixels_float.foreach_set(plot.ravel())
    return image


def _strips(scene):
    editor = scene.sequence_editor
    return editor.strips if hasattr(editor, "strips") else editor.sequences   # `sequences` before 4.4


def _all_strips(scene):
    editor = scene.sequence_editor
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


@dataclass
class BakedAnimation:
    """What a finished bake hands to `attach_animation`."""

    mesh: object
    action: object
    plot_image: object
    frame_count: int
    basis_key_names: tuple = ()   # the weight columns of the action (BasisBake: the add-on's keys on `mesh`)
    head_angles: Optional[np.ndarray] = None     # (F, 3) FLAME-frame head rotations per scene frame, or None
    flame_rotation: Optional[np.ndarray] = None  # (3, 3) the mesh's local -> FLAME rotation (None: identity)


HEAD_TOLERANCE_RAD = 0.0005   # head-motion curves thinned to 0.03 degrees


def _bake_head_motion(obj, angles: np.ndarray, flame_rotation, name: str, first_frame: int):
    """An Action of XYZ Euler rotation curves turning `obj` by the FLAME-frame `angles` about its own axes (from
    its current rotation), on its own NLA track of the object; None (nothing made) when the object's rotation
    mode is not XYZ Euler. The object's own action, if any, plays above the track and wins where it rotates."""
    if obj.rotation_mode != "XYZ":
        return None
    rest = np.array(obj.rotation_euler.to_matrix(), dtype=np.float64)
    eulers = head_motion_eulers(angles, rest, flame_rotation)
    action = bpy.data.actions.new(name)
    action[REST_ROTATION] = list(obj.rotation_euler)   # put back on Remove (playback leaves the last value)
    channels = _channels_for(action, obj)
    for axis in range(3):
        _write_curve(channels, "rotation_euler", eulers[:, axis], first_frame, index=axis,
                     tolerance=HEAD_TOLERANCE_RAD)
    _place_on_nla_track(obj, action, HEAD_TRACK, first_frame)
    return action


OWNER = "talking_head_owner"   # ID property on everything attach_animation makes: the object it was made for


def _owned_by(item, obj) -> bool:
    """True when `item` (a datablock or strip) was made by this add-on for `obj` itself. Ownership is by identity,
    not name: a Shift+D duplicate shares the original's sound, strip and plot image, whose owner stays the
    original (Blender remaps the owner only on the copies it makes for the duplicate: mesh and action)."""
    return item is not None and item.get(OWNER) == obj


def owned_strips(scene, obj) -> list:
    """The sound strips this add-on added for `obj` (whatever they have been renamed to)."""
    if scene.sequence_editor is None:
        return []
    return [strip for strip in _all_strips(scene) if _owned_by(strip, obj)]


def attach_animation(scene, obj, baked: BakedAnimation, audio_path: str, scores_json: str, label: str):
    """Point `obj` at the baked mesh (none for TargetKeysBake: the character's own keys play the action's strip),
    add the audio strip and the head-motion track (when baked.head_angles), set the frame end (to the longest
    animation in the scene); all recorded in obj.talking_head (with the plot image) and marked as owned by
    `obj`, so `remove_animation` can undo exactly this. `audio_path` is kept as the user gave it (a `//relative`
    path stays relative to the .blend)."""
    props = obj.talking_head
    if baked.mesh is not None:
        props.original_mesh = rest_mesh(obj)
        obj.data = baked.mesh
    else:
        _place_on_nla_track(obj.data.shape_keys, baked.action, NLA_TRACK, scene.frame_start)
    props.baked_mesh = baked.mesh
    props.action = baked.action
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    channel = 1 + max((strip.channel for strip in _all_strips(scene)), default=0)
    strip = _strips(scene).new_sound(f"{label} audio", audio_path, channel, scene.frame_start)
    props.sound = strip.sound
    if baked.head_angles is not None:
        props.head_action = _bake_head_motion(obj, baked.head_angles, baked.flame_rotation, f"{label} head motion",
                                              scene.frame_start)
    for item in (baked.mesh, baked.action, baked.plot_image, strip, strip.sound, props.head_action):
        if item is not None:
            item[OWNER] = obj
    props.previous_frame_end = scene.frame_end
    needed = max(scene.frame_start + baked.frame_count - 1, _last_frame_of_other_animations(scene, obj))
    props.frame_end_set = scene.frame_end = needed   # never cuts another animated head's range
    props.plot_image = baked.plot_image
    props.scores_json = scores_json
    props.audio_path = audio_path
    props.basis_key_names = "\n".join(baked.basis_key_names)


def has_animation(obj) -> bool:
    return obj is not None and obj.type == "MESH" and obj.talking_head.action is not None


def drives_own_keys(obj) -> bool:
    """True when the add-on's animation on `obj` drives the character's own shape keys (TargetKeysBake)."""
    return has_animation(obj) and obj.talking_head.baked_mesh is None


def _last_frame_of_other_animations(scene, obj) -> int:
    """The last frame any other animated head in `scene` needs (0 when there is none)."""
    ends = [other.talking_head.frame_end_set for other in scene.objects
            if other != obj and has_animation(other)
            and other.data == (other.talking_head.baked_mesh or other.data)]
    return max(ends, default=0)


def remove_animation(scene, obj) -> None:
    """Remove what `attach_animation` made for `obj` (mesh copy, shape keys, actions and their NLA tracks, strip,
    sound, plot image: only the items it owns, see `_owned_by`), put the artist's mesh back, and restore the
    frame end only if it is still the one Animate set (the user did not change it since) and no other animated head needs more."""
    carry_artist_work_back(obj)
    props = obj.talking_head
    baked, original = props.baked_mesh, props.original_mesh
    for strip in owned_strips(scene, obj):
        _strips(scene).remove(strip)
    sound = props.sound
    if _owned_by(sound, obj) and not any(getattr(strip, "sound", None) == sound for strip in _all_strips(scene)):
        bpy.data.sounds.remove(sound)
    if baked is None and _owned_by(props.action, obj):   # TargetKeysBake: only its track on the character's keys
        _remove_tracks_of(obj.data.shape_keys, props.action)
    if _owned_by(props.head_action, obj):
        _remove_tracks_of(obj, props.head_action)
        obj.rotation_euler = props.head_action[REST_ROTATION]
    for collection, item in ((bpy.data.actions, props.action), (bpy.data.actions, props.head_action),
                             (bpy.data.images, props.plot_image)):
        if _owned_by(item, obj):
            collection.remove(item)
    if original is not None and obj.data == baked:
        obj.data = original
    if props.frame_end_set and scene.frame_end == props.frame_end_set:
        scene.frame_end = max(props.previous_frame_end, _last_frame_of_other_animations(scene, obj))
    props.original_mesh = props.baked_mesh = props.action = props.head_action = props.sound = None
    props.plot_image = None
    props.scores_json = props.audio_path = props.basis_key_names = ""
    props.frame_end_set = props.previous_frame_end = 0
    if _owned_by(baked, obj):
        bpy.data.meshes.remove(baked)   # its shape keys go with it


def sample_animation(context, obj, frames) -> np.ndarray:
    """(K, V, 3) evaluated local vertex positions of `obj` at each scene frame in `frames` (any animation:
    ours, hand-made or imported). The current frame is restored afterwards."""
    scene = context.scene
    current = scene.frame_current
    output = None
    try:
        for index, frame in enumerate(frames):
            scene.frame_set(int(frame))
            evaluated = obj.evaluated_get(context.evaluated_depsgraph_get())
            vertices = evaluated.data.vertices
            if output is None:
                output = np.empty((len(frames), len(vertices), 3), dtype=np.float32)
            if len(vertices) != output.shape[1]:
                raise MeshError(f"'{obj.name}' changes its vertex count over time ({output.shape[1]} then "
                                f"{len(vertices)}); expected a fixed FLAME mesh")
            vertices.foreach_get("co", output[index].ravel())
    finally:
        scene.frame_set(current)
    return output
