"""Mesh and vertex-sequence file I/O: PLY (ascii / binary either endianness), OBJ, and .npy clips.

Reading never triangulates: a file whose faces are all triangles gives `faces` (F, 3); a file with
quads or n-gons keeps only the corner count of each face (`face_sizes`) so errors can say what it has.
Every problem is a MeshError naming the file and what is wrong. Writes are atomic (temp file + rename).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.atomic import write_bytes, write_npy, write_npy_blocks
from backend.errors import MeshError
from backend.flame import NUM_VERTICES, check_flame_topology

MESH_SUFFIXES = (".ply", ".obj")

PLY_SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
PLY_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
PLY_FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass
class Mesh:
    """A polygon mesh as read from a file.

    vertices: (V, 3) float64. faces: (F, 3) int64 triangles, or None (no faces, or not all triangles).
    uvs: (K, 2) float64 texture coordinates; uv_faces: (F, 3) int64 indices into uvs (OBJ only).
    face_sizes: (F,) corner count per face, set only when some face is not a triangle.
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    face_sizes: np.ndarray | None = None

    @property
    def num_faces(self) -> int:
        if self.face_sizes is not None:
            return len(self.face_sizes)
        return 0 if self.faces is None else len(self.faces)


# ----------------------------------------------------------------------------------------- reading

def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise MeshError(f"{path}: file not found")
    if path.is_dir():
        raise MeshError(f"{path}: is a folder, expected a mesh file ({', '.join(MESH_SUFFIXES)})")
    try:
        return path.read_bytes()
    except OSError as error:
        raise MeshError(f"{path}: cannot be read ({error.strerror})") from None


