"""`python -m backend info`: text and JSON descriptions of meshes, sequences and audio; exit code 2 on bad files."""

import json

import numpy as np
import pytest
import soundfile

from backend.audio import SUPPORTED_EXTENSIONS
from backend.cli import main
from backend.mesh import Mesh, read_mesh, save_vertex_sequence, write_mesh


def run_info(capsys, *args):
    code = main(["info", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flame_mesh_text(capsys, flame_obj):
    code, out, _ = run_info(capsys, flame_obj)
    assert code == 0
    assert "mesh: 5023 vertices, 9976 faces" in out
    assert "UVs: yes (5118 texture coordinates)" in out
    assert "bounding box: 0.2073 x 0.3136 x 0.2217 m" in out
    assert "FLAME topology: yes" in out


def test_flame_mesh_json(capsys, flame_ply):
    code, out, _ = run_info(capsys, flame_ply, "--json")
    description = json.loads(out)
    assert code == 0
    assert description["kind"] == "mesh" and description["flame_topology"] is True
    assert (description["vertices"], description["faces"], description["uvs"]) == (5023, 9976, 0)
    expected_size = np.ptp(read_mesh(flame_ply).vertices, axis=0)
    assert np.allclose(description["bounding_box_m"], expected_size)


def test_non_flame_mesh_says_why(capsys, tmp_path):
    path = tmp_path / "tetra.ply"
    write_mesh(path, Mesh(vertices=np.eye(4, 3), faces=np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])))
    code, out, _ = run_info(capsys, path)
    assert code == 0
    assert "mesh: 4 vertices, 4 faces" in out and "UVs: no" in out
    assert ("FLAME topology: no (has 4 vertices and 4 faces; FLAME topology needs 5023 vertices and "
            "9976 triangles)") in out


def test_flame_sequence(capsys, tmp_path, flame_ply):
    path = tmp_path / "clip.npy"
    save_vertex_sequence(path, np.repeat(read_mesh(flame_ply).vertices[None], 45, axis=0))
    code, out, _ = run_info(capsys, path)
    assert code == 0
    assert "vertex sequence: 45 frames of 5023 vertices" in out
    assert "duration: 1.500 s at 30 fps" in out
    assert "FLAME topology: yes" in out


def test_non_flame_sequence_json(capsys, tmp_path):
    path = tmp_path / "small.npy"
    np.save(path, np.zeros((10, 300), dtype=np.float32))
    code, out, _ = run_info(capsys, path, "--json")
    description = json.loads(out)
    assert code == 0
    assert (description["frames"], description["vertices"], description["flame_topology"]) == (10, 100, False)
    assert description["not_flame_because"].startswith("has 100 vertices; FLAME topology needs 5023 vertices")


def test_audio(capsys, tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.zeros(24000, dtype=np.int16), 16000, subtype="PCM_16")
    code, out, _ = run_info(capsys, path)
    assert code == 0
    assert "audio: WAV PCM_16" in out
    assert "duration: 1.500 s (24000 samples)" in out
    assert "sample rate: 16000 Hz, channels: 1" in out


def test_real_speech_json(capsys, speech_dir):
    path = sorted(speech_dir.glob("*.flac"))[0]
    code, out, _ = run_info(capsys, path, "--json")
    description = json.loads(out)
    assert code == 0 and description["kind"] == "audio"
    assert description["sample_rate"] == 16000 and description["channels"] == 1
    assert description["duration_s"] == pytest.approx(description["frames"] / 16000)


def test_bad_mesh_exits_2(capsys, tmp_path):
    path = tmp_path / "broken.ply"
    path.write_bytes(b"\x00\x01 not a mesh")
    code, out, err = run_info(capsys, path)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "broken.ply: not a PLY file (it does not start with 'ply')" in err


def test_bad_sequence_exits_2(capsys, tmp_path):
    path = tmp_path / "clip.npy"
    np.save(path, np.full((3, 12), np.nan))
    code, _, err = run_info(capsys, path)
    assert code == 2
    assert "clip.npy: has NaN or infinite values in 3 of 3 frames (first at frame 0)" in err


def test_unknown_type_lists_supported(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, _, err = run_info(capsys, path)
    assert code == 2
    audio = ", ".join(SUPPORTED_EXTENSIONS)
    assert (f"notes.txt: unsupported file type '.txt'; info describes audio ({audio}), meshes "
            "(.ply, .obj) and vertex sequences (.npy)") in err


def test_missing_file_exits_2(capsys, tmp_path):
    code, _, err = run_info(capsys, tmp_path / "gone.obj")
    assert code == 2 and "gone.obj: file not found" in err
