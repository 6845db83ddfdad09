"""Reading what a training run wrote: the rows of its loss.csv log (shared by the training tests)."""

import csv
from pathlib import Path


def logged_rows(out: Path) -> list:
    """The rows of `out`/loss.csv as dicts (column name -> text)."""
    with open(out / "loss.csv", newline="") as stream:
        return list(csv.DictReader(stream))
