"""The pyalsaaudio binding behind `AlsaSource`: the one place that talks to libasound.

It exists so the capture thread's logic (outages, overruns, the timeline, dozing) depends only
on the small `Pcm` protocol and is tested with a fake PCM, while the binding's quirks (format
constants, timestamp modes, checking what the PCM really took, ALSA errors typed by their
`DeviceLost` reason) sit in one short module. `alsaaudio` is imported on open only, so hosts
without it can still import and test the capture package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from edge_recorder.audio.frames import AudioFormat
from edge_recorder.capture.base import CaptureFormatError, LossReason, classify_alsa_error


class DeviceError(Exception):
    """An ALSA open/read failure with its DeviceLost reason."""

    def __init__(self, reason: LossReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Pcm(Protocol):
    """The slice of `alsaaudio.PCM` the source uses (a fake stands in for unit tests)."""

    def read(self) -> tuple[int, bytes]: ...

    def timestamp(self) -> tuple[float | None, int]: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


PcmOpener = Callable[[str, AudioFormat, int, int], Pcm]


class AlsaPcm:
    """An opened `alsaaudio.PCM`, with ALSA errors turned into DeviceError."""

    def __init__(self, device: str, fmt: AudioFormat, period: int, periods: int) -> None:
        import alsaaudio

        constants = {
            "S16_LE": alsaaudio.PCM_FORMAT_S16_LE,
            "S24_LE": alsaaudio.PCM_FORMAT_S24_LE,
            "S32_LE": alsaaudio.PCM_FORMAT_S32_LE,
        }
        self._error = alsaaudio.ALSAAudioError
        try:
            self._pcm = alsaaudio.PCM(
                type=alsaaudio.PCM_CAPTURE,
                mode=alsaaudio.PCM_NORMAL,
                device=device,
                rate=fmt.rate,
                channels=fmt.channels,
                format=constants[fmt.sample_format],
                periodsize=period,
                periods=periods,
            )
        except alsaaudio.ALSAAudioError as exc:
            raise DeviceError(classify_alsa_error(str(exc)), str(exc)) from None
        self.monotonic = True
        try:
            self._pcm.set_tstamp_mode(alsaaudio.PCM_TSTAMP_ENABLE)
            self._pcm.set_tstamp_type(alsaaudio.PCM_TSTAMP_TYPE_MONOTONIC)
        except alsaaudio.ALSAAudioError:
            self.monotonic = False
        info: dict[str, Any] = self._pcm.info()
        got = (info.get("rate"), info.get("channels"), info.get("format_name"))
        if got != (fmt.rate, fmt.channels, fmt.sample_format):
            self._pcm.close()
            raise CaptureFormatError(
                f"{device} gives {got[0]} Hz, {got[1]} ch, {got[2]} instead of {fmt.rate} Hz, "
                f"{fmt.channels} ch, {fmt.sample_format}: use a plughw: name (or the "
                "profile's values)"
            )

    def read(self) -> tuple[int, bytes]:
        try:
            result: tuple[int, bytes] = self._pcm.read()
        except self._error as exc:
            raise DeviceError(classify_alsa_error(str(exc)), str(exc)) from None
        return result

    def timestamp(self) -> tuple[float | None, int]:
        """(CLOCK_MONOTONIC time of the newest captured frame or None, frames not yet read)."""
        sec, nsec, avail = self._pcm.htimestamp()
        stamp = sec + nsec / 1e9 if self.monotonic and (sec or nsec) else None
        return stamp, int(avail)

    def drop(self) -> None:
        # Stops the stream; pyalsaaudio prepares it again on the next read().
        self._pcm.drop()

    def close(self) -> None:
        self._pcm.close()
