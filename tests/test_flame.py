"""FLAME topology check, digest, regions and path discovery (licensed files read from ../shared)."""

import numpy as np
import pytest

from backend.errors import MeshError
from backend.flame import (FLAME_FACES_DIGEST, LOWER_LIP_CENTRE, NUM_FACES, NUM_VERTICES, UPPER_LIP_CENTRE,
                           FlameRegions, canonical_faces_digest, check_flame_topology, find_masks_path,
                           find_template_path)
from backend.mesh import read_mesh


def test_digest_matches_both_flame_files(flame_ply, flame_obj):
    assert canonical_faces_digest(read_mesh(flame_ply).faces) == FLAME_FACES_DIGEST
    assert canonical_faces_digest(read_mesh(flame_obj).faces) == FLAME_FACES_DIGEST


def test_digest_ignores_face_order_and_corner_rotation_but_not_orientation():
    faces = np.array([[0, 1, 2], [2, 3, 0], [1, 3, 2]])
    reordered = np.array([[3, 2, 1], [1, 2, 0], [0, 2, 3]])   # rows shuffled, each rotated
    flipped = faces[:, ::-1]
    assert canonical_faces_digest(reordered) == canonical_faces_digest(faces)
    assert canonical_faces_digest(flipped) != canonical_faces_digest(faces)


def test_digest_rejects_non_triangles():
    with pytest.raises(MeshError, match=r"\(F, 3\) triangle array; got shape \(2, 4\)"):
        canonical_faces_digest(np.zeros((2, 4), dtype=int))


def test_flame_mesh_passes_and_shuffled_faces_still_flame(flame_mesh):
    check_flame_topology(flame_mesh.vertices, flame_mesh.faces)
    rng = np.random.default_rng(0)
    shuffled = np.roll(flame_mesh.faces[rng.permutation(NUM_FACES)], 1, axis=1)
    check_flame_topology(flame_mesh.vertices, shuffled)


def test_flipped_orientation_is_not_flame(flame_mesh):
    with pytest.raises(MeshError, match="connected differently from FLAME.*flipped orientation"):
        check_flame_topology(flame_mesh.vertices, flame_mesh.faces[:, ::-1], source="flipped.ply")


def test_non_flame_counts_in_message():
    with pytest.raises(MeshError, match=r"^small\.obj: has 1234 vertices and 2000 faces; FLAME topology needs "
                                        r"5023 vertices and 9976 triangles$"):
        check_flame_topology(np.zeros((1234, 3)), np.zeros((2000, 3), dtype=int), source="small.obj")
    with pytest.raises(MeshError, match=r"has 10 vertices; FLAME topology needs 5023"):
        check_flame_topology(np.zeros((10, 3)))


def test_quads_and_ngons_are_named():
    sizes = np.array([4] * 4000 + [3] * 1000 + [6] * 12)
    with pytest.raises(MeshError, match=r"has 5023 vertices and 5012 faces \(1000 triangles, 4000 quads, "
                                        r"12 n-gons\); FLAME topology needs .* \(triangles only\)"):
        check_flame_topology(np.zeros((NUM_VERTICES, 3)), face_sizes=sizes)
    with pytest.raises(MeshError, match=r"has 5023 vertices and 7 faces with 4 corners each"):
        check_flame_topology(np.zeros((NUM_VERTICES, 3)), np.zeros((7, 4), dtype=int))


def test_bad_vertex_shape():
    with pytest.raises(MeshError, match=r"vertices must be an \(N, 3\) array; got shape \(5023, 2\)"):
        check_flame_topology(np.zeros((NUM_VERTICES, 2)))


def test_lip_centre_gap_at_rest(flame_mesh):
    gap_mm = 1000 * np.linalg.norm(flame_mesh.vertices[UPPER_LIP_CENTRE] - flame_mesh.vertices[LOWER_LIP_CENTRE])
    assert gap_mm == pytest.approx(2.37, abs=0.01)


def test_regions(flame_masks):
    regions = FlameRegions.load(flame_masks)
    assert regions.lips.dtype == np.int64 and len(regions.lips) == 254
    assert len(np.unique(regions.lips)) == 250
    assert len(regions.upper_face) == 1203
    assert np.array_equal(regions.upper_face, np.unique(regions.upper_face))
    assert {"lips", "face", "forehead", "nose", "eye_region", "neck", "scalp"} <= set(regions.masks)
    assert all(mask.dtype == np.int64 for mask in regions.masks.values())


