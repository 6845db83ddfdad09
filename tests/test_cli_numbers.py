"""Numeric command-line options (issue 16, cases of item 10's kind found in this release): a count, a seed or a
rate out of range is refused by the parser with the range it expects — never a traceback deep in numpy, never
silently replaced by a default (onnxruntime takes 0 threads as "every core", the corpus builder took 0 workers the
same way)."""

import subprocess
import sys
from pathlib import Path

import pytest

from backend.errors import BackendError
from training.generators.config import generator_preset

REPO = Path(__file__).resolve().parents[1]


def _run(*argv):
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, expected", [
    (("-m", "backend", "animate", "--threads", "0"), "expected a whole number >= 1; got 0"),
    (("-m", "backend", "animate", "--threads", "-3"), "expected a whole number >= 1; got -3"),
    (("-m", "backend", "score", "--fps", "0"), "expected a number > 0"),
    (("-m", "backend", "score", "--fps", "nan"), "expected a number >= 0; got 'nan'"),
    (("-m", "training.corpus", "build", "--out", "unused", "--seed", "-1"), "expected a whole number >= 0; got -1"),
    (("-m", "training.corpus", "build", "--out", "unused", "--workers", "0"), "expected a whole number >= 1; got 0"),
    (("-m", "training.corpus", "timing", "--sentences", "0"), "expected a whole number >= 1; got 0"),
    (("-m", "training", "train", "--corpus", "unused", "--out", "unused", "--seed", "-5"),
     "expected a whole number >= 0; got -5"),
])
def test_out_of_range_numbers_are_refused_by_the_parser(argv, expected, tmp_path):
    result = _run(*argv)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (REPO / "unused").exists()


def test_a_negative_seed_in_settings_is_one_clear_error():
    # --set seed=-1 and a saved config both go through training.configuration.build
    with pytest.raises(BackendError, match="seed must be at least 0; got -1"):
        generator_preset("tiny", seed=-1)
