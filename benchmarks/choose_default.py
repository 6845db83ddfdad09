"""Choose the default generator with the real-speech benchmark and write it to models/generators/default.json.

The rule (the one place it is written down): every shipped generator is scored by benchmarks/real_speech.py on
set b (unseen real speakers) and set c (unseen TTS voices), on three numbers per set: bilabial closure (higher
is better), rest in pauses (higher is better) and the median MTM against the rig (lower is better). The default is
the generator with the highest mean closure on b and c — lips that do not close on /p b m/ are the defect this
release is about, and a model that closes less is never preferred for better numbers elsewhere —; among equal
closures, the smallest sum of ranks over the six numbers (1 = best; equal values share the better rank), then the
lower mean MTM, then the name. Ranks, not a weighted sum, so no unit (a percentage point against a millisecond) is
traded against another.

backend.generators reads the file (`DEFAULT_GENERATOR`): `backend animate` without --model, the add-on's panel
and the benchmark's close-ups use it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/choose_default.py [--report out/real_speech/real_speech.json]
                                                                   [--models-dir models/generators] [--shared DIR]

--report reuses a finished benchmark run (its real_speech.json must hold sets b and c for every generator);
without it sets b and c are run now (about a minute per generator on one thread).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from backend.atomic import write_json  # noqa: E402
from backend.errors import BackendError  # noqa: E402
from backend.generators import DEFAULT_FILE, default_models_dir, list_generators  # noqa: E402

SETS = {"b": "b: unseen real speakers", "c": "c: unseen TTS voices"}
CRITERIA = (("closure", True), ("rest", True), ("mtm_median_ms", False))   # (summary key, higher is better)


def scores_from(report: dict, names: list) -> dict:
    """{name: {set key: {closure, rest, mtm_median_ms}}} from a real_speech.json report; BackendError if a
    generator lacks a set."""
    found = {(row["model"], row["set"]): row["summary"] for row in report["rows"]}
    scores = {}
    for name in names:
        scores[name] = {}
        for key, label in SETS.items():
            if (name, label) not in found:
                raise BackendError(f"the benchmark report has no row for {name} on set '{label}'; run "
                                   f"benchmarks/real_speech.py --sets b,c over every shipped generator")
            summary = found[(name, label)]
            scores[name][key] = {criterion: summary.get(criterion) for criterion, _ in CRITERIA}
    return scores


def rank_sums(scores: dict) -> dict:
    """{name: sum of its ranks over the sets x CRITERIA}; a missing value ranks last."""
    names = sorted(scores)
    sums = dict.fromkeys(names, 0)
    for key in SETS:
        for criterion, higher in CRITERIA:
            def value(name):
                number = scores[name][key][criterion]
                worst = float("-inf") if higher else float("inf")
                return worst if number is None else number
            for name in names:
                sums[name] += 1 + sum(1 for other in names if (value(other) > value(name) if higher
                                                                 else value(other) < value(name)))
    return sums


def choose(scores: dict) -> tuple:
    """(chosen name, rank sums) by the rule in the module docstring."""
    sums = rank_sums(scores)

    def mean(name, criterion):
        values = [scores[name][key][criterion] for key in SETS if scores[name][key][criterion] is not None]
        return sum(values) / len(values) if values else None

    def order(name):
        closure, mtm = mean(name, "closure"), mean(name, "mtm_median_ms")
        return (-(closure if closure is not None else -1.0), sums[name], mtm if mtm is not None else float("inf"),
                name)
    return min(scores, key=order), sums


def write_choice(models_dir: Path, report: dict) -> dict:
    """Choose among the usable generators in `models_dir` from `report`; write and return default.json's content."""
    names = [info.name for info in list_generators(models_dir)]
    if not names:
        raise BackendError(f"{models_dir}: no usable generator to choose from")
    scores = scores_from(report, names)
    chosen, sums = choose(scores)
    values = {"name": chosen, "rule": "highest mean closure on sets b and c, then the smallest sum of ranks over "
              "closure, rest in pauses and median MTM against the rig (benchmarks/choose_default.py)",
              "rank_sums": sums, "scores": scores,
              "sets": SETS}
    write_json(models_dir / DEFAULT_FILE, values)
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="a real_speech.json that holds sets b and c for every generator")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--shared", type=Path, help="the shared data folder (for a fresh benchmark run)")
    args = parser.parse_args(argv)
    if args.report is not None:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    else:
        import real_speech
        names = [info.name for info in list_generators(args.models_dir)]
        with tempfile.TemporaryDirectory() as folder:
            report = real_speech.run_benchmark("bc", names, Path(folder), args.shared or real_speech.DEFAULT_SHARED,
                                               models_dir=args.models_dir)
    try:
        values = write_choice(args.models_dir, report)
    except BackendError as error:
        print(f"choose_default: {error}", file=sys.stderr)
        return 2
    print(f"default generator: {values['name']} (rank sums: "
          + ", ".join(f"{name} {total}" for name, total in sorted(values["rank_sums"].items(), key=lambda x: x[1]))
          + f"); wrote {args.models_dir / DEFAULT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
