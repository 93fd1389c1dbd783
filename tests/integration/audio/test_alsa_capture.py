"""AlsaSource through real libasound (ALSA `file` plugin), with faults injected by an
LD_PRELOAD shim over snd_pcm_readi / snd_pcm_open / snd_pcm_htimestamp."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.integration.audio.conftest import Capture, RunCapture

WIDTH = {"S16_LE": 2, "S24_LE": 4, "S32_LE": 4}


def make_raw(path: Path, frames: int, channels: int, fmt: str, seed: int = 7) -> bytes:
    """Known random samples; S24_LE values stay within 24 bits, as a card delivers them."""
    rng = np.random.default_rng(seed)
    if fmt == "S16_LE":
        data = rng.integers(-(2**15), 2**15, size=frames * channels, dtype=np.int16).tobytes()
    else:
        bits = 24 if fmt == "S24_LE" else 32
        values = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=frames * channels)
        data = values.astype("<i4").tobytes()
    path.write_bytes(data)
    return data


def spec_for(raw: Path, fmt: str, rate: int, channels: int, max_frames: int) -> dict[str, object]:
    return {
        "device": f"fakemic:{raw}",
        "format": fmt,
        "rate": rate,
        "channels": channels,
        "max_frames": max_frames,
    }


def assert_blocks_match_timeline(
    cap: Capture, raw: bytes, frame_bytes: int, restart_at: int | None = None
) -> None:
    """Every block holds the input bytes of its own timeline position (sample accuracy).

    After a re-open the file plugin starts the file again: blocks from the `restart_at`-th
    block on are compared with the file from its beginning.
    """
    offset = 0
    pos = 0
    frames_seen = 0
    blocks = cap.of("Frames")
    for index, block in enumerate(blocks):
        if restart_at is not None and index == restart_at:
            offset = block["start"]
        expected = raw[
            (block["start"] - offset) * frame_bytes : (block["start"] - offset + block["count"])
            * frame_bytes
        ]
        got = cap.data[pos : pos + block["count"] * frame_bytes]
        assert got == expected, f"block {index} at frame {block['start']} differs"
        pos += block["count"] * frame_bytes
        frames_seen += block["count"]
    assert pos == len(cap.data)


def assert_contiguous(cap: Capture) -> None:
    """start_frame of each block = end of the previous one + the frames lost before it."""
    expected = 0
    for block in cap.of("Frames"):
        assert block["start"] == expected + block["lost_before"]
        expected = block["start"] + block["count"]


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "frames"),
    [
        ("S16_LE", 16000, 1, 8100),  # not a whole number of periods: the last is trimmed
        ("S32_LE", 48000, 4, 24000),
        ("S24_LE", 44100, 2, 8820),
    ],
)
def test_capture_is_byte_identical_and_stops_at_the_frame_count(
    tmp_path: Path, run_capture: RunCapture, fmt: str, rate: int, channels: int, frames: int
) -> None:
    period = rate // 50
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + period, channels, fmt)  # one period of padding: never
    # read past the end of the file (the plugin returns garbage there)
    cap = run_capture(spec_for(raw_path, fmt, rate, channels, frames), shim=None)
    assert cap.returncode == 0, cap.stderr
    frame_bytes = WIDTH[fmt] * channels
    assert cap.data == raw[: frames * frame_bytes]
    assert_contiguous(cap)
    assert all(block["lost_before"] == 0 for block in cap.of("Frames"))
    assert cap.items[-1] == {**cap.items[-1], "type": "EndOfStream", "at_frame": frames}
    assert cap.stats["frames"] == frames
    assert cap.stats["overruns"] == 0


def test_capture_from_a_pipe(tmp_path: Path, run_capture: RunCapture) -> None:
    frames, period = 8000, 320
    raw_path = tmp_path / "source.raw"
    raw = make_raw(raw_path, frames + period, 1, "S16_LE", seed=3)
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as pipe:  # blocks until the plugin opens the other end
            for start in range(0, len(raw), 1000):  # small writes: reads see partial data
                pipe.write(raw[start : start + 1000])
                pipe.flush()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    cap = run_capture(spec_for(fifo, "S16_LE", 16000, 1, frames), shim=None)
    writer.join(timeout=10)
    assert cap.returncode == 0, cap.stderr
    assert cap.data == raw[: frames * 2]
    assert_contiguous(cap)


def test_overrun_is_counted_reprepared_and_lost_frames_are_on_the_timeline(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    frames, period, lose = 8000, 320, 1000
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + 3 * lose, 1, "S16_LE")
    cap = run_capture(
        spec_for(raw_path, "S16_LE", 16000, 1, frames),
        shim={"SHIM_PACE": "1", "SHIM_EPIPE_AT": "5,12", "SHIM_XRUN_LOSE": str(lose)},
    )
    assert cap.returncode == 0, cap.stderr
    overruns = cap.of("Overrun")
    # reads 1-4 delivered 4 periods; read 5 overran and lost `lose` frames
    assert overruns[0] == {
        **overruns[0],
        "at_frame": 4 * period + lose,
        "lost_frames": lose,
        "cause": "device",
    }
    # reads 6-11 delivered 6 more periods; read 12 overran
    assert overruns[1]["at_frame"] == 4 * period + lose + 6 * period + lose
    assert [o["lost_frames"] for o in overruns] == [lose, lose]
    assert cap.stats["overruns"] == 2
    assert cap.stats["overrun_lost_frames"] == 2 * lose
    lost_blocks = [b for b in cap.of("Frames") if b["lost_before"]]
    assert [b["start"] for b in lost_blocks] == [o["at_frame"] for o in overruns]
    assert_contiguous(cap)
    assert_blocks_match_timeline(cap, raw, 2)
    assert cap.of("EndOfStream")[0]["at_frame"] == frames
    # the stream was prepared again after each injected -EPIPE
    epipes = [i for i, line in enumerate(cap.shim_log) if line.startswith("epipe")]
    assert len(epipes) == 2
    for index in epipes:
        assert any(line.startswith("prepare") for line in cap.shim_log[index + 1 :])


def test_unplug_reports_device_lost_reopens_with_backoff_and_reports_the_outage(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    frames, period, rate = 16000, 320, 16000
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + period, 1, "S16_LE")
    cap = run_capture(
        {
            **spec_for(raw_path, "S16_LE", rate, 1, frames),
            "backoff_initial_s": 0.02,
            "backoff_max_s": 0.08,
        },
        # read 10 finds the device gone; the next four opens find nothing; the fifth works
        shim={"SHIM_PACE": "1", "SHIM_READ_FAIL": "10-10:ENODEV", "SHIM_OPEN_FAIL": "2-5:ENOENT"},
    )
    assert cap.returncode == 0, cap.stderr
    kinds = [item["type"] for item in cap.items if item["type"] != "Frames"]
    assert kinds == ["DeviceLost", "DeviceBack", "EndOfStream"]
    lost = cap.of("DeviceLost")[0]
    assert lost["reason"] == "unplugged"
    assert "disappeared" in lost["message"]
    # back-off: attempts spaced by at least 0.02, 0.04, 0.08, 0.08, 0.08 (capped) seconds
    attempts = [
        float(line.rsplit("t=", 1)[1])
        for line in cap.shim_log
        if line.startswith(("open ", "open-fail "))
    ]
    assert len(attempts) == 6  # first open, four failures, the re-open
    read_fail = next(
        float(line.rsplit("t=", 1)[1]) for line in cap.shim_log if line.startswith("read-fail")
    )
    waits = np.diff([read_fail, *attempts[1:]])
    assert list(waits >= np.array([0.02, 0.04, 0.08, 0.08, 0.08]) - 0.003) == [True] * 5
    back = cap.of("DeviceBack")[0]
    assert 0.3 - 0.003 <= back["outage_s"] < 5.0
    blocks = cap.of("Frames")
    first_after = next(i for i, b in enumerate(blocks) if b["lost_before"])
    assert first_after == 9  # nine periods before the unplug
    assert blocks[first_after]["lost_before"] == round(back["outage_s"] * rate)
    assert cap.stats["failed_opens"] == 4
    assert cap.stats["outages"] == 1
    assert_contiguous(cap)
    assert_blocks_match_timeline(cap, raw, 2, restart_at=first_after)
    assert cap.of("EndOfStream")[0]["at_frame"] == frames


def test_busy_device_at_start_names_the_cause_and_is_retried(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    frames = 3200
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + 320, 1, "S16_LE")
    cap = run_capture(
        {**spec_for(raw_path, "S16_LE", 16000, 1, frames), "backoff_initial_s": 0.05},
        shim={"SHIM_PACE": "1", "SHIM_OPEN_FAIL": "1-2:EBUSY"},
    )
    assert cap.returncode == 0, cap.stderr
    assert cap.items[0]["type"] == "DeviceLost"
    assert cap.items[0]["reason"] == "busy"
    assert "busy: another process holds the microphone" in cap.items[0]["message"]
    assert len(cap.of("DeviceLost")) == 1  # the second refusal is the same outage
    back = cap.of("DeviceBack")[0]
    assert back["outage_s"] >= 0.15 - 0.005  # 0.05 + 0.1 of back-off
    first = cap.of("Frames")[0]
    assert first["start"] == first["lost_before"] == round(back["outage_s"] * 16000)
    assert_contiguous(cap)
    assert_blocks_match_timeline(cap, raw, 2, restart_at=0)


def test_io_error_during_capture_is_typed_and_recovered(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    raw_path = tmp_path / "in.raw"
    make_raw(raw_path, 3200 + 320, 1, "S16_LE")
    cap = run_capture(
        {**spec_for(raw_path, "S16_LE", 16000, 1, 3200), "backoff_initial_s": 0.02},
        shim={"SHIM_PACE": "1", "SHIM_READ_FAIL": "3-3:EIO"},
    )
    assert cap.returncode == 0, cap.stderr
    assert [e["reason"] for e in cap.of("DeviceLost")] == ["io-error"]
    assert len(cap.of("DeviceBack")) == 1
    assert_contiguous(cap)


def test_a_stalled_consumer_never_blocks_capture_and_the_drop_is_reported(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    frames, period = 8000, 320
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + period, 1, "S16_LE")
    # queue of 5 blocks; the consumer reads nothing until 15 periods were captured
    cap = run_capture(
        {
            **spec_for(raw_path, "S16_LE", 16000, 1, frames),
            "queue_s": 0.1,
            "hold_until_frames": 15 * period,
        },
        shim={"SHIM_PACE": "1"},
    )
    assert cap.returncode == 0, cap.stderr
    stall = [o for o in cap.of("Overrun") if o["cause"] == "consumer"]
    assert len(stall) >= 1
    dropped = sum(o["lost_frames"] for o in stall)
    assert dropped == cap.stats["dropped_frames"] >= 10 * period - period
    carried = [b for b in cap.of("Frames") if b["lost_before"]]
    assert sum(b["lost_before"] for b in carried) == dropped
    assert sum(b["count"] for b in cap.of("Frames")) + dropped == frames
    assert_contiguous(cap)
    assert_blocks_match_timeline(cap, raw, 2)


def test_a_stalled_device_raises_an_alarm_and_reports_the_gap_when_it_resumes(
    tmp_path: Path, run_capture: RunCapture
) -> None:
    frames, period, rate = 32000, 320, 16000
    raw_path = tmp_path / "in.raw"
    raw = make_raw(raw_path, frames + period, 1, "S16_LE")
    # read 6 hangs for 1.5 s (no error: the device just stops), then audio flows again
    cap = run_capture(
        spec_for(raw_path, "S16_LE", rate, 1, frames),
        shim={"SHIM_PACE": "1", "SHIM_STALL_AT": "6", "SHIM_STALL_MS": "1500"},
    )
    assert cap.returncode == 0, cap.stderr
    kinds = [item["type"] for item in cap.items if item["type"] != "Frames"]
    assert kinds == ["DeviceLost", "DeviceBack", "EndOfStream"]
    lost, back = cap.of("DeviceLost")[0], cap.of("DeviceBack")[0]
    assert lost["reason"] == "io-error"
    assert "stalled" in lost["message"]
    last_block_t = float(
        next(line for line in cap.shim_log if line.startswith("open")).rsplit("t=", 1)[1]
    )
    assert lost["t"] - last_block_t < 2.0  # the alarm comes within 2 s of the last audio
    assert back["outage_s"] == 1.5  # exactly the frames the stall swallowed
    resumed = next(b for b in cap.of("Frames") if b["lost_before"])
    assert resumed["start"] == 5 * period + 24000
    assert resumed["lost_before"] == 24000
    assert_contiguous(cap)
    assert_blocks_match_timeline(cap, raw, 2)
