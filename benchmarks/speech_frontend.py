"""Speech front end speed and memory, beside the shipped generators' whole inference in the same run.

60 s of real speech (dev and Kathleen held-out clips from ../shared, concatenated; read only) through
`backend.speech_frontend` (`features`: level, chunks, crossfade; numpy on one BLAS thread) and through every
shipped generator (`backend.generators`, onnxruntime, one thread) — best of `--repeats`, wall and process CPU
time, as multiples of real time, and the front end's time as a share of each generator's. Memory: the
tracemalloc peak of `features` for 60 s and 600 s beyond its own output (T × 447 float32).

    .venv/bin/python benchmarks/speech_frontend.py [--repeats 3] [--seconds 60]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"   # before numpy loads its BLAS: one thread, as the target says

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.audio import load_audio  # noqa: E402
from backend.generators import SAMPLE_RATE, list_generators, load_generator  # noqa: E402
from backend.speech_frontend import load_frontend  # noqa: E402

SHARED = REPO.parent / "shared" / "speech"


def real_speech(seconds: float) -> np.ndarray:
    """`seconds` of real speech: the dev clips then held-out Kathleen takes, concatenated (16 kHz)."""
    paths = sorted((SHARED / "dev").glob("*.flac")) + sorted((SHARED / "kathleen").glob("arctic_a0??8_*.flac"))
    pieces, length = [], 0
    for path in paths:
        if length >= seconds * SAMPLE_RATE:
            break
        pieces.append(load_audio(path, rate=SAMPLE_RATE)[0])
        length += pieces[-1].size
    return np.concatenate(pieces)[:int(seconds * SAMPLE_RATE)]


def timed(work, repeats: int) -> tuple:
    """Best (wall, process CPU) seconds of `repeats` runs after one warm-up."""
    work()
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(run[0] for run in runs), min(run[1] for run in runs)


def memory_beyond_output(frontend, samples: np.ndarray) -> float:
    tracemalloc.start()
    features = frontend.features(samples)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - features.log_posteriors.nbytes - features.hidden.nbytes) / 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    audio = real_speech(args.seconds)
    seconds = audio.size / SAMPLE_RATE
    frontend = load_frontend()
    front_wall, front_cpu = timed(lambda: frontend.features(audio), args.repeats)
    print(f"{seconds:.0f} s of real speech, one thread, best of {args.repeats}\n")
    print("| what | wall s | × real time (wall) | CPU s | × real time (CPU) | front end / this (CPU) |")
    print("|---|---|---|---|---|---|")
    print(f"| speech front end (hama 1.6, numpy) | {front_wall:.3f} | {seconds / front_wall:.0f} | {front_cpu:.3f} | "
          f"{seconds / front_cpu:.0f} | 1.00 |")
    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    for info in list_generators():
        generator = load_generator(info.path, threads=1)
        wall, cpu = timed(lambda: generator.animate(audio, SAMPLE_RATE, template), args.repeats)
        print(f"| generator {info.name} (whole inference) | {wall:.3f} | {seconds / wall:.0f} | {cpu:.3f} | "
              f"{seconds / cpu:.0f} | {front_cpu / cpu:.2f} |")
    long_audio = np.tile(audio, int(np.ceil(600.0 / seconds)))[:600 * SAMPLE_RATE]
    print(f"\nmemory beyond the output (tracemalloc peak): {memory_beyond_output(frontend, audio):.1f} MB for "
          f"{seconds:.0f} s, {memory_beyond_output(frontend, long_audio):.1f} MB for 600 s "
          f"(output itself: {447 * 4 * (long_audio.size // 320 + 1) / 1e6:.1f} MB for 600 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
