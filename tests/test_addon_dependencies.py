"""Legacy installs unpack the bundled wheels for the running Python into lib/site-<tag>: never half of them,
a failure leaves no folder and is retried, a Python without wheels gets one clear error; bl_info declares the
Blender version the wheels really cover (no bpy needed: dependencies.py is plain Python)."""

import ast
import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"


def _wheel(folder: Path, package: str, python: str, abi: str, broken: bool = False) -> Path:
    path = folder / f"{package}-1.0-{python}-{abi}-manylinux_2_28_x86_64.whl"
    if broken:
        path.write_bytes(b"not a zip")
        return path
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "VALUE = 1\n")
    return path


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A copy of dependencies.py in an add-on folder with lib/ and wheels/, needing two fake packages."""
    addon = tmp_path / "flame_talking_heads"
    (addon / "lib").mkdir(parents=True)
    (addon / "wheels").mkdir()
    shutil.copy(REPO / "blender_addon" / "dependencies.py", addon / "dependencies.py")
    spec = importlib.util.spec_from_file_location("dependencies_under_test", addon / "dependencies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "REQUIRED_MODULES", ("th_fake_pure", "th_fake_native"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return module


def _lib_folders(module) -> list:
    return sorted(path.name for path in module.LIB_DIR.iterdir())


def test_a_python_without_wheels_gets_a_clear_error_and_no_half_installed_folder(bundle):
    """Official Blender 3.4-4.0 (Python 3.10): the py3 wheel fits, the native one does not."""
    _wheel(bundle.WHEELS_DIR, "th_fake_pure", "py3", "none")
    _wheel(bundle.WHEELS_DIR, "th_fake_native", "cp39", "cp39")
    with pytest.raises(ImportError, match=r"no wheels of th_fake_native .*Python 3\.11 or 3\.13"):
        bundle.ensure_importable()
    assert _lib_folders(bundle) == []


def test_a_failed_unpack_leaves_nothing_and_the_next_enable_retries(bundle):
    _wheel(bundle.WHEELS_DIR, "th_fake_pure", "py3", "none")
    broken = _wheel(bundle.WHEELS_DIR, "th_fake_native", TAG, TAG, broken=True)
    with pytest.raises(ImportError, match="will try again"):
        bundle.ensure_importable()
    assert _lib_folders(bundle) == []
    broken.unlink()
    _wheel(bundle.WHEELS_DIR, "th_fake_native", TAG, TAG)
    bundle.ensure_importable()
    assert _lib_folders(bundle) == [f"site-{TAG}"]
    site = bundle.LIB_DIR / f"site-{TAG}"
    assert (site / "th_fake_pure").is_dir() and (site / "th_fake_native").is_dir() and str(site) in sys.path


def test_a_half_filled_site_folder_from_an_older_version_is_replaced(bundle):
    _wheel(bundle.WHEELS_DIR, "th_fake_pure", "py3", "none")
    _wheel(bundle.WHEELS_DIR, "th_fake_native", TAG, TAG)
    (bundle.LIB_DIR / f"site-{TAG}" / "th_fake_pure").mkdir(parents=True)   # th_fake_native never arrived
    (bundle.LIB_DIR / ".staging-site-cp311-abc").mkdir()                     # a Blender killed mid-unpack
    bundle.ensure_importable()
    assert _lib_folders(bundle) == [f"site-{TAG}"]
    assert (bundle.LIB_DIR / f"site-{TAG}" / "th_fake_native" / "__init__.py").is_file()


def test_bl_info_declares_the_first_official_blender_the_bundled_wheels_cover():
    """The zip bundles cp311 and cp313 wheels (build_addon.PYTHON_VERSIONS): official Blender 4.1+ (3.4-4.0 run
    Python 3.10); the extension manifest's minimum is 4.2, the first Blender with extensions."""
    tree = ast.parse((REPO / "blender_addon" / "__init__.py").read_text())
    bl_info = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", "") == "bl_info")
    assert tuple(bl_info["blender"]) == (4, 1, 0)
    sys.path.insert(0, str(REPO))
    import build_addon
    assert build_addon.PYTHON_VERSIONS == ("3.11", "3.13")
    manifest = (REPO / "blender_addon" / "blender_manifest.toml").read_text()
    assert 'blender_version_min = "4.2.0"' in manifest
