"""Headless Blender entry for training: runs `python -m training <args>` inside Blender's Python.

    blender -b --python-exit-code 1 -P training/blender_run.py -- <the same args as python -m training>

Finds the project's virtual environment (`.venv` beside this folder, or $VIRTUAL_ENV), puts its
site-packages and the repository on sys.path, runs the training command line, and ends with
sys.exit(code): Blender then exits with the command's code (Blender 3.4 can crash at exit after importing
torch unless the script exits itself). A venv whose Python version differs from Blender's cannot be used
(compiled wheels would not load): that is reported and the exit code is 2.
"""

import os
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def venv_site_packages(repository: Path = REPOSITORY) -> Path:
    """site-packages of $VIRTUAL_ENV or <repository>/.venv for this interpreter's major.minor version."""
    venv = Path(os.environ.get("VIRTUAL_ENV") or repository / ".venv")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = venv / "lib" / version / "site-packages"
    if not candidate.is_dir():
        found = sorted(path.parent.name for path in venv.glob("lib/python*/site-packages"))
        raise SystemExit(f"error: no {version} site-packages in {venv} (found: {', '.join(found) or 'none'}); "
                         f"Blender's Python is {sys.version.split()[0]}, so the project's venv must use the same "
                         "version (./scripts/setup.sh)")
    return candidate


def training_arguments(argv: list) -> list:
    """The arguments after Blender's `--` separator."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


def mark_modules_as_not_addons() -> None:
    """Blender disables add-ons at exit by asking every module in sys.modules for `__addon_enabled__`; torch's
    `torch.ops` and `torch.classes` answer any attribute with a namespace object, so Blender would call their
    `unregister()` and print tracebacks. Give such modules a real False."""
    for module in list(sys.modules.values()):
        if not isinstance(getattr(module, "__addon_enabled__", False), bool):
            module.__dict__["__addon_enabled__"] = False


def main() -> int:
    try:
        site_packages = venv_site_packages()
    except SystemExit as problem:
        print(problem, file=sys.stderr)
        return 2
    for path in (str(REPOSITORY), str(site_packages)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from training.__main__ import main as training_main
    try:
        return training_main(training_arguments(sys.argv))
    finally:
        mark_modules_as_not_addons()


if __name__ == "__main__":
    sys.stdout.flush()
    sys.exit(main())
