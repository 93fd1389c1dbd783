"""Book-keeping of one open live recording, shared by every live client (AAS gRPC and
WebSocket, Dice).

Transport code only feeds events in (`stored`, `closed`, `failed`); this class answers the
delivery engine's questions: where to send next, what the server confirmed, and whether the
stream is still usable. Offsets are checked here so a caller bug (a gap, a rewind) is a clear
local error instead of a server-side conflict minutes later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

from edge_recorder.uplinks.base import (
    Ack,
    ErrorKind,
    Transport,
    UplinkError,
)


class LiveRecordingState:
    """Confirmed bytes, pending acks and the terminal outcome of one recording stream."""

    def __init__(
        self,
        transport: Transport,
        resume_offset: int,
        sequence: int,
        *,
        open_confirmed: bool = True,
    ) -> None:
        self.transport: Transport = transport
        self.resume_offset = resume_offset
        self.sequence = sequence
        # The server answered the open with what it holds. Only then is `resume_offset` the
        # server's word, and only then may a broken stream be resumed at a byte offset.
        self.open_confirmed = open_confirmed
        self.answered = False  # the server has sent anything at all on this stream
        self.confirmed = resume_offset
        self.next_offset = resume_offset
        self.final: int | None = None
        self.error: UplinkError | None = None
        self.closing = False
        self._changed = asyncio.Condition()

    # ------------------------------------------------------------ events from the transport

    async def opened(self, held: int, sequence: int) -> None:
        """The open answer (AAS `recordingOpens`): the server holds `held` bytes already."""
        async with self._changed:
            if not self.open_confirmed and self.next_offset == 0:  # nothing sent yet
                self.resume_offset = self.confirmed = self.next_offset = held
                self.sequence = sequence or self.sequence
            elif held > self.confirmed:  # a late answer: what it holds still counts
                self.confirmed = held
            self.open_confirmed = self.answered = True
            self._changed.notify_all()

    async def stored(self, count: int) -> None:
        """The server reports `count` bytes stored (a contiguous prefix; never goes back)."""
        async with self._changed:
            self.answered = True
            if count > self.confirmed:
                self.confirmed = count
            self._changed.notify_all()

    async def closed(self, count: int) -> None:
        """The close answer: the recording holds `count` bytes and the stream ends."""
        async with self._changed:
            self.answered = True
            self.confirmed = max(self.confirmed, count)
            self.final = count
            self._changed.notify_all()

    async def failed(self, error: UplinkError) -> None:
        """The stream broke; every waiter and the next `send` see `error`."""
        async with self._changed:
            if self.final is not None or self.error is not None:
                return
            self.error = error
            self._changed.notify_all()

    async def ended(self) -> None:
        """The server ended the stream; an error unless the close answer came first."""
        if self.final is None:
            await self.failed(
                UplinkError(
                    ErrorKind.UNAVAILABLE,
                    "server ended the stream before confirming the close",
                    transport=self.transport,
                )
            )

    # ------------------------------------------------------------ questions from the caller

    async def wait_opened(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the open answer: True if it came, False if the server
        said nothing (the live AAS has been seen never to answer an open); raises the
        stream's error if it broke first."""

        def settled() -> bool:
            return self.open_confirmed or self.answered or self.error is not None

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(settled)
        if self.error is not None:
            raise self.error
        return self.open_confirmed

    def check_send(self, offset: int, size: int) -> None:
        """Raise the stream's error, or ValueError for a gap/rewind; then advance."""
        if self.error is not None:
            raise self.error
        if self.closing or self.final is not None:
            raise ValueError("recording is closing; no more data can be sent")
        if offset != self.next_offset:
            raise ValueError(f"send at offset {offset}, expected {self.next_offset}")
        if size == 0:
            raise ValueError("empty data chunk")
        self.next_offset = offset + size

    async def wait_confirmed(self, offset: int, timeout_s: float) -> int:
        async def reached() -> int:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: (
                        self.confirmed >= offset or self.error is not None or self.final is not None
                    )
                )
            if self.confirmed >= offset:
                return self.confirmed
            if self.error is not None:
                raise self.error
            raise UplinkError(
                ErrorKind.PROTOCOL,
                f"recording closed at {self.final} bytes, below {offset}",
                transport=self.transport,
            )

        try:
            return await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"no confirmation of {offset} bytes within {timeout_s:g}s "
                f"(confirmed {self.confirmed})",
                transport=self.transport,
            ) from None

    async def wait_final(self, timeout_s: float) -> int:
        async def done() -> int:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self.final is not None or self.error is not None
                )
            if self.final is not None:
                return self.final
            assert self.error is not None
            raise self.error

        try:
            return await asyncio.wait_for(done(), timeout_s)
        except TimeoutError:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"no close confirmation within {timeout_s:g}s (confirmed {self.confirmed})",
                transport=self.transport,
            ) from None

    def _moved(self, seen: int) -> bool:
        return self.confirmed != seen or self.final is not None or self.error is not None

    async def acks(self) -> AsyncIterator[Ack]:
        """Progress as it happens, coalesced: each yield is the latest confirmed count.

        Acks are cumulative, so a slow consumer loses nothing by skipping intermediate ones,
        and a caller that never iterates costs no memory. Ends with the close answer.
        """
        last = self.resume_offset
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._moved, last))
                confirmed, final, error = self.confirmed, self.final, self.error
            if final is not None:
                yield Ack(final, final=True)
                return
            if confirmed != last:
                last = confirmed
                yield Ack(confirmed)
                continue
            assert error is not None
            raise error


class StateReporting:
    """The `base.LiveRecording` answers every live stream reads from its `_state`."""

    _state: LiveRecordingState

    @property
    def resume_offset(self) -> int:
        return self._state.resume_offset

    @property
    def confirmed(self) -> int:
        return self._state.confirmed

    @property
    def open_confirmed(self) -> bool:
        return self._state.open_confirmed

    @property
    def answered(self) -> bool:
        return self._state.answered

    @property
    def sequence(self) -> int:
        return self._state.sequence

    def acks(self) -> AsyncIterator[Ack]:
        return self._state.acks()

    async def wait_confirmed(self, offset: int, timeout_s: float) -> int:
        return await self._state.wait_confirmed(offset, timeout_s)
