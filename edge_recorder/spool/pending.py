"""The ledger changes not yet saved, and the one journal record that saves them.

Rewriting the whole ledger for every confirmation is wear and O(ledger); a journal record
names only the entries a change touched. Which entries those are, and what the record holds,
is pure book-keeping, kept here apart from the file I/O so `core.SpoolCore` only decides when
to write and where.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_recorder.spool.identity import Identities
from edge_recorder.spool.journal import encode
from edge_recorder.spool.ledger import DELTA_ENTRIES, Delta, LedgerData, Notice


class PendingChanges:
    """The recording and encounter ids changed since the last save (journal record or full
    ledger), present or removed, and the newest notice that save already held."""

    def __init__(self) -> None:
        self.recordings: set[str] = set()
        self.encounters: set[str] = set()
        self._last_notice: Notice | None = None

    def add(self, recs: Iterable[str] = (), encs: Iterable[str] = ()) -> None:
        self.recordings.update(recs)
        self.encounters.update(encs)

    def record(self, ledger: LedgerData, ids: Identities) -> bytes | None:
        """One journal record for what changed (ids sealed, see identity.py); None when it
        is too big for one."""
        if max(len(self.encounters), len(self.recordings)) > DELTA_ENTRIES:
            return None  # e.g. many batched confirmations: a compaction says it all
        notices = self._new_notices(ledger)
        encs, recs, disk_notices = ids.delta_to_disk(
            ledger, self.encounters, self.recordings, notices
        )
        delta = Delta(
            encounters=encs, recordings=recs, next_order=ledger.next_order,
            notices=disk_notices,
        )  # fmt: skip
        return encode(delta)

    def saved(self, ledger: LedgerData) -> None:
        """`ledger` is on disk as it is now: nothing is pending."""
        self.recordings.clear()
        self.encounters.clear()
        self._last_notice = ledger.notices[-1] if ledger.notices else None

    def _new_notices(self, ledger: LedgerData) -> list[Notice]:
        """Notices added since the last save (all kept ones if that one was trimmed away)."""
        notices = ledger.notices
        for i in range(len(notices) - 1, -1, -1):
            if notices[i] is self._last_notice:
                return notices[i + 1 :]
        return list(notices)
