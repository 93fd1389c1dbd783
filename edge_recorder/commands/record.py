"""`edge-recorder record --seconds N OUT.wav`: a mic test through the configured pipeline.

Captures from the configured source (or `--device` etc.), runs the same dsp → vad → encoder
path the daemon uses, writes the processed 16 kHz mono audio to a WAV, and prints levels,
clipping, xruns and the speech ratio, so an installer can tell a dead, clipping or
mis-wired mic from a good one in ten seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge_recorder.commands._common import add_config_argument, load_or_exit
from edge_recorder.config.model import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from edge_recorder.audio.frames import AudioFormat
    from edge_recorder.config.model import AudioConfig, Config

FORMATS = ("S16_LE", "S24_LE", "S32_LE")
_STALL_MARGIN_S = 10.0  # give up when the source delivers nothing for this long past due


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "record",
        help="mic test: record N seconds through the pipeline to a 16 kHz mono WAV",
        description="Record from the configured capture source through DSP, VAD and the "
        "encoder, write the processed audio (16 kHz mono PCM16) to OUT.wav and print levels, "
        "clipping, xruns and the speech ratio.",
    )
    parser.add_argument("output", type=Path, metavar="OUT.wav", help="WAV file to write")
    parser.add_argument("--seconds", type=float, required=True, help="how long to record")
    add_config_argument(parser)
    parser.add_argument("--device", help="ALSA PCM name (overrides audio.device)")
    parser.add_argument("--channels", type=int, help="capture channels (audio.channels)")
    parser.add_argument("--rate", type=int, help="capture rate in Hz (audio.rate)")
    parser.add_argument("--format", choices=FORMATS, help="capture format (audio.format)")
    parser.set_defaults(func=run)


def load_optional_config(args: argparse.Namespace) -> Config:
    """--config, $EDGE_RECORDER_CONFIG or the default file when present; else defaults."""
    from edge_recorder.config.loader import load_config

    explicit = getattr(args, "config", None) or os.environ.get("EDGE_RECORDER_CONFIG")
    if explicit is None and not DEFAULT_CONFIG_PATH.exists():
        return load_config(None)
    return load_or_exit(args)


def audio_config_for(audio: AudioConfig, fmt: AudioFormat) -> tuple[AudioConfig, str | None]:
    """[audio] settings matched to the format actually delivered (mix weights need it)."""
    update: dict[str, object] = {
        "channels": fmt.channels,
        "rate": fmt.rate,
        "format": fmt.sample_format,
    }
    note = None
    if audio.mix_weights and len(audio.mix_weights) != fmt.channels:
        update["mix_weights"] = []
        note = (
            f"audio.mix_weights has {len(audio.mix_weights)} weights but the input has "
            f"{fmt.channels} channels: using an equal mix"
        )
    return audio.model_copy(update=update), note


def run(args: argparse.Namespace) -> int:
    import soundfile
    from pydantic import ValidationError

    from edge_recorder.audio.frames import DeviceBack, DeviceLost, EndOfStream, Frames, Overrun
    from edge_recorder.audio.pipeline import Pipeline, summary
    from edge_recorder.capture.registry import open_source
    from edge_recorder.config.model import AudioConfig

    if args.seconds <= 0:
        print("edge-recorder record: --seconds must be > 0", file=sys.stderr)
        return 2
    config = load_optional_config(args)
    overrides = {
        k: v
        for k, v in (
            ("device", args.device),
            ("channels", args.channels),
            ("rate", args.rate),
            ("format", args.format),
        )
        if v is not None
    }
    try:
        fields = config.audio.model_dump() | overrides
        if "channels" in overrides and len(fields["mix_weights"]) != args.channels:
            fields["mix_weights"] = []
        audio = AudioConfig.model_validate(fields)
        source = open_source(audio)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"edge-recorder record: cannot open the source: {exc}", file=sys.stderr)
        return 1
    fmt = source.format
    audio, note = audio_config_for(audio, fmt)
    pipeline = Pipeline(fmt, audio, config.vad, config.encoding)
    wanted = round(args.seconds * fmt.rate)
    xruns = lost = 0
    problems: list[str] = []
    pace = audio.speed if audio.source != "alsa" and audio.speed > 0 else 1.0
    deadline = time.monotonic() + args.seconds / pace + _STALL_MARGIN_S
    got = 0
    with soundfile.SoundFile(args.output, "w", 16000, 1, subtype="PCM_16", format="WAV") as out:
        source.start()
        try:
            while got < wanted and time.monotonic() < deadline:
                item = source.read(timeout=0.5)
                if isinstance(item, Frames):
                    if item.start_frame >= wanted:
                        break
                    keep = min(item.count, wanted - item.start_frame)
                    item = Frames(
                        item.data[: keep * fmt.frame_bytes], fmt, item.start_frame, item.lost_before
                    )
                    out.write(pipeline.process(item).pcm)
                    got = item.start_frame + keep
                elif isinstance(item, Overrun):
                    xruns, lost = xruns + 1, lost + item.lost_frames
                elif isinstance(item, DeviceLost):
                    problems.append(f"device lost: {item.message}")
                    if got == 0:  # never opened: a mic test should say so now, not retry
                        break
                elif isinstance(item, DeviceBack):
                    problems.append(f"device back after {item.outage_s:.1f} s")
                elif isinstance(item, EndOfStream):
                    break
        finally:
            source.stop()
        out.write(pipeline.finish().pcm)
    if got == 0:
        reason = problems[0] if problems else "no audio arrived"
        print(
            f"edge-recorder record: nothing recorded from {_describe(audio)}: {reason}",
            file=sys.stderr,
        )
        return 1
    report = summary(pipeline)
    stats = pipeline.stats
    if note:
        print(f"note: {note}")
    print(
        f"recorded {pipeline.duration_s:.2f} s from {_describe(audio)} "
        f"({fmt.channels} ch, {fmt.rate} Hz, {fmt.sample_format}) -> {args.output} "
        "(16 kHz mono PCM16)"
    )
    dsp = pipeline.dsp
    print(f"mics:     {dsp.array_kind}" + (f" ({dsp.array_note})" if dsp.array_note else ""))
    if dsp.array_mic_note:
        print(f"          {dsp.array_mic_note}  <- faulty mic?")
    print(f"level:    rms {report['rms_dbfs']:.1f} dBFS, peak {report['peak_dbfs']:.1f} dBFS")
    print(
        f"clipping: {stats.meters.clipped_in} input samples at full scale, "
        f"{stats.meters.clipped_out} clipped by gain"
    )
    print(f"xruns:    {xruns} ({lost} frames lost; {stats.meters.gap_frames} filled with silence)")
    print(
        f"speech:   {100 * stats.vad.speech_ratio:.0f}% ({len(stats.vad.segments)} segment(s), "
        f"VAD {config.vad.engine})"
    )
    print(
        f"digital silence: {report['digital_silence_s']:.1f} s"
        + ("  <- dead or muted mic?" if report["digital_silence_s"] else "")
    )
    if pipeline.duration_s > 0:
        kbps = stats.encoded_bytes * 8 / pipeline.duration_s / 1000
        print(f"encoder:  {config.encoding.codec}, {kbps:.1f} kbit/s")
    for line in problems:
        print(f"warning:  {line}")
    if got < wanted and audio.source == "alsa":
        print(
            f"edge-recorder record: only {got / fmt.rate:.2f} s of the "
            f"{args.seconds:.2f} s arrived",
            file=sys.stderr,
        )
        return 1
    return 0


def _describe(audio: AudioConfig) -> str:
    if audio.source == "alsa":
        return audio.device
    if audio.source == "wav":
        return str(audio.wav_path)
    return "synthetic source"