def read_mesh(path) -> Mesh:
    """Read a .ply or .obj mesh (see the module docstring); MeshError on anything unreadable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(f"{path}: unknown mesh format '{path.suffix}'; supported: {', '.join(MESH_SUFFIXES)}")
    data = _read_bytes(path)
    mesh = _parse_ply(path, data) if suffix == ".ply" else _parse_obj(path, data)
    _check_indices(path, mesh.faces, len(mesh.vertices), "vertices")
    if mesh.uvs is not None:
        _check_indices(path, mesh.uv_faces, len(mesh.uvs), "texture coordinates")
    if not np.all(np.isfinite(mesh.vertices)):
        raise MeshError(f"{path}: has NaN or infinite vertex coordinates")
    return mesh


def _check_indices(path: Path, faces: np.ndarray | None, count: int, indexed: str) -> None:
    """MeshError unless every index in `faces` points into the `count` items called `indexed`."""
    if faces is not None and faces.size and (faces.min() < 0 or faces.max() >= count):
        raise MeshError(f"{path}: face index out of range: faces use indices {faces.min()} to {faces.max()}, "
                        f"but there are {count} {indexed} (valid 0 to {count - 1})")


@dataclass
class _PlyProperty:
    name: str
    dtype: str                 # numpy scalar code, without byte order
    count_dtype: str | None    # set for list properties: the type of the leading count


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[_PlyProperty]


def _parse_ply_header(path: Path, data: bytes) -> tuple[str, list[_PlyElement], int]:
    """(format, elements, offset of the body) from a PLY header."""
    if not data.startswith(b"ply"):
        raise MeshError(f"{path}: not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header")
    if end < 0:
        raise MeshError(f"{path}: bad PLY header: no 'end_header' line")
    body_start = data.find(b"\n", end)
    body_start = len(data) if body_start < 0 else body_start + 1
    lines = data[:end].decode("ascii", errors="replace").splitlines()[1:]
    file_format, elements = None, []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                file_format = words[1]
                if file_format not in PLY_FORMATS:
                    raise ValueError(f"unknown format '{file_format}' (supported: {', '.join(PLY_FORMATS)})")
            elif words[0] == "element":
                elements.append(_PlyElement(words[1], int(words[2]), []))
                if elements[-1].count < 0:
                    raise ValueError("negative element count")
            elif words[0] == "property":
                if not elements:
                    raise ValueError("property before any element")
                if words[1] == "list":
                    prop = _PlyProperty(words[4], PLY_SCALAR_TYPES[words[3]], PLY_SCALAR_TYPES[words[2]])
                else:
                    prop = _PlyProperty(words[2], PLY_SCALAR_TYPES[words[1]], None)
                elements[-1].properties.append(prop)
            else:
                raise ValueError(f"unknown keyword '{words[0]}'")
        except (IndexError, ValueError, KeyError) as error:
            raise MeshError(f"{path}: bad PLY header at line {number} '{line.strip()}': {error}") from None
    if file_format is None:
        raise MeshError(f"{path}: bad PLY header: no 'format' line")
    return file_format, elements, body_start


def _parse_ply(path: Path, data: bytes) -> Mesh:
    file_format, elements, offset = _parse_ply_header(path, data)
    byte_order = PLY_FORMATS[file_format]
    if byte_order is None:
        rows = _ply_ascii_rows(data[offset:])
    tables = {}
    for element in elements:
        if byte_order is None:
            tables[element.name] = _read_ascii_element(path, element, rows)
        else:
            tables[element.name], offset = _read_binary_element(path, element, data, offset, byte_order)
    if "vertex" not in tables:
        raise MeshError(f"{path}: PLY file has no 'vertex' element")
    vertex_table = tables["vertex"]
    missing = [axis for axis in "xyz" if axis not in vertex_table]
    if missing:
        raise MeshError(f"{path}: PLY vertices lack the {', '.join(missing)} propert{'y' if len(missing) == 1 else 'ies'}")
    vertices = np.stack([np.asarray(vertex_table[axis], dtype=np.float64) for axis in "xyz"], axis=1)
    polygons = None
    if "face" in tables:
        polygons = next((tables["face"][name] for name in PLY_FACE_LISTS if name in tables["face"]), None)
        if polygons is None:
            raise MeshError(f"{path}: PLY faces have no {' or '.join(PLY_FACE_LISTS)} list property")
    return _mesh_from_polygons(vertices, polygons)


def _mesh_from_polygons(vertices: np.ndarray, polygons) -> Mesh:
    """polygons: None, a (F, K) int array, or a list of per-face index arrays."""
    if polygons is None or len(polygons) == 0:
        return Mesh(vertices=vertices)
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2 and polygons.shape[1] == 3:
        return Mesh(vertices=vertices, faces=polygons.astype(np.int64))
    sizes = np.array([len(polygon) for polygon in polygons], dtype=np.int64)
    return Mesh(vertices=vertices, face_sizes=sizes)


class _Truncated(Exception):
    pass


def _read_binary_element(path: Path, element: _PlyElement, data: bytes, offset: int, order: str):
    """Return ({property: values}, next offset). Lists are fast when every row has the same length."""
    def need(nbytes):
        if offset + nbytes > len(data):
            raise MeshError(f"{path}: truncated PLY: element '{element.name}' needs {nbytes} bytes from "
                            f"offset {offset}, only {len(data) - offset} left")

    if element.count == 0:
        return {prop.name: np.zeros(0, dtype=prop.dtype) for prop in element.properties}, offset
    fields = []
    list_lengths = {}
    probe = offset
    for prop in element.properties:   # row layout guessed from the first row's list lengths
        if prop.count_dtype is None:
            fields.append((prop.name, order + prop.dtype))
            probe += np.dtype(prop.dtype).itemsize
            continue
        count_size = np.dtype(prop.count_dtype).itemsize
        need(probe - offset + count_size)
        length = _list_length(path, element, prop, np.frombuffer(data, order + prop.count_dtype, 1, probe)[0])
        list_lengths[prop.name] = length
        fields.append((prop.name + "\0count", order + prop.count_dtype))
        fields.append((prop.name, order + prop.dtype, (length,)))
        probe += count_size + length * np.dtype(prop.dtype).itemsize
    row = np.dtype(fields)
    if not list_lengths or _uniform_rows(data, offset, row, element, list_lengths):
        need(row.itemsize * element.count)
        table = np.frombuffer(data, row, element.count, offset)
        return {prop.name: table[prop.name] for prop in element.properties}, offset + row.itemsize * element.count
    return _read_binary_rows(path, element, data, offset, order)


def _uniform_rows(data: bytes, offset: int, row: np.dtype, element: _PlyElement, lengths: dict) -> bool:
    """True when every row's list counts equal the first row's (so one structured dtype fits all)."""
    if (len(data) - offset) // row.itemsize < element.count:
        return False   # too short for this layout: rows differ, or the file is truncated (the row reader says which)
    table = np.frombuffer(data, row, element.count, offset)
    return all(np.all(table[name + "\0count"] == length) for name, length in lengths.items())


def _read_binary_rows(path: Path, element: _PlyElement, data: bytes, offset: int, order: str):
    """Row-by-row reader for elements whose lists vary in length (quads mixed with triangles...)."""
    columns = {prop.name: [] for prop in element.properties}
    try:
        for row_number in range(element.count):
            for prop in element.properties:
                if prop.count_dtype is None:
                    columns[prop.name].append(_scalar_at(data, offset, order + prop.dtype))
                    offset += np.dtype(prop.dtype).itemsize
                else:
                    length = _list_length(path, element, prop, _scalar_at(data, offset, order + prop.count_dtype))
                    offset += np.dtype(prop.count_dtype).itemsize
                    nbytes = length * np.dtype(prop.dtype).itemsize
                    if offset + nbytes > len(data):
                        raise _Truncated
                    columns[prop.name].append(np.frombuffer(data, order + prop.dtype, length, offset))
                    offset += nbytes
    except _Truncated:
        raise MeshError(f"{path}: truncated PLY: file ends after {row_number} of the {element.count} rows of "
                        f"element '{element.name}'") from None
    return _columns_as_arrays(element, columns), offset


def _columns_as_arrays(element: _PlyElement, columns: dict[str, list]) -> dict:
    """Scalar columns become arrays; list columns stay lists of per-row arrays (their lengths differ)."""
    return {prop.name: columns[prop.name] if prop.count_dtype else np.array(columns[prop.name], dtype=prop.dtype)
            for prop in element.properties}


def _list_length(path: Path, element: _PlyElement, prop: _PlyProperty, count) -> int:
    if count < 0:
        raise MeshError(f"{path}: bad PLY data in element '{element.name}': list '{prop.name}' has a "
                        f"negative length ({count})")
    return int(count)


def _scalar_at(data: bytes, offset: int, dtype: str):
    if offset + np.dtype(dtype).itemsize > len(data):
        raise _Truncated
    return np.frombuffer(data, dtype, 1, offset)[0]


def _ply_ascii_rows(body: bytes) -> list[bytes]:
    """Non-empty lines of an ascii PLY body, consumed element by element."""
    return [line for line in body.split(b"\n") if line.strip()][::-1]


def _read_ascii_element(path: Path, element: _PlyElement, rows: list[bytes]) -> dict:
    """Parse `element.count` lines (popped from the reversed `rows`) into {property: values}."""
    if len(rows) < element.count:
        raise MeshError(f"{path}: truncated PLY: element '{element.name}' needs {element.count} lines, "
                        f"only {len(rows)} left")
    lines = [rows.pop() for _ in range(element.count)]
    if not lines:
        return {prop.name: np.zeros(0, dtype=prop.dtype) for prop in element.properties}
    try:
        token_rows = [line.split() for line in lines]
        if len({len(tokens) for tokens in token_rows}) == 1:   # equal-length rows: one vectorised parse
            return _columns_from_table(path, element, np.array(token_rows, dtype=np.float64))
        return _columns_from_token_rows(path, element, token_rows)
    except ValueError:
        raise MeshError(f"{path}: bad PLY data in element '{element.name}': found a value that is not a number") from None


def _columns_from_table(path: Path, element: _PlyElement, table: np.ndarray) -> dict:
    """Split an (N, width) table of equal-length rows into property columns."""
    columns, column = {}, 0
    for prop in element.properties:
        if column >= table.shape[1]:
            break
        if prop.count_dtype is None:
            columns[prop.name] = table[:, column]
            column += 1
        else:
            length = int(table[0, column])
            if not np.all(table[:, column] == length):
                break
            columns[prop.name] = table[:, column + 1:column + 1 + length].astype(prop.dtype)
            column += 1 + length
    if len(columns) == len(element.properties) and column == table.shape[1]:
        return columns
    return _columns_from_token_rows(path, element, table.tolist())   # lists vary in length, or a bad row


def _columns_from_token_rows(path: Path, element: _PlyElement, token_rows: list) -> dict:
    """Row-by-row ascii reader for elements whose lists vary in length."""
    columns = {prop.name: [] for prop in element.properties}
    for row_number, tokens in enumerate(token_rows):
        values = [float(token) for token in tokens]
        position = 0
        for prop in element.properties:
            if position >= len(values):
                raise MeshError(f"{path}: bad PLY data in element '{element.name}': row {row_number} ends before "
                                f"property '{prop.name}'")
            if prop.count_dtype is None:
                columns[prop.name].append(values[position])
                position += 1
            else:
                length = int(values[position])
                columns[prop.name].append(np.array(values[position + 1:position + 1 + length], dtype=prop.dtype))
                position += 1 + length
        if position != len(values):
            raise MeshError(f"{path}: bad PLY data in element '{element.name}': row {row_number} has "
                            f"{len(values)} values, the header's properties describe {position}")
    return _columns_as_arrays(element, columns)


def _parse_obj(path: Path, data: bytes) -> Mesh:
    """v / vt / f records of a Wavefront OBJ; normals, groups and materials are ignored."""
    text = data.decode("utf-8", errors="replace")
    positions, texcoords, polygons, uv_polygons = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "v":
                positions.append([float(value) for value in words[1:4]])
                if len(positions[-1]) != 3:
                    raise ValueError("a vertex needs x y z")
            elif words[0] == "vt":
                texcoords.append([float(value) for value in words[1:3]])
                if len(texcoords[-1]) != 2:
                    raise ValueError("a texture coordinate needs u v")
            elif words[0] == "f":
                if len(words) < 4:
                    raise ValueError("a face needs at least 3 corners")
                corners = [corner.split("/") for corner in words[1:]]
                polygons.append([_obj_index(corner[0], len(positions)) for corner in corners])
                has_uv = all(len(corner) > 1 and corner[1] for corner in corners)
                uv_polygons.append([_obj_index(corner[1], len(texcoords)) for corner in corners] if has_uv else None)
        except ValueError as error:
            raise MeshError(f"{path}: bad OBJ line {number} '{line.strip()[:60]}': {error}") from None
    if not positions:
        raise MeshError(f"{path}: not an OBJ mesh (no 'v' vertex lines found)")
    vertices = np.array(positions, dtype=np.float64)
    uvs = np.array(texcoords, dtype=np.float64) if texcoords else None
    if not polygons:
        return Mesh(vertices=vertices, uvs=uvs)
    if any(len(polygon) != 3 for polygon in polygons):
        mesh = _mesh_from_polygons(vertices, polygons)
        mesh.uvs = uvs
        return mesh
    uv_faces = None
    if uvs is not None and all(uv is not None for uv in uv_polygons):
        uv_faces = np.array(uv_polygons, dtype=np.int64)
    return Mesh(vertices=vertices, faces=np.array(polygons, dtype=np.int64), uvs=uvs, uv_faces=uv_faces)


def _obj_index(token: str, count: int) -> int:
    """OBJ indices are 1-based; negative ones count back from the latest record."""
    index = int(token)
    if index == 0:
        raise ValueError("index 0 (OBJ indices start at 1)")
    return index - 1 if index > 0 else count + index


# ----------------------------------------------------------------------------------------- writing

def write_mesh(path, mesh: Mesh, binary: bool = True) -> None:
    """Write .ply (binary little-endian float64, or ascii) or .obj (with vt when present).

    PLY stores vertices and triangles only (UVs are per-corner in OBJ and not kept in PLY).
    Meshes with non-triangle faces were not kept by read_mesh, so they cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshError(f"{path}: unknown mesh format '{path.suffix}'; supported: {', '.join(MESH_SUFFIXES)}")
    if mesh.face_sizes is not None:
        raise MeshError(f"{path}: cannot write a mesh whose quads/n-gons were not kept when it was read")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"{path}: vertices must be an (N, 3) array; got shape {vertices.shape}")
    faces = None if mesh.faces is None else np.asarray(mesh.faces, dtype=np.int64)
    if suffix == ".ply":
        content = _ply_bytes(vertices, faces, binary)
    else:
        content = _obj_bytes(vertices, faces, mesh.uvs, mesh.uv_faces)
    write_bytes(path, content)


