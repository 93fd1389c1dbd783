"""Pure helpers behind the capture sources: validation, back-off, error mapping, timeline."""

from __future__ import annotations

import errno
import itertools
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_recorder.audio.frames import AudioFormat, Frames, Overrun
from edge_recorder.capture.alsa import AlsaSource, busy_holders
from edge_recorder.capture.base import (
    CaptureFormatError,
    Handoff,
    Pacer,
    backoff_delays,
    card_name_of,
    classify_alsa_error,
    explain_loss,
    gap_frames,
    period_frames,
    uses_card_index,
    validate_capture_format,
)

MONO16 = AudioFormat(16000, 1, "S16_LE")


@pytest.mark.parametrize(
    ("fmt", "rate", "channels"),
    [("S16_LE", 8000, 1), ("S24_LE", 44100, 2), ("S32_LE", 48000, 8)],
)
def test_supported_formats_validate(fmt: str, rate: int, channels: int) -> None:
    assert validate_capture_format(fmt, rate, channels) == AudioFormat(rate, channels, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "words"),
    [
        ("S8", 16000, 1, "S8"),
        ("FLOAT_LE", 16000, 1, "FLOAT_LE"),
        ("S16_LE", 7999, 1, "7999"),
        ("S16_LE", 96000, 1, "96000"),
        ("S16_LE", 16000, 0, "channel count 0"),
        ("S16_LE", 16000, 9, "channel count 9"),
    ],
)
def test_unsupported_formats_are_refused_with_the_value(
    fmt: str, rate: int, channels: int, words: str
) -> None:
    with pytest.raises(CaptureFormatError, match=words):
        validate_capture_format(fmt, rate, channels)


def test_alsa_source_refuses_a_bad_format_before_opening_anything() -> None:
    opened: list[str] = []

    def opener(*args: object) -> object:
        opened.append("x")
        raise AssertionError("must not open")

    with pytest.raises(CaptureFormatError):
        AlsaSource("plughw:CARD=X,DEV=0", AudioFormat(16000, 1, "U8"), opener=opener)  # type: ignore[arg-type]
    assert opened == []


def test_backoff_doubles_and_is_capped() -> None:
    assert list(itertools.islice(backoff_delays(0.5, 10.0), 7)) == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
        10.0,
    ]
    assert list(itertools.islice(backoff_delays(5.0, 2.0), 2)) == [2.0, 2.0]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOENT, "missing"),
        (errno.EBUSY, "busy"),
        (errno.ENODEV, "unplugged"),
        (errno.EIO, "io-error"),
        (errno.EINVAL, "io-error"),
    ],
)
def test_alsa_error_messages_map_to_typed_reasons(code: int, reason: str) -> None:
    # pyalsaaudio formats errors as "<snd_strerror> [<device>]"
    assert classify_alsa_error(f"{os.strerror(code)} [plughw:CARD=Array,DEV=0]") == reason


def test_busy_message_names_the_cause_and_the_holder() -> None:
    text = explain_loss("busy", "plughw:CARD=Array,DEV=0", ["arecord[1234]"])
    assert "busy" in text and "arecord[1234]" in text and "dsnoop" in text


def test_busy_holders_are_read_from_proc_asound(tmp_path: Path) -> None:
    sub = tmp_path / "asound" / "ArrayUAC10" / "pcm0c" / "sub0"
    sub.mkdir(parents=True)
    (sub / "status").write_text("state: RUNNING\nowner_pid   : 4321\ntrigger_time: 1\n")
    (tmp_path / "4321").mkdir()
    (tmp_path / "4321" / "comm").write_text("arecord\n")
    assert busy_holders("plughw:CARD=ArrayUAC10,DEV=0", proc=tmp_path) == ["arecord[4321]"]
    assert busy_holders("plughw:CARD=Other,DEV=0", proc=tmp_path) == []
    assert busy_holders("default", proc=tmp_path) == []


def test_card_index_names_are_recognised() -> None:
    assert uses_card_index("hw:1,0")
    assert uses_card_index("plughw:2")
    assert uses_card_index("plughw:CARD=1,DEV=0")
    assert not uses_card_index("plughw:CARD=ArrayUAC10,DEV=0")
    assert not uses_card_index("dsnoop_mic")
    assert card_name_of("plughw:CARD=seeed4micvoicec,DEV=0") == "seeed4micvoicec"
    assert card_name_of("default") is None


def test_period_frames() -> None:
    assert period_frames(16000, 20) == 320
    assert period_frames(44100, 20) == 882
    assert period_frames(8000, 0) == 1


