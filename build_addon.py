"""Build the Blender add-on: one zip per platform in dist/, reproducible byte for byte.

    .venv/bin/python build_addon.py [--platform linux-x64 ...] [--out dist]

Each zip holds one folder `flame_talking_heads/` that is both a Blender 4.2+ extension
(blender_manifest.toml with `wheels` and `platforms`) and a legacy add-on (bl_info in __init__.py):
    __init__.py ... (blender_addon/)     the add-on
    lib/backend/                         the pure-Python core
    lib/models/                          the shipped ONNX models (models/ of the repository, when present)
    wheels/*.whl                         onnxruntime, soundfile, scipy, cffi for CPython 3.11 and 3.13
Wheels are fetched once with `pip download --only-binary=:all: --platform ... --python-version ...` into
.cache/wheels/ (git-ignored). Zip entries are sorted, dated 1980-01-01 and have fixed permissions, so the
same inputs give the same bytes.
"""

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from backend.atomic import atomic_stream

REPO = Path(__file__).resolve().parent
ADDON_ID = "flame_talking_heads"
PYTHON_VERSIONS = ("3.11", "3.13")   # Blender 4.2-5.0 run 3.11, 5.1+ runs 3.13
PLATFORM_TAGS = {   # Blender platform -> pip --platform tags, most preferred first
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64", "macosx_13_0_universal2"),
}
PINNED_FROM_REQUIREMENTS = ("onnxruntime", "soundfile", "scipy")
EXTRA_WHEELS = ("cffi==2.1.1",)   # soundfile's one run-time dependency; numpy comes with Blender
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
STORED_SUFFIXES = (".whl", ".png")   # already compressed


def wheel_requirements() -> list:
    """'name==version' for the bundled wheels, the versions taken from requirements.txt."""
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", (REPO / "requirements.txt").read_text(), re.M))
    missing = [name for name in PINNED_FROM_REQUIREMENTS if name not in pins]
    if missing:
        raise SystemExit(f"build_addon: requirements.txt has no '==' pin for {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in PINNED_FROM_REQUIREMENTS] + list(EXTRA_WHEELS)


def fetch_wheels(platform: str, python: str, cache: Path) -> list:
    """The wheels for one platform and Python version, downloaded into `cache` unless already there."""
    folder = cache / platform / f"cp{python.replace('.', '')}"
    requirements = wheel_requirements()
    wanted = [requirement.split("==")[0].lower() for requirement in requirements]
    have = {path.name.split("-")[0].lower(): path for path in folder.glob("*.whl")}
    if not all(name in have for name in wanted):
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--implementation", "cp", "--python-version", python, "-d", str(folder)]
        for tag in PLATFORM_TAGS[platform]:
            command += ["--platform", tag]
        print(f"build_addon: downloading wheels for {platform}, Python {python}", file=sys.stderr)
        subprocess.run(command + requirements, check=True)
        have = {path.name.split("-")[0].lower(): path for path in folder.glob("*.whl")}
    return sorted(have[name] for name in wanted)


def manifest_text(platform: str, wheels: list) -> str:
    """blender_addon/blender_manifest.toml with this build's `platforms` and `wheels` inserted before its first
    table: TOML puts every key written after `[permissions]` inside that table, and Blender then refuses the
    whole manifest (while its install operator still reports success)."""
    base = (REPO / "blender_addon" / "blender_manifest.toml").read_text()
    table = re.search(r"^\[", base, re.M)
    head, tables = (base[:table.start()], base[table.start():]) if table else (base, "")
    listed = ",\n".join(f'  "./wheels/{wheel.name}"' for wheel in wheels)
    keys = f'platforms = ["{platform}"]\nwheels = [\n{listed},\n]\n'
    return head.rstrip() + "\n" + keys + ("\n" + tables if tables else "")


def _source_files(root: Path, suffixes: tuple) -> list:
    return sorted(path for path in root.rglob("*") if path.is_file() and path.suffix in suffixes
                  and "__pycache__" not in path.parts)


def zip_entries(platform: str, wheels: list) -> dict:
    """{path inside the zip: bytes} for one platform."""
    entries = {}
    for path in _source_files(REPO / "blender_addon", (".py",)):
        entries[f"{ADDON_ID}/{path.relative_to(REPO / 'blender_addon').as_posix()}"] = path.read_bytes()
    entries[f"{ADDON_ID}/blender_manifest.toml"] = manifest_text(platform, wheels).encode("utf-8")
    for path in _source_files(REPO / "backend", (".py",)):
        entries[f"{ADDON_ID}/lib/{path.relative_to(REPO).as_posix()}"] = path.read_bytes()
    models = REPO / "models"
    if models.is_dir():
        for path in _source_files(models, (".onnx", ".json", ".data", ".txt", ".md")):
            entries[f"{ADDON_ID}/lib/{path.relative_to(REPO).as_posix()}"] = path.read_bytes()
    for wheel in wheels:
        entries[f"{ADDON_ID}/wheels/{wheel.name}"] = wheel.read_bytes()
    return entries


def write_zip(path: Path, entries: dict) -> None:
    """Sorted entries, fixed dates and permissions: identical inputs give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_stream(path) as stream, zipfile.ZipFile(stream, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_STORED if name.endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9 if info.compress_type else None)


def build(platform: str, out: Path, cache: Path) -> Path:
    wheels = [wheel for python in PYTHON_VERSIONS for wheel in fetch_wheels(platform, python, cache)]
    version = re.search(r'^version = "([^"]+)"', (REPO / "blender_addon" / "blender_manifest.toml").read_text(),
                        re.M).group(1)
    target = out / f"{ADDON_ID}-{version}-{platform.replace('-', '_')}.zip"
    unique = sorted({wheel.name: wheel for wheel in wheels}.values())   # a py3-none wheel serves every Python once
    write_zip(target, zip_entries(platform, unique))
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORM_TAGS),
                        help="build only this platform (repeatable; default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    parser.add_argument("--wheel-cache", type=Path, default=REPO / ".cache" / "wheels",
                        help="where downloaded wheels are kept (default .cache/wheels/)")
    args = parser.parse_args(argv)
    if not (REPO / "models").is_dir():
        print("build_addon: models/ does not exist: the zip ships no generator or speech-mesh models",
              file=sys.stderr)
    for platform in args.platform or sorted(PLATFORM_TAGS):
        target = build(platform, args.out, args.wheel_cache)
        print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}  "
              f"{target.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
