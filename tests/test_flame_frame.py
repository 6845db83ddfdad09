"""backend.flame_frame (issue 16 item 9): a FLAME head in other units, rotated or mirrored moves like the original.

The copies are made from ../shared/flame/FLAME_sample.ply; nothing about FLAME's geometry is stored here.
"""

import numpy as np
import pytest
import soundfile

from backend.cli import main
from backend.flame_frame import FlameFrame
from backend.mesh import Mesh, load_flame_mesh, read_mesh, write_mesh
from onnx_test_models import tone

Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)        # FLAME y (up) becomes z
TURNED = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float64)      # 90 degrees about y
MIRROR_X = np.diag([-1.0, 1.0, 1.0])

COPIES = {  # name: (scale, linear map applied to FLAME metres, what the notes must say)
    "centimetres": (100.0, np.eye(3), ["centimetres"]),
    "millimetres": (1000.0, np.eye(3), ["millimetres"]),
    "inches": (1 / 0.0254, np.eye(3), ["inches"]),
    "z-up": (1.0, Z_UP, ["rotated"]),
    "turned": (1.0, TURNED, ["rotated"]),
    "mirrored": (1.0, MIRROR_X, ["mirrored"]),
    "mirrored z-up cm": (100.0, Z_UP @ MIRROR_X, ["centimetres", "mirrored"]),
}


@pytest.fixture(scope="module")
def original(flame_ply):
    return load_flame_mesh(flame_ply).vertices.astype(np.float64)


def transformed(vertices, scale, linear):
    return scale * np.asarray(vertices, np.float64) @ linear.T


def test_a_flame_head_in_metres_is_the_identity(original):
    frame = FlameFrame.recover(original)
    assert frame.is_identity and frame.notes == ()


@pytest.mark.parametrize("name", sorted(COPIES))
def test_units_orientation_and_handedness_are_recovered(original, name):
    scale, linear, said = COPIES[name]
    copy = transformed(original, scale, linear)
    frame = FlameFrame.recover(copy)
    np.testing.assert_allclose(frame.to_flame(copy), original, atol=1e-5)
    np.testing.assert_allclose(frame.to_local(frame.to_flame(copy)), copy, atol=1e-5 * scale)
    assert frame.mirrored == (np.linalg.det(linear) < 0)
    for word in said:
        assert any(word in note for note in frame.notes), frame.notes


def test_a_slightly_tilted_head_snaps_to_its_axes(original):
    angle = np.radians(12)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    frame = FlameFrame.recover(original @ (TURNED @ tilt).T)
    np.testing.assert_allclose(frame.rotation, TURNED.T, atol=1e-12)   # the tilt itself is the artist's


def test_implausible_heads_are_warned_about(original):
    assert any("no length unit" in note for note in FlameFrame.recover(3.0 * original).notes)
    squashed = original * [1.0, 0.3, 1.0]
    assert any("proportions" in note for note in FlameFrame.recover(squashed).notes)
    angle = np.radians(45)
    oblique = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    assert any("estimated from landmarks" in note for note in FlameFrame.recover(original @ oblique.T).notes)


def test_fitting_onto_a_template_keeps_a_mirror_image_mirrored(original):
    copy = transformed(original, 100.0, MIRROR_X) + [0.5, 0.0, 2.0]
    frame = FlameFrame.fit(copy, original)
    assert frame.mirrored and any("mirror" in note for note in frame.notes)
    np.testing.assert_allclose(frame.to_flame(copy), original, atol=1e-5)


@pytest.mark.parametrize("name", ["centimetres", "z-up", "mirrored z-up cm"])
def test_animate_moves_a_transformed_template_like_the_original(models_dir, flame_ply, original, tmp_path,
                                                                name, capsys):
    scale, linear, said = COPIES[name]
    mesh = read_mesh(flame_ply)
    write_mesh(tmp_path / "copy.ply", Mesh(vertices=transformed(mesh.vertices, scale, linear), faces=mesh.faces))
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, tone(1.0, 16000), 16000, subtype="PCM_16")
    common = ["animate", "--audio", str(audio), "--model", "offset", "--models-dir", str(models_dir)]
    assert main(common + ["--template", str(flame_ply), "--out", str(tmp_path / "original.npy")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(common + ["--template", str(tmp_path / "copy.ply"), "--out", str(tmp_path / "copy.npy")]) == 0
    warnings = capsys.readouterr().err
    assert all(word in warnings for word in said), warnings
    moved = np.load(tmp_path / "original.npy").astype(np.float64)
    np.testing.assert_allclose(np.load(tmp_path / "copy.npy"), transformed(moved, scale, linear), atol=2e-5 * scale)
    motion = moved - original
    assert np.abs(motion).max() > 1e-3   # the test generator does move the head


@pytest.mark.parametrize("name", ["centimetres", "mirrored z-up cm"])
def test_score_measures_a_transformed_animation_like_the_original(models_dir, flame_ply, flame_masks, tmp_path, name,
                                                                 capsys):
    """What `animate` writes for a centimetre or rotated template scores what the same motion in FLAME metres
    scores (issue 16: the PLRS of a centimetre head fell from 0.27 to 0.12 without a word)."""
    import json
    scale, linear, said = COPIES[name]
    mesh = read_mesh(flame_ply)
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, tone(2.0, 16000), 16000, subtype="PCM_16")
    assert main(["animate", "--audio", str(audio), "--model", "offset", "--models-dir", str(models_dir),
                 "--template", str(flame_ply), "--out", str(tmp_path / "original.npy")]) == 0
    np.save(tmp_path / "copy.npy", transformed(np.load(tmp_path / "original.npy"), scale, linear).astype(np.float32))
    write_mesh(tmp_path / "copy.ply", Mesh(vertices=transformed(mesh.vertices, scale, linear), faces=mesh.faces))
    capsys.readouterr()
    scores = {}
    for which, template in (("original", flame_ply), ("copy", tmp_path / "copy.ply")):
        out = tmp_path / f"{which}.json"
        assert main(["score", "--pred", str(tmp_path / f"{which}.npy"), "--audio", str(audio),
                     "--gt", str(tmp_path / f"{which}.npy"), "--template", str(template), "--masks", str(flame_masks), "--json", str(out)]) == 0
        scores[which] = {entry["name"]: entry["value"] for entry in json.loads(out.read_text())["summary"]}
        warnings = capsys.readouterr().err
        assert all(word in warnings for word in said) if which == "copy" else "warning" not in warnings, warnings
    assert scores["original"].keys() == scores["copy"].keys()
    for metric, value in scores["original"].items():
        assert scores["copy"][metric] == pytest.approx(value, rel=1e-3, abs=1e-4), metric
