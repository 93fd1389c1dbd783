"""Store-and-forward of closed recordings, oldest encounter first, each encounter processed as
soon as its last recording is delivered (after an outage the oldest note is ready first, not
after the whole backlog has gone up).

A closed, undelivered recording goes up one of two ways:
- the service already knows it by GUID (it was opened live, see `delivery.state`): reopen it
  on the live transport at the confirmed offset, send the rest in big messages, close;
- otherwise REST: `PUT /ambient-sessions` (once per encounter), `storeChunk` for every chunk
  (ids derived from spool offsets and a chunk size fixed at the first attempt, so a retry,
  even after a restart, re-sends identical chunks), then `finalizeUpload`.
If the service forgot a recording it had (NOT_FOUND on resume), the whole recording goes
through REST from byte 0. Once every recording of an ended encounter is delivered, one
StartProcessing, then `spool.mark_processing_started`: only now may the spool reclaim space.
"""

from __future__ import annotations

from edge_recorder.delivery.context import (
    IDLE_POLL_S,
    DeliveryContext,
    raise_if_cancelling,
    wait_event,
)
from edge_recorder.delivery.live import stream_recording
from edge_recorder.delivery.policy import Action, Phase, backoff_s, decide, missing_recordings
from edge_recorder.spool import CorruptRecord, EncounterInfo
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import ErrorKind, ProcessingStarted, UplinkError

log = get_logger(__name__)

_NETWORK = (ErrorKind.UNAVAILABLE, ErrorKind.AUTH, ErrorKind.FORBIDDEN, ErrorKind.THROTTLED)


def unreachable(error: UplinkError) -> bool:
    """The service could not be reached at all (refused, no route, no answer to connect):
    nothing about the recording tried, and nothing the service said."""
    return error.kind is ErrorKind.UNAVAILABLE and error.status is None


async def backlog_loop(ctx: DeliveryContext) -> None:
    link_back = False
    while True:
        raise_if_cancelling()
        pause = await _one_pass(ctx, due_now=link_back)
        link_back = False
        if pause is None:
            await wait_event(ctx.wakeups.backlog_wake, _next_due_s(ctx))
        elif pause > 0:
            # the service is unreachable: the back-off itself, cut short when the live
            # task's probe finds the network back (uplink.offline_probe_s)
            ctx.wakeups.link_up.clear()
            await wait_event(ctx.wakeups.link_up, pause)
            # back online: what waited out the outage is due now, not at its own back-off
            link_back = ctx.link.online


async def _one_pass(ctx: DeliveryContext, due_now: bool = False) -> float | None:
    """Try every due recording (every one, with `due_now`), then every encounter ready for
    processing.

    Returns 0 to start another pass at once, a back-off in seconds when the service is
    unreachable (so the remaining recordings are not each tried against a dead link),
    or None when all is done for now."""

    again = False
    if ctx.uplinks.session_at_start and ctx.link.online:
        await _open_sessions(ctx)
    ready_at = None if due_now else ctx.clock()
    for info in ctx.spool.iter_pending(ready_at=ready_at):  # built one by one: see iter_pending
        raise_if_cancelling()
        if info.state != "closed" or info.id in ctx.work.claimed:
            continue
        await ctx.wakeups.live_quiet.wait()
        phase: Phase = "resume" if ctx.state.is_live(info.id) else "rest"
        ctx.work.claimed.add(info.id)
        try:
            await deliver_closed(ctx, info.id, phase)
            await _process_if_ready(ctx, info.encounter)
        except UplinkError as err:
            if unreachable(err) and info.id not in ctx.work.unconfirmed:
                return _link_down(ctx, info.id, err, phase)
            delay = ctx.apply(info.id, err, phase)
            if delay is None:
                again = True  # switched path or resync: go on at once
            elif err.kind in _NETWORK:
                return delay
        except CorruptRecord:
            continue  # quarantined by the spool, with the reason
        finally:
            ctx.work.claimed.discard(info.id)
    for enc in ctx.spool.encounters_ready_for_processing(ready_at=ready_at):
        if ctx.work.tap_active.intersection(enc.recordings):
            continue  # its live stream is still reading the audio from the spool
        if not await start_processing(ctx, enc):
            break
    return 0.0 if again else None


