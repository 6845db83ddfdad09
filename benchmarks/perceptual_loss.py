"""Cost of the perceptual loss: one generator training step with and without it (same run).

The generator is a SYNTHETIC stand-in of FaceFormer's shape (no pretrained audio encoder is available
here): per-frame audio features (T, 128) -> 2-layer transformer (width 256) -> Linear(256 -> 15069)
offsets + template, trained with MSE against target vertices; "with" adds `PerceptualLoss` (frozen
speech-mesh encoders of the chosen preset, random weights: cost does not depend on the weights; the preset's speech
side, by default the front end's (N, 5, 447) windows, and its centred mesh encoder) at the FaceFormer weight 1e-7,
the speech target computed once per clip as the loss's API intends (so, as in training, it is not in the step).

Time: both variants in one process, their steps alternating, the median step of each (a shared machine's load
changes between runs; alternating steps see the same load). Memory: each variant in a fresh subprocess so its peak
is its own: CPU peak = growth of the process's max RSS over the steps; GPU peak = torch.cuda.max_memory_allocated.

    .venv/bin/python benchmarks/perceptual_loss.py [--preset small] [--frames 150] [--steps 20] [--device cpu] [--repeats 3]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def training_step(args, with_loss: bool):
    """(step function, device) of the stand-in generator's training step, with or without the perceptual loss."""
    import torch
    from torch import nn

    from training.loop import optimiser_step
    from training.representation.config import preset
    from training.representation.losses import PerceptualLoss
    from training.representation.model import MeshEncoder, build_speech_encoder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    width = 256
    generator = nn.ModuleDict({
        "audio": nn.Linear(128, width),
        "body": nn.TransformerEncoder(nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True), 2),
        "out": nn.Linear(width, 15069)}).to(device)
    template = torch.randn(15069, device=device) * 0.05
    audio = torch.randn(1, args.frames, 128, device=device)
    target = template + 0.001 * torch.randn(args.frames, 15069, device=device)
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-4)
    perceptual = None
    if with_loss:
        model = preset(args.preset).model
        mesh_encoder = MeshEncoder(model)
        mesh_encoder.values.standardise.std.fill_(0.01)
        speech_encoder = build_speech_encoder(model)
        perceptual = PerceptualLoss(speech_encoder, mesh_encoder, weight=1e-7).to(device)
        speech_target = perceptual.speech_target(torch.randn(args.frames - 4, *speech_encoder.input_shape,
                                                             device=device))
    parameters = list(generator.parameters())

    def loss(index):
        hidden = generator["body"](generator["audio"](audio))[0]
        vertices = template + generator["out"](hidden)
        total = nn.functional.mse_loss(vertices, target)
        if perceptual is not None:
            total = total + perceptual(vertices, speech_target)
        return {"loss": total}

    def step():  # the training loop's own step; no clipping (an infinite norm bound), as before
        optimiser_step(optimiser, parameters, 1, loss, grad_clip=float("inf"))
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step, device


def one_variant(args) -> dict:
    """Peak memory (and time) of one variant alone in this process."""
    import torch
    step, device = training_step(args, args.variant == "with")
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": args.variant, "seconds_per_step": (time.perf_counter() - started) / args.steps,
            "peak_mb": peak, "peak_growth_mb": peak - rss_before if device.type == "cpu" else None}


def interleaved(args) -> dict:
    """Per-step time of both variants in one process, steps alternating (without, with, without, ...), so a
    change in the machine's load hits both alike: the median step of each."""
    steps = {variant: training_step(args, variant == "with")[0] for variant in ("without", "with")}
    times = {"without": [], "with": []}
    for index in range(3 + args.steps * args.repeats):
        for variant, step in steps.items():
            started = time.perf_counter()
            step()
            if index >= 3:
                times[variant].append(time.perf_counter() - started)
    return {variant: float(sorted(values)[len(values) // 2]) for variant, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--frames", type=int, default=150, help="clip length in frames (default 150 = 5 s)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3,
                        help="the alternating timing runs repeats x steps steps of each variant")
    parser.add_argument("--variant", choices=("with", "without", "interleaved"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(interleaved(args) if args.variant == "interleaved" else one_variant(args)))
        return 0
    results = {}
    for variant in ("without", "with", "interleaved"):
        command = [sys.executable, __file__, "--variant", variant] + [
            f"--{key}={getattr(args, key)}" for key in ("preset", "frames", "steps", "device", "threads", "repeats")]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])
    base, extra, alternating = results["without"], results["with"], results["interleaved"]
    from training.representation.config import preset
    print(f"device {args.device}, representation preset {args.preset} (speech side "
          f"{preset(args.preset).model.speech_input}), clip {args.frames} frames, "
          f"{args.threads} thread(s)")
    print("| variant | s/step, alternating in one process (median) | s/step alone | peak MB | peak growth MB (CPU) |")
    print("|---|---|---|---|---|")
    for variant in ("without", "with"):
        result = results[variant]
        growth = "-" if result["peak_growth_mb"] is None else f"{result['peak_growth_mb']:.0f}"
        print(f"| {variant} perceptual loss | {alternating[variant]:.4f} | {result['seconds_per_step']:.4f} | "
              f"{result['peak_mb']:.0f} | {growth} |")
    ratio = alternating["with"] / alternating["without"]
    print(f"time ratio {ratio:.3f} (+{100 * (ratio - 1):.1f}%; median of {args.steps * args.repeats} alternating "
          f"steps each), peak memory ratio {extra['peak_mb'] / base['peak_mb']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
