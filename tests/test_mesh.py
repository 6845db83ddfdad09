"""Mesh and vertex-sequence I/O: PLY/OBJ reading and writing, FLAME loading, and every bad-input path."""

import numpy as np
import pytest

from backend.errors import MeshError
from backend.flame import NUM_FACES, NUM_VERTICES
from backend.atomic import WriteError
from backend.mesh import (Mesh, load_flame_mesh, load_vertex_sequence, read_mesh, save_vertex_sequence,
                          write_mesh)


# A tiny synthetic mesh: a square of two triangles plus an apex, used where FLAME is not needed.
SQUARE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]], dtype=np.float64)
SQUARE_FACES = np.array([[0, 1, 2], [0, 2, 3], [0, 1, 4]])


def ply_header(file_format, vertex_props, face_count_type="uchar", face_index_type="int", num_faces=3,
               num_vertices=5):
    props = "".join(f"property {kind} {name}\n" for kind, name in vertex_props)
    return (f"ply\nformat {file_format} 1.0\ncomment synthetic test mesh\nelement vertex {num_vertices}\n{props}"
            f"element face {num_faces}\nproperty list {face_count_type} {face_index_type} vertex_indices\n"
            "end_header\n").encode("ascii")


# ------------------------------------------------------------------------------------------ reading

def test_read_flame_ply(flame_mesh):
    assert flame_mesh.vertices.shape == (NUM_VERTICES, 3) and flame_mesh.vertices.dtype == np.float64
    assert flame_mesh.faces.shape == (NUM_FACES, 3) and flame_mesh.faces.dtype == np.int64
    assert flame_mesh.uvs is None and flame_mesh.face_sizes is None


def test_read_flame_obj_keeps_uvs(flame_obj, flame_mesh):
    mesh = read_mesh(flame_obj)
    assert mesh.vertices.shape == (NUM_VERTICES, 3)
    assert np.array_equal(mesh.faces, flame_mesh.faces)
    assert mesh.uvs.shape == (5118, 2) and mesh.uv_faces.shape == (NUM_FACES, 3)
    assert mesh.uv_faces.max() == 5117
    assert np.mean(mesh.vertices[:, 1]) - np.mean(flame_mesh.vertices[:, 1]) == pytest.approx(1.46, abs=0.05)


def test_load_flame_mesh_accepts_both_files(flame_ply, flame_obj):
    assert load_flame_mesh(flame_ply).faces.shape == (NUM_FACES, 3)
    assert load_flame_mesh(flame_obj).uvs.shape == (5118, 2)


def test_big_endian_ply_with_extra_properties(tmp_path):
    props = [("float", "x"), ("float", "nx"), ("float", "y"), ("float", "z"), ("uchar", "red")]
    rows = np.zeros(5, dtype=[("x", ">f4"), ("nx", ">f4"), ("y", ">f4"), ("z", ">f4"), ("red", "u1")])
    rows["x"], rows["y"], rows["z"], rows["nx"], rows["red"] = *SQUARE.T, 7.0, 200
    faces = np.zeros(3, dtype=[("n", ">i4"), ("idx", ">u2", (3,))])
    faces["n"], faces["idx"] = 3, SQUARE_FACES
    path = tmp_path / "big.ply"
    path.write_bytes(ply_header("binary_big_endian", props, "int", "ushort") + rows.tobytes() + faces.tobytes())
    mesh = read_mesh(path)
    assert np.array_equal(mesh.vertices, SQUARE)
    assert np.array_equal(mesh.faces, SQUARE_FACES)


def test_ascii_ply_with_extra_properties_and_blank_lines(tmp_path):
    props = [("float", "x"), ("float", "y"), ("float", "z"), ("float", "confidence")]
    body = "".join(f"{x} {y} {z} 0.5\n" for x, y, z in SQUARE) + "\n" + "".join(f"3 {a} {b} {c}\n"
                                                                              for a, b, c in SQUARE_FACES)
    path = tmp_path / "ascii.ply"
    path.write_bytes(ply_header("ascii", props) + body.encode())
    mesh = read_mesh(path)
    assert np.array_equal(mesh.vertices, SQUARE) and np.array_equal(mesh.faces, SQUARE_FACES)


