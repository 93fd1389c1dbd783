"""Who an encounter is, kept out of the spool's plain files.

A correlation id may be an EHR identifier (an MRN and a visit number): PHI, and guessable, so
an unkeyed hash of it is no disguise (trying the likely ids reverses it in a fraction of a
second). Everything here is keyed from the spool's device key through HKDF, one label per
purpose; the device key itself never hashes or seals anything:

- `ref(id)`: the `encounter_ref` (`status.encounter_ref`: HMAC-SHA256, 12 hex characters). The
  ledger names encounters by it and the fleet shows it, so `spool list` and a dashboard agree,
  and neither gives the id away: without the key a guess cannot be checked. Stable for as
  long as the spool key lives (restarts included); another device's key gives other refs.
- `seal_id`/`open_id`: the id itself, AES-256-GCM under its own key, with the entry's ledger
  key (its ref) as associated data, so a sealed id copied to another entry does not open.
  Delivery still names the encounter to the service after a restart.
- `context_name(id)`: the file name of the encounter's sealed EHR context (HMAC, 32 hex).
- `header_cipher`: seals recording header files (`headers.py`).
- `to_disk`/`from_disk`: the ledger as saved (refs, sealed ids, and no id left in any free
  text: notices, quarantine reasons and service errors get `ref:<ref>` instead) and the
  ledger as used in memory (ids). `delta_to_disk`: the same for the few entries one change
  touched (a journal record, `journal.py`), from the refs the disk already uses, so a change
  costs the same whatever the ledger's size. Version 1 ledgers (plain ids) are read as they are and
  written as version 2 by the first save.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge_recorder.spool.crypto import derive_cipher, derive_key
from edge_recorder.spool.ledger import (
    EncounterEntry,
    LedgerData,
    Notice,
    RecordingEntry,
    RecordingTable,
    RetryState,
)
from edge_recorder.status import encounter_ref

_REF_INFO = b"edge-recorder encounter ref v1"
_NAME_INFO = b"edge-recorder context name v1"
_ID_INFO = b"edge-recorder ledger ids v1"
_HEADER_INFO = b"edge-recorder recording header v1"
_NONCE = 12
_ID_CHARS = "A-Za-z0-9_|-"  # what a correlation id is made of (StartContext's pattern)


class Identities:
    """The device's keyed names and seals for encounter ids (see the module docstring)."""

    def __init__(self, device_key: bytes) -> None:
        self._ref_key = derive_key(device_key, _REF_INFO)
        self._name_key = derive_key(device_key, _NAME_INFO)
        self._ids = derive_cipher(device_key, _ID_INFO)
        self.header_cipher: AESGCM = derive_cipher(device_key, _HEADER_INFO)
        self._sealed: dict[tuple[str, str], str] = {}  # (id, ledger key) -> sealed id
        self._keys: dict[str, str] = {}  # id -> its ledger key on disk (its ref, as a rule)
        self._owners: dict[str, str] = {}  # ledger key -> id
        self._scrub: Callable[[str | None], str | None] | None = None  # for _keys as they are

    def ref(self, correlation_id: str) -> str:
        return encounter_ref(correlation_id, self._ref_key)

    def context_name(self, correlation_id: str) -> str:
        digest = hmac.new(self._name_key, correlation_id.encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def seal_id(self, correlation_id: str, label: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._ids.encrypt(nonce, correlation_id.encode(), label.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open_id(self, sealed: str, label: str) -> str:
        """The id sealed under ledger key `label`; ValueError when it does not open."""
        try:
            blob = base64.b64decode(sealed, validate=True)
            plain = self._ids.decrypt(blob[:_NONCE], blob[_NONCE:], label.encode()).decode()
        except (binascii.Error, InvalidTag, UnicodeDecodeError, ValueError):
            raise ValueError("an encounter's sealed id does not open (damaged, or moved)") from None
        if not label.startswith(self.ref(plain)):
            raise ValueError("an encounter's sealed id does not match its ref")
        return plain

    # ---- the ledger on disk and in memory ------------------------------------------------
    def to_disk(self, ledger: LedgerData) -> LedgerData:
        """The ledger as saved: encounters filed under their refs, ids only sealed."""
        keys: dict[str, str] = {}
        taken: set[str] = set()
        for cid, enc in ledger.encounters.items():
            key = self._keys.get(cid) or self.ref(cid)
            if key in taken:  # two ids, one 48-bit ref: astronomically rare
                key = f"{self.ref(cid)}-{enc.order}"
            keys[cid] = key
            taken.add(key)
        self._remember(keys)
        scrub = self._scrubber()
        sealed = {
            (cid, key): self._sealed.get((cid, key)) or self.seal_id(cid, key)
            for cid, key in keys.items()
        }
        self._sealed = sealed  # only what the ledger still holds
        encounters = {
            keys[cid]: self._enc_to_disk(cid, enc, scrub) for cid, enc in ledger.encounters.items()
        }
        recordings = {rid: self._rec_to_disk(rec, scrub) for rid, rec in ledger.recordings.items()}
        notices = [_scrub_notice(n, scrub) for n in ledger.notices]
        return ledger.model_copy(
            update={
                "version": 2,
                "encounters": encounters,
                "recordings": recordings,
                "notices": notices,
            }
        )

    def delta_to_disk(
        self,
        ledger: LedgerData,
        encounters: set[str],
        recordings: set[str],
        notices: list[Notice],
    ) -> tuple[dict[str, EncounterEntry | None], dict[str, RecordingEntry | None], list[Notice]]:
        """The named entries as saved (None: no longer in the ledger), and `notices`; after
        a `to_disk`, whose refs it keeps. Costs O(entries named), not O(ledger)."""
        encs: dict[str, EncounterEntry | None] = {}
        for cid in encounters:
            enc = ledger.encounters.get(cid)
            if enc is None:
                key = self._keys.pop(cid, None)
                if key is not None:  # never saved: nothing to remove
                    self._owners.pop(key, None)
                    self._sealed.pop((cid, key), None)
                    self._scrub = None
                    encs[key] = None
                continue
            key = self._keys.get(cid) or self._new_key(cid, enc.order)
            encs[key] = None  # placeholder: the scrubber below must know the new key
        scrub = self._scrubber() if _has_text(ledger, encounters, recordings, notices) else None
        for cid in encounters:
            enc = ledger.encounters.get(cid)
            if enc is not None:
                encs[self._keys[cid]] = self._enc_to_disk(cid, enc, scrub)
        recs: dict[str, RecordingEntry | None] = {}
        for rid in recordings:
            rec = ledger.recordings.get(rid)
            recs[rid] = None if rec is None else self._rec_to_disk(rec, scrub)
        return encs, recs, [_scrub_notice(n, scrub) for n in notices]

    def _new_key(self, cid: str, order: int) -> str:
        key = self.ref(cid)
        if key in self._owners:  # two ids, one 48-bit ref: astronomically rare
            key = f"{key}-{order}"
        self._keys[cid], self._owners[key] = key, cid
        self._scrub = None
        return key

    def _remember(self, keys: dict[str, str]) -> None:
        if keys != self._keys:
            self._keys = keys
            self._owners = {key: cid for cid, key in keys.items()}
            self._scrub = None

    def _scrubber(self) -> Callable[[str | None], str | None]:
        if self._scrub is None:
            self._scrub = _scrubber(self._keys)
        return self._scrub

    def _enc_to_disk(
        self, cid: str, enc: EncounterEntry, scrub: Callable[[str | None], str | None] | None
    ) -> EncounterEntry:
        key = self._keys[cid]
        sealed = self._sealed.get((cid, key))
        if sealed is None:
            sealed = self._sealed[cid, key] = self.seal_id(cid, key)
        return replace(enc, id=key, sealed_id=sealed, retry=_scrub_retry(enc.retry, scrub))

    def _rec_to_disk(
        self, rec: RecordingEntry, scrub: Callable[[str | None], str | None] | None
    ) -> RecordingEntry:
        return replace(
            rec,
            encounter=self._keys.get(rec.encounter) or self.ref(rec.encounter),
            quarantine=scrub(rec.quarantine) if scrub else rec.quarantine,
            retry=_scrub_retry(rec.retry, scrub),
        )

    def from_disk(self, ledger: LedgerData) -> LedgerData:
        """The ledger in memory (ids); ValueError when a sealed id is missing or damaged.
        Consumes `ledger`: its entries are renamed in place, not copied, so opening a spool
        never holds the on-disk and the in-memory form of every entry at once."""
        if ledger.version == 1:
            ledger.version = 2  # plain ids: sealed at next save
            return ledger
        ids: dict[str, str] = {}
        sealed: dict[tuple[str, str], str] = {}
        for key, enc in ledger.encounters.items():
            if enc.sealed_id is None:
                raise ValueError("an encounter has no sealed id")
            ids[key] = self.open_id(enc.sealed_id, key)
            sealed[ids[key], key] = enc.sealed_id
        if len(set(ids.values())) != len(ids):
            raise ValueError("one encounter is filed twice")
        # Nothing below fails: the ledger is changed only once every id has opened.
        self._sealed.update(sealed)
        for key, enc in ledger.encounters.items():
            enc.id, enc.sealed_id = ids[key], None
        self._remember({cid: key for key, cid in ids.items()})
        ledger.encounters = {ids[key]: enc for key, enc in ledger.encounters.items()}
        for rec in ledger.recordings.values():
            rec.encounter = ids[rec.encounter]
        ledger.recordings = RecordingTable(ledger.recordings)  # indexed by the ids now
        return ledger


def legacy_context_name(correlation_id: str) -> str:
    """The unkeyed name older versions gave a sealed context file (read, then renamed)."""
    return hashlib.sha256(correlation_id.encode()).hexdigest()[:32]


def _scrubber(refs: Mapping[str, str]) -> Callable[[str | None], str | None]:
    """Replaces each whole id in a text with `ref:<ref>` (a service's error may quote it)."""
    if not refs:
        return lambda text: text
    alternatives = "|".join(re.escape(cid) for cid in sorted(refs, key=len, reverse=True))
    pattern = re.compile(f"(?<![{_ID_CHARS}])(?:{alternatives})(?![{_ID_CHARS}])")

    def scrub(text: str | None) -> str | None:
        if not text:
            return text
        return pattern.sub(lambda m: f"ref:{refs[m.group(0)]}", text)

    return scrub


def _has_text(
    ledger: LedgerData, encounters: set[str], recordings: set[str], notices: list[Notice]
) -> bool:
    """Whether any free text (which might quote an id) is among the entries named."""
    if notices:
        return True
    for cid in encounters:
        enc = ledger.encounters.get(cid)
        if enc is not None and enc.retry.last_error:
            return True
    for rid in recordings:
        rec = ledger.recordings.get(rid)
        if rec is not None and (rec.quarantine or rec.retry.last_error):
            return True
    return False


def _scrub_notice(notice: Notice, scrub: Callable[[str | None], str | None] | None) -> Notice:
    if scrub is None:
        return notice
    return notice.model_copy(update={"detail": scrub(notice.detail) or ""})


def _scrub_retry(retry: RetryState, scrub: Callable[[str | None], str | None] | None) -> RetryState:
    if retry.last_error is None or scrub is None:
        return retry
    return replace(retry, last_error=scrub(retry.last_error))
