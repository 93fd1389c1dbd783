"""AlsaSource's thread logic with a fake PCM (the real-libasound paths are in
tests/integration/audio): paths the shim cannot reach."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from edge_recorder.audio.frames import AudioFormat, DeviceBack, DeviceLost, EndOfStream, Frames
from edge_recorder.capture.alsa import AlsaSource
from edge_recorder.capture.alsa_pcm import DeviceError
from edge_recorder.capture.base import CaptureFormatError

FMT = AudioFormat(16000, 1, "S16_LE")


class FakePcm:
    """Periods of a counter signal; no hardware timestamps (time.monotonic() stands in)."""

    def __init__(self, script: Iterator[int | Exception] | None = None) -> None:
        self.script = script
        self.closed = False
        self.n = 0

    def read(self) -> tuple[int, bytes]:
        step = next(self.script) if self.script else 0
        if isinstance(step, Exception):
            raise step
        if step == -errno.EPIPE:
            return -errno.EPIPE, b""
        self.n += 1
        return 320, bytes([self.n % 256]) * 640

    def timestamp(self) -> tuple[float | None, int]:
        return None, 0

    def drop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def collect(source: AlsaSource) -> list[object]:
    items: list[object] = []
    source.start()
    while True:
        item = source.read(timeout=10)
        assert item is not None, "source went quiet"
        items.append(item)
        if isinstance(item, EndOfStream):
            source.stop()
            return items


def test_a_device_that_cannot_give_the_format_is_reported_and_retried() -> None:
    attempts: list[int] = []
    pcm = FakePcm()

    def opener(device: str, fmt: AudioFormat, period: int, periods: int) -> FakePcm:
        attempts.append(period)
        if len(attempts) == 1:
            raise CaptureFormatError("hw:CARD=X gives 44100 Hz instead of 16000 Hz")
        return pcm

    source = AlsaSource(
        "hw:CARD=X,DEV=0", FMT, backoff_initial_s=0.001, max_frames=960, opener=opener
    )
    items = collect(source)
    lost = items[0]
    assert isinstance(lost, DeviceLost)
    assert lost.reason == "io-error"
    assert isinstance(items[1], DeviceBack)
    blocks = [i for i in items if isinstance(i, Frames)]
    assert sum(b.count for b in blocks) + blocks[0].lost_before == 960
    assert attempts == [320, 320]
    assert pcm.closed


def test_read_errors_close_the_pcm_and_reopen() -> None:
    pcms: list[FakePcm] = []

    def opener(device: str, fmt: AudioFormat, period: int, periods: int) -> FakePcm:
        steps: list[int | Exception] = [0, DeviceError("unplugged", "No such device [x]")]
        script = iter(steps) if not pcms else None
        pcms.append(FakePcm(script))
        return pcms[-1]

    source = AlsaSource(
        "plughw:CARD=X,DEV=0", FMT, backoff_initial_s=0.001, max_frames=3200, opener=opener
    )
    items = collect(source)
    assert [type(i).__name__ for i in items if not isinstance(i, Frames)] == [
        "DeviceLost",
        "DeviceBack",
        "EndOfStream",
    ]
    assert pcms[0].closed and pcms[1].closed
    assert source.stats.outages == 1


def test_stop_returns_promptly_while_the_device_is_missing() -> None:
    def opener(device: str, fmt: AudioFormat, period: int, periods: int) -> FakePcm:
        raise DeviceError("missing", "No such file or directory [x]")

    source = AlsaSource("plughw:CARD=X,DEV=0", FMT, backoff_initial_s=60.0, opener=opener)
    source.start()
    first = source.read(timeout=10)
    assert isinstance(first, DeviceLost)
    assert first.reason == "missing"
    source.stop()  # interrupts the 60 s back-off wait
    assert source.stats.failed_opens == 1
