"""`edge-recorder spool list|show|retry|purge`: inspect and manage the backlog.

`list` and `show` read the ledger, which the daemon replaces atomically, so they are safe while
it runs. `retry` applies directly when the spool is free, or leaves a request the running
daemon applies on its next pass. `purge` needs the daemon stopped (it takes the spool lock),
asks for confirmation on a terminal, and refuses undelivered audio without `--force`.
No command here needs the device key or ever decrypts audio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from edge_recorder.commands._common import add_config_argument, load_or_exit

if TYPE_CHECKING:
    from edge_recorder.spool.admin import Snapshot
    from edge_recorder.spool.ledger import RecordingEntry


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "spool",
        help="inspect and manage the audio backlog (list, show, retry, purge)",
        description="Inspect and manage the encrypted audio spool (the backlog waiting for "
        "the service). Safe to run while the daemon runs, except purge.",
    )
    sub = parser.add_subparsers(dest="spool_command", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="table of encounters and recordings in the spool")
    p_show = sub.add_parser("show", help="details of one encounter or recording")
    p_show.add_argument(
        "id", help="encounter ref (as listed) or id, recording id, or a unique prefix (4+)"
    )
    p_retry = sub.add_parser("retry", help="clear back-off and quarantine so delivery retries")
    target = p_retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", help="encounter or recording id (or unique prefix)")
    target.add_argument("--all", action="store_true", help="every encounter and recording")
    p_purge = sub.add_parser("purge", help="delete an encounter or recording from the spool")
    p_purge.add_argument("id", help="encounter or recording id (or unique prefix)")
    p_purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p_purge.add_argument(
        "--force", action="store_true", help="also delete audio the service has not confirmed"
    )
    for p in (p_list, p_show, p_retry, p_purge):
        add_config_argument(p)
    for p in (p_list, p_show):
        p.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_recorder.spool import SpoolError
    from edge_recorder.spool.admin import ensure_unlocked, snapshot

    config = load_or_exit(args, usable=False)
    directory = config.spool.dir
    try:
        snap = snapshot(directory, config.spool.key_file)
        if args.spool_command == "list":
            return _list(snap, args.json)
        if args.spool_command == "show":
            return _show(snap, snap.resolve(args.id), args.json)
        if args.spool_command == "retry":
            return _retry(directory, None if args.all else snap.resolve(args.id))
        ensure_unlocked(directory)  # before --force and --yes: the daemon must be stopped
        return _purge(directory, snap, snap.resolve(args.id), args.force, args.yes)
    except (SpoolError, KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"edge-recorder spool: {message}", file=sys.stderr)
        return 1


def _state(r: RecordingEntry) -> str:
    if r.quarantine is not None:
        return "quarantined"
    if r.delivered:
        return "delivered"
    return "open" if r.state == "open" else "pending"


def _age(created: float) -> str:
    seconds = max(0, int(time.time() - created))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _row(snap: Snapshot, r: RecordingEntry) -> dict[str, Any]:
    return {
        "encounter": r.encounter,
        "seq": r.seq,
        "recording": r.id,
        "state": _state(r),
        "length": r.length,
        "disk_bytes": snap.disk_bytes(r.id),
        "confirmed": r.confirmed,
        "finalized": r.finalized,
        "age_s": round(time.time() - r.created_at, 1),
        "attempts": r.retry.attempts,
        "next_attempt_at": r.retry.next_attempt_at,
        "last_error": r.retry.last_error,
        "quarantine": r.quarantine,
        "close_reason": r.close_reason,
    }


def _ordered(snap: Snapshot) -> list[RecordingEntry]:
    order = {e.id: e.order for e in snap.ledger.encounters.values()}
    return sorted(
        snap.ledger.recordings.values(), key=lambda r: (order.get(r.encounter, -1), r.seq)
    )


def _list(snap: Snapshot, as_json: bool) -> int:
    recs = _ordered(snap)
    if as_json:
        json.dump([_row(snap, r) for r in recs], sys.stdout, indent=2)
        print()
        return 0
    if not recs:
        print("spool is empty")
        _print_notices(snap)
        return 0
    # The whole encounter name (the 12-hex ref), never cut: it is what `show`, `retry` and
    # `purge` take, and what the fleet dashboard's events show.
    width = max(len("ENCOUNTER"), *(len(r.encounter) for r in recs))
    print(
        f"{'ENCOUNTER':<{width}} {'#':>3} {'RECORDING':<8} {'STATE':<11} {'BYTES':>11} "
        f"{'CONFIRMED':>11} {'AGE':>7} {'TRIES':>5}  LAST ERROR"
    )
    for r in recs:
        length = str(r.length) if r.length is not None else f"~{snap.disk_bytes(r.id)}"
        problem = r.quarantine or r.retry.last_error or ""
        print(
            f"{r.encounter:<{width}} {r.seq:>3} {r.id[:8]:<8} {_state(r):<11} {length:>11} "
            f"{r.confirmed:>11} {_age(r.created_at):>7} {r.retry.attempts:>5}  {problem[:60]}"
        )
    total = sum(s.size for refs in snap.segments.values() for s in refs)
    quarantined = sum(1 for r in recs if r.quarantine is not None)
    print(f"{len(recs)} recording(s), {total} bytes on disk, {quarantined} quarantined")
    _print_notices(snap)
    return 0


def _print_notices(snap: Snapshot, ids: set[str] | None = None, last: int = 5) -> None:
    notices = [n for n in snap.ledger.notices if ids is None or n.recording in ids][-last:]
    if notices:
        print("recent notices:")
    for n in notices:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.at))
        rec = f" {n.recording[:8]}" if n.recording else ""
        print(f"  {when} {n.kind}{rec}: {n.detail}")


def _show(snap: Snapshot, ident: str, as_json: bool) -> int:
    ledger = snap.ledger
    if ident in ledger.encounters:
        enc = ledger.encounters[ident]
        recs = ledger.recordings_of(ident)
        body: dict[str, Any] = {
            "encounter": enc.model_dump(),
            "recordings": [_row(snap, r) for r in recs],
        }
        ids = {r.id for r in recs}
    else:
        r = ledger.recordings[ident]
        body = _row(snap, r) | {
            "codec": r.codec,
            "sample_rate": r.sample_rate,
            "channels": r.channels,
            "segments": [
                {"file": s.path.name, "base_offset": s.base_offset, "bytes": s.size}
                for s in snap.segments_of(r.id)
            ],
        }
        ids = {r.id}
    body["notices"] = [n.model_dump() for n in ledger.notices if n.recording in ids]
    if as_json:
        json.dump(body, sys.stdout, indent=2, default=str)
        print()
        return 0
    for key, value in body.items():
        if key == "notices":
            continue
        if isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print("  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            print(f"{key}: {value}")
    _print_notices(snap, ids, last=20)
    return 0


def _retry(directory: Any, target: str | None) -> int:
    from edge_recorder.spool.admin import retry

    outcome, changed = retry(directory, target)
    what = target or "all recordings and encounters"
    if outcome == "queued":
        print(f"the daemon holds the spool; retry of {what} queued for it to apply")
    else:
        print(f"retry cleared for {what} ({len(changed)} changed); delivery will try again")
    return 0


def _purge(directory: Any, snap: Snapshot, target: str, force: bool, yes: bool) -> int:
    from edge_recorder.spool.admin import plan_purge, purge

    plan = plan_purge(snap, target, force)
    summary = f"purge {target}: {len(plan.recordings)} recording(s), {plan.disk_bytes} bytes" + (
        f", {plan.undelivered} NOT delivered (audio will be lost)" if plan.undelivered else ""
    )
    if not yes:
        if not sys.stdin.isatty():
            print(f"edge-recorder spool: {summary}; not a terminal, add --yes", file=sys.stderr)
            return 1
        answer = input(f"{summary}. Delete? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = purge(directory, target, force)
    print(f"purged {len(removed)} recording(s) of {target}")
    return 0