@given(
    st.integers(min_value=8000, max_value=48000),
    st.floats(min_value=0, max_value=3600, allow_nan=False),
    st.integers(min_value=0, max_value=10**7),
)
def test_gap_frames_is_the_time_between_blocks_in_whole_frames(
    rate: int, t0: float, lost: int
) -> None:
    # the next block starts `lost` frames after the last one ended
    assert abs(gap_frames(t0, t0 + lost / rate, rate) - lost) <= 1
    assert gap_frames(t0 + 1.0, t0, rate) == 0  # jitter never makes a negative gap


def frames_at(start: int, count: int = 320, lost: int = 0) -> Frames:
    return Frames(b"\x00\x00" * count, MONO16, start, lost)


def test_handoff_drops_when_full_and_reports_the_gap_on_the_next_block() -> None:
    handoff = Handoff(max_blocks=2)
    assert handoff.put_frames(frames_at(0))
    assert handoff.put_frames(frames_at(320))
    assert not handoff.put_frames(frames_at(640))  # full: dropped, never blocks
    assert not handoff.put_frames(frames_at(960, lost=100))
    assert handoff.dropped_frames == 640
    assert handoff.get(0) == frames_at(0)
    assert handoff.put_frames(frames_at(1380))
    assert handoff.get(0) == frames_at(320)
    assert handoff.get(0) == Overrun(at_frame=1380, lost_frames=740, cause="consumer")
    assert handoff.get(0) == frames_at(1380, lost=740)
    assert handoff.get(0) is None


def test_handoff_flushes_pending_drops_at_the_end() -> None:
    handoff = Handoff(max_blocks=1)
    handoff.put_frames(frames_at(0))
    handoff.put_frames(frames_at(320))
    handoff.flush_pending(640)
    assert handoff.get(0) == frames_at(0)
    assert handoff.get(0) == Overrun(at_frame=640, lost_frames=320, cause="consumer")


def test_handoff_events_are_queued_even_when_full() -> None:
    handoff = Handoff(max_blocks=1)
    handoff.put_frames(frames_at(0))
    handoff.put_event(Overrun(10, 5))
    assert handoff.get(0) == frames_at(0)
    assert handoff.get(0) == Overrun(10, 5)


def test_handoff_get_wakes_on_put_from_another_thread() -> None:
    handoff = Handoff(max_blocks=4)
    thread = threading.Thread(target=handoff.put_frames, args=(frames_at(0),))
    thread.start()
    assert handoff.get(timeout=5.0) == frames_at(0)
    thread.join()


def test_handoff_wake_ends_a_waiting_get_at_once() -> None:
    """stop() wakes the consumer: its get returns None instead of waiting out its timeout."""
    handoff = Handoff(max_blocks=4)
    got: list[object] = []
    started = threading.Event()

    def consume() -> None:
        started.set()
        got.append(handoff.get(timeout=60.0))

    thread = threading.Thread(target=consume)
    thread.start()
    started.wait(5)
    handoff.wake()
    thread.join(10)
    assert not thread.is_alive() and got == [None]


def test_handoff_counts_only_unread_blocks_against_the_bound() -> None:
    handoff = Handoff(max_blocks=2)
    for i in range(10):  # a consumer that keeps up never sees a drop
        assert handoff.put_frames(frames_at(i * 320))
        handoff.put_event(Overrun(i, 0))  # events do not count
        assert handoff.get(0) == frames_at(i * 320)
        assert handoff.get(0) == Overrun(i, 0)
    assert handoff.dropped_frames == 0


def test_pacer_at_speed_zero_never_waits_and_stop_interrupts() -> None:
    pacer = Pacer(block_s=3600.0, speed=0)
    pacer.start()
    assert all(pacer.wait_for_block(i, timeout=0) for i in range(100))
    slow = Pacer(block_s=3600.0, speed=1.0)
    slow.start()
    assert slow.wait_for_block(0, timeout=0.01) is False  # an hour away: not due yet
    slow.stop()
    assert slow.wait_for_block(0, timeout=None) is False  # stopped: returns at once


def test_concat_frames_joins_contiguous_blocks_only() -> None:
    from edge_recorder.audio.frames import AudioFormat, Frames, concat_frames

    fmt = AudioFormat(16000, 2, "S16_LE")
    a = Frames(b"\x01\x00\x02\x00" * 3, fmt, 100, lost_before=5)
    b = Frames(b"\x03\x00\x04\x00" * 2, fmt, 103)
    joined = concat_frames([a, b])
    assert (joined.data, joined.start_frame, joined.count) == (a.data + b.data, 100, 5)
    assert joined.lost_before == 5
    with pytest.raises(ValueError, match="contiguous"):
        concat_frames([a, Frames(b.data, fmt, 104)])
