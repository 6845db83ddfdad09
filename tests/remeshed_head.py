"""A head that is not FLAME topology, made in the test from the user's FLAME template (nothing of it is stored):
vertex clustering on a regular grid, each cell's vertices split into the pieces of the mesh that are connected
inside the cell (so the upper and lower lip, a few mm apart, never merge), each piece one vertex at its mean
position; triangles whose corners fall into three different pieces are kept once. The result has other vertex
positions, counts and faces than FLAME, like a retopologised character head in the FLAME template's place."""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CELL_M = 0.006   # 6 mm cells: 1,950 vertices and 3,824 triangles from FLAME's 5,023 and 9,976


def remesh_by_clustering(vertices: np.ndarray, faces: np.ndarray, cell_m: float = CELL_M) -> tuple:
    """(vertices (N, 3) float64, faces (M, 3) int64) of the clustered mesh."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    cells = np.floor((vertices - vertices.min(axis=0)) / cell_m).astype(np.int64)
    _, cell = np.unique(cells, axis=0, return_inverse=True)
    cell = cell.ravel()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    inside = edges[cell[edges[:, 0]] == cell[edges[:, 1]]]
    graph = coo_matrix((np.ones(len(inside)), (inside[:, 0], inside[:, 1])), shape=(len(vertices),) * 2)
    _, piece = connected_components(graph, directed=False)
    counts = np.bincount(piece)
    positions = np.stack([np.bincount(piece, weights=vertices[:, axis]) for axis in range(3)], axis=1)
    positions /= counts[:, None]
    triangles = piece[faces]
    keep = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) & \
        (triangles[:, 2] != triangles[:, 0])
    triangles = triangles[keep]
    _, first = np.unique(np.sort(triangles, axis=1), axis=0, return_index=True)
    triangles = triangles[np.sort(first)]
    used = np.unique(triangles)
    renumber = np.full(len(positions), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return positions[used], renumber[triangles]
