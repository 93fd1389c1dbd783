"""`edge-recorder array-check signal|run`: measure in the real room what the array's beams gain.

The far-field figures in docs/audio.md come from simulated rooms. This checks them on the
device, in its room: a loudspeaker at a talker's spot plays a known signal (`signal` writes
a synthetic test voice with no words in it; any speech WAV will do), `run` records the raw
microphones meanwhile, runs every array processing kind over that one take exactly as the
pipeline would, and prints each kind's SI-SDR (and STOI with the `array-check` extra)
against what was played, as a gain over the plain mix, with the best kind for this spot.
`--json` prints the same for collecting many rooms. See docs/array-check.md.

Exit codes: 0 measured, 1 the take failed (the message says what to do), 2 a bad argument,
78 (EX_CONFIG) a config without the array's geometry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_recorder.commands._common import add_config_argument
from edge_recorder.commands._mic_take import (
    RATE,
    USAGE,
    Refused,
    bounded,
    capture,
    dispatch,
    load_config,
    mic_positions,
    read_wav,
    to_16k,
    write_signal,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edge_recorder.audio.array.scoring import KindScore, Location

    F32 = npt.NDArray[np.float32]
    F64 = npt.NDArray[np.float64]

SIGNAL_S = (5.0, 120.0)  # the reference's length, bounds
TAKE_S = (6.0, 130.0)  # a take's length, bounds: the longest signal and its lead, ~150 MB
LEAD_S = 8.0  # recording beyond the reference: time to press play, and the room's noise
SIGNAL_PEAK_DBFS = -6.0
CLIPPED = 0.999  # a mic at full scale: the loudspeaker is too loud
POOR_SNR_DB = 10.0
BETTER_DB = 0.5  # a kind this much above the configured one is worth switching to
LABEL_CHARS = 32


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "array-check",
        help="measure in the room what the array's beams gain over the plain mix",
        description="Play a known signal from a talker's spot, record the raw mics, and "
        "score every audio.array_processing kind against it (docs/array-check.md).",
    )
    sub = parser.add_subparsers(dest="check_command", metavar="ACTION", required=True)
    p_signal = sub.add_parser("signal", help="write the test voice to play from the loudspeaker")
    p_signal.add_argument("output", type=Path, metavar="OUT.wav")
    p_signal.add_argument("--seconds", type=float, default=30.0, help="length (default 30)")
    p_run = sub.add_parser("run", help="record the signal played at a spot and score the kinds")
    p_run.add_argument(
        "--reference", type=Path, required=True, metavar="FILE.wav", help="what is played"
    )
    p_run.add_argument("--seconds", type=float, help=f"how long to record (reference + {LEAD_S:g})")
    p_run.add_argument("--from-wav", type=Path, metavar="FILE", help="a take recorded elsewhere")
    p_run.add_argument("--save", type=Path, metavar="FILE.wav", help="keep the raw take")
    p_run.add_argument("--label", default="", help="the spot's name, for the report")
    p_run.add_argument("--device", help="ALSA PCM name (overrides audio.device)")
    p_run.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_argument(p_run)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return dispatch("array-check", args.check_command, {"signal": _signal, "run": _run}, args)


def _signal(args: argparse.Namespace) -> int:
    from edge_recorder.audio.array.testvoice import synthetic_voice

    bounded("--seconds", args.seconds, SIGNAL_S)
    write_signal(args.output, synthetic_voice(args.seconds), SIGNAL_PEAK_DBFS)
    print(
        f"wrote {args.output}: {args.seconds:g} s test voice (no words), 16 kHz mono PCM16, "
        f"peak {SIGNAL_PEAK_DBFS:g} dBFS. Play it at about a talker's loudness (~60-65 dB at "
        "1 m) from a loudspeaker at mouth height on the spot while `array-check run` records."
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_recorder.audio.array import KINDS
    from edge_recorder.audio.array.mic_balance import take_faults
    from edge_recorder.audio.array.scoring import (
        NotFound,
        locate,
        noise_and_snr,
        score_kinds,
        stoi_available,
    )
    from edge_recorder.audio.array.stage import load_array_calibration

    if len(args.label) > LABEL_CHARS or not args.label.isprintable():
        raise Refused(f"--label: up to {LABEL_CHARS} printable characters", USAGE)
    reference = _reference(args.reference)
    seconds = args.seconds if args.seconds is not None else reference.size / RATE + LEAD_S
    bounded("--seconds", seconds, TAKE_S)
    config = load_config(args)
    positions = mic_positions(config, "array-check")
    mics = positions.shape[0]
    if args.from_wav is not None:
        (channels, rate), where = read_wav(args.from_wav, mics, TAKE_S), str(args.from_wav)
    else:
        prompt = f"start the signal ({reference.size / RATE:.0f} s) within {LEAD_S - 2:g} s"
        out = sys.stderr if args.json else sys.stdout
        channels, rate, where = capture(config, args.device, seconds, mics, prompt, out)
    if args.save is not None:
        _save(args.save, channels, rate)
    take = to_16k(channels, rate).T.astype(np.float32)  # (N, M)
    mix = take.mean(axis=1, dtype=np.float64)
    try:
        location = locate(reference, mix)
    except NotFound as exc:
        raise Refused(f"{where}: {exc}") from None
    kinds = [k for k in KINDS if k != "calibrated"]
    skipped = None
    path = config.audio.array_calibration
    calibration, reason = load_array_calibration(path, positions)
    if calibration is not None:
        kinds.append("calibrated")
    elif config.audio.array_processing == "calibrated":
        skipped = f"calibrated: not measured: {reason}"
    if not args.json:
        print(f"scoring {len(kinds)} kinds on {take.shape[0] / RATE:.1f} s from {where} ...")
    scores = score_kinds(take, location, config.audio, kinds)
    notes = [skipped] if skipped else []
    notes += [  # the beams leave a faulty mic out; the technician should know before comparing
        f"{f.describe(mics)}: the beams leave it out (check that mic, then run again)"
        for f in take_faults(take.T.astype(np.float64))
    ]
    if not stoi_available():
        notes.append("STOI: not measured (install the array-check extra)")
    report = _report(
        args.label,
        where,
        config.audio.array_processing,
        location,
        scores,
        noise_and_snr(mix, location),
        mics,
        bool(np.max(np.abs(channels)) >= CLIPPED),
        notes,
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        _print(report)
    return 0


def _reference(path: Path) -> F64:
    """The played file as mono 16 kHz (its channels averaged, as a mono loudspeaker plays a
    stereo file), bounded."""
    import numpy as np
    import soxr

    data, rate = read_wav(path, None, SIGNAL_S)
    mono = data.mean(axis=1, dtype=np.float64)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ")
    if float(np.max(np.abs(mono))) == 0.0:
        raise Refused(f"{path} is silent")
    return np.asarray(mono, np.float64)


def _save(path: Path, channels: F32, rate: int) -> None:
    """The raw take, readable by its owner only (a room's sound, even without a patient)."""
    import soundfile

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            soundfile.write(out, channels, rate, subtype="FLOAT", format="WAV")
    except (OSError, RuntimeError) as exc:
        raise Refused(f"cannot write {path}: {exc}") from None


@dataclass(frozen=True)
class Row:
    kind: str
    si_sdr_db: float
    si_sdr_gain_db: float  # over the plain mix ("average")
    stoi: float | None
    stoi_gain: float | None
    configured: bool
    fell_back: str | None  # why the kind ran its fallback instead


@dataclass(frozen=True)
class Report:
    """What one take says (numbers and kind names only: nothing of the room's sound)."""

    label: str
    source: str
    mics: int
    signal_at_s: float
    match: float
    clock_drift_ppm: float
    noise_dbfs: float | None
    snr_db: float | None
    clipped: bool
    configured: str
    best: str
    kinds: list[Row]
    notes: list[str]


def _report(
    label: str,
    where: str,
    configured: str,
    location: Location,
    scores: list[KindScore],
    room: tuple[float | None, float | None],
    mics: int,
    clipped: bool,
    notes: list[str],
) -> Report:
    base = scores[0]  # "average": KINDS starts with it
    rows = [
        Row(
            kind=s.kind,
            si_sdr_db=round(s.si_sdr_db, 2),
            si_sdr_gain_db=round(s.si_sdr_db - base.si_sdr_db, 2),
            stoi=None if s.stoi is None else round(s.stoi, 3),
            stoi_gain=None if s.stoi is None or base.stoi is None else round(s.stoi - base.stoi, 3),
            configured=s.kind == configured,
            fell_back=s.note,
        )
        for s in scores
    ]
    noise_dbfs, snr_db = room
    return Report(
        label=label,
        source=where,
        mics=mics,
        signal_at_s=round(location.offset / RATE, 3),
        match=round(location.match, 3),
        clock_drift_ppm=round(location.drift_ppm, 1),
        noise_dbfs=None if noise_dbfs is None else round(noise_dbfs, 1),
        snr_db=None if snr_db is None else round(snr_db, 1),
        clipped=clipped,
        configured=configured,
        best=max(rows, key=lambda r: r.si_sdr_db).kind,
        kinds=rows,
        notes=notes,
    )


def _print(report: Report) -> None:
    spot = f"spot {report.label}: " if report.label else ""
    print(
        f"{spot}signal found at {report.signal_at_s} s of the take (match {report.match}); "
        f"the loudspeaker's clock {report.clock_drift_ppm:+} ppm against the mics'"
    )
    if report.snr_db is None:
        print("room noise: not measured (start the signal a second or more after recording)")
    else:
        print(f"room noise {report.noise_dbfs} dBFS; the signal {report.snr_db} dB above it")
    print(f"{'kind':<22} {'SI-SDR':>8} {'vs mix':>8} {'STOI':>6} {'vs mix':>7}")
    for r in report.kinds:
        stoi = "-" if r.stoi is None else f"{r.stoi:.3f}"
        stoi_gain = "-" if r.stoi_gain is None else f"{r.stoi_gain:+.3f}"
        mark = " *" if r.configured else ""
        fell = f"  (ran its fallback: {r.fell_back})" if r.fell_back else ""
        print(
            f"{r.kind:<22} {r.si_sdr_db:>6.2f}dB {r.si_sdr_gain_db:>+6.2f}dB "
            f"{stoi:>6} {stoi_gain:>7}{mark}{fell}"
        )
    print("* configured (audio.array_processing)")
    for note in report.notes:
        print(note)
    if report.clipped:
        print("warning: the mics clipped: turn the loudspeaker down and run again")
    if report.snr_db is not None and report.snr_db < POOR_SNR_DB:
        print(
            f"advice: the signal is barely above the room's noise (< {POOR_SNR_DB:g} dB): "
            "play it louder to measure what the beams do for a talker at a normal level"
        )
    print(advice(report))


def advice(report: Report) -> str:
    """The best kind at this spot, and whether switching to it is worth it."""
    by_kind = {r.kind: r.si_sdr_db for r in report.kinds}
    best, configured = report.best, report.configured
    gain = by_kind[best] - by_kind["average"]
    if configured not in by_kind:
        return f"best here: {best}, {gain:+.1f} dB SI-SDR over the plain mix"
    ahead = by_kind[best] - by_kind[configured]
    if best == configured or ahead < BETTER_DB:
        same = "it" if best == configured else f"within {BETTER_DB:g} dB of it"
        return (
            f"best here: {best}, {gain:+.1f} dB SI-SDR over the plain mix; the configured "
            f"{configured} is {same}"
        )
    return (
        f"best here: {best}, {gain:+.1f} dB SI-SDR over the plain mix and {ahead:+.1f} dB over "
        f"the configured {configured}. If the other spots agree, set in the config's [audio] "
        f'section: array_processing = "{best}"'
    )
