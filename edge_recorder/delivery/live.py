"""Streaming a recording over the live transport (gRPC RecordAmbient) straight from the spool.

`stream_recording` serves both tasks: the live task tails the recording being captured
(`wait_for_data`), the backlog task finishes closed recordings the service already knows by
GUID. Either way the stream opens at the offset the spool says the service confirmed, continues
from what the server reports it holds (`resume_offset`), sends the bytes the spool holds in
order (live-sized messages when keeping up, up to the service's maximum when behind), records
every ack in the spool, and ends with RecordingClose once the spool closed the recording.
A silent dead link is caught by gRPC keepalive, by the write deadline, and by an ack watchdog
here (bytes sent but nothing confirmed for `uplink.request_timeout_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from edge_recorder.delivery.context import (
    IDLE_POLL_S,
    DeliveryContext,
    raise_if_cancelling,
    wait_event,
)
from edge_recorder.delivery.policy import (
    Phase,
    data_format,
    decide,
    live_chunk_bytes,
    message_bytes,
    resume_point,
)
from edge_recorder.spool import CorruptRecord
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import ErrorKind, LiveRecording, RecordingRef, UplinkError

log = get_logger(__name__)


@dataclass
class _Progress:
    sent: int


class _Stopped(Exception):
    """The recording was quarantined (or lost its writer) while streaming: stop quietly."""


async def live_loop(ctx: DeliveryContext) -> None:
    """Stream whichever recording capture is writing; back off (capped, jittered) on breaks.

    While the service is unreachable a recording is not opened, only probed for with
    RetrieveConfiguration (no side effects): a recording that begins and ends during an
    outage then stays unknown to the service and goes up through REST, and a recording the
    service may know by GUID (its open was sent) is always finished on the live transport.
    While the service is unreachable the probe also runs when nothing is recording, at least
    every `uplink.offline_probe_s`: its success is what ends the backlog's back-off."""
    probe_attempts, next_probe = 0, 0.0
    while True:
        raise_if_cancelling()
        rid = _pick_live(ctx)
        known_and_up = ctx.link.service is not None and ctx.link.online
        if rid is None and (known_and_up or time.monotonic() < next_probe):
            ctx.wakeups.live_quiet.set()
            idle_s = (
                IDLE_POLL_S if known_and_up else min(IDLE_POLL_S, next_probe - time.monotonic())
            )
            await wait_event(ctx.wakeups.live_wake, idle_s)
            continue
        if rid is None or not ctx.link.online:
            try:  # reachable again? (also learns the service's limits while idle)
                await ctx.refresh_service_config("device", force=not ctx.link.online)
                probe_attempts = 0
            except UplinkError as err:
                probe_attempts += 1
                decision = decide(err, "live")
                ctx.failed(err, decision, phase="probe")
                wait_s = ctx.backoff(probe_attempts, err, decision)
                if err.kind is ErrorKind.UNAVAILABLE and not decision.refusing:
                    wait_s = min(wait_s, ctx.config.uplink.offline_probe_s)  # no load to spare
                next_probe = time.monotonic() + wait_s
                if rid is not None:
                    await asyncio.sleep(wait_s)  # the back-off itself
            continue
        ctx.work.claimed.add(rid)
        delay: float | None = None
        try:
            await stream_recording(ctx, rid, "live")
        except UplinkError as err:
            delay = ctx.apply(rid, err, "live")
        except CorruptRecord:
            pass  # the spool quarantined it and said why
        finally:
            ctx.work.claimed.discard(rid)
            ctx.wakeups.live_quiet.set()
            ctx.wakeups.backlog_wake.set()
        raise_if_cancelling()
        if delay:
            await asyncio.sleep(delay)  # the back-off itself


def _pick_live(ctx: DeliveryContext) -> str | None:
    if not (ctx.config.uplink.live and ctx.uplinks.live_enabled):
        return None
    for info in ctx.spool.pending_recordings(open_only=True):
        if (
            info.state == "open"
            and info.live
            and info.id not in ctx.work.claimed
            and info.id not in ctx.work.rest_only
        ):
            return info.id
    return None


async def stream_recording(ctx: DeliveryContext, rid: str, phase: Phase) -> None:
    """Deliver recording `rid` over the live transport; raises UplinkError on failure."""
    info = ctx.spool.recording(rid)
    await ctx.refresh_service_config(info.encounter)
    fmt = data_format(info.codec, info.sample_rate, info.channels)
    starting = 0 if rid in ctx.work.resync else info.confirmed
    ctx.state.mark_live(rid)  # before the open: the service may know it from now on
    live = await ctx.live_transport()
    stream = await live.open_recording(
        ctx.identity(info.encounter), RecordingRef(rid, info.seq), fmt, starting_offset=starting
    )
    ctx.work.resync.discard(rid)
    ctx.succeeded()
    final: int | None = None
    try:
        final = await _run_stream(ctx, rid, stream, phase)
    except _Stopped:
        return
    except UplinkError:
        if not stream.open_confirmed:  # no offset to resume at: `ctx.apply` switches to REST
            ctx.work.unconfirmed[rid] = stream.answered
        raise
    finally:
        if final is None:
            with contextlib.suppress(UplinkError):
                await stream.abort()
    _finished(ctx, rid, final)


