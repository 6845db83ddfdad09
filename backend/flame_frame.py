"""Between a mesh's own coordinates (a Blender mesh's local space, any template file) and the FLAME frame.

Generators work in the FLAME frame: metres, y up, z out of the face, x towards the subject's left. A FLAME-
topology head may come in other units (centimetres, millimetres, inches), rotated (z up, lying down) or
mirrored. `FlameFrame` is the transform flame = scale * local @ rotation.T + translation; rotation is
orthogonal and may be a reflection (a mirrored head), so motion made in the FLAME frame is mapped back with
the head's own handedness. Two ways to get one:
- `FlameFrame.fit(rest, reference)`: least squares (Umeyama, reflections allowed) onto a FLAME template the
  user supplies (the add-on's template preference);
- `FlameFrame.recover(rest)`: from the mesh alone, through FLAME topology: six vertex ids whose positions
  span the head (ears, crown and neck, nose tip and back of the head; ids, not shipped FLAME geometry) give
  its axes, which are snapped to the nearest axis-aligned orientation when within SNAP_DEGREES, and its size
  picks the length unit. Anything implausible (proportions, a size no unit explains, axes far from any
  axis-aligned orientation) is said in `notes`, which callers show as warnings.
Object-level location/rotation/scale in Blender never matter: everything here works on local coordinates.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

# (positive end, negative end) vertex ids of the FLAME topology along the frame's x, y and z axes:
# left / right ear, crown / neck, nose tip / back of the head.
AXIS_LANDMARKS = ((3226, 3327), (3559, 3285), (3526, 3522))
# Mean length of the three landmark spans of a FLAME head in metres (~0.20 ear to ear, ~0.32 crown to neck,
# ~0.24 nose to back of the head), and the range a real head falls in.
HEAD_SPAN_M, HEAD_SPAN_RANGE_M = 0.25, (0.15, 0.40)
# span ratios (x / y, z / y) of a FLAME head are ~0.64 and ~0.76; outside these the mesh is not a head.
PROPORTION_RANGE = (0.4, 1.1)
UNITS = (("metres", 1.0), ("centimetres", 0.01), ("millimetres", 0.001), ("inches", 0.0254),
         ("decimetres", 0.1))
SNAP_DEGREES = 20.0
POINTS_PER_BLOCK = 1 << 20   # points mapped at a time by FlameFrame.to_flame / to_local (~200 frames)


@dataclass(frozen=True)
class FlameFrame:
    """flame = scale * local @ rotation.T + translation, for (..., 3) arrays; `to_local` is the inverse.

    rotation None is the identity (the mesh is already in FLAME metres). notes: what was recovered or
    found implausible, one line each, for the caller to show.
    """

    scale: float = 1.0
    rotation: Optional[np.ndarray] = None
    translation: Optional[np.ndarray] = None
    notes: tuple = ()

    @classmethod
    def fit(cls, local_rest: np.ndarray, flame_reference: np.ndarray) -> "FlameFrame":
        """Least-squares similarity transform (reflections allowed) taking local_rest (V, 3) onto
        flame_reference (V, 3)."""
        source = np.asarray(local_rest, dtype=np.float64)
        target = np.asarray(flame_reference, dtype=np.float64)
        source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
        source_centred, target_centred = source - source_mean, target - target_mean
        covariance = target_centred.T @ source_centred / len(source)
        left, singular, right_t = np.linalg.svd(covariance)
        rotation = left @ right_t
        variance = np.mean(np.sum(source_centred ** 2, axis=1))
        scale = float(np.sum(singular) / variance)
        translation = target_mean - scale * rotation @ source_mean
        notes = ("the mesh is a mirror image of the FLAME template; motion is mirrored to match",) \
            if np.linalg.det(rotation) < 0 else ()
        residual = np.sqrt(np.mean(np.sum((scale * source @ rotation.T + translation - target) ** 2, axis=1)))
        if residual > 0.1 * HEAD_SPAN_M:
            notes += (f"the mesh differs from the FLAME template by {residual * 1000:.0f} mm (RMS) after "
                      "aligning them; is it the same head?",)
        return cls(scale=scale, rotation=rotation, translation=translation, notes=notes)

    @classmethod
    def recover(cls, local_rest: np.ndarray) -> "FlameFrame":
        """The frame of a FLAME-topology mesh (V, 3) from its own geometry: axes from AXIS_LANDMARKS, unit from
        its size; identity for a mesh already in FLAME metres and orientation."""
        rest = np.asarray(local_rest, dtype=np.float64)
        spans = np.stack([rest[positive] - rest[negative] for positive, negative in AXIS_LANDMARKS], axis=1)
        lengths = np.linalg.norm(spans, axis=0)
        if not np.all(lengths > 0):
            return cls(notes=("the mesh's head landmarks coincide; taking its coordinates as FLAME metres",))
        notes = []
        ratios = lengths[[0, 2]] / lengths[1]
        if not np.all((ratios > PROPORTION_RANGE[0]) & (ratios < PROPORTION_RANGE[1])):
            notes.append(f"the mesh's proportions (width/height {ratios[0]:.2f}, depth/height {ratios[1]:.2f}) "
                         "are not a head's; its orientation may be recovered wrongly")
        left, _, right_t = np.linalg.svd(spans / lengths)
        measured = left @ right_t                   # local -> FLAME axes is its transpose
        snapped = _nearest_axis_aligned(measured)
        if snapped is None:
            notes.append(f"the head is turned more than {SNAP_DEGREES:g} degrees away from any axis; its "
                         "orientation is estimated from landmarks (within a few degrees)")
            axes = measured
        else:
            axes = snapped
        rotation = axes.T
        size = float(lengths.mean())
        unit, scale = next(((name, factor) for name, factor in UNITS
                            if HEAD_SPAN_RANGE_M[0] <= size * factor <= HEAD_SPAN_RANGE_M[1]), (None, None))
        if unit is None:
            scale = HEAD_SPAN_M / size
            notes.append(f"the head spans {size:.4g} units, which no length unit makes a plausible head size; "
                         f"scaling it to a {HEAD_SPAN_M:g} m head")
        elif unit != "metres":
            notes.append(f"the mesh is in {unit}: motion is scaled to match")
        if np.linalg.det(rotation) < 0:
            notes.append("the mesh is mirrored: motion is mirrored to match")
        elif not np.allclose(rotation, np.eye(3)):
            notes.append("the mesh is rotated: motion is rotated to match")
        if scale == 1.0 and np.array_equal(rotation, np.eye(3)):
            return cls(notes=tuple(notes))
        return cls(scale=scale, rotation=rotation, translation=np.zeros(3), notes=tuple(notes))

    @property
    def is_identity(self) -> bool:
        return self.rotation is None

    @property
    def mirrored(self) -> bool:
        return not self.is_identity and bool(np.linalg.det(self.rotation) < 0)

    def to_flame(self, local: np.ndarray) -> np.ndarray:
        """(..., 3) local coordinates -> FLAME frame, float32."""
        return self._mapped(local, lambda points: self.scale * points @ self.rotation.T + self.translation)

    def to_local(self, flame: np.ndarray) -> np.ndarray:
        """(..., 3) FLAME frame -> local coordinates, float32 (the exact inverse of `to_flame`)."""
        return self._mapped(flame, lambda points: (points - self.translation) @ self.rotation / self.scale)

    def _mapped(self, coordinates: np.ndarray, transform) -> np.ndarray:
        """(..., 3) -> float32 of the same shape: `transform` of float64 (n, 3) points (none for the identity),
        applied POINTS_PER_BLOCK points at a time, so the float64 temporaries are a block's, not the take's."""
        if self.is_identity:
            return np.asarray(coordinates, dtype=np.float32)
        coordinates = np.asarray(coordinates)
        points = coordinates.reshape(-1, 3)
        mapped = np.empty(points.shape, dtype=np.float32)
        for start in range(0, len(points), POINTS_PER_BLOCK):
            block = slice(start, start + POINTS_PER_BLOCK)
            mapped[block] = transform(points[block].astype(np.float64))
        return mapped.reshape(coordinates.shape)


def _nearest_axis_aligned(axes: np.ndarray) -> Optional[np.ndarray]:
    """The signed permutation matrix (same handedness) nearest the orthogonal `axes`, if within SNAP_DEGREES."""
    rows = np.argmax(np.abs(axes), axis=0)
    if len(set(rows.tolist())) != 3:
        return None
    snapped = np.zeros((3, 3))
    snapped[rows, np.arange(3)] = np.sign(axes[rows, np.arange(3)])
    turn = snapped.T @ axes                         # proper rotation between the two
    angle = np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1.0, 1.0)))
    return snapped if angle <= SNAP_DEGREES else None
