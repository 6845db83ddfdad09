"""Generator speed and memory: inference as a multiple of real time, the peak memory of a 10-minute take, and
training step time per preset.

Inference: every generator folder (default: the shipped models/generators/*, v1 audio graphs and v2 front-end
graphs side by side) through the torch-free runner (`backend.generators`, onnxruntime, `--threads` intra-op
threads, default 1 core) on SYNTHETIC speech-like audio of 10 s and 60 s, audio in and vertices out: for a v2
generator the speech front end is included (it runs on one thread); best of `--repeats`. Baseline measured in
the same run: writing the output itself (template + zero motion broadcast to (T, 5023, 3) in numpy), the memory
floor of any generator; the table gives both and their ratio. Times are wall clock and process CPU time: on a
shared machine the CPU time of a one-thread run is what one dedicated core would take.

Where the 60 s go (one run per generator after the timed ones, same process): the speech front end's network
(onnxruntime, its overlapping 20 s chunks), the rest of the front end (level, chunking, crossfade, 50 -> 30 Hz), the
generator graph calls (onnxruntime, overlapping 20 s chunks) and the remainder (crossfade, output check, output
array), as CPU time, with the frames each network computes per frame of the take (the overlap's recomputation).
A v2 generator's row also gives its speed as a multiple of its first-release counterpart's (the `*_small` of the
same family, same run) when both were measured.

Before and after (`--previous-runner FILE`, e.g. `git show cf627ec:backend/generators.py > /tmp/previous.py`): that
older copy of the runner is imported beside the current one (same front end, same graphs) and both run 60 s
alternately, call by call, `--repeats` times each; best CPU time of each and their ratio, so a loaded machine
slows both alike.

A candidate front end (`--frontend FILE`, e.g. scripts/quantize_hama_asr.py's int8 graph): every v2 generator runs
60 s with the shipped front end and with that graph (its features passed to `animate`), alternately, call by call,
`--repeats` times each; best CPU time of each and their ratio.

Memory (`--memory-minutes`, default 10; 0 skips): `backend animate --model NAME` on a SYNTHETIC take of that
length in a fresh process per generator, its peak resident set (ru_maxrss) beside that of a process that only
imports the same modules (benchmarks/memory.py's probe). Target (issue 18): >= 200x real time for 60 s on one
thread, <= 1 GB at 10 minutes.

Training: one optimiser step (`clips_per_step` clips of 2 s SYNTHETIC audio with random target
motion) of each preset and family, without and with the perceptual loss (frozen speech-mesh
encoders of the `small` representation preset, random weights: the cost does not depend on them);
mean over `--steps` after one warm-up step. `full` runs 2 steps only on a CPU.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generators.py [--models DIR ...] [--device cpu|cuda]
                                                                [--skip-training] [--skip-inference]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SECONDS = (10, 60)


def inference_rows(folders: list, threads: int, repeats: int) -> list:
    from backend.generators import SAMPLE_RATE, frame_count, load_generator
    from training.generators.export import speech_like_audio

    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    rows = []
    for folder in folders:
        generator = load_generator(folder, threads=threads)
        for seconds in SECONDS:
            audio = speech_like_audio(seconds, 0)[0]
            generator.animate(audio, SAMPLE_RATE, template)
            runs = [_timed(lambda: generator.animate(audio, SAMPLE_RATE, template)) for _ in range(repeats)]
            wall, cpu = min(run[0] for run in runs), min(run[1] for run in runs)
            frames = frame_count(audio.size)
            floor = min(_timed(lambda: template[None] + np.zeros((frames, 1, 1), np.float32))[1]
                        for _ in range(repeats))
            rows.append((generator.info.name, seconds, wall, seconds / wall, cpu, seconds / cpu, floor, cpu / floor))
    return rows


def stage_rows(folders: list, threads: int, seconds: float = 60) -> list:
    """[(name, total, front-end network, front-end rest, bilabial detector, generator graph, remainder CPU s,
    front-end frames per take frame, generator frames per take frame)] of `seconds` of audio: the front end on its
    own (v2 only), then one `animate`, the onnxruntime calls (SpeechFrontend.forward, BilabialDetector.probabilities,
    Generator._run) of the loaded instances timed by wrapping them."""
    from backend.bilabial_detector import load_detector
    from backend.generators import INPUT_SPEECH_FEATURES, SAMPLE_RATE, frame_count, load_generator, speech_features
    from backend.speech_frontend import frame_count as frontend_frames, load_frontend
    from training.generators.export import speech_like_audio

    audio = speech_like_audio(seconds, 0)[0]
    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    frontend, detector = load_frontend(), load_detector()
    rows = []
    for folder in folders:
        generator = load_generator(folder, threads=threads)
        spent = {"network": 0.0, "graph": 0.0, "detector": 0.0, "network_frames": 0, "graph_frames": 0,
                 "detector_frames": 0}

        def timed(call, key, frames_of):
            def wrapper(*args, **kwargs):
                start = time.process_time()
                result = call(*args, **kwargs)
                spent[key] += time.process_time() - start
                spent[key + "_frames"] += frames_of(*args)
                return result
            return wrapper
        frontend.forward = timed(type(frontend).forward.__get__(frontend), "network",
                                 lambda samples: frontend_frames(samples.size))
        generator._run = timed(generator._run, "graph", lambda speech, frames, *rest: frames)
        detector.probabilities = timed(type(detector).probabilities.__get__(detector), "detector",
                                       lambda samples, *rest: frontend_frames(samples.size))
        try:
            features = 0.0
            if generator.info.input == INPUT_SPEECH_FEATURES:
                start = time.process_time()
                speech_features(np.clip(audio, -1, 1))
                features = time.process_time() - start
            network, network_frames = spent["network"], spent["network_frames"]
            start = time.process_time()
            generator.animate(audio, SAMPLE_RATE, template)
            total = time.process_time() - start
        finally:
            del frontend.forward, detector.probabilities
        rest = max(total - features - spent["detector"] - spent["graph"], 0.0)
        rows.append((generator.info.name, total, network, features - network, spent["detector"], spent["graph"], rest,
                     network_frames / frontend_frames(audio.size), spent["graph_frames"] / frame_count(audio.size)))
    return rows


def previous_runner_rows(folders: list, previous: Path, threads: int, repeats: int, seconds: float = 60) -> list:
    """[(name, previous CPU s, current CPU s)]: `previous` (an older backend/generators.py) against the current
    runner on the same generators, alternating call by call, best of `repeats` each."""
    import importlib.util

    from backend import generators as current
    from training.generators.export import speech_like_audio

    spec = importlib.util.spec_from_file_location("previous_generators", previous)
    older = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(older)
    audio = speech_like_audio(seconds, 0)[0]
    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    rows = []
    for folder in folders:
        pair = (older.load_generator(folder, threads=threads), current.load_generator(folder, threads=threads))
        for generator in pair:
            generator.animate(audio, current.SAMPLE_RATE, template)
        best = [np.inf, np.inf]
        for _ in range(repeats):
            for index, generator in enumerate(pair):
                best[index] = min(best[index], _timed(lambda: generator.animate(audio, current.SAMPLE_RATE,
                                                                               template))[1])
        rows.append((pair[1].info.name, best[0], best[1]))
    return rows


def frontend_rows(folders: list, frontend_path: Path, threads: int, repeats: int) -> list:
    """[(name, shipped front end CPU s, candidate CPU s)] of 60 s through each v2 generator, alternating."""
    from backend.generators import INPUT_SPEECH_FEATURES, SAMPLE_RATE, load_generator, prepared_samples
    from backend.speech_frontend import SpeechFrontend
    from training.generators.export import speech_like_audio

    audio = speech_like_audio(60, 0)[0]
    template = np.zeros((5023, 3), np.float32)
    candidate = SpeechFrontend(frontend_path)
    rows = []
    for folder in folders:
        generator = load_generator(folder, threads=threads)
        if generator.info.input != INPUT_SPEECH_FEATURES:
            continue
        runs = (lambda: generator.animate(audio, SAMPLE_RATE, template),
                lambda: generator.animate(audio, SAMPLE_RATE, template, frontend_features=candidate.features(
                    prepared_samples(audio, SAMPLE_RATE)).stacked()))
        for run in runs:
            run()
        best = [np.inf, np.inf]
        for _ in range(repeats):
            best = [min(value, _timed(run)[1]) for value, run in zip(best, runs)]
        rows.append((generator.info.name, best[0], best[1]))
    return rows


def memory_rows(folders: list, minutes: float) -> list:
    """[(name, imports-only peak MB, animate peak MB)] for a `minutes`-long SYNTHETIC take."""
    import subprocess
    import tempfile

    from memory import CLI_BASELINE, SHARED, make_audio, measure
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        audio = make_audio(minutes, folder)
        baseline = measure([sys.executable, "-c", CLI_BASELINE])
        rows = []
        for path in folders:
            peak = measure([sys.executable, "-m", "backend", "animate", "--audio", str(audio), "--template",
                            str(SHARED / "flame" / "FLAME_sample.ply"), "--model", str(path),
                            "--out", str(folder / "take.npy")])
            rows.append((Path(path).name, baseline, peak))
            subprocess.run(["rm", "-f", str(folder / "take.npy")], check=False)
    return rows


def _timed(work) -> tuple:
    """(wall seconds, process CPU seconds) of work()."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def training_rows(device_name: str, steps: int) -> list:
    import torch

    from training.generators.config import generator_preset
    from training.generators.export import speech_like_audio
    from training.generators.families import build_generator
    from training.generators.protocol import TrainingClip
    from training.generators.train import clip_losses
    from training.loop import optimiser_step
    from training.representation.config import preset
    from training.representation.losses import PerceptualLoss, speech_features
    from training.representation.model import MeshEncoder, build_speech_encoder

    device = torch.device(device_name)
    representation = preset("small").model
    rows = []
    for preset_name in ("tiny", "small", "full"):
        for family in ("faceformer", "kmtalk"):
            for weight in (0.0, 1e-7):
                config = generator_preset(preset_name, family=family, perceptual_weight=weight)
                torch.manual_seed(0)
                model = build_generator(config, 3).to(device)
                optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
                frames = config.crop_frames or 60                   # one training crop (whole clip with perceptual)
                audio = speech_like_audio(frames / 30, 0)[0]
                perceptual = None
                if weight:
                    perceptual = PerceptualLoss(build_speech_encoder(representation), MeshEncoder(representation), weight).to(device)
                clip = TrainingClip("synthetic", torch.randn(1, frames, 447), torch.randn(frames, config.basis_size),
                                    torch.full((frames,), 0.004), torch.ones(frames), torch.zeros(5023, 3),
                                    torch.eye(3)[0])
                if perceptual is not None:
                    clip.speech_target = perceptual.speech_target(speech_features(audio, 16000, frames)).cpu()
                clip = clip.to(device)
                parameters = list(model.parameters())
                count = 2 if preset_name == "full" and device.type == "cpu" else steps
                times = []
                for step in range(count + 1):
                    def one_step():  # the training loop's own step (accumulation, clipping, update)
                        optimiser_step(optimiser, parameters, config.clips_per_step,
                                       lambda index: clip_losses(model, clip, perceptual), config.grad_clip)
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                    elapsed = _timed(one_step)
                    if step:
                        times.append(elapsed)
                rows.append((preset_name, family, "yes" if weight else "no", config.clips_per_step, frames,
                             float(np.mean([t[0] for t in times])), float(np.mean([t[1] for t in times])),
                             sum(p.numel() for p in model.parameters())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", type=Path, nargs="*", help="generator folders (default: shipped generators)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--previous-runner", type=Path, help="an older backend/generators.py to time against")
    parser.add_argument("--frontend", type=Path, help="a candidate front-end graph to time the v2 generators on")
    parser.add_argument("--memory-minutes", type=float, default=10.0, help="take length for the memory rows (0: skip)")
    args = parser.parse_args()
    if not args.skip_inference:
        from backend.generators import list_generators
        folders = args.models or [info.path for info in list_generators()]
        print(f"Inference on {args.threads} CPU thread(s), SYNTHETIC audio, best of {args.repeats}\n")
        print("| generator | audio (s) | wall (s) | × real time (wall) | CPU (s) | × real time (CPU) | "
              "output-only floor, CPU (s) | CPU / floor | speed vs first release (same family) |")
        print("|---|---|---|---|---|---|---|---|---|")
        rows = inference_rows(folders, args.threads, args.repeats)
        cpu_of = {(name, seconds): cpu for name, seconds, _, _, cpu, *_ in rows}
        for name, seconds, wall, by_wall, cpu, by_cpu, floor, ratio in rows:
            first_release = cpu_of.get((name.split("_")[0] + "_small", seconds))
            versus = f"{first_release / cpu:.2f}" if first_release and not name.endswith("_small") else "–"
            print(f"| {name} | {seconds} | {wall:.3f} | {by_wall:.0f}× | {cpu:.3f} | {by_cpu:.0f}× | {floor:.3f} | "
                  f"{ratio:.1f} | {versus} |")
        print("\nWhere the CPU time of 60 s goes (one run each; frames computed per frame of the take)\n")
        print("| generator | total (s) | front-end network (s) | front-end rest (s) | bilabial detector (s) | "
              "generator graph (s) | guard, crossfade, check, output (s) | front-end frames / frame | "
              "graph frames / frame |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, total, network, features, detector, graph, rest, frontend_work, graph_work in stage_rows(
                folders, args.threads):
            print(f"| {name} | {total:.3f} | {network:.3f} | {features:.3f} | {detector:.3f} | {graph:.3f} | "
                  f"{rest:.3f} | {frontend_work:.2f} | {graph_work:.2f} |")
        if args.previous_runner:
            print(f"\nBefore and after: {args.previous_runner} against the current runner, 60 s, alternating, best "
                  f"of {args.repeats}\n")
            print("| generator | previous: CPU s (× real time) | now: CPU s (× real time) | previous / now |")
            print("|---|---|---|---|")
            for name, before, after in previous_runner_rows(folders, args.previous_runner, args.threads, args.repeats):
                print(f"| {name} | {before:.3f} ({60 / before:.0f}×) | {after:.3f} ({60 / after:.0f}×) | "
                      f"{before / after:.2f} |")
        if args.frontend:
            print(f"\nFront end: the shipped graph against {args.frontend}, v2 generators, 60 s, alternating, best "
                  f"of {args.repeats}\n")
            print("| generator | shipped front end: CPU s (× real time) | candidate: CPU s (× real time) | "
                  "shipped / candidate |")
            print("|---|---|---|---|")
            for name, shipped, candidate in frontend_rows(folders, args.frontend, args.threads, args.repeats):
                print(f"| {name} | {shipped:.3f} ({60 / shipped:.0f}×) | {candidate:.3f} ({60 / candidate:.0f}×) | "
                      f"{shipped / candidate:.2f} |")
        if args.memory_minutes > 0:
            print(f"\nPeak memory of `backend animate` on {args.memory_minutes:g} min of SYNTHETIC audio\n")
            print("| generator | imports only (MB) | peak RSS (MB) | target |")
            print("|---|---|---|---|")
            for name, baseline, peak in memory_rows(folders, args.memory_minutes):
                print(f"| {name} | {baseline:.0f} | {peak:.0f} | 1024 {'met' if peak <= 1024 else 'MISSED'} |")
    if not args.skip_training:
        import torch
        torch.set_num_threads(args.threads)
        print(f"\nTraining step time on {args.device} ({args.threads} thread(s)), 2 s SYNTHETIC clips\n")
        print("| preset | family | perceptual loss | clips / step | frames / clip | wall s / step | CPU s / step | "
              "parameters |")
        print("|---|---|---|---|---|---|---|---|")
        for preset_name, family, perceptual, clips, frames, wall, cpu, parameters in training_rows(args.device,
                                                                                                   args.steps):
            print(f"| {preset_name} | {family} | {perceptual} | {clips} | {frames} | {wall:.3f} | {cpu:.3f} | "
                  f"{parameters / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
