"""Make the bundled `backend` and the Python packages it needs importable.

Inside the built zip the add-on carries `lib/backend`, `lib/models` and `wheels/*.whl`. Blender 4.2+
installs an extension's wheels itself (they are listed in blender_manifest.toml). A legacy add-on
install (Edit > Preferences > Add-ons > Install, or Blender before 4.2) does not, so on first use the
wheels matching the running Python are unpacked into `lib/site-<tag>` and put on sys.path.
In a repository checkout none of these folders exist and nothing is changed.
"""

import importlib.util
import sys
import zipfile
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
LIB_DIR = ADDON_DIR / "lib"
WHEELS_DIR = ADDON_DIR / "wheels"
REQUIRED_MODULES = ("numpy", "scipy", "soundfile", "onnxruntime")


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def _wheel_fits(wheel: Path, python_tag: str) -> bool:
    """A wheel named name-version-pytag-abitag-platform.whl fits when it is for this CPython or any Python."""
    python, abi = wheel.name[:-len(".whl")].split("-")[-3:-1]
    return abi in (python_tag, "abi3") or (abi == "none" and "py3" in python.split("."))


def _add_path(path: Path) -> None:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def ensure_importable() -> None:
    """Put lib/ on sys.path and, if packages are still missing, unpack the fitting bundled wheels."""
    if not LIB_DIR.is_dir():
        return
    _add_path(LIB_DIR)
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if not missing or not WHEELS_DIR.is_dir():
        return
    site = LIB_DIR / f"site-{_python_tag()}"
    if not site.is_dir():
        staging = site.with_name(site.name + ".partial")
        for wheel in sorted(WHEELS_DIR.glob("*.whl")):
            if _wheel_fits(wheel, _python_tag()):
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(staging)
        staging.rename(site)
    _add_path(site)
