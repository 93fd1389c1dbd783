"""`edge-recorder analyze IN.wav`: run the on-device pipeline over a file, print what it saw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_recorder.commands._common import add_config_argument

ENGINES = ("silero", "webrtc", "energy")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="levels, clipping, digital silence and speech segments of an audio file",
        description="Run the device's DSP and voice activity detection over a WAV (or any "
        "file libsndfile reads) as fast as possible and report levels and speech segments. "
        "Uses [audio]/[vad] settings from --config when given (or the default config file "
        "if it exists), otherwise built-in defaults.",
    )
    parser.add_argument("input", type=Path, metavar="IN.wav", help="audio file to analyse")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--vad", choices=ENGINES, default=None, help="VAD engine to use")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_recorder.audio.frames import EndOfStream, Frames
    from edge_recorder.audio.pipeline import Pipeline, summary
    from edge_recorder.capture.registry import open_source
    from edge_recorder.commands.record import audio_config_for, load_optional_config

    config = load_optional_config(args)
    vad = config.vad.model_copy(update={"engine": args.vad}) if args.vad else config.vad
    try:
        source_config = config.audio.model_copy(
            update={"source": "wav", "wav_path": args.input, "speed": 0.0}
        )
        source = open_source(source_config)
    except Exception as exc:  # soundfile raises its own error types for unreadable files
        print(f"edge-recorder analyze: cannot read {args.input}: {exc}", file=sys.stderr)
        return 1
    fmt = source.format
    audio, note = audio_config_for(config.audio, fmt)
    pipeline = Pipeline(fmt, audio, vad, config.encoding, encode=False)
    source.start()
    try:
        while True:
            item = source.read(timeout=5.0)
            if isinstance(item, Frames):
                pipeline.process(item)
            elif isinstance(item, EndOfStream):
                break  # a file source never times out (speed 0); None just loops
    finally:
        source.stop()
    pipeline.finish()
    report = summary(pipeline)
    if args.json:
        print(json.dumps(report))
        return 0
    if note:
        print(f"note: {note}")
    print(
        f"{args.input}: {report['duration_s']:.2f} s, {fmt.channels} ch, {fmt.rate} Hz, "
        f"{fmt.sample_format}"
    )
    print(
        f"level:           rms {report['rms_dbfs']:.1f} dBFS, peak {report['peak_dbfs']:.1f} dBFS"
    )
    print(f"clipped samples: {report['clipped_samples']}")
    print(f"digital silence: {report['digital_silence_s']:.2f} s")
    segments = pipeline.stats.vad.segments
    print(
        f"speech:          {100 * pipeline.stats.vad.speech_ratio:.1f}% in {len(segments)} "
        f"segment(s) (VAD {vad.engine})"
    )
    for start, end in segments:
        print(f"  {start:8.2f} - {end:8.2f} s")
    return 0
