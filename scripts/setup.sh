#!/usr/bin/env bash
# Create or update .venv with every dependency in one resolve (requirements.txt).
# Idempotent: a stamp of requirements.txt + the interpreter makes a second run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: Python 3.11 is required (bpy 4.5 and the CPU torch wheel are built for it);" \
         "found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi

want="$(cat requirements.txt; "$PYTHON" -c 'import sys; print(sys.version)')"
want="$(printf '%s' "$want" | sha256sum | cut -d' ' -f1)"
stamp=.venv/.setup-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup: .venv is up to date"
    exit 0
fi

echo "setup: installing dependencies into .venv (first run downloads bpy and friends: a few minutes)"
start=$(date +%s)
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# Test oracle only: torchaudio's C extension needs CUDA torch, so tests read its pure-torch
# compliance/kaldi.py straight from the wheel (never installed, never imported as a package).
rm -rf .venv/oracle
.venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d .venv/oracle "torchaudio==2.11.0"
echo "$want" > "$stamp"
echo "setup: done in $(( $(date +%s) - start )) s"
