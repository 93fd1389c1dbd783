"""Pure rules of the delivery engine: how long to back off, what an error means, message sizes.

No I/O and no clock here, so every rule is tested directly (tests/unit/delivery/test_policy.py).
The engine asks `decide(error, phase)` and does what the `Decision` says; the uplinks already
turned every transport failure into an `UplinkError` with a `kind`, and already refreshed the
token once after a 401 (so an AUTH error reaching the engine means the refresh did not help).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from edge_recorder.uplinks.base import DataFormat, ErrorKind, UplinkError

Phase = Literal["live", "resume", "rest", "processing"]
"""Where the error happened: streaming a recording being captured, finishing a closed one over
the live transport (resume), REST store-and-forward, or StartProcessing."""

DEFAULT_MAX_CHUNK_BYTES = 64 * 1024  # backlog message size when the service states no maximum


class Action(StrEnum):
    BACKOFF = "backoff"  # wait (exponential, jittered, capped), then try the same way again
    QUARANTINE = "quarantine"  # the request itself is wrong: stop, keep the audio, alert
    STORE_FORWARD = "store_forward"  # the service forgot the recording: REST, from byte 0
    RESYNC = "resync"  # offsets disagree: reopen and continue from what the server holds
    REDELIVER = "redeliver"  # the service lost the whole session: deliver every recording again


@dataclass(frozen=True)
class Decision:
    action: Action
    alert: bool  # worth an operator's attention (status last_error, log at warning)
    refusing: bool  # the service refuses this device (403, not allow-listed, bad credentials)
    reason: str  # plain words for the log, `spool show` and quarantine notices


def decide(error: UplinkError, phase: Phase) -> Decision:
    """What to do about `error` raised during `phase`."""
    kind, text = error.kind, str(error)
    if kind is ErrorKind.INVALID:
        if phase == "processing":  # nothing to quarantine: the encounter waits, loudly
            return Decision(
                Action.BACKOFF, True, False, f"service rejected StartProcessing: {text}"
            )
        return Decision(Action.QUARANTINE, True, False, f"service rejected the request: {text}")
    if kind is ErrorKind.AUTH:
        return Decision(Action.BACKOFF, True, True, f"not authenticated after a refresh: {text}")
    if kind is ErrorKind.FORBIDDEN:
        return Decision(Action.BACKOFF, True, True, f"service refuses this device: {text}")
    if kind is ErrorKind.NOT_FOUND:
        if phase in ("live", "resume"):
            return Decision(
                Action.STORE_FORWARD, True, False, f"service forgot the recording: {text}"
            )
        if phase == "processing":
            return Decision(Action.REDELIVER, True, False, f"service lost the session: {text}")
        return Decision(Action.BACKOFF, True, False, f"ambient session not found: {text}")
    if kind is ErrorKind.CONFLICT:
        if phase in ("live", "resume"):
            return Decision(Action.RESYNC, False, False, f"offsets disagree: {text}")
        if phase == "rest":  # same chunk id, other bytes: retrying cannot fix it
            return Decision(Action.QUARANTINE, True, False, f"chunk conflict: {text}")
        return Decision(Action.BACKOFF, True, False, f"service not ready to process: {text}")
    # THROTTLED, UNAVAILABLE, SERVER, PROTOCOL: transient by nature
    return Decision(Action.BACKOFF, kind is not ErrorKind.UNAVAILABLE, False, text)


def backoff_s(
    attempt: int,
    initial_s: float,
    max_s: float,
    *,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before attempt `attempt` + 1 (attempt >= 1 failures so far).

    Exponential from `initial_s`, capped at `max_s`, with "equal jitter" (half fixed, half
    random) so a fleet that lost the network together does not come back in lockstep, yet no
    device retries sooner than half its schedule. A server's Retry-After is honoured up to the
    cap.
    """
    attempt = max(attempt, 1)
    ceiling = max(max_s, initial_s)
    base = min(ceiling, initial_s * 2.0 ** min(attempt - 1, 60))
    delay = base / 2 + rand() * base / 2
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, ceiling))
    return min(delay, ceiling)


def data_format(codec: str, sample_rate: int, channels: int) -> DataFormat:
    """The format announced for a spooled recording (the spool keeps the encoder's name)."""
    if codec in ("pcm16", "pcm"):
        return DataFormat("pcm", sample_rate, 16, channels)
    if codec in ("opus", "ogg_opus"):
        return DataFormat("opus", sample_rate, 16, channels)
    return DataFormat("byte_stream", sample_rate, 16, channels)  # FLAC: no known service format


def live_chunk_bytes(codec: str, sample_rate: int, channels: int, chunk_ms: int) -> int:
    """Bytes of about `chunk_ms` of audio per live message (PCM exact; compressed: a bound)."""
    if codec in ("pcm16", "pcm"):
        return max(2 * channels, sample_rate * 2 * channels * chunk_ms // 1000)
    return max(256, 32000 // 8 * chunk_ms // 1000)  # ~32 kbit/s compressed


def message_bytes(available: int, live_chunk: int, max_chunk: int) -> int:
    """How much to put in the next message: live-sized while keeping up with capture, up to
    the service's maximum while draining a backlog (fewer, bigger messages = much faster)."""
    if available <= 0:
        return 0
    if available <= 2 * live_chunk:
        return min(available, live_chunk)
    return min(available, max(max_chunk, live_chunk))


def resume_point(spool_length: int, server_holds: int, closed: bool) -> tuple[int, bool]:
    """Where to continue sending after an open that reports `server_holds` bytes.

    Returns (offset, power_cut). The server never holds bytes the device did not send, so
    holding more than the spool kept means the device lost its unsynced tail in a power cut:
    those server bytes were the device's own output and the recording ends at their length.
    """
    if server_holds <= spool_length:
        return server_holds, False
    return server_holds, closed


MAX_SUBSETS_TRIED = 20_000  # bound on the search below (encounters hold a handful of recordings)


def missing_recordings(count: int, total_bytes: int, lengths: dict[str, int]) -> list[str] | None:
    """Which recordings the service lost, from StartProcessing's count and byte total.

    The service answers only how many recordings and bytes it will process. When exactly one
    set of `len(lengths) - count` recordings accounts for the missing bytes, those are the lost
    ones and only they need delivering again; None when the answer does not single them out
    (several candidate sets, or sums that fit no set, e.g. after a power cut left the service
    holding more than the spool): then nothing is guessed and the audio is kept for an operator.
    """
    from itertools import combinations

    lost_count = len(lengths) - count
    lost_bytes = sum(lengths.values()) - total_bytes
    if lost_count <= 0 or lost_bytes < 0:
        return None
    found: list[str] | None = None
    for tried, subset in enumerate(combinations(sorted(lengths), lost_count)):
        if tried >= MAX_SUBSETS_TRIED:
            return None
        if sum(lengths[rid] for rid in subset) == lost_bytes:
            if found is not None:
                return None  # ambiguous: two different sets would explain the answer
            found = list(subset)
    return found