def _ply_bytes(vertices: np.ndarray, faces: np.ndarray | None, binary: bool) -> bytes:
    num_faces = 0 if faces is None else len(faces)
    file_format = "binary_little_endian" if binary else "ascii"
    header = (f"ply\nformat {file_format} 1.0\ncomment written by backend.mesh\n"
              f"element vertex {len(vertices)}\nproperty double x\nproperty double y\nproperty double z\n"
              f"element face {num_faces}\nproperty list uchar int vertex_indices\nend_header\n").encode("ascii")
    if binary:
        body = vertices.astype("<f8").tobytes()
        if num_faces:
            rows = np.empty(num_faces, dtype=[("count", "u1"), ("indices", "<i4", (3,))])
            rows["count"] = 3
            rows["indices"] = faces
            body += rows.tobytes()
        return header + body
    text = ("%.9g %.9g %.9g\n" * len(vertices)) % tuple(vertices.ravel())
    if num_faces:
        text += ("3 %d %d %d\n" * num_faces) % tuple(faces.ravel())
    return header + text.encode("ascii")


def _obj_bytes(vertices, faces, uvs, uv_faces) -> bytes:
    text = "# written by backend.mesh\n" + ("v %.9g %.9g %.9g\n" * len(vertices)) % tuple(vertices.ravel())
    if uvs is not None:
        uvs = np.asarray(uvs, dtype=np.float64)
        text += ("vt %.9g %.9g\n" * len(uvs)) % tuple(uvs.ravel())
    if faces is not None:
        if uvs is not None and uv_faces is not None:
            corners = np.stack([faces + 1, np.asarray(uv_faces, dtype=np.int64) + 1], axis=2)
            text += ("f %d/%d %d/%d %d/%d\n" * len(faces)) % tuple(corners.ravel())
        else:
            text += ("f %d %d %d\n" * len(faces)) % tuple((faces + 1).ravel())
    return text.encode("ascii")


