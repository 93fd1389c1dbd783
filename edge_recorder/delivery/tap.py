"""The live tap: a best-effort real-time copy of the recording being captured.

For a service whose durable path is the upload of closed recordings but which also gives live
feedback from a stream (Corti's `/streams`: transcripts and facts during the visit), the
engine runs this third task beside live and backlog. It tails the spool like the live task,
but nothing it does counts as delivery: no byte is confirmed, the recording is still uploaded
once closed, and a break only costs live feedback. An encounter is handed to processing (and
its audio reclaimed) only after its recordings' streams ended. After a break it rejoins at
the live edge (real-time transcription has no use for audio that is already old); a
recording it could not stream is simply skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from edge_recorder.delivery.context import (
    IDLE_POLL_S,
    DeliveryContext,
    raise_if_cancelling,
    wait_event,
)
from edge_recorder.delivery.policy import Action, data_format, decide, live_chunk_bytes
from edge_recorder.spool import CorruptRecord, UnknownRecording
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import DataFormat, RecordingRef, UplinkError

log = get_logger(__name__)

TAP_CHUNK_MS = 250  # Corti's recommended real-time chunk


async def tap_loop(ctx: DeliveryContext) -> None:
    tap = ctx.uplinks.tap
    if tap is None:
        await asyncio.Event().wait()  # nothing to tap: idle until cancelled
        return
    done: set[str] = set()  # recordings streamed to their end, or given up on
    failures = 0
    while True:
        raise_if_cancelling()
        rid = _pick(ctx, done)
        if rid is None or not ctx.link.online:
            await wait_event(ctx.wakeups.tap_wake, IDLE_POLL_S)
            continue
        current: str = rid
        info = ctx.spool.recording(current)
        fmt = data_format(info.codec, info.sample_rate, info.channels)
        start = _live_edge(info.length, fmt) if current in ctx.work.tapped else 0
        ctx.work.tapped.add(current)

        async def read(begin: int, end: int, rid: str = current) -> bytes:
            return ctx.spool.read(rid, begin, end - begin)

        ctx.work.tap_active.add(current)  # its encounter waits for this stream before processing
        try:
            chunks = _tail(ctx, current, start)
            session, ref = ctx.identity(info.encounter), RecordingRef(current, info.seq)
            await tap.stream(session, ref, fmt, start, chunks, read)
            done.add(current)
            failures = 0
        except UplinkError as err:
            failures += 1
            decision = decide(err, "live")
            log.warning(
                "live stream broke; the recording is still uploaded once closed",
                reason=decision.reason,
            )
            if decision.action is Action.QUARANTINE:  # refused configuration: stop trying
                done.add(current)
            await asyncio.sleep(ctx.backoff(failures, err, decision))  # the back-off itself
        except (CorruptRecord, UnknownRecording):
            done.add(current)  # quarantined (the spool said why) or purged meanwhile
        finally:
            ctx.work.tap_active.discard(current)
            ctx.wakeups.backlog_wake.set()


def _pick(ctx: DeliveryContext, done: set[str]) -> str | None:
    for info in ctx.spool.iter_pending(open_only=True):
        if info.state == "open" and info.live and info.id not in done:
            return info.id
    return None


def _live_edge(length: int, fmt: DataFormat) -> int:
    """Where to rejoin: the newest whole sample frame (compressed: the newest byte)."""
    frame = fmt.bitcount // 8 * fmt.channels if fmt.kind == "pcm" else 1
    return length - length % frame


async def _tail(ctx: DeliveryContext, rid: str, offset: int) -> AsyncIterator[bytes]:
    """The recording's bytes from `offset` as capture writes them, until it closes."""
    info = ctx.spool.recording(rid)
    size = live_chunk_bytes(info.codec, info.sample_rate, info.channels, TAP_CHUNK_MS)
    while True:
        try:
            info = ctx.spool.recording(rid)
        except UnknownRecording:
            return  # purged by an operator: end the stream with what it had
        if info.quarantine:
            return
        if offset < info.length:
            data = ctx.spool.read(rid, offset, min(size, info.length - offset))
            offset += len(data)
            yield data
            continue
        if info.state == "closed" or not info.live:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_POLL_S):
                await ctx.spool.wait_for_data(rid, offset)