@pytest.mark.parametrize("file_format", ["ascii", "binary_little_endian"])
def test_ply_with_quads_keeps_face_sizes(tmp_path, file_format):
    props = [("float", "x"), ("float", "y"), ("float", "z")]
    path = tmp_path / "quads.ply"
    if file_format == "ascii":
        body = "".join(f"{x} {y} {z}\n" for x, y, z in SQUARE) + "4 0 1 2 3\n3 0 1 4\n"
        body = body.encode()
    else:
        body = SQUARE.astype("<f4").tobytes()
        body += np.array([4], "u1").tobytes() + np.array([0, 1, 2, 3], "<i4").tobytes()
        body += np.array([3], "u1").tobytes() + np.array([0, 1, 4], "<i4").tobytes()
    path.write_bytes(ply_header(file_format, props, num_faces=2) + body)
    mesh = read_mesh(path)
    assert mesh.faces is None and list(mesh.face_sizes) == [4, 3] and mesh.num_faces == 2
    with pytest.raises(MeshError, match=r"quads\.ply: has 5 vertices and 2 faces \(1 triangles, 1 quads\); "
                                        r"FLAME topology needs 5023 vertices and 9976 triangles \(triangles only\)"):
        load_flame_mesh(path)


def test_obj_record_variants(tmp_path):
    text = """# comment
mtllib whatever.mtl
o thing
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vn 0 0 1
g group
usemtl m
s off
f 1/1/1 2/2/1 3/3/1
f -4/-3 -2/-1 -1/-1
"""
    path = tmp_path / "variants.obj"
    path.write_text(text)
    mesh = read_mesh(path)
    assert np.array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])
    assert np.array_equal(mesh.uv_faces, [[0, 1, 2], [0, 2, 2]])
    path.write_text(text.replace("f -4/-3 -2/-1 -1/-1", "f 1//1 3//1 4//1"))
    mesh = read_mesh(path)
    assert np.array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3]])
    assert mesh.uvs.shape == (3, 2) and mesh.uv_faces is None   # not every face has texture indices


