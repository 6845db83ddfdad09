#!/usr/bin/env bash
# Create or update .venv313: pip bpy 5.2 (Blender 5.2 LTS) on Python 3.13, for the extension install test
# (tests/test_addon_install.py). Only bpy and its numpy live here: the add-on's own wheels (scipy, onnxruntime,
# soundfile, cffi) come from the built zip, installed by Blender itself, which is what the test checks.
# Idempotent (stamp of this script + the interpreter). Cost on a fresh machine: ~420 MB download, ~1 GB disk,
# ~30-60 s. numpy < 2.5: the scipy 1.15.3 wheel the zip ships declares numpy >=1.23.5,<2.5.
set -euo pipefail
cd "$(dirname "$0")/.."

is_313() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; }
PYTHON313="${PYTHON313:-}"
if ! is_313 "$PYTHON313"; then   # python3.13 on the PATH (a pyenv shim may exist yet fail), else pyenv's 3.13
    PYTHON313=$(command -v python3.13 || true)
    if ! is_313 "$PYTHON313" && command -v pyenv >/dev/null 2>&1; then
        PYTHON313=$(ls -d "$(pyenv root)"/versions/3.13*/bin/python3.13 2>/dev/null | tail -1)
    fi
fi
if ! is_313 "$PYTHON313"; then
    echo "setup_bpy52: Python 3.13 not found (set PYTHON313=/path/to/python3.13)" >&2
    exit 1
fi
requirements=('bpy==5.2.*' 'numpy>=2.2,<2.5')
want="$(printf '%s\n' "${requirements[@]}" "$("$PYTHON313" -c 'import sys; print(sys.version)')" | sha256sum | cut -d' ' -f1)"
stamp=.venv313/.setup-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup_bpy52: .venv313 is up to date"
    exit 0
fi
echo "setup_bpy52: installing pip bpy 5.2 into .venv313 (~420 MB download)"
start=$(date +%s)
[ -x .venv313/bin/python ] || "$PYTHON313" -m venv .venv313
.venv313/bin/python -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
echo "$want" > "$stamp"
echo "setup_bpy52: done in $(( $(date +%s) - start )) s"
