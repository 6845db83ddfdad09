"""pip bpy 4.5 hangs in exit() when bpy outlives interpreter teardown (its sound thread's condition variable is
destroyed while the thread waits on it); an evaluated typing generic of an add-on class (typing's cache -> the class
-> its module -> bpy) was enough. A process that imports the add-on must end by itself (issue 17, NOTE2's exit hang)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy")
REPO = Path(__file__).resolve().parents[1]
EXIT_LIMIT_S = 60   # a hung process never ends; a clean one ends in seconds


def test_a_process_that_imports_the_add_on_ends_by_itself():
    script = "import blender_addon.pipeline, blender_addon.scoring; print('imported', flush=True)"
    try:
        run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                             timeout=EXIT_LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process did not end within {EXIT_LIMIT_S} s of importing the add-on (pip bpy exit hang)")
    assert run.returncode == 0 and "imported" in run.stdout, run.stderr[-2000:]
