"""FLAME topology facts, the topology check, region masks, and where to find the licensed files.

The FLAME faces and template are licensed (non-commercial research), so nothing of them is bundled:
the topology is recognised by a digest of its triangle list, and the template and masks are found
through explicit paths or the `FLAME_TEMPLATE` / `FLAME_MASKS` environment variables.
"""

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import MeshError

NUM_VERTICES = 5023
VERTEX_VALUES = 3 * NUM_VERTICES   # 15069: one flattened FLAME frame
NUM_FACES = 9976
MM_PER_M = 1000.0                  # FLAME coordinates are metres
UPPER_LIP_CENTRE = 3531
LOWER_LIP_CENTRE = 3504

# sha256 of canonical_faces_digest(FLAME triangle list): identifies the topology without shipping it.
FLAME_FACES_DIGEST = "4cf9a58b3e9f4d1e4e0932adfede72f110a2be935acabe0d5b13a47336aec36e"

MASKS_ENV = "FLAME_MASKS"
TEMPLATE_ENV = "FLAME_TEMPLATE"
MASKS_FILENAME = "FLAME_masks.npz"
REQUIRED_MASKS = ("lips", "eye_region", "forehead", "nose")
UPPER_FACE_MASKS = ("eye_region", "forehead", "nose")

_NOT_BUNDLED = "It is not bundled with this project because the FLAME licence does not allow redistribution."


def canonical_faces_digest(faces: np.ndarray) -> str:
    """sha256 of a triangle list that ignores face order and corner rotation but keeps orientation.

    faces: (F, 3) integer vertex indices. Each triangle is rotated so its smallest index comes first
    (a flipped triangle stays different), the rows are sorted, and the int64 bytes are hashed.
    """
    triangles = np.asarray(faces, dtype=np.int64)
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise MeshError(f"faces must be an (F, 3) triangle array; got shape {triangles.shape}")
    rows = np.arange(len(triangles))[:, None]
    first = np.argmin(triangles, axis=1)[:, None]
    rotated = triangles[rows, (first + np.arange(3)) % 3]
    order = np.lexsort((rotated[:, 2], rotated[:, 1], rotated[:, 0]))
    return hashlib.sha256(np.ascontiguousarray(rotated[order], dtype="<i8").tobytes()).hexdigest()


def _describe_face_sizes(face_sizes: np.ndarray) -> str:
    """'9000 triangles, 500 quads and 12 n-gons' style summary of corner counts per face."""
    sizes = np.asarray(face_sizes)
    parts = []
    for label, count in (("triangles", np.sum(sizes == 3)), ("quads", np.sum(sizes == 4)),
                         ("n-gons", np.sum(sizes > 4)), ("faces with fewer than 3 corners", np.sum(sizes < 3))):
        if count:
            parts.append(f"{count} {label}")
    return ", ".join(parts)


def check_flame_topology(vertices: np.ndarray, faces: np.ndarray | None = None, source: str = "mesh",
                         face_sizes: np.ndarray | None = None) -> None:
    """Raise MeshError unless the mesh has FLAME topology.

    vertices: (5023, 3). faces: (F, 3) triangles, checked against FLAME_FACES_DIGEST when given.
    face_sizes: (F,) corner count per face, for meshes whose faces are not all triangles (as read
    from a file that has quads or n-gons); the message then says so.
    """
    vertices = np.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"{source}: vertices must be an (N, 3) array; got shape {vertices.shape}")
    needs = f"FLAME topology needs {NUM_VERTICES} vertices and {NUM_FACES} triangles"
    if face_sizes is not None and np.any(np.asarray(face_sizes) != 3):
        raise MeshError(f"{source}: has {len(vertices)} vertices and {len(face_sizes)} faces "
                        f"({_describe_face_sizes(face_sizes)}); {needs} (triangles only)")
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            corners = faces.shape[1] if faces.ndim == 2 else "?"
            raise MeshError(f"{source}: has {len(vertices)} vertices and {len(faces)} faces with "
                            f"{corners} corners each; {needs} (triangles only)")
    num_faces = None if faces is None else len(faces)
    if len(vertices) != NUM_VERTICES or (num_faces is not None and num_faces != NUM_FACES):
        found = f"{len(vertices)} vertices" + ("" if num_faces is None else f" and {num_faces} faces")
        raise MeshError(f"{source}: has {found}; {needs}")
    if faces is not None and canonical_faces_digest(faces) != FLAME_FACES_DIGEST:
        raise MeshError(f"{source}: has {NUM_VERTICES} vertices and {NUM_FACES} triangles, but they are "
                        "connected differently from FLAME (different triangles or flipped orientation); "
                        "FLAME topology needs the FLAME triangle list")