def test_obj_quads(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    mesh = read_mesh(path)
    assert mesh.faces is None and list(mesh.face_sizes) == [4]
    with pytest.raises(MeshError, match="cannot write a mesh whose quads/n-gons were not kept"):
        write_mesh(tmp_path / "out.obj", mesh)


# ------------------------------------------------------------------------------------ round trips

def test_binary_ply_round_trip_is_bit_exact(tmp_path, flame_mesh):
    path = tmp_path / "out.ply"
    jittered = Mesh(vertices=flame_mesh.vertices + np.random.default_rng(1).normal(0, 1e-3, flame_mesh.vertices.shape),
                    faces=flame_mesh.faces)
    write_mesh(path, jittered)
    back = read_mesh(path)
    assert back.vertices.tobytes() == jittered.vertices.tobytes()
    assert np.array_equal(back.faces, flame_mesh.faces)
    assert [p.name for p in tmp_path.iterdir()] == ["out.ply"]   # no temp file left behind


def test_ascii_ply_round_trip(tmp_path, flame_mesh):
    path = tmp_path / "out.ply"
    write_mesh(path, flame_mesh, binary=False)
    assert path.read_bytes().startswith(b"ply\nformat ascii 1.0\n")
    back = read_mesh(path)
    assert np.max(np.abs(back.vertices - flame_mesh.vertices)) < 1e-6
    assert np.array_equal(back.faces, flame_mesh.faces)


def test_obj_round_trip_with_uvs(tmp_path, flame_obj):
    original = read_mesh(flame_obj)
    path = tmp_path / "out.obj"
    write_mesh(path, original)
    back = load_flame_mesh(path)
    assert np.max(np.abs(back.vertices - original.vertices)) < 1e-6
    assert np.max(np.abs(back.uvs - original.uvs)) < 1e-6
    assert np.array_equal(back.faces, original.faces) and np.array_equal(back.uv_faces, original.uv_faces)


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "square.ply"
    write_mesh(path, Mesh(vertices=SQUARE, faces=SQUARE_FACES))
    write_mesh(path, Mesh(vertices=SQUARE * 2, faces=SQUARE_FACES))
    assert np.array_equal(read_mesh(path).vertices, SQUARE * 2)


def test_write_errors(tmp_path):
    with pytest.raises(WriteError, match=r"cannot write .*missing[/\\]out\.ply: folder .*missing does not exist"):
        write_mesh(tmp_path / "missing" / "out.ply", Mesh(vertices=SQUARE))
    with pytest.raises(MeshError, match=r"out\.stl: unknown mesh format '\.stl'; supported: \.ply, \.obj"):
        write_mesh(tmp_path / "out.stl", Mesh(vertices=SQUARE))
    with pytest.raises(MeshError, match=r"vertices must be an \(N, 3\) array; got shape \(5, 2\)"):
        write_mesh(tmp_path / "out.ply", Mesh(vertices=SQUARE[:, :2]))


# ------------------------------------------------------------------------------------ bad inputs

def test_non_flame_mesh_names_its_counts(tmp_path):
    path = tmp_path / "square.ply"
    write_mesh(path, Mesh(vertices=SQUARE, faces=SQUARE_FACES))
    with pytest.raises(MeshError, match=r"square\.ply: has 5 vertices and 3 faces; FLAME topology needs 5023 "
                                        r"vertices and 9976 triangles"):
        load_flame_mesh(path)


def test_flipped_flame_file_is_not_flame(tmp_path, flame_mesh):
    path = tmp_path / "flipped.ply"
    write_mesh(path, Mesh(vertices=flame_mesh.vertices, faces=flame_mesh.faces[:, ::-1]))
    with pytest.raises(MeshError, match=r"flipped\.ply: .*connected differently from FLAME"):
        load_flame_mesh(path)


def test_shuffled_flame_file_is_still_flame(tmp_path, flame_mesh):
    path = tmp_path / "shuffled.obj"
    order = np.random.default_rng(2).permutation(NUM_FACES)
    write_mesh(path, Mesh(vertices=flame_mesh.vertices, faces=np.roll(flame_mesh.faces[order], 2, axis=1)))
    load_flame_mesh(path)


def test_truncated_binary_ply(tmp_path, flame_ply):
    path = tmp_path / "cut.ply"
    path.write_bytes(flame_ply.read_bytes()[:-100])
    with pytest.raises(MeshError, match=r"cut\.ply: truncated PLY: file ends after 9968 of the 9976 rows of "
                                        r"element 'face'"):
        read_mesh(path)
    path.write_bytes(flame_ply.read_bytes()[:5000])
    with pytest.raises(MeshError, match=r"cut\.ply: truncated PLY: element 'vertex' needs 60276 bytes"):
        read_mesh(path)


def test_truncated_ascii_ply(tmp_path):
    path = tmp_path / "cut.ply"
    body = "".join(f"{x} {y} {z}\n" for x, y, z in SQUARE) + "3 0 1 2\n"
    path.write_bytes(ply_header("ascii", [("float", "x"), ("float", "y"), ("float", "z")]) + body.encode())
    with pytest.raises(MeshError, match=r"cut\.ply: truncated PLY: element 'face' needs 3 lines, only 1 left"):
        read_mesh(path)


def test_garbage_files(tmp_path):
    ply = tmp_path / "garbage.ply"
    ply.write_bytes(np.random.default_rng(3).bytes(500))
    with pytest.raises(MeshError, match=r"garbage\.ply: not a PLY file \(it does not start with 'ply'\)"):
        read_mesh(ply)
    obj = tmp_path / "garbage.obj"
    obj.write_text("hello world\nthis is text\n")
    with pytest.raises(MeshError, match=r"garbage\.obj: not an OBJ mesh \(no 'v' vertex lines found\)"):
        read_mesh(obj)
    obj.write_text("v 0 0 zero\n")
    with pytest.raises(MeshError, match=r"garbage\.obj: bad OBJ line 1 'v 0 0 zero': could not convert"):
        read_mesh(obj)


def test_bad_ply_headers(tmp_path):
    path = tmp_path / "bad.ply"
    path.write_bytes(b"ply\nformat binary_middle_endian 1.0\nend_header\n")
    with pytest.raises(MeshError, match=r"bad\.ply: bad PLY header at line 2 'format binary_middle_endian 1\.0': "
                                        r"unknown format 'binary_middle_endian' \(supported: ascii, "):
        read_mesh(path)
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quaternion x\nend_header\n")
    with pytest.raises(MeshError, match=r"bad PLY header at line 4 'property quaternion x'"):
        read_mesh(path)
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\n")
    with pytest.raises(MeshError, match=r"bad\.ply: bad PLY header: no 'end_header' line"):
        read_mesh(path)
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(MeshError, match=r"bad\.ply: PLY vertices lack the y, z properties"):
        read_mesh(path)


def test_index_out_of_range(tmp_path):
    path = tmp_path / "bad.ply"
    write_mesh(path, Mesh(vertices=SQUARE, faces=np.array([[0, 1, 5]])))
    with pytest.raises(MeshError, match=r"bad\.ply: face index out of range: faces use indices 0 to 5, but there "
                                        r"are 5 vertices \(valid 0 to 4\)"):
        read_mesh(path)
    obj = tmp_path / "bad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 0\n")
    with pytest.raises(MeshError, match=r"bad\.obj: bad OBJ line 4 'f 1 2 0': index 0 \(OBJ indices start at 1\)"):
        read_mesh(obj)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(MeshError, match=r"nothing\.ply: file not found"):
        read_mesh(tmp_path / "nothing.ply")
    with pytest.raises(MeshError, match=r"mesh\.stl: unknown mesh format '\.stl'; supported: \.ply, \.obj"):
        read_mesh(tmp_path / "mesh.stl")


