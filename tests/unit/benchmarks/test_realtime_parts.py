"""The pure parts of benchmarks/bench_realtime: the pacer's schedule and ring buffer, the
array-like input, the floor's commands, and the goal checks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks._realtime_feed import (
    FAKEMIC_CONF,
    NativeFormat,
    Pacer,
    alsa_env,
    array_audio,
    channel_delays,
    device_name,
    due_periods,
    fits,
)
from benchmarks._realtime_floor import floor_commands, pan_filter
from benchmarks.bench_realtime import PERIOD_MS, REFERENCE, Case, cases, goals, profiles
from benchmarks.run import markdown

FOUR_MIC = NativeFormat(
    rate=16000,
    channels=4,
    format="S32_LE",
    mix_weights=(0.25,) * 4,
    mic_positions_mm=((22.85, 22.85, 0.0), (-22.85, 22.85, 0.0),
                      (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)),
)  # fmt: skip


def test_a_period_is_due_once_it_is_complete() -> None:
    assert due_periods(-0.5, 0.12) == 0
    assert due_periods(0.0, 0.12) == 0
    assert due_periods(0.1199, 0.12) == 0
    assert due_periods(0.12, 0.12) == 1
    assert due_periods(0.3, 0.12) == 2
    # float products land a hair below the boundary; the period is still due
    assert due_periods(0.12 * 11, 0.12) == 11  # 0.12 * 11 / 0.12 = 10.999999999999998
    assert due_periods(0.02 * 29, 0.02) == 29


def test_the_ring_buffer_takes_a_period_only_if_it_fits_whole() -> None:
    assert fits(0, 100, 8)
    assert fits(700, 100, 8)
    assert not fits(701, 100, 8)
    assert not fits(800, 100, 8)


def test_every_profile_gives_a_native_format_the_feed_can_write() -> None:
    formats = profiles()
    assert REFERENCE in formats
    assert formats[REFERENCE] == FOUR_MIC
    for name, fmt in formats.items():
        assert len(fmt.weights) == fmt.channels, name
        assert len(channel_delays(fmt)) == fmt.channels, name
        assert fmt.period_frames(120) * 1000 == fmt.rate * 120, name


def test_delays_follow_the_array_geometry() -> None:
    delays = channel_delays(FOUR_MIC, azimuth_deg=0.0)  # talker on +x: mics at +x hear first
    assert delays[0] == delays[3] == 0
    assert delays[1] == delays[2] == round(45.7 / 343_000 * 16000)  # 45.7 mm aperture on x
    six = profiles()["respeaker-6mic-array"]
    assert channel_delays(six)[6:] == [0, 1]  # loopback channels: a small fixed spread
    assert channel_delays(NativeFormat(48000, 1, "S16_LE")) == [0]


@pytest.mark.parametrize(("fmt", "dtype"), [(FOUR_MIC, "<i4"),
                                            (NativeFormat(48000, 2, "S16_LE"), "<i2")])  # fmt: skip
def test_array_audio_is_the_speech_delayed_and_scaled_per_channel(
    fmt: NativeFormat, dtype: str
) -> None:
    t = np.arange(16000) / 16000
    mono = (0.5 * np.sin(2 * np.pi * 300 * t) * (t > 0.25)).astype(np.float32)
    raw = array_audio(mono, fmt)
    frames = fmt.rate  # one second at the native rate
    assert len(raw) == frames * fmt.frame_bytes
    pcm = np.frombuffer(raw, dtype).reshape(frames, fmt.channels).astype(np.float64)
    scale = 2**31 if fmt.format == "S32_LE" else 2**15
    onset = int(0.25 * fmt.rate)
    quiet = onset - fmt.rate // 200  # 5 ms before the onset (resampling rings a little)
    delays = channel_delays(fmt)
    starts = []
    for c in range(fmt.channels):
        channel = pcm[:, c] / scale
        assert np.max(np.abs(channel[:quiet])) < 0.004  # self-noise only (-66 dBFS rms)
        assert 0.5 * 0.7 * 0.95 < np.max(np.abs(channel)) <= 0.5 * 1.0 + 0.004  # gain 0.7-1
        starts.append(int(np.argmax(np.abs(channel) > 0.05)))
    for c in range(1, fmt.channels):
        assert abs((starts[c] - starts[0]) - (delays[c] - delays[0])) <= 1, (starts, delays)
    assert len(set(delays)) > 1  # the channels are not copies of each other


def test_the_pacer_writes_whole_periods_in_order_and_wraps_round(tmp_path: Path) -> None:
    fmt = NativeFormat(16000, 2, "S16_LE")
    period = fmt.period_frames(10) * fmt.frame_bytes  # 10 ms: 640 bytes
    audio = bytes(range(256)) * 6  # 1536 bytes: two whole periods, then a partial one
    pacer = Pacer(tmp_path / "mic.fifo", audio, fmt, period_ms=10, buffer_periods=8)
    try:
        fd = os.open(pacer.fifo, os.O_RDONLY)  # does not block: the pacer holds both ends
        try:
            got = b""
            while len(got) < 3 * period:  # blocking reads: returns as periods are written
                got += os.read(fd, 3 * period - len(got))
        finally:
            os.close(fd)
    finally:
        pacer.close()
    assert got == audio[:period] + audio[period : 2 * period] + audio[:period]
    assert pacer.dropped == 0


def test_the_floor_captures_like_the_daemon_and_mixes_with_the_profile_weights() -> None:
    six = profiles()["respeaker-6mic-array"]
    assert pan_filter(six) == "pan=mono|c0=" + "+".join(f"0.1667*c{c}" for c in range(6))
    assert pan_filter(NativeFormat(16000, 2, "S16_LE")) == "pan=mono|c0=0.5*c0+0.5*c1"
    arecord, ffmpeg = floor_commands(FOUR_MIC, "fakemic:/x", 4321, 120, 8)
    assert arecord[:4] == ["arecord", "-q", "-D", "fakemic:/x"]
    assert arecord[6:12] == ["-f", "S32_LE", "-c", "4", "-r", "16000"]
    assert "--period-time=120000" in arecord and "--buffer-time=960000" in arecord
    assert ffmpeg[ffmpeg.index("-f") + 1] == "s32le"
    assert "aresample=16000:resampler=soxr" in ffmpeg[ffmpeg.index("-af") + 1]
    assert ffmpeg[-1] == "tcp://127.0.0.1:4321"


def test_the_consumers_read_the_projects_test_pcm() -> None:
    assert FAKEMIC_CONF.is_file()
    assert alsa_env()["ALSA_CONFIG_PATH"].endswith(f":{FAKEMIC_CONF}")
    assert device_name(Path("/tmp/m.fifo")) == "fakemic:/tmp/m.fifo"


def test_quick_runs_fewer_streams_and_every_non_stream_case_once() -> None:
    quick, full = cases(True), cases(False)
    default_streams = [c for c in full if c.kind == "stream" and c.period_ms == PERIOD_MS]
    assert len(default_streams) == len(profiles())
    assert Case("stream", REFERENCE) in quick and len(quick) < len(full)
    assert [c for c in full if c.kind != "stream"] == [c for c in quick if c.kind != "stream"]
    labels = [c.label for c in full]
    assert len(set(labels)) == len(labels)  # results are found by label
    assert "offline-idle" in labels and "backlog-idle" in labels


def test_full_runs_add_the_period_trade_off_around_the_default() -> None:
    periods = sorted(
        c.period_ms for c in cases(False) if c.label.startswith(f"stream: {REFERENCE}")
    )
    assert periods[0] < PERIOD_MS < periods[-1] and PERIOD_MS in periods
    assert all(c.period_ms == PERIOD_MS for c in cases(True))


def _result(case: str, cpu: float, **extra: object) -> dict[str, object]:
    return {"case": case, "profile": "p", "format": "f", "cpu_per_s": cpu,
            "period_ms": PERIOD_MS, **extra}  # fmt: skip


def test_goals_are_checked_against_the_figures() -> None:
    backlog = {"recordings": 2000}
    results = [
        _result("stream: a", 0.02, ratio=2.0),
        _result("stream: b", 0.02, ratio=2.01),
        _result("idle", 0.005, mic_watch_cpu_per_s=0.002),  # 0.003 besides the watch: met
        _result("offline-idle", 0.004),
        _result("backlog-idle", 0.0044, backlog=backlog),  # offline-idle + 10 %: still met
        _result("stream: a @ 80 ms", 0.03, ratio=9.0, period_ms=80),  # trade-off: no goal
    ]
    assert [g["met"] for g in goals(results)] == [True, False, True, True]
    results[2]["cpu_per_s"] = 0.0051
    results[4]["cpu_per_s"] = 0.004 * 1.1 + 0.00001
    checked = goals(results)
    assert [g["met"] for g in checked] == [True, False, False, False]
    assert "0.002" in checked[2]["goal"] and checked[2]["value"] == 0.0031  # what the watch costs
    assert "why" not in checked[0]  # a goal met needs no explanation
    assert all(g["why"].startswith("docs/") for g in checked[1:])  # every shortfall points to one
    no_floor = [_result("stream: c", 0.02)]  # the floor's CPU was zero: no ratio, not met
    assert goals(no_floor)[0]["met"] is False


def test_a_shortfall_prints_where_it_is_explained() -> None:
    table = {"title": "t", "columns": ["a"], "rows": [],
             "goals": [{"goal": "g", "value": 1, "met": False, "why": "docs/x.md#y"},
                       {"goal": "h", "value": 0, "met": True}]}  # fmt: skip
    text = markdown(table)
    assert "Goal: g: 1 (NOT met; why: docs/x.md#y)" in text
    assert "Goal: h: 0 (met)" in text