def _link_down(ctx: DeliveryContext, rid: str, err: UplinkError, phase: Phase) -> float:
    """A recording tried while the service cannot be reached: reported like any failure
    (status, log), then the backlog waits for the network rather than probing it again.

    The live task probes an unreachable service every `uplink.offline_probe_s` and ends this
    pause the moment it answers (`link_up`); another attempt from here would only repeat that
    probe (a connection, a token request, a log line), so the pause is the back-off ceiling
    (`uplink.retry_max_s`, jittered), a bound should the probe itself be stuck. Before, the
    pause was the tried recording's own back-off: with 2,000 fresh recordings waiting it
    stayed at the first step, one failed attempt (and one fsync) a second for the whole
    outage. The attempt is counted on the recording without a journal record and fsync of
    its own (`Spool.note_unreachable` says why that is safe)."""
    decision = decide(err, phase)
    ctx.failed(err, decision, recording_id=rid, phase=phase)
    up = ctx.config.uplink
    pause = backoff_s(1, up.retry_max_s, up.retry_max_s, rand=ctx.rand)
    ctx.spool.note_unreachable(rid, decision.reason, ctx.clock() + pause)
    return pause


async def _process_if_ready(ctx: DeliveryContext, encounter_id: str) -> None:
    """StartProcessing for this encounter now, if that recording was its last one."""
    enc = ctx.spool.encounter(encounter_id)
    if not enc.ended or enc.processing_started or not enc.all_delivered:
        return
    if ctx.work.tap_active.intersection(enc.recordings):
        return  # its live stream still reads it: left to the pass's own loop
    await start_processing(ctx, enc)


async def _open_sessions(ctx: DeliveryContext) -> None:
    """Create the service session of every encounter being recorded (once; idempotent at the
    uplink). A failure only postpones it: the upload path creates the session anyway."""
    for info in ctx.spool.pending_recordings(open_only=True):
        if info.state != "open" or info.encounter in ctx.work.rest_sessions:
            continue
        try:
            await ctx.uplinks.store_forward.create_session(ctx.identity(info.encounter))
        except UplinkError as err:
            if err.kind is not ErrorKind.CONFLICT:
                log.info("service session not created yet; retried later", error=str(err))
                return
        ctx.work.rest_sessions.add(info.encounter)


async def deliver_closed(ctx: DeliveryContext, rid: str, phase: Phase) -> None:
    if phase == "resume":
        await stream_recording(ctx, rid, "resume")
    else:
        await upload_rest(ctx, rid)


async def upload_rest(ctx: DeliveryContext, rid: str) -> None:
    """REST store-and-forward of one closed recording (idempotent, restartable)."""
    info = ctx.spool.recording(rid)
    session = ctx.identity(info.encounter)
    rest = ctx.uplinks.store_forward
    if info.encounter not in ctx.work.rest_sessions:
        try:
            await rest.create_session(session)
        except UplinkError as err:
            if err.kind is not ErrorKind.CONFLICT:  # "already exists" is what we wanted
                raise
        ctx.work.rest_sessions.add(info.encounter)
    chunk = ctx.state.rest_chunk_bytes(rid, int(ctx.config.uplink.rest_chunk_bytes))

    async def read(start: int, end: int) -> bytes:
        await ctx.wakeups.live_quiet.wait()  # the live recording goes first
        return ctx.spool.read(rid, start, end - start)

    try:
        await rest.upload_recording(session, info.seq, info.length, read, chunk_bytes=chunk)
    except UplinkError as err:
        if err.kind is ErrorKind.NOT_FOUND:
            ctx.work.rest_sessions.discard(info.encounter)  # create the session again next time
        raise
    ctx.spool.confirm(rid, info.length)
    ctx.spool.note_success(rid)
    ctx.spool.mark_finalized(rid)
    ctx.succeeded(delivered=True, live_link=False)
    log.info("recording delivered", recording_id=rid, transport="rest", bytes=info.length)