# -------------------------------------------------------------------------------- vertex sequences

def test_sequence_round_trip_and_flattened_input(tmp_path, flame_mesh):
    clip = np.repeat(flame_mesh.vertices[None], 4, axis=0)
    clip[:, :, 1] += np.arange(4)[:, None] * 1e-3
    path = tmp_path / "clip.npy"
    save_vertex_sequence(path, clip)
    back = load_vertex_sequence(path)
    assert back.dtype == np.float32 and back.shape == (4, NUM_VERTICES, 3)
    assert np.array_equal(back, clip.astype(np.float32))
    flat = tmp_path / "flat.npy"
    np.save(flat, clip.reshape(4, -1))
    assert np.array_equal(load_vertex_sequence(flat), back)


def test_sequence_any_vertex_count(tmp_path):
    path = tmp_path / "small.npy"
    np.save(path, np.zeros((2, 30)))
    assert load_vertex_sequence(path, num_vertices=None).shape == (2, 10, 3)


@pytest.mark.parametrize("shape, expected", [
    ((NUM_VERTICES, 3), r"shape \(5023, 3\); expected \(frames, 5023, 3\) or \(frames, 15069\)"),
    ((2, 100, 3), r"shape \(2, 100, 3\); expected \(frames, 5023, 3\)"),
    ((2, 15068), r"shape \(2, 15068\); expected"),
    ((2, NUM_VERTICES, 2), r"shape \(2, 5023, 2\); expected"),
    ((15069,), r"shape \(15069,\); expected"),
])
def test_sequence_bad_shapes(tmp_path, shape, expected):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, dtype=np.float32))
    with pytest.raises(MeshError, match=r"bad\.npy: vertex array has " + expected):
        load_vertex_sequence(path)


def test_sequence_empty(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, NUM_VERTICES, 3)))
    with pytest.raises(MeshError, match=r"empty\.npy: vertex array is empty \(shape \(0, 5023, 3\)\)"):
        load_vertex_sequence(path)


def test_sequence_nan(tmp_path):
    clip = np.zeros((5, NUM_VERTICES, 3))
    clip[3, 10, 0] = np.nan
    clip[4, 0, 2] = np.inf
    path = tmp_path / "nan.npy"
    np.save(path, clip)
    with pytest.raises(MeshError, match=r"nan\.npy: has NaN or infinite values in 2 of 5 frames \(first at frame 3\)"):
        load_vertex_sequence(path)


