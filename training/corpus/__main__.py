"""`python -m training.corpus build|render|stats|align|timing`: build, look at, and measure the SYNTHETIC
corpus; forced-align your own recordings; check the TTS voices' phone times.

Errors of the BackendError family print one line and exit with code 2.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from backend.cli import dispatch, non_negative_int, positive_int


def _build(args) -> int:
    from training.corpus.build import build_corpus
    started = time.monotonic()
    manifest = build_corpus(args.out, args.preset, args.seed, args.template, args.masks, args.speech,
                            force=args.force, workers=args.workers)
    print(manifest["stats_table"])
    size = sum(path.stat().st_size for path in Path(args.out).rglob("*") if path.is_file())
    print(f"built {len(manifest['clips'])} SYNTHETIC clips ({manifest['stats']['hours']:.2f} h, {size / 1e9:.2f} GB) "
          f"into {args.out} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _render(args) -> int:
    from training.corpus.render import render_clip
    frames = [int(value) for value in args.frames.split(",")] if args.frames else None
    for path in render_clip(args.corpus, args.clip, args.out, frames):
        print(path)
    return 0


def _stats(args) -> int:
    from training.corpus.stats import corpus_stats, plot_stats, stats_table
    stats = corpus_stats(args.corpus)
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(stats_table(stats))
    if args.plot:
        plot_stats(stats, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0


def _align(args) -> int:
    from training.corpus.align import align_folder
    result = align_folder(args.audio, args.text, args.out, report=lambda line: print(line, file=sys.stderr),
                          force=args.force)
    kept = (f"; {len(result['kept'])} kept their existing labels (--force realigns them)"
            if result["kept"] else "")
    print(f"aligned {len(result['aligned'])} recordings into {args.out}; {len(result['failed'])} failed, "
          f"{len(result['no_transcript'])} without a transcript{kept}", file=sys.stderr)
    return 2 if result["failed"] else 0


def _timing(args) -> int:
    from training.corpus.timing import arctic_texts, measure_voices
    from training.corpus.voices import VOICES
    voices = args.voices.split(",") if args.voices else [voice_id for voice_id, voice in VOICES.items()
                                                          if voice.engine != "espeak"]
    print(json.dumps(measure_voices(arctic_texts(args.speech, args.sentences), voices), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.corpus",
                                     description="SYNTHETIC speech-mesh corpus: a FLAME rig driven by phoneme timings.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    build = commands.add_parser("build", help="build (or continue building) a corpus (wav/, controls_npy/, "
                                "templates/, rig/, manifest.json)")
    build.add_argument("--preset", choices=("ci", "small", "full"), default="ci",
                       help="ci: tiny, for tests; small: about 1 h; full: over 5 h")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--seed", type=non_negative_int, default=0)
    build.add_argument("--force", action="store_true", help="replace another corpus (finished, or an unfinished "
                       "build of another preset/seed) in --out (its own files only); the same build continues anyway")
    build.add_argument("--workers", type=positive_int, help="processes (default: every core)")
    build.add_argument("--speech", help="recorded speech with .phones.lab (default $SPEECH_DIR or ../shared/speech/kathleen)")
    build.set_defaults(run=_build)
    render = commands.add_parser("render", help="render frames of a clip to PNG (face, lips, waveform + phones)")
    render.add_argument("--corpus", required=True)
    render.add_argument("--clip", required=True, help="clip id from the manifest")
    render.add_argument("--out", required=True, help="folder for the PNGs")
    render.add_argument("--frames", help="comma-separated frame numbers (default: a /p b m/, an /f v/, the most open vowel)")
    render.set_defaults(run=_render)
    stats = commands.add_parser("stats", help="recompute a built corpus's statistics from its files: hours by "
                                "source, voice and condition, phone coverage, pauses, closure and rest per voice")
    stats.add_argument("corpus")
    stats.add_argument("--plot", help="also write the PNG plot here")
    stats.add_argument("--json", action="store_true", help="print every statistic as JSON instead of the table")
    stats.set_defaults(run=_stats)
    align = commands.add_parser("align", help="forced-align recordings with transcripts into .phones.lab/.words.lab")
    align.add_argument("--audio", required=True, help="folder of <id>.flac/.wav/.ogg recordings")
    align.add_argument("--text", required=True, help="folder of <id>.txt transcripts")
    align.add_argument("--out", required=True, help="folder for <id>.phones.lab and <id>.words.lab")
    align.add_argument("--force", action="store_true", help="realign recordings that already have labels in --out")
    align.set_defaults(run=_align)
    timing = commands.add_parser("timing", help="check TTS voices' phone times on their audio (bilabial closures)")
    timing.add_argument("--voices", help="comma-separated voice ids (default: every flite, festival, piper voice)")
    timing.add_argument("--sentences", type=positive_int, default=40, help="ARCTIC prompts to speak (not held-out ones)")
    timing.add_argument("--speech", help="folder with the ARCTIC <id>.txt prompts (default ../shared/speech/kathleen)")
    timing.set_defaults(run=_timing)
    build.add_argument("--template", help="FLAME template (default $FLAME_TEMPLATE or ../shared/flame/FLAME_sample.ply)")
    build.add_argument("--masks", help="FLAME_masks.npz (default $FLAME_MASKS or next to the template)")
    return parser


def main(argv=None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
