"""A corrupt generator (NaN or bit-flipped weights in a copy of a shipped one) is refused in one place,
backend.generators.check_output: `backend animate` prints one line, exits non-zero and writes nothing."""

import numpy as np
import pytest

from backend.cli import main
from backend.errors import ModelError
from backend.generators import MAX_DISPLACEMENT_M, check_output
from corrupt_models import SHIPPED, corrupt_copy

REPO = SHIPPED.parents[2]
SAMPLE = REPO / "samples" / "sample_sentence.wav"


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="the shipped generators are absent")
@pytest.mark.parametrize("kind, message", [("nan", "NaN or infinite vertices"),
                                           ("bitflip", r"NaN or infinite vertices|moved a vertex")])
def test_backend_animate_refuses_a_corrupt_generator_and_writes_nothing(tmp_path, flame_ply, capsys, kind, message):
    folder = corrupt_copy(tmp_path / "generators" / "broken", kind)
    out = tmp_path / "seq.npy"
    code = main(["animate", "--audio", str(SAMPLE), "--template", str(flame_ply), "--model", str(folder),
                 "--out", str(out)])
    error = capsys.readouterr().err
    assert code != 0 and not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "generators"]
    assert len(error.strip().splitlines()) == 1 and "corrupt" in error
    import re
    assert re.search(message, error), error


def test_check_output_bounds_displacement_and_finiteness():
    template = np.zeros((5023, 3), np.float32)
    moving = np.zeros((4, 5023, 3), np.float32)
    moving[2, 3504, 1] = -0.99 * MAX_DISPLACEMENT_M
    assert check_output(moving, template, "g") is moving
    moving[3, 10, 0] = 1.01 * MAX_DISPLACEMENT_M
    with pytest.raises(ModelError, match=r"moved a vertex 0\.101 m .*frame 3"):
        check_output(moving, template, "g")
    moving[3, 10, 0] = np.nan
    with pytest.raises(ModelError, match="1 of 4 frames"):
        check_output(moving, template, "g")