async def start_processing(ctx: DeliveryContext, enc: EncounterInfo) -> bool:
    """StartProcessing for a fully delivered encounter; False when it failed (back-off set)."""
    if enc.recordings:
        try:
            live = await ctx.live_transport()
            started = await live.start_processing(ctx.identity(enc.id))
        except UplinkError as err:
            decision = decide(err, "processing")
            ctx.failed(err, decision, encounter_ref=ctx.spool.encounter_ref(enc.id))
            delay = ctx.backoff(enc.attempts + 1, err, decision)
            ctx.spool.note_encounter_failure(enc.id, decision.reason, ctx.clock() + delay)
            if decision.action is Action.REDELIVER:
                for rid in enc.recordings:  # the service lost them: all again, through REST
                    ctx.spool.reset_confirmed(rid)
                    ctx.state.clear_live(rid)
                ctx.work.rest_sessions.discard(enc.id)
                return True
            return False
        ctx.link.processing_refs = started.references
        if ctx.uplinks.holds_copy and not _holds_everything(ctx, enc, started):
            return True
    ctx.spool.mark_processing_started(enc.id)
    ctx.work.ehr_contexts.pop(enc.id, None)
    ctx.state.drop(f"{ctx.config.uplink.service}:{enc.id}")
    ctx.succeeded()
    ctx.state.forget(rid for rid in enc.recordings if not ctx.spool.holds(rid))
    log.info("encounter handed to processing", recordings=len(enc.recordings))
    return True


def _holds_everything(ctx: DeliveryContext, enc: EncounterInfo, started: ProcessingStarted) -> bool:
    """Check StartProcessing's answer against the spool before anything may be reclaimed.

    The service holding less than it confirmed means it lost a recording after closing it.
    When the answer singles out the lost recording(s), they alone go up again (REST, from
    byte 0; the others stay as they are, so nothing is duplicated) and StartProcessing is
    called again afterwards. Only once per encounter: a second shortfall, or one that names
    no recording, quarantines the encounter's audio with an alert (kept, never deleted)."""
    lengths = {rid: ctx.spool.recording(rid).length for rid in enc.recordings}
    shortfall = processing_shortfall(
        started.recording_count, started.total_bytes, list(lengths.values())
    )
    if not shortfall:
        return True
    retried_key = f"{ctx.config.uplink.service}:{enc.id}:redelivered"
    lost = missing_recordings(started.recording_count, started.total_bytes, lengths)
    if lost and ctx.state.get(retried_key) is None:
        ctx.state.put(retried_key, ",".join(lost))
        for rid in lost:
            ctx.spool.reset_confirmed(rid)
            ctx.state.clear_live(rid)  # the service no longer knows its GUID: REST, from 0
        log.warning(
            "service lost recording(s) it had confirmed; delivering them again",
            recordings=len(lost),
            reason=shortfall,
        )
        return False
    # The service no longer holds everything it confirmed and the answer does not say what
    # (or re-delivery did not help): reclaiming the spool now would lose that audio for good.
    # Keep it, loudly, for an operator (`spool show`, `spool retry` once the service has it).
    for rid in enc.recordings:
        ctx.quarantine(rid, shortfall)
    log.error("processing started without all the audio; nothing deleted", reason=shortfall)
    return False


def _next_due_s(ctx: DeliveryContext) -> float:
    """Seconds until the earliest back-off expires (bounded by the idle poll)."""
    now = ctx.clock()
    dues = [ctx.spool.next_attempt_due(skip=ctx.work.claimed)]
    dues += [e.next_attempt_at for e in ctx.spool.encounters_ready_for_processing()]
    soonest = min((d for d in dues if d is not None), default=now + IDLE_POLL_S)
    return min(IDLE_POLL_S, max(0.0, soonest - now))


def processing_shortfall(count: int, total_bytes: int, lengths: list[int]) -> str:
    """Why StartProcessing's answer shows the service missing delivered audio ('' if not).

    The service may hold more than the spool (bytes sent just before a power cut), never less.
    """
    if count >= len(lengths) and total_bytes >= sum(lengths):
        return ""
    return (
        f"service holds {count} recording(s) / {total_bytes} bytes at StartProcessing, "
        f"the device delivered {len(lengths)} / {sum(lengths)}: audio kept in the spool"
    )
