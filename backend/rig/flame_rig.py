"""An articulatory rig on the FLAME template: per-vertex displacement fields and rotations.

Everything is derived from the template geometry and the FLAME masks (no coordinate tables), and every
offset is a fraction of the head size (distance between the ear centroids), so the rig fits any FLAME
identity. Frame: x towards the subject's left, y up, z forward (the VOCASET frame).

Controls (columns of a (T, 7) array, see CONTROLS):
  jaw          0..1+  jaw rotation, 1 = JAW_MAX_ANGLE, about a left-right axis through a pivot in front
                      of and below the ears, weighted smoothly over chin, jaw and lower lip
  close        0..~2  lips towards each other (1 = lip centres meet at rest) plus a slight press/roll-in
  round        0..1   rounding: mouth corners in, lips forward
  spread       0..1   spreading: corners out and back, lips thinner
  labiodental  0..1   lower lip up/back to the upper-teeth point (1 = lower-lip centre reaches it at rest)
  blink        0..1   upper lids rotate down about the eyeball centres (1 = closed)
  brow         0..1   brows and lower forehead move up
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from backend.errors import MeshError
from backend.flame import LOWER_LIP_CENTRE, NUM_VERTICES, UPPER_LIP_CENTRE

CONTROLS = ("jaw", "close", "round", "spread", "labiodental", "blink", "brow")
JAW_MAX_ANGLE = 0.21  # rad (12 degrees) at control 1: about 20 mm of lower-lip travel
_REQUIRED_MASKS = ("lips", "left_ear", "right_ear", "left_eyeball", "right_eyeball", "left_eye_region",
                   "right_eye_region", "forehead", "face", "neck")


def smoothstep(x):
    """0 below 0, 1 above 1, the cubic 3x² - 2x³ between: a ramp with flat ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _rotation_about_x(angles: np.ndarray) -> np.ndarray:
    """(T,) angles (rad, positive opens the jaw / lowers a lid: front goes down) -> (T, 3, 3)."""
    cos, sin = np.cos(angles), np.sin(angles)
    matrices = np.zeros((len(angles), 3, 3))
    matrices[:, 0, 0] = 1.0
    matrices[:, 1, 1], matrices[:, 1, 2] = cos, -sin
    matrices[:, 2, 1], matrices[:, 2, 2] = sin, cos
    return matrices


@dataclass(frozen=True)
class _Rotation:
    """Rotation about the x axis through `pivot`, `angle_per_unit` rad per unit control, per-vertex weights."""

    control: int
    pivot: np.ndarray          # (3,)
    angle_per_unit: float
    vertices: np.ndarray       # (K,) indices with a non-zero weight
    weights: np.ndarray        # (K,)