def test_sequence_not_npy(tmp_path):
    path = tmp_path / "clip.npy"
    path.write_text("frame 1: ...")
    with pytest.raises(MeshError, match=r"clip\.npy: is not a \.npy array file; expected a single \.npy vertex "
                                        r"array \(from numpy\.save\)"):
        load_vertex_sequence(path)
    with pytest.raises(MeshError, match=r"gone\.npy: file not found"):
        load_vertex_sequence(tmp_path / "gone.npy")
    archive = tmp_path / "clip.npz"
    np.savez(archive, vertices=np.zeros((2, NUM_VERTICES, 3)))
    with pytest.raises(MeshError, match=r"clip\.npz: is an \.npz archive; expected a single \.npy vertex array"):
        load_vertex_sequence(archive)


def test_sequence_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MeshError, match=r"objects\.npy: holds Python objects \(pickled\), not a numeric vertex array"):
        load_vertex_sequence(path)


def test_save_sequence_bad_shape(tmp_path):
    with pytest.raises(MeshError, match=r"cannot save vertex array of shape \(5023, 3\); expected \(frames, V, 3\)"):
        save_vertex_sequence(tmp_path / "out.npy", np.zeros((NUM_VERTICES, 3)))


def test_point_cloud_is_not_flame(tmp_path, flame_mesh):
    path = tmp_path / "points.ply"
    write_mesh(path, Mesh(vertices=flame_mesh.vertices))
    mesh = read_mesh(path)
    assert mesh.faces is None and mesh.num_faces == 0
    with pytest.raises(MeshError, match=r"points\.ply: has 5023 vertices and 0 faces; FLAME topology needs"):
        load_flame_mesh(path)


def test_bad_ascii_ply_rows(tmp_path):
    props = [("float", "x"), ("float", "y"), ("float", "z")]
    path = tmp_path / "bad.ply"
    vertices = "".join(f"{x} {y} {z}\n" for x, y, z in SQUARE)
    path.write_bytes(ply_header("ascii", props, num_faces=2) + (vertices + "3 0 1 2 9\n3 0 2\n").encode())
    with pytest.raises(MeshError, match=r"bad\.ply: bad PLY data in element 'face': row 0 has 5 values, the "
                                        r"header's properties describe 4"):
        read_mesh(path)
    path.write_bytes(ply_header("ascii", props, num_faces=1) + (vertices + "3 0 1 two\n").encode())
    with pytest.raises(MeshError, match=r"bad PLY data in element 'face': found a value that is not a number"):
        read_mesh(path)
    path.write_bytes(ply_header("ascii", props + [("float", "w")], num_faces=0) + vertices.encode())
    with pytest.raises(MeshError, match=r"bad PLY data in element 'vertex': row 0 ends before property 'w'"):
        read_mesh(path)


def test_ply_without_face_indices(tmp_path):
    path = tmp_path / "odd.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                     b"property float z\nelement face 1\nproperty list uchar int corners\nend_header\n0 0 0\n1 0\n")
    with pytest.raises(MeshError, match=r"odd\.ply: PLY faces have no vertex_indices or vertex_index list property"):
        read_mesh(path)


def test_non_finite_vertices(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(MeshError, match=r"nan\.obj: has NaN or infinite vertex coordinates"):
        read_mesh(path)


def test_negative_list_length(tmp_path):
    props = [("float", "x"), ("float", "y"), ("float", "z")]
    body = SQUARE.astype("<f4").tobytes() + np.array([-3], "i1").tobytes() + np.array([0, 1, 2], "<i4").tobytes()
    path = tmp_path / "neg.ply"
    path.write_bytes(ply_header("binary_little_endian", props, face_count_type="char", num_faces=1) + body)
    with pytest.raises(MeshError, match=r"neg\.ply: bad PLY data in element 'face': list 'vertex_indices' has a "
                                        r"negative length \(-3\)"):
        read_mesh(path)
    triangle_then_negative = (np.array([3], "i1").tobytes() + np.array([0, 1, 2], "<i4").tobytes()
                              + np.array([-1], "i1").tobytes())
    path.write_bytes(ply_header("binary_little_endian", props, face_count_type="char", num_faces=2)
                     + SQUARE.astype("<f4").tobytes() + triangle_then_negative)
    with pytest.raises(MeshError, match=r"list 'vertex_indices' has a negative length \(-1\)"):
        read_mesh(path)
