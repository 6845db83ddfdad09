"""`python -m training.corpus build|render|stats|align|timing`: build, look at, and measure the SYNTHETIC
corpus; forced-align your own recordings; check the TTS voices' phone times.

Errors of the BackendError family print one line and exit with code 2.
"""

import argparse
import json
import sys
import time

from backend.cli import dispatch


def _build(args) -> int:
    from training.corpus.build import build_corpus
    started = time.monotonic()
    manifest = build_corpus(args.out, args.preset, args.seed, args.template, args.masks, args.speech,
                            force=args.force)
    print(json.dumps(manifest["stats"], indent=1))
    print(f"built {len(manifest['clips'])} SYNTHETIC clips into {args.out} in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    return 0


def _render(args) -> int:
    from training.corpus.render import render_clip
    frames = [int(value) for value in args.frames.split(",")] if args.frames else None
    for path in render_clip(args.corpus, args.clip, args.out, frames, args.template):
        print(path)
    return 0


def _stats(args) -> int:
    from training.corpus.stats import corpus_stats
    print(json.dumps(corpus_stats(args.corpus, args.template, args.masks), indent=1))
    return 0


def _align(args) -> int:
    from training.corpus.align import align_folder
    result = align_folder(args.audio, args.text, args.out, report=lambda line: print(line, file=sys.stderr))
    print(f"aligned {len(result['aligned'])} recordings into {args.out}; {len(result['failed'])} failed, "
          f"{len(result['no_transcript'])} without a transcript", file=sys.stderr)
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
    build = commands.add_parser("build", help="build a corpus (wav/, vertices_npy/, templates/, manifest.json)")
    build.add_argument("--preset", choices=("ci", "full"), default="ci")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--force", action="store_true", help="replace a corpus already in --out (its own files only)")
    build.add_argument("--speech", help="recorded speech with .phones.lab (default $SPEECH_DIR or ../shared/speech/kathleen)")
    build.set_defaults(run=_build)
    render = commands.add_parser("render", help="render frames of a clip to PNG (face, lips, waveform + phones)")
    render.add_argument("--corpus", required=True)
    render.add_argument("--clip", required=True, help="clip id from the manifest")
    render.add_argument("--out", required=True, help="folder for the PNGs")
    render.add_argument("--frames", help="comma-separated frame numbers (default: a /p b m/, an /f v/, the most open vowel)")
    render.set_defaults(run=_render)
    stats = commands.add_parser("stats", help="recompute a built corpus's statistics from its files")
    stats.add_argument("corpus")
    stats.set_defaults(run=_stats)
    align = commands.add_parser("align", help="forced-align recordings with transcripts into .phones.lab/.words.lab")
    align.add_argument("--audio", required=True, help="folder of <id>.flac/.wav/.ogg recordings")
    align.add_argument("--text", required=True, help="folder of <id>.txt transcripts")
    align.add_argument("--out", required=True, help="folder for <id>.phones.lab and <id>.words.lab")
    align.set_defaults(run=_align)
    timing = commands.add_parser("timing", help="check TTS voices' phone times on their audio (bilabial closures)")
    timing.add_argument("--voices", help="comma-separated voice ids (default: every flite, festival, piper voice)")
    timing.add_argument("--sentences", type=int, default=40, help="ARCTIC prompts to speak (not held-out ones)")
    timing.add_argument("--speech", help="folder with the ARCTIC <id>.txt prompts (default ../shared/speech/kathleen)")
    timing.set_defaults(run=_timing)
    for command in (build, render, stats):
        command.add_argument("--template", help="FLAME template (default $FLAME_TEMPLATE or ../shared/flame/FLAME_sample.ply)")
        if command is not render:
            command.add_argument("--masks", help="FLAME_masks.npz (default $FLAME_MASKS or next to the template)")
    return parser


def main(argv=None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