async def _run_stream(ctx: DeliveryContext, rid: str, stream: LiveRecording, phase: Phase) -> int:
    offset = stream.resume_offset
    info = ctx.spool.recording(rid)
    while offset > info.length and info.state == "open" and info.live:
        await ctx.spool.wait_for_data(rid, info.length)  # server ahead of a live writer: rare
        info = ctx.spool.recording(rid)
    offset, power_cut = resume_point(info.length, offset, info.state == "closed")
    if power_cut:
        log.warning(
            "service holds more of the recording than the spool kept (power cut); "
            "treating the service's bytes as the device's own and closing at its length",
            recording_id=rid,
            spool_bytes=info.length,
            service_bytes=offset,
        )
    ctx.spool.confirm(rid, min(offset, info.length))
    progress = _Progress(offset)
    # Plain tasks, not a TaskGroup: on Python 3.11 a TaskGroup whose child fails while the
    # parent is being cancelled raises the child's error and drops the cancellation, and the
    # engine would then never stop. Here cancellation always wins.
    sender = asyncio.create_task(_send_all(ctx, rid, stream, progress, phase))
    helpers = {
        asyncio.create_task(_pump_acks(ctx, rid, stream)),
        asyncio.create_task(_watchdog(ctx, stream, progress)),
    }
    try:
        pending = {sender, *helpers}
        while not sender.done():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {sender}:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error  # the stream broke (ack reader) or went silent (watchdog)
        return sender.result()
    finally:
        for task in (sender, *helpers):
            task.cancel()
        await asyncio.gather(sender, *helpers, return_exceptions=True)


async def _send_all(
    ctx: DeliveryContext, rid: str, stream: LiveRecording, progress: _Progress, phase: Phase
) -> int:
    """Send from `progress.sent` until the spool closed the recording; returns the close count."""
    info = ctx.spool.recording(rid)
    live_chunk = live_chunk_bytes(
        info.codec, info.sample_rate, info.channels, ctx.config.encoding.chunk_ms
    )
    while True:
        raise_if_cancelling()
        info = ctx.spool.recording(rid)
        if info.quarantine:
            raise _Stopped
        available = info.length - progress.sent
        if available > 0:
            size = message_bytes(available, live_chunk, ctx.max_chunk)
            if phase == "live":
                _set(ctx.wakeups.live_quiet, available <= 2 * live_chunk)
            else:
                await ctx.wakeups.live_quiet.wait()  # the live recording goes first
            data = ctx.spool.read(rid, progress.sent, size)
            await stream.send(progress.sent, data)
            progress.sent += len(data)
            continue
        if phase == "live":
            ctx.wakeups.live_quiet.set()
        if info.state == "closed":
            return await stream.close("stop")
        if not info.live:
            raise _Stopped  # open without a writer (crash-recovered): the daemon closes it
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_POLL_S):
                await ctx.spool.wait_for_data(rid, progress.sent)


async def _pump_acks(ctx: DeliveryContext, rid: str, stream: LiveRecording) -> None:
    """Record each acknowledgement in the spool as it arrives (never beyond what it holds)."""
    async for ack in stream.acks():
        length = ctx.spool.recording(rid).length
        ctx.spool.confirm(rid, min(ack.stored, length))
        ctx.spool.note_success(rid)
        ctx.succeeded(delivered=True)
        ctx.live_answered()


async def _watchdog(ctx: DeliveryContext, stream: LiveRecording, progress: _Progress) -> None:
    """Fail the stream when sent bytes stay unconfirmed for `request_timeout_s` (dead link)."""
    limit = ctx.config.uplink.request_timeout_s
    period = max(0.05, min(limit, ctx.config.uplink.keepalive_s) / 4)
    seen, since = stream.confirmed, time.monotonic()
    while True:
        await asyncio.sleep(period)  # a periodic check, not synchronisation
        now = time.monotonic()
        if stream.confirmed != seen or progress.sent <= stream.confirmed:
            seen, since = stream.confirmed, now
        elif now - since > limit:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"no acknowledgement for {limit:g}s with {progress.sent - seen} bytes in flight",
                transport="grpc",
            )


def _finished(ctx: DeliveryContext, rid: str, final: int) -> None:
    """The close answer arrived: the service holds `final` bytes of the recording."""
    info = ctx.spool.recording(rid)
    if final < info.length:
        raise UplinkError(
            ErrorKind.CONFLICT,
            f"service closed the recording at {final} of {info.length} bytes",
            transport="grpc",
        )
    ctx.spool.confirm(rid, info.length)
    ctx.spool.note_success(rid)
    ctx.spool.mark_finalized(rid)
    ctx.succeeded(delivered=True)
    ctx.live_answered()
    ctx.wakeups.backlog_wake.set()  # its encounter may now be ready for processing
    log.info("recording delivered", recording_id=rid, transport="live", bytes=info.length)


def _set(event: asyncio.Event, value: bool) -> None:
    if value:
        event.set()
    else:
        event.clear()