def test_regions_missing_file(tmp_path):
    with pytest.raises(MeshError, match=r"nowhere\.npz: FLAME masks file not found.*flame\.is\.tue\.mpg\.de"):
        FlameRegions.load(tmp_path / "nowhere.npz")


def test_regions_corrupt_file(tmp_path):
    path = tmp_path / "masks.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(MeshError, match=r"masks\.npz: not a readable \.npz of FLAME masks"):
        FlameRegions.load(path)


def test_regions_missing_keys(tmp_path):
    path = tmp_path / "masks.npz"
    np.savez(path, lips=np.arange(10), nose=np.arange(5))
    with pytest.raises(MeshError, match=r"missing mask\(s\) eye_region, forehead; found lips, nose; "
                                        r"FLAME masks need lips, eye_region, forehead, nose"):
        FlameRegions.load(path)


def test_regions_out_of_range(tmp_path):
    path = tmp_path / "masks.npz"
    np.savez(path, lips=np.array([0, 5023]), eye_region=np.arange(3), forehead=np.arange(3), nose=np.arange(3))
    with pytest.raises(MeshError, match=r"mask 'lips' has vertex indices from 0 to 5023; FLAME vertex indices "
                                        r"are 0 to 5022"):
        FlameRegions.load(path)


def test_regions_non_integer_mask(tmp_path):
    path = tmp_path / "masks.npz"
    np.savez(path, lips=np.zeros(3), eye_region=np.arange(3), forehead=np.arange(3), nose=np.arange(3))
    with pytest.raises(MeshError, match=r"mask 'lips' is a float64 array of shape \(3,\); expected a 1-D integer"):
        FlameRegions.load(path)


@pytest.fixture
def no_flame_env(monkeypatch):
    monkeypatch.delenv("FLAME_TEMPLATE", raising=False)
    monkeypatch.delenv("FLAME_MASKS", raising=False)
    return monkeypatch


def test_find_template_path(no_flame_env, tmp_path, flame_ply):
    assert find_template_path(flame_ply) == flame_ply
    with pytest.raises(MeshError, match=r"No FLAME template given and \$FLAME_TEMPLATE is not set.*VOCA "
                                        r"repository \(template/FLAME_sample\.ply\).*not bundled.*licence"):
        find_template_path()
    no_flame_env.setenv("FLAME_TEMPLATE", str(flame_ply))
    assert find_template_path() == flame_ply
    no_flame_env.setenv("FLAME_TEMPLATE", str(tmp_path / "gone.ply"))
    with pytest.raises(MeshError, match=r"gone\.ply \(from \$FLAME_TEMPLATE\) does not exist"):
        find_template_path()
    with pytest.raises(MeshError, match=r"other\.ply \(from the given path\) does not exist"):
        find_template_path(tmp_path / "other.ply")


def test_find_masks_path(no_flame_env, tmp_path, flame_ply, flame_masks):
    assert find_masks_path(flame_masks) == flame_masks
    with pytest.raises(MeshError, match=r"neither \$FLAME_MASKS nor \$FLAME_TEMPLATE is set.*FLAME_masks\.pkl.*"
                                        r"flame\.is\.tue\.mpg\.de.*convert it to FLAME_masks\.npz.*licence"):
        find_masks_path()
    no_flame_env.setenv("FLAME_TEMPLATE", str(flame_ply))   # the shared folder keeps the masks beside it
    assert find_masks_path() == flame_ply.parent / "FLAME_masks.npz"
    no_flame_env.setenv("FLAME_TEMPLATE", str(tmp_path / "template.ply"))
    with pytest.raises(MeshError, match=r"FLAME_masks\.npz \(next to \$FLAME_TEMPLATE\) does not exist"):
        find_masks_path()
    no_flame_env.setenv("FLAME_MASKS", str(flame_masks))
    assert find_masks_path() == flame_masks
    no_flame_env.setenv("FLAME_MASKS", str(tmp_path / "gone.npz"))
    with pytest.raises(MeshError, match=r"gone\.npz \(from \$FLAME_MASKS\) does not exist"):
        find_masks_path()
