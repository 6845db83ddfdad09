"""The built zip installed into Debian Blender (3.4, legacy add-on path: the bundled wheels are unpacked on
first use) headless, animating a FLAME head with the test generator, checked against the backend."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_addon import write_rms_generator

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--platform", "linux-x64", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    return next(out.glob("*.zip"))


def test_build_is_reproducible_and_holds_addon_backend_and_wheels(linux_zip, tmp_path):
    import zipfile
    subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--platform", "linux-x64", "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    assert (tmp_path / linux_zip.name).read_bytes() == linux_zip.read_bytes()
    names = zipfile.ZipFile(linux_zip).namelist()
    assert "flame_talking_heads/__init__.py" in names and "flame_talking_heads/lib/backend/generators.py" in names
    wheels = [name for name in names if name.endswith(".whl")]
    for package in ("onnxruntime", "scipy", "cffi"):
        assert {tag for tag in ("cp311", "cp313") if any(package in w and tag in w for w in wheels)} == {"cp311", "cp313"}
    manifest = zipfile.ZipFile(linux_zip).read("flame_talking_heads/blender_manifest.toml").decode()
    assert 'platforms = ["linux-x64"]' in manifest and all(w.split("/")[-1] in manifest for w in wheels)


@pytest.mark.skipif(shutil.which("blender") is None, reason="Debian blender is not installed (apt-get install blender)")
def test_debian_blender_installs_the_zip_and_animates(linux_zip, flame_ply, tmp_path):
    write_rms_generator(tmp_path / "models" / "generators" / "rms_jaw")
    result_json = tmp_path / "result.json"
    environment = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"),
                       BLENDER_USER_CONFIG=str(tmp_path / "config"))
    run = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1", "-P", str(REPO / "demo_blender.py"), "--",
         "--zip", str(linux_zip), "--template", str(flame_ply), "--audio", str(REPO / "samples" / "sample_sentence.wav"),
         "--out-blend", str(tmp_path / "demo.blend"), "--models", str(tmp_path / "models"),
         "--result-json", str(result_json)], env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(result_json.read_text())
    assert result["frames"] == 156 and result["max_abs_error_vs_backend"] < 1e-6
    assert result["scores"]["MTM"] is not None and result["scores"]["PLRS"] is None
    assert (tmp_path / "scripts" / "addons" / "flame_talking_heads" / "lib" / "site-cp311").is_dir()
    assert (tmp_path / "demo.blend").is_file()


@pytest.mark.skipif(shutil.which("blender") is None or shutil.which("xvfb-run") is None,
                    reason="needs Debian blender and xvfb-run (apt-get install blender xvfb) for a real window")
def test_in_a_blender_window_undo_redo_and_esc_restore_the_scene_and_the_panel_draws(linux_zip, flame_ply, tmp_path):
    """demo_blender.py --window under Xvfb: the modal operator in a real window, Edit > Undo / Redo, Esc."""
    write_rms_generator(tmp_path / "models" / "generators" / "rms_jaw")
    result_json, shots = tmp_path / "window.json", tmp_path / "shots"
    environment = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"),
                       BLENDER_USER_CONFIG=str(tmp_path / "config"))
    run = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1400x1200x24", "blender", "--factory-startup", "--enable-event-simulate",
         "-P", str(REPO / "demo_blender.py"), "--", "--zip", str(linux_zip), "--template", str(flame_ply),
         "--audio", str(REPO / "samples" / "sample_sentence.wav"), "--out-blend", str(tmp_path / "unused.blend"),
         "--models", str(tmp_path / "models"), "--window", "--screenshot-dir", str(shots),
         "--result-json", str(result_json)], env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and result_json.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(result_json.read_text())
    assert result["ok"] and result["invoke"] == ["RUNNING_MODAL"] and result["animated"], result
    assert result["undo_restores_scene"] and result["redo_restores_animation"], result
    assert result["esc_cancels"] and result["esc_leaves_scene_unchanged"], result
    for name in ("panel.png", "panel_disabled.png"):
        assert (shots / name).stat().st_size > 10_000   # a real capture of the viewport and panel