class FlameRig:
    """Build once per subject template; `animate(controls)` -> (T, 5023, 3) float64 positions.

    template: (5023, 3) metres; faces: (9976, 3) FLAME triangles; masks: dict of FLAME mask name ->
    vertex indices (FLAME_masks.npz).
    """

    def __init__(self, template: np.ndarray, faces: np.ndarray, masks: dict):
        template = np.asarray(template, dtype=np.float64)
        if template.shape != (NUM_VERTICES, 3):
            raise MeshError(f"rig template has shape {template.shape}; expected a FLAME template of shape "
                            f"({NUM_VERTICES}, 3)")
        missing = [name for name in _REQUIRED_MASKS if name not in masks]
        if missing:
            raise MeshError(f"FLAME masks lack {', '.join(missing)}; the rig needs {', '.join(_REQUIRED_MASKS)}")
        if not np.all(np.isfinite(template)):
            raise MeshError("rig template has non-finite vertex positions; expected finite metres")
        self.template = template
        self.masks = {name: np.unique(np.asarray(masks[name], dtype=np.int64)) for name in masks}
        ear_left = template[self.masks["left_ear"]].mean(0)
        ear_right = template[self.masks["right_ear"]].mean(0)
        self.head_size = float(np.linalg.norm(ear_left - ear_right))
        if not 0.05 < self.head_size < 0.5:
            raise MeshError(f"rig template's ear centroids are {self.head_size:.3f} m apart; expected a head "
                            "in metres (about 0.15 m); is this a FLAME template in metres?")
        self.upper_centre = template[UPPER_LIP_CENTRE]
        self.lower_centre = template[LOWER_LIP_CENTRE]
        self.mouth_centre = 0.5 * (self.upper_centre + self.lower_centre)
        # Upper-incisor edge: behind the upper lip, slightly below the lip line (fraction of head size).
        self.teeth_point = self.mouth_centre + self.head_size * np.array([0.0, -0.006, -0.028])
        self.jaw_pivot = 0.5 * (ear_left + ear_right) + self.head_size * np.array([0.0, -0.07, 0.1])
        face = self.masks["face"]
        midline = face[np.abs(template[face, 0] - self.mouth_centre[0]) < 0.02 * self.head_size]
        self.chin_vertex = int(midline[np.argmin(template[midline, 1])])   # moves with the jaw only
        self._lower_side = self._lower_side_weights(np.asarray(faces, dtype=np.int64))
        self.fields = self._linear_fields()
        self.rotations = [self._jaw_rotation()] + self._blink_rotations()

    # --- regions -------------------------------------------------------------------------------
    def _mouth_line(self, x: np.ndarray) -> np.ndarray:
        """Height of the lip line at x: a parabola through the lip-centre midpoint and the corners."""
        return self.mouth_centre[1] + (self.corner_height - self.mouth_centre[1]) * (x / self.corner_x) ** 2

    def _lower_side_weights(self, faces: np.ndarray) -> np.ndarray:
        """0 on the upper lip and above, 1 on the lower lip, chin and jaw: from surface distances.

        A vertex belongs to the lower side when it is nearer, along the mesh, to the lower-lip centre
        than to the upper-lip centre; the lips touch only at the corners, so the split is clean there
        and smooth over the cheeks (0.5 at the corners).
        """
        lips = self.template[self.masks["lips"]]
        half_width = np.abs(lips[:, 0] - self.mouth_centre[0])
        self.corner_x = float(half_width.max())
        self.corner_height = float(lips[half_width > 0.95 * half_width.max(), 1].mean())
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        lengths = np.linalg.norm(self.template[edges[:, 0]] - self.template[edges[:, 1]], axis=1)
        graph = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(NUM_VERTICES, NUM_VERTICES)).tocsr()
        upper, lower = dijkstra(graph.maximum(graph.T), indices=[UPPER_LIP_CENTRE, LOWER_LIP_CENTRE])
        connected = np.isfinite(upper) & np.isfinite(lower)  # the eyeballs are separate pieces
        nearer_lower = np.where(connected, upper - np.where(connected, lower, 0.0), 0.0)
        return smoothstep(0.5 + nearer_lower / (0.15 * self.head_size))

    def _lip_area_weights(self, scale: float) -> np.ndarray:
        """1 on the lips mask, Gaussian fall-off with distance to it (sigma = scale * head size)."""
        distance, _ = cKDTree(self.template[self.masks["lips"]]).query(self.template)
        return np.exp(-(distance / (scale * self.head_size)) ** 2)

    # --- fields ----------------------------------------------------------------------------------
    def _linear_fields(self) -> np.ndarray:
        """(7, 5023, 3) displacement per unit control (zero for the rotation controls)."""
        v, h = self.template, self.head_size
        x = v[:, 0] - self.mouth_centre[0]
        above_line = v[:, 1] - self._mouth_line(x)
        lip_area = self._lip_area_weights(0.045)
        lips_only = self._lip_area_weights(0.025)
        near_line = np.exp(-(above_line / (0.06 * h)) ** 2)
        across = 1.0 - smoothstep((np.abs(x) / self.corner_x - 0.55) / 0.5)
        upper = (1.0 - self._lower_side) * near_line * across * lip_area
        lower = self._lower_side * near_line * across * lip_area
        fields = np.zeros((len(CONTROLS), len(v), 3))
        press = np.zeros_like(v)
        press[:, 1] = -0.15 * above_line * (upper + lower)
        press[:, 2] = -0.008 * h * (upper + lower)
        fields[CONTROLS.index("close")] = (upper[:, None] * (self.mouth_centre - self.upper_centre)
                                           + lower[:, None] * (self.mouth_centre - self.lower_centre) + press)
        protrusion = 1.0 - 0.5 * np.clip(x / self.corner_x, -1, 1) ** 2
        fields[CONTROLS.index("round"), :, 0] = -0.3 * x * lips_only
        fields[CONTROLS.index("round"), :, 1] = 0.12 * above_line * lip_area
        fields[CONTROLS.index("round"), :, 2] = 0.035 * h * lip_area * protrusion
        fields[CONTROLS.index("spread"), :, 0] = 0.14 * x * lips_only
        fields[CONTROLS.index("spread"), :, 1] = -0.06 * above_line * lip_area
        fields[CONTROLS.index("spread"), :, 2] = -0.012 * h * lip_area * (1.0 - protrusion)
        fields[CONTROLS.index("labiodental")] = (lower[:, None] * (self.teeth_point - self.lower_centre)
                                                 + upper[:, None] * h * np.array([0.0, 0.004, 0.002]))
        fields[CONTROLS.index("brow")] = self._brow_field()
        return fields

    def _brow_field(self) -> np.ndarray:
        """Upward motion peaking just above the eyes, fading over the forehead and towards the temples."""
        v, h = self.template, self.head_size
        eyes = np.concatenate([self.masks["left_eyeball"], self.masks["right_eyeball"]])
        eye_top = v[eyes, 1].max()
        region = np.zeros(len(v))
        region[np.concatenate([self.masks["forehead"], self.masks["face"]])] = 1.0
        region[eyes] = 0.0
        height = v[:, 1] - (eye_top + 0.03 * h)
        weight = region * np.exp(-(height / (0.12 * h)) ** 2) * smoothstep(height / (0.06 * h) + 1.0)
        weight *= np.exp(-(v[:, 0] / (0.45 * h)) ** 2) * smoothstep((v[:, 2] - self.jaw_pivot[2]) / (0.3 * h))
        field = np.zeros_like(v)
        field[:, 1] = 0.03 * h * weight
        return field

    def _jaw_rotation(self) -> _Rotation:
        v, h = self.template, self.head_size
        chin_height = v[self.masks["face"], 1].min()
        front = smoothstep((v[:, 2] - (self.jaw_pivot[2] - 0.1 * h)) / (0.2 * h))
        neck = smoothstep((v[:, 1] - (chin_height - 0.35 * h)) / (0.3 * h))
        # The lower lip lags the jaw towards the corners, so the mouth opens as an oval, not a slot.
        across = np.clip((v[:, 0] - self.mouth_centre[0]) / self.corner_x, -1.0, 1.0)
        lag = 0.5 * self._lip_area_weights(0.04) * across ** 2
        below_nose = smoothstep((self.corner_height + 0.12 * h - v[:, 1]) / (0.12 * h))
        weights = self._lower_side * front * neck * below_nose * (1.0 - lag)
        weights[np.concatenate([self.masks["left_eyeball"], self.masks["right_eyeball"]])] = 0.0
        moving = np.flatnonzero(weights > 1e-4)
        return _Rotation(CONTROLS.index("jaw"), self.jaw_pivot, JAW_MAX_ANGLE, moving, weights[moving])

    def _blink_rotations(self) -> list[_Rotation]:
        """Per eye: the upper lid rotates down about the eyeball centre until it meets the lower lid."""
        rotations = []
        for side in ("left", "right"):
            ball = self.template[self.masks[f"{side}_eyeball"]]
            centre = ball.mean(0)
            radius = float(np.linalg.norm(ball - centre, axis=1).mean())
            region = self.masks[f"{side}_eye_region"]
            offset = self.template[region] - centre
            distance = np.linalg.norm(offset, axis=1)
            margin = (distance < 1.04 * radius) & (offset[:, 2] > 0.3 * radius)
            if margin.sum() < 4:
                raise MeshError(f"FLAME template: found no {side} eyelid margin around the eyeball; "
                                "expected eye-region vertices just outside the eyeball")
            elevation = np.arctan2(offset[:, 1], offset[:, 2])
            split = np.median(elevation[margin])
            upper_lid = elevation[margin] > split
            closing_angle = 0.8 * (elevation[margin][upper_lid].mean() - elevation[margin][~upper_lid].mean())
            weights = (smoothstep((elevation - split) / 0.15) * (1.0 - smoothstep((distance / radius - 1.15) / 0.6))
                       * (offset[:, 2] > 0))
            moving = weights > 1e-4
            rotations.append(_Rotation(CONTROLS.index("blink"), centre, float(closing_angle), region[moving],
                                       weights[moving]))
        return rotations

    # --- animation -------------------------------------------------------------------------------
    def animate(self, controls: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
        """controls (T, 7) -> positions (T, K, 3) of `vertices` (default all 5023), float64.

        Linear fields first, then the rotations (so the lower lip rides on the jaw).
        """
        controls = np.asarray(controls, dtype=np.float64)
        if controls.ndim != 2 or controls.shape[1] != len(CONTROLS):
            raise ValueError(f"controls must be (T, {len(CONTROLS)}); got {controls.shape}")
        selected = np.arange(NUM_VERTICES) if vertices is None else np.asarray(vertices)
        fields = self.fields[:, selected].reshape(len(CONTROLS), -1)
        positions = (controls @ fields).reshape(len(controls), len(selected), 3) + self.template[selected]
        lookup = np.full(NUM_VERTICES, -1)
        lookup[selected] = np.arange(len(selected))
        for rotation in self.rotations:
            where = lookup[rotation.vertices]
            keep = where >= 0
            if not keep.any():
                continue
            rows, weights = where[keep], rotation.weights[keep]
            angles = controls[:, rotation.control] * rotation.angle_per_unit
            relative = positions[:, rows] - rotation.pivot
            rotated = np.einsum("tij,tkj->tki", _rotation_about_x(angles), relative)
            positions[:, rows] += weights[None, :, None] * (rotated - relative)
        return positions
