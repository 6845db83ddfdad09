#!/usr/bin/env bash
# The main job, end to end: set up, build the add-on zip, install it into a headless Blender, import the
# FLAME template, animate it from the bundled (synthetic, espeak-ng) sample sentence with the default
# generator, save out/demo.blend, render a few preview frames to out/preview/ and print the scores.
#   FLAME_TEMPLATE=/path/to/FLAME_sample.ply ./demo.sh
# Blender: Debian's `blender` when it is on the PATH (a real install of the zip), else pip bpy from .venv.
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup.sh

if [ -z "${FLAME_TEMPLATE:-}" ] && [ -f ../shared/flame/FLAME_sample.ply ]; then
    FLAME_TEMPLATE=../shared/flame/FLAME_sample.ply
    echo "demo: FLAME_TEMPLATE is not set; using $FLAME_TEMPLATE (found beside the repository)"
fi
if [ -z "${FLAME_TEMPLATE:-}" ] || [ ! -f "$FLAME_TEMPLATE" ]; then
    cat >&2 <<'HOW'
demo: no FLAME template. Set FLAME_TEMPLATE to a FLAME-topology mesh (5023 vertices), e.g.
  FLAME_TEMPLATE=/path/to/FLAME_sample.ply ./demo.sh
Get FLAME_sample.ply from the VOCA repository (https://github.com/TimoBolkart/voca, template/FLAME_sample.ply)
or export a template from the FLAME model (https://flame.is.tue.mpg.de, free registration). It is not
bundled because the FLAME licence does not allow redistribution. Put FLAME_masks.npz beside it for SLCC.
HOW
    exit 1
fi

echo "demo: building the add-on zip"
.venv/bin/python build_addon.py --platform linux-x64
zip=$(ls dist/flame_talking_heads-*-linux_x64.zip)

mkdir -p out
export BLENDER_USER_SCRIPTS="$PWD/out/blender-user/scripts" BLENDER_USER_CONFIG="$PWD/out/blender-user/config"
args=(--zip "$zip" --template "$FLAME_TEMPLATE" --audio samples/sample_sentence.wav --out-blend out/demo.blend
      --render-dir out/preview --render-frames 3 --result-json out/demo.json)
if command -v blender >/dev/null 2>&1; then
    echo "demo: installing the zip into $(blender --version 2>/dev/null | head -1) (headless) and animating"
    run=(blender -b --factory-startup --python-exit-code 1 -P demo_blender.py -- "${args[@]}")
else
    echo "demo: no 'blender' on the PATH; installing the zip into pip bpy (.venv) and animating"
    run=(.venv/bin/python demo_blender.py -- "${args[@]}")
fi
set +e
"${run[@]}" > out/demo.log 2>&1
status=$?
set -e
grep -E '^(demo|Error|Traceback|  File|[A-Za-z]+Error)' out/demo.log || true
if [ "$status" -eq 3 ]; then
    echo "demo: STOPPED: no generator model is shipped yet (models/generators/ is empty), so there is nothing"
    echo "demo: honest to animate with. out/demo.blend holds the imported head only; no preview was rendered."
    exit 3
fi
[ "$status" -eq 0 ] || { echo "demo: the Blender step failed (exit $status)" >&2; exit "$status"; }
echo "demo: done: out/demo.blend, preview frames in out/preview/, results in out/demo.json"
