"""Surface binding: carry per-vertex fields (shape-key displacements, landmarks) from one mesh onto another of any
topology lying in the same place (numpy/scipy only).

Each point of the other mesh is bound to its closest point on the source surface (exact, see `bind_to_surface`): the source triangle and the
barycentric weights of that point in it. A field on the source vertices (K, V, 3) then becomes a field on the
points as the barycentric blend of its triangle's three vertices. This is how the project's ARKit-named basis on
FLAME becomes shape keys of a user's own head (after aligning the head to the FLAME template), and how the
benchmark's lip landmarks (FLAME vertices 3531 / 3504) are found on that head.
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

CANDIDATE_TRIANGLES = 16   # triangles (nearest by centroid) searched for each point's closest point
BLOCK_POINTS = 4096        # points bound at a time (bounds the (points, candidates, 3) temporaries)


@dataclass(frozen=True)
class SurfaceBinding:
    """points (N,) bound to `faces[triangles]` of a source mesh with barycentric `weights` (N, 3);
    `distances` (N,) from each point to its closest surface point (metres when the meshes are)."""

    faces: np.ndarray
    triangles: np.ndarray
    weights: np.ndarray
    distances: np.ndarray

    def apply(self, fields: np.ndarray) -> np.ndarray:
        """(..., V, 3) fields on the source vertices -> (..., N, 3) on the bound points (float32)."""
        fields = np.asarray(fields, dtype=np.float32)
        corners = self.faces[self.triangles]                     # (N, 3) source vertex ids
        weights = self.weights.astype(np.float32)
        return (fields[..., corners[:, 0], :] * weights[:, 0:1] + fields[..., corners[:, 1], :] * weights[:, 1:2]
                + fields[..., corners[:, 2], :] * weights[:, 2:3])


def bind_to_surface(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> SurfaceBinding:
    """Bind (N, 3) `points` to the closest points of the triangle mesh (`vertices` (V, 3), `faces` (F, 3))."""
    points = np.asarray(points, dtype=np.float64)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must be (F, 3) triangles; got {faces.shape}")
    corners = vertices[faces]                                    # (F, 3, 3)
    centroids = corners.mean(axis=1)
    reach = np.linalg.norm(corners - centroids[:, None], axis=2).max(axis=1)   # no face point is farther out
    triangles = np.zeros(len(points), dtype=np.int64)
    weights = np.zeros((len(points), 3))
    distances = np.full(len(points), np.inf)
    # exact: faces are searched in classes of similar reach (a few large faces must not slow the search among the
    # many small ones); in each, a face beyond the k nearest centroids can still be nearer only while its
    # centroid is within the best distance + the class's reach: such points are searched again with twice k
    bounds = np.median(reach) * 2.0 ** np.arange(1, 64)
    face_class = np.searchsorted(bounds, reach)
    for members in (np.flatnonzero(face_class == value) for value in np.unique(face_class)):
        tree, class_reach = cKDTree(centroids[members]), float(reach[members].max())
        todo, count = np.arange(len(points)), min(CANDIDATE_TRIANGLES, len(members))
        while len(todo):
            unsure, step = [], max(1, BLOCK_POINTS * CANDIDATE_TRIANGLES // count)
            for start in range(0, len(todo), step):
                rows = todo[start:start + step]
                centroid_distance, nearest = tree.query(points[rows], k=count)
                candidates = members[np.reshape(nearest, (len(rows), count))]
                found, bary, distance = _closest_among(points[rows], candidates, corners)
                better = distance < distances[rows]
                triangles[rows[better]], weights[rows[better]] = found[better], bary[better]
                distances[rows[better]] = distance[better]
                if count < len(members):
                    unsure.append(rows[np.reshape(centroid_distance, (len(rows), count))[:, -1]
                                       < distances[rows] + class_reach])
            todo = np.concatenate(unsure) if unsure else np.zeros(0, dtype=np.int64)
            count = min(2 * count, len(members))
    return SurfaceBinding(faces=faces, triangles=triangles, weights=weights, distances=distances)


def _closest_among(points, candidates, corners):
    """For (B, 3) points and (B, C) candidate face ids: (face ids (B,), barycentric weights (B, 3), distances (B,))
    of each point's closest candidate face point."""
    triangle = corners[candidates]                               # (B, C, 3, 3)
    bary = _closest_barycentric(np.broadcast_to(points[:, None], candidates.shape + (3,)),
                                triangle[..., 0, :], triangle[..., 1, :], triangle[..., 2, :])
    closest = np.einsum("bcj,bcjd->bcd", bary, triangle)
    distance = np.linalg.norm(closest - points[:, None], axis=2)
    best = np.argmin(distance, axis=1)
    rows = np.arange(len(points))
    return candidates[rows, best], bary[rows, best], distance[rows, best]


