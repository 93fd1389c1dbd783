"""`edge-recorder calibrate-array sweep|measure|finish|show`: calibrate the array for its room.

A technician plays a known sweep from a small loudspeaker at each talker spot (exam table,
patient chair, clinician's stool) and at points ~5 cm around it; `measure` records the raw
microphones (no DSP, no beam) and keeps each spot's impulse responses under --dir; `finish`
turns them into the calibration file that `audio.array_processing = "calibrated"` beams with;
`show` checks a file against the configured geometry. See docs/array-calibration.md.

Exit codes: 0 done, 1 the measurement or the file failed (the message says what to do),
2 a bad argument, 78 (EX_CONFIG) a config without the array's geometry.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from edge_recorder.commands._calibration_store import (
    SPOT_NAME,
    hand_over,
    load_measurement,
    measurements,
    store_measurement,
)
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

    F64 = npt.NDArray[np.float64]

DEFAULT_DIR = Path("/var/lib/edge-recorder/calibration")
SWEEP_PEAK_DBFS = -3.0
SWEEP_S = (1.0, 30.0)  # the sweep's length, bounds
RECORD_S = (2.0, 60.0)  # a measurement's length, bounds (and a WAV's)
SAME_SPOT_DEG = 12.0  # points 5-10 cm apart at 1-3 m differ by 1-6°; two spots by ≥ 30°
POOR_SNR_DB = 25.0  # below this, advice: louder (spots.sweep_snr_db: good ones read 40+)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "calibrate-array",
        help="calibrate a mic array's beam for the room's talker spots (sweep, measure, ...)",
        description="Measure the room's response from each talker spot with a loudspeaker "
        "sweep, for audio.array_processing = 'calibrated' (docs/array-calibration.md).",
    )
    sub = parser.add_subparsers(dest="calibrate_command", metavar="ACTION", required=True)
    p_sweep = sub.add_parser("sweep", help="write the sweep to play from the loudspeaker")
    p_sweep.add_argument("output", type=Path, metavar="OUT.wav")
    p_sweep.add_argument("--seconds", type=float, default=5.0, help="sweep length (default 5)")
    p_measure = sub.add_parser("measure", help="record the sweep played at one spot")
    p_measure.add_argument("--spot", required=True, help="spot name: a-z, 0-9, '-', '_'")
    lengths = (("--seconds", 12.0, "how long to record"), ("--sweep-seconds", 5.0, "sweep length"))
    for flag, default, what in lengths:
        p_measure.add_argument(flag, type=float, default=default, help=f"{what} ({default:g})")
    p_measure.add_argument("--from-wav", type=Path, metavar="FILE", help="a WAV made elsewhere")
    p_measure.add_argument("--device", help="ALSA PCM name (overrides audio.device)")
    p_finish = sub.add_parser("finish", help="build the calibration file from the measurements")
    p_finish.add_argument("--out", type=Path, metavar="PATH", help="audio.array_calibration")
    p_show = sub.add_parser("show", help="check a calibration file against the geometry")
    p_show.add_argument("path", type=Path, nargs="?", metavar="PATH")
    for p in (p_measure, p_finish):
        p.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help=f"measurements (default {DEFAULT_DIR})"
        )
    for p in (p_measure, p_finish, p_show):
        add_config_argument(p)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    actions = {"sweep": _sweep, "measure": _measure, "finish": _finish, "show": _show}
    return dispatch("calibrate-array", args.calibrate_command, actions, args)


def _sweep(args: argparse.Namespace) -> int:
    from edge_recorder.audio.array.spots import SWEEP_BAND_HZ, sweep

    bounded("--seconds", args.seconds, SWEEP_S)
    write_signal(args.output, sweep(args.seconds, RATE), SWEEP_PEAK_DBFS)
    low, high = SWEEP_BAND_HZ
    print(
        f"wrote {args.output}: {args.seconds:g} s sweep {low:g}-{high:g} Hz, 16 kHz mono PCM16, "
        f"peak {SWEEP_PEAK_DBFS:g} dBFS. Play it at ~70 dB from a small loudspeaker at mouth "
        "height on each spot while `calibrate-array measure` records."
    )
    return 0


def _measure(args: argparse.Namespace) -> int:
    from edge_recorder.audio.array.calibration_file import CalibrationError
    from edge_recorder.audio.array.mic_balance import take_faults
    from edge_recorder.audio.array.spots import direct_path, measure_responses, sweep
    from edge_recorder.audio.array.spots import sweep_snr_db as snr_of

    if not SPOT_NAME.fullmatch(args.spot):
        raise Refused(
            f"spot name {args.spot!r}: use 1-32 of a-z, 0-9, '-', '_' (e.g. exam-table)", USAGE
        )
    bounded("--sweep-seconds", args.sweep_seconds, SWEEP_S)
    bounded("--seconds", args.seconds, RECORD_S)
    if args.from_wav is None and args.seconds < args.sweep_seconds + 2:
        raise Refused("--seconds must leave time to start the sweep: sweep + 2 s at least", USAGE)
    config = load_config(args)
    positions = mic_positions(config, "calibrate-array")
    mics = positions.shape[0]
    if args.from_wav is not None:
        (channels, rate), where = read_wav(args.from_wav, mics, RECORD_S), str(args.from_wav)
    else:
        channels, rate, where = capture(
            config, args.device, args.seconds, mics, "play the sweep now"
        )
    recording = to_16k(channels, rate)
    faulty = take_faults(recording)
    if faulty:  # its response would be learnt into every spot, and be wrong once it is fixed
        named = ", ".join(f.describe(mics) for f in faulty)
        raise Refused(
            f"{where}: {named}: a calibration needs every mic working; check that mic (a "
            "blocked port, a loose ribbon or HAT connector) with `edge-recorder record`, "
            "then measure again"
        )
    try:
        responses = measure_responses(recording, sweep(args.sweep_seconds, RATE))
        arrivals = direct_path(responses)[1]
    except CalibrationError as exc:
        raise Refused(f"{where}: {exc}") from None
    direction = _direction(arrivals, positions)
    apart = _apart_from_earlier(args.dir, args.spot, arrivals, positions)
    snr = snr_of(responses)
    try:
        path = store_measurement(args.dir, args.spot, responses, positions, snr)
    except CalibrationError as exc:
        raise Refused(str(exc)) from None
    print(f"spot {args.spot}: measurement {path.name} from {where} ({mics} mics) -> {path}")
    print(f"direction: {direction}")
    print(f"sweep SNR: {snr:.1f} dB")
    if snr < POOR_SNR_DB:
        print(
            f"advice: the sweep is barely above the noise (< {POOR_SNR_DB:g} dB): play it "
            "louder (~70 dB at 1 m), switch off fans and talk, and measure again"
        )
    if apart is not None:
        print(
            f"warning: this point is {apart[0]:.0f}° from {apart[1]}, the spot's earlier "
            f"measurement (points ~5 cm apart differ by a few degrees): was the loudspeaker "
            f"at another spot? If so, delete {path} and measure it under its own --spot name"
        )
    count = len(measurements(args.dir).get(args.spot, []))
    if count < 5:
        print(f"next: {5 - count} more at points ~5 cm around the spot, then `finish`")
    return 0


def _finish(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from edge_recorder.audio.array.calibration_file import (
        ArrayCalibration,
        CalibrationError,
        save_calibration,
    )
    from edge_recorder.audio.array.spots import spot_from_responses

    config = load_config(args)
    positions = mic_positions(config, "calibrate-array")
    out: Path = args.out or config.audio.array_calibration
    found = measurements(args.dir)
    if not found:
        raise Refused(f"no measurements in {args.dir}: run `calibrate-array measure` first")
    spots, lines = [], []
    try:
        for name, paths in sorted(found.items()):
            spot = spot_from_responses(name, [load_measurement(p, positions) for p in paths])
            spots.append(spot)
            few = (
                "  (fewer than 5 points: gains fall faster off the spot)" if len(paths) < 5 else ""
            )
            lines.append(
                f"  {name:<16} {len(paths)} measurement(s), "
                f"{_direction(spot.arrivals_s, positions)}{few}"
            )
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        save_calibration(out, ArrayCalibration(tuple(spots), positions, RATE, created))
        hand_over(out)
    except (CalibrationError, OSError) as exc:
        raise Refused(str(exc)) from None
    print(f"wrote {out}: {len(spots)} spot(s), {positions.shape[0]} mics, {created}")
    print("\n".join(lines))
    print("to use it, set in the config file's [audio] section (then restart the service):")
    print('  array_processing = "calibrated"')
    if out != config.audio.array_calibration:
        print(f'  array_calibration = "{out}"')
    return 0


def _show(args: argparse.Namespace) -> int:
    from edge_recorder.audio.array.calibration_file import CalibrationError, load_calibration

    config = load_config(args)
    positions = mic_positions(config, "calibrate-array")
    path: Path = args.path or config.audio.array_calibration
    if not path.exists():
        raise Refused(f"{path} does not exist (make it with `calibrate-array finish`)")
    try:
        calibration = load_calibration(path, positions)
    except (CalibrationError, OSError) as exc:
        raise Refused(str(exc)) from None
    print(
        f"{path}: valid for this array ({positions.shape[0]} mics), "
        f"{len(calibration.spots)} spot(s), {calibration.rate} Hz, made {calibration.created}"
    )
    for spot in calibration.spots:
        print(f"  {spot.name:<16} {_direction(spot.arrivals_s, positions)}")
    used = config.audio.array_processing == "calibrated" and path == config.audio.array_calibration
    print("in use: yes" if used else 'in use: no (set audio.array_processing = "calibrated")')
    return 0


# --- helpers -------------------------------------------------------------------------------


def _apart_from_earlier(
    directory: Path, spot: str, arrivals_s: F64, positions: F64
) -> tuple[float, str] | None:
    """The largest angle between this measurement's direction and the spot's earlier ones,
    with that file's name, when over SAME_SPOT_DEG: a point measured at the wrong spot
    would be pooled into this one's statistics. An unreadable earlier file is `finish`'s
    to report."""
    from edge_recorder.audio.array.calibrated import spot_direction
    from edge_recorder.audio.array.calibration_file import CalibrationError
    from edge_recorder.audio.array.geometry import angle_deg
    from edge_recorder.audio.array.spots import direct_path

    here = spot_direction(positions, arrivals_s)
    worst: tuple[float, str] | None = None
    for path in measurements(directory).get(spot, []):
        try:
            earlier = direct_path(load_measurement(path, positions))[1]
        except (CalibrationError, OSError):
            continue
        angle = angle_deg(here, spot_direction(positions, earlier))
        if angle > SAME_SPOT_DEG and (worst is None or angle > worst[0]):
            worst = (angle, path.name)
    return worst


def _direction(arrivals_s: F64, positions: F64) -> str:
    """The spot's direction as the beam sees it (the plane wave fitting its arrival times),
    in the board's frame: azimuth from +x towards +y, elevation up out of the board."""
    import numpy as np

    from edge_recorder.audio.array.calibrated import spot_direction

    u = spot_direction(positions, np.asarray(arrivals_s, np.float64))
    azimuth = math.degrees(math.atan2(float(u[1]), float(u[0]))) % 360
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(u[2])))))
    return f"azimuth {azimuth:.0f}°, elevation {elevation:.0f}° (board frame)"