# ------------------------------------------------------------------------------ FLAME and sequences

def check_flame_mesh(mesh: Mesh, source: str = "mesh") -> None:
    """MeshError unless `mesh` has FLAME topology; a mesh without faces (a point cloud) is not FLAME."""
    faces = mesh.faces if mesh.faces is not None else np.zeros((0, 3), dtype=np.int64)
    check_flame_topology(mesh.vertices, faces, source=source, face_sizes=mesh.face_sizes)


def load_flame_mesh(path) -> Mesh:
    """read_mesh, then MeshError unless the mesh has FLAME topology (5023 vertices, FLAME triangles)."""
    mesh = read_mesh(path)
    check_flame_mesh(mesh, source=str(path))
    return mesh


def load_vertex_sequence(path, num_vertices: int | None = NUM_VERTICES) -> np.ndarray:
    """Read a vertex animation from .npy: (T, V, 3) or flattened (T, V*3) -> (T, V, 3) float32.

    num_vertices: the V required (FLAME by default); None accepts any V. No pickle is ever loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: file not found" if not path.exists() else f"{path}: is not a file")
    with open(path, "rb") as stream:
        magic = stream.read(6)
    if magic != b"\x93NUMPY":
        kind = "an .npz archive" if magic.startswith(b"PK") else "not a .npy array file"
        raise MeshError(f"{path}: is {kind}; expected a single .npy vertex array (from numpy.save)")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise MeshError(f"{path}: holds Python objects (pickled), not a numeric vertex array") from None
        raise MeshError(f"{path}: not a .npy array file ({error})") from None
    except (OSError, EOFError) as error:
        raise MeshError(f"{path}: not a readable .npy array file ({error})") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MeshError(f"{path}: holds {array.dtype} values; expected a numeric vertex array")
    expected = ("(frames, V, 3) or (frames, V*3)" if num_vertices is None
                else f"(frames, {num_vertices}, 3) or (frames, {num_vertices * 3})")
    flat_width = None if num_vertices is None else 3 * num_vertices
    frames = array
    if array.ndim == 2 and (array.shape[1] == flat_width or (flat_width is None and array.shape[1] % 3 == 0)):
        frames = array.reshape(array.shape[0], array.shape[1] // 3, 3)
    if frames.ndim != 3 or frames.shape[2] != 3 or (num_vertices is not None and frames.shape[1] != num_vertices):
        raise MeshError(f"{path}: vertex array has shape {array.shape}; expected {expected}")
    if frames.size == 0:
        raise MeshError(f"{path}: vertex array is empty (shape {array.shape}); expected at least one frame")
    finite_frames = np.all(np.isfinite(frames), axis=(1, 2))
    if not np.all(finite_frames):
        bad = np.flatnonzero(~finite_frames)
        raise MeshError(f"{path}: has NaN or infinite values in {len(bad)} of {len(frames)} frames "
                        f"(first at frame {bad[0]})")
    return frames.astype(np.float32, copy=False)


def save_vertex_sequence(path, vertices: np.ndarray) -> None:
    """Write a (T, V, 3) vertex animation as a float32 .npy, atomically."""
    path = Path(path)
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise MeshError(f"{path}: cannot save vertex array of shape {vertices.shape}; expected (frames, V, 3) "
                        "with at least one frame")
    write_npy(path, vertices.astype(np.float32))


def save_vertex_blocks(path, frames: int, blocks) -> None:
    """Write a (frames, 5023, 3) float32 .npy atomically from the (F, 5023, 3) blocks `blocks` yields in order
    (Generator.animate_blocks), so a long take is never held whole."""
    if frames <= 0:
        raise MeshError(f"{path}: cannot save a vertex sequence of {frames} frames; expected at least one")
    write_npy_blocks(path, (frames, NUM_VERTICES, 3), np.float32, blocks)
