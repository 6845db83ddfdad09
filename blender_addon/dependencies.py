"""Make the bundled `backend` and the Python packages it needs importable.

Inside the built zip the add-on carries `lib/backend`, `lib/models` and `wheels/*.whl` (CPython 3.11 and 3.13:
official Blender 4.1+, or a Blender built with one of those Pythons, such as Debian's 3.4). Blender 4.2+ installs
an extension's wheels itself (they are listed in blender_manifest.toml). A legacy add-on install (Edit >
Preferences > Add-ons > Install, or Blender before 4.2) does not, so on first use the wheels matching the
running Python are unpacked into `lib/site-<tag>` and put on sys.path. The unpacking goes into a temporary
folder that is renamed to `site-<tag>` only once every needed package is in it: a failed or interrupted
install leaves no folder behind and is simply tried again next time. A Python the bundle has no wheels for
(e.g. 3.10 in official Blender 3.4-4.0) gets one clear ImportError naming what it needs.
In a repository checkout none of these folders exist and nothing is changed.
"""

import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
LIB_DIR = ADDON_DIR / "lib"
WHEELS_DIR = ADDON_DIR / "wheels"
REQUIRED_MODULES = ("numpy", "scipy", "soundfile", "onnxruntime")
STAGING_PREFIX = ".staging-"


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def _wheel_fits(wheel: Path, python_tag: str) -> bool:
    """A wheel named name-version-pytag-abitag-platform.whl fits when it is for this CPython or any Python."""
    python, abi = wheel.name[:-len(".whl")].split("-")[-3:-1]
    return abi in (python_tag, "abi3") or (abi == "none" and "py3" in python.split("."))


def _add_path(path: Path) -> None:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def _missing_in(folder: Path, names) -> list:
    return [name for name in names if importlib.machinery.PathFinder.find_spec(name, [str(folder)]) is None]


def _unpack(site: Path, wanted: list) -> None:
    """Unpack the fitting wheels into a temporary folder beside `site` and rename it to `site` once it holds
    every module in `wanted`; on any failure remove it and raise ImportError."""
    wheels = [wheel for wheel in sorted(WHEELS_DIR.glob("*.whl")) if _wheel_fits(wheel, _python_tag())]
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + site.name + "-", dir=LIB_DIR))
    try:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(staging)
        still_missing = _missing_in(staging, wanted)
        if still_missing:
            raise ImportError(
                f"Talking Head: this Blender runs Python {sys.version_info.major}.{sys.version_info.minor}, and the "
                f"add-on bundles no wheels of {', '.join(still_missing)} for it; it needs a Blender running "
                "Python 3.11 or 3.13 (official Blender 4.1 or newer)")
        staging.rename(site)
    except (OSError, zipfile.BadZipFile) as error:
        raise ImportError(f"Talking Head: could not unpack its bundled wheels into {site} ({error}); "
                          "it will try again next time the add-on is enabled") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def ensure_importable() -> None:
    """Put lib/ on sys.path and, if packages are still missing, unpack the fitting bundled wheels."""
    if not LIB_DIR.is_dir():
        return
    _add_path(LIB_DIR)
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if not missing or not WHEELS_DIR.is_dir():
        return
    for leftover in LIB_DIR.glob(STAGING_PREFIX + "*"):   # a Blender killed mid-unpack
        shutil.rmtree(leftover, ignore_errors=True)
    site = LIB_DIR / f"site-{_python_tag()}"
    if site.is_dir() and _missing_in(site, missing):   # made by an older version that kept partial folders
        shutil.rmtree(site)
    if not site.is_dir():
        _unpack(site, missing)
    _add_path(site)