def _closest_barycentric(p, a, b, c):
    """Barycentric weights (..., 3) of the closest point to p on triangle (a, b, c) (Ericson, Real-Time Collision
    Detection 5.1.5, vectorised: the seven Voronoi regions resolved with masks, later regions taking precedence
    in the reverse order of the scalar version's early returns)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.sum(ab * ap, -1), np.sum(ac * ap, -1)
    bp = p - b
    d3, d4 = np.sum(ab * bp, -1), np.sum(ac * bp, -1)
    cp = p - c
    d5, d6 = np.sum(ab * cp, -1), np.sum(ac * cp, -1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = va + vb + vc
        v = np.where(denominator != 0, vb / denominator, 1 / 3)
        w = np.where(denominator != 0, vc / denominator, 1 / 3)
        result = np.stack([1 - v - w, v, w], axis=-1)            # inside the face
        t = d2 / (d2 - d6)                                       # edge AC
        edge_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        result = np.where(edge_ac[..., None], np.stack([1 - t, np.zeros_like(t), t], -1), result)
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))                  # edge BC
        edge_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
        result = np.where(edge_bc[..., None], np.stack([np.zeros_like(t), 1 - t, t], -1), result)
        t = d1 / (d1 - d3)                                       # edge AB
        edge_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        result = np.where(edge_ab[..., None], np.stack([1 - t, t, np.zeros_like(t)], -1), result)
    one = np.ones_like(d1)
    zero = np.zeros_like(d1)
    result = np.where(((d6 >= 0) & (d5 <= d6))[..., None], np.stack([zero, zero, one], -1), result)   # vertex C
    result = np.where(((d3 >= 0) & (d4 <= d3))[..., None], np.stack([zero, one, zero], -1), result)   # vertex B
    result = np.where(((d1 <= 0) & (d2 <= 0))[..., None], np.stack([one, zero, zero], -1), result)    # vertex A
    return np.nan_to_num(result, nan=1 / 3)


def transfer_fields(fields: np.ndarray, source_vertices: np.ndarray, source_faces: np.ndarray,
                    target_vertices: np.ndarray) -> np.ndarray:
    """(K, V, 3) displacement fields on a source mesh -> (K, N, 3) on the N vertices of a target mesh in the same
    place (each target vertex follows its closest source surface point)."""
    return bind_to_surface(target_vertices, source_vertices, source_faces).apply(fields)


def lip_landmarks_on(template: np.ndarray, target_vertices: np.ndarray, target_faces: np.ndarray) -> SurfaceBinding:
    """The benchmark's lip-centre landmarks (FLAME vertices UPPER_LIP_CENTRE, LOWER_LIP_CENTRE of `template`)
    bound to the closest points of a target head's surface (in the template's place)."""
    from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
    points = np.asarray(template, dtype=np.float64)[[UPPER_LIP_CENTRE, LOWER_LIP_CENTRE]]
    return bind_to_surface(points, target_vertices, target_faces)


def bound_lip_gap(landmarks: SurfaceBinding, frames: np.ndarray) -> np.ndarray:
    """(T,) distance between the two bound lip landmarks over (T, N, 3) target frames (the lip gap g_t of
    REFERENCE §8, measured on a head of any topology)."""
    points = landmarks.apply(frames)
    return np.linalg.norm(points[..., 0, :] - points[..., 1, :], axis=-1).astype(np.float64)