@dataclass(frozen=True, eq=False)
class FlameRegions:
    """FLAME vertex regions (int64 index arrays) from FLAME_masks.npz.

    lips: the 254-entry list with its duplicates (published lip metrics are defined on it).
    upper_face: unique(eye_region ∪ forehead ∪ nose), 1203 vertices (used by FDD).
    masks: every mask in the file, by name.
    """

    lips: np.ndarray
    upper_face: np.ndarray
    masks: dict[str, np.ndarray]

    @classmethod
    def load(cls, path) -> "FlameRegions":
        """Read and validate a FLAME_masks.npz (no pickle); MeshError says what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise MeshError(f"{path}: FLAME masks file not found. {_masks_hint()}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                masks = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise MeshError(f"{path}: not a readable .npz of FLAME masks ({error}). {_masks_hint()}") from None
        missing = [name for name in REQUIRED_MASKS if name not in masks]
        if missing:
            raise MeshError(f"{path}: missing mask(s) {', '.join(missing)}; found {', '.join(sorted(masks)) or 'none'}; "
                            f"FLAME masks need {', '.join(REQUIRED_MASKS)}")
        for name, indices in masks.items():
            if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
                raise MeshError(f"{path}: mask '{name}' is a {indices.dtype} array of shape {indices.shape}; "
                                "expected a 1-D integer array of vertex indices")
            if indices.size and (indices.min() < 0 or indices.max() >= NUM_VERTICES):
                raise MeshError(f"{path}: mask '{name}' has vertex indices from {indices.min()} to {indices.max()}; "
                                f"FLAME vertex indices are 0 to {NUM_VERTICES - 1}")
        masks = {name: indices.astype(np.int64) for name, indices in masks.items()}
        upper_face = np.unique(np.concatenate([masks[name] for name in UPPER_FACE_MASKS]))
        return cls(lips=masks["lips"], upper_face=upper_face, masks=masks)


def _masks_hint() -> str:
    return ("Get FLAME_masks.pkl from the FLAME website (https://flame.is.tue.mpg.de, after registering) "
            "and convert it to FLAME_masks.npz (one int64 array per region); pass its path or set "
            f"${MASKS_ENV}. {_NOT_BUNDLED}")


def _template_hint() -> str:
    return ("Get FLAME_sample.ply from the VOCA repository (template/FLAME_sample.ply) or export a "
            "template from the FLAME model (https://flame.is.tue.mpg.de); pass its path or set "
            f"${TEMPLATE_ENV}. {_NOT_BUNDLED}")


def _existing(path: Path, origin: str, hint: str) -> Path:
    if not path.is_file():
        raise MeshError(f"{path} (from {origin}) does not exist. {hint}")
    return path


def find_template_path(explicit=None) -> Path:
    """The FLAME template mesh: `explicit`, else $FLAME_TEMPLATE; MeshError says how to get one."""
    if explicit is not None:
        return _existing(Path(explicit), "the given path", _template_hint())
    if os.environ.get(TEMPLATE_ENV):
        return _existing(Path(os.environ[TEMPLATE_ENV]), f"${TEMPLATE_ENV}", _template_hint())
    raise MeshError(f"No FLAME template given and ${TEMPLATE_ENV} is not set. {_template_hint()}")


def find_regions_beside(template_path) -> "FlameRegions | None":
    """The FLAME regions from FLAME_masks.npz in the template's folder, or None when there is none."""
    masks = Path(template_path).parent / MASKS_FILENAME
    return FlameRegions.load(masks) if masks.is_file() else None


def find_masks_path(explicit=None) -> Path:
    """FLAME_masks.npz: `explicit`, else $FLAME_MASKS, else next to $FLAME_TEMPLATE; else MeshError."""
    if explicit is not None:
        return _existing(Path(explicit), "the given path", _masks_hint())
    if os.environ.get(MASKS_ENV):
        return _existing(Path(os.environ[MASKS_ENV]), f"${MASKS_ENV}", _masks_hint())
    if os.environ.get(TEMPLATE_ENV):
        beside_template = Path(os.environ[TEMPLATE_ENV]).parent / MASKS_FILENAME
        if beside_template.is_file():
            return beside_template
        raise MeshError(f"No FLAME masks given, ${MASKS_ENV} is not set, and {beside_template} "
                        f"(next to ${TEMPLATE_ENV}) does not exist. {_masks_hint()}")
    raise MeshError(f"No FLAME masks given and neither ${MASKS_ENV} nor ${TEMPLATE_ENV} is set. {_masks_hint()}")
