"""Encounter ids stay out of the spool's plain files: a keyed `encounter_ref` (a guess cannot be
checked without the device's key), keyed context file names, and a ledger that holds only
refs and sealed ids, migrated from the older plain forms on open."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from edge_recorder.spool import Spool
from edge_recorder.spool.context import CONTEXT_DIR
from edge_recorder.spool.crypto import derive_cipher, load_key
from edge_recorder.spool.sealed import seal_json
from tests.unit.spool.helpers import new_id, open_spool, spool_config

MRN_ID = "MRN-55443322-VISIT"  # a guessable EHR identifier
CONTEXT = {"external_user_id": "dr-jane-doe-4711"}


def _sha(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _guesses() -> list[str]:
    """What an attacker tries for 'MRN-<8 digits>-VISIT': the real id among 100,000 others."""
    return [f"MRN-{n:08d}-VISIT" for n in range(55_400_000, 55_500_000)]


def _record(spool: Spool, cid: str, seq: int = 1, data: bytes = b"\x01\x02" * 800) -> str:
    writer = spool.begin_recording(cid, seq, new_id(), codec="pcm16", sample_rate=16000)
    writer.append(data)
    writer.close()
    return writer.recording_id


def test_a_dictionary_attack_on_the_ref_finds_nothing(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        ref = spool.encounter_ref(MRN_ID)
    assert len(ref) == 12 and int(ref, 16) >= 0
    started = time.perf_counter()
    matches = [guess for guess in _guesses() if _sha(guess, 12) == ref]
    assert matches == []  # the unkeyed hash gave MRN_ID back in a fraction of a second
    assert time.perf_counter() - started < 30  # the attack really ran over every guess
    assert MRN_ID in _guesses() and _sha(MRN_ID, 12) != ref


def test_the_ref_is_stable_on_one_device_and_differs_with_another_key(tmp_path: Path) -> None:
    config = spool_config(tmp_path / "a")
    with open_spool(config) as spool:
        first = spool.encounter_ref(MRN_ID)
        assert spool.encounter_ref("MRN-55443323-VISIT") != first
    with open_spool(config) as spool:  # a restart: same key, same ref
        assert spool.encounter_ref(MRN_ID) == first
    with open_spool(spool_config(tmp_path / "b")) as other:  # another device's key
        assert other.encounter_ref(MRN_ID) != first


def test_the_context_file_name_is_keyed(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        spool.save_context(MRN_ID, CONTEXT)
        ref = spool.encounter_ref(MRN_ID)
    (path,) = (tmp_path / "spool" / CONTEXT_DIR).iterdir()
    assert path.name != _sha(MRN_ID, 32) + ".enc" and not path.name.startswith(_sha(MRN_ID, 12))
    assert ref not in path.name  # nor the published ref: one name cannot be joined to the other
    assert not [g for g in _guesses() if path.name.startswith(_sha(g, 32))]


def test_a_context_saved_under_the_old_unkeyed_name_survives_the_upgrade(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        _record(spool, MRN_ID)
        spool.end_encounter(MRN_ID)
    key, _ = load_key(config.key_file, allow_create=False, environ={})
    old_name = _sha(MRN_ID, 32) + ".enc"  # what the previous version wrote
    cipher = derive_cipher(key, b"edge-recorder encounter context v1")
    (config.dir / CONTEXT_DIR).mkdir(mode=0o700)
    (config.dir / CONTEXT_DIR / old_name).write_bytes(seal_json(cipher, old_name, CONTEXT))
    with open_spool(config) as spool:  # renamed at open: the old name is an oracle for the id
        names = [p.name for p in (config.dir / CONTEXT_DIR).iterdir()]
        assert len(names) == 1 and names[0] != old_name
        assert spool.encounter_context(MRN_ID) == CONTEXT
        spool.purge(MRN_ID, force=True)
        assert list((config.dir / CONTEXT_DIR).iterdir()) == []


def test_the_ledger_holds_no_correlation_id_and_gives_it_back_after_a_restart(
    tmp_path: Path,
) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _record(spool, MRN_ID)
        _record(spool, "enc-other")
        spool.end_encounter(MRN_ID)
        spool.save_context(MRN_ID, CONTEXT)
        spool.note_failure(rid, f"HTTP 404: session {MRN_ID} not found", next_attempt_at=9e9)
        spool.note_encounter_failure(MRN_ID, f"no session '{MRN_ID}'", next_attempt_at=9e9)
        spool.quarantine(rid, f"the service refused {MRN_ID}")
        ref = spool.encounter_ref(MRN_ID)
    everything = b"".join(p.read_bytes() for p in config.dir.rglob("*") if p.is_file())
    assert MRN_ID.encode() not in everything and b"55443322" not in everything
    ledger = json.loads((config.dir / "ledger.json").read_bytes())
    assert ledger["version"] == 2 and ref in ledger["encounters"]
    assert ledger["recordings"][rid]["encounter"] == ref
    assert f"ref:{ref}" in ledger["recordings"][rid]["quarantine"]
    with open_spool(config) as spool:  # delivery reads the real id back
        info = spool.recording(rid)
        assert info.encounter == MRN_ID and spool.encounter(MRN_ID).ended
        assert {r.encounter for r in spool.recordings()} == {MRN_ID, "enc-other"}
        assert spool.encounter_context(MRN_ID) == CONTEXT
        assert spool.retry(ref) == [rid, MRN_ID]  # `spool retry <ref>` as the CLI lists it


def test_a_plain_version_1_ledger_is_sealed_on_open(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        rid = _record(spool, MRN_ID, seq=1)
        spool.end_encounter(MRN_ID)
        ref = spool.encounter_ref(MRN_ID)
    path = config.dir / "ledger.json"
    body = json.loads(path.read_bytes())  # rewritten the way the previous version kept it
    enc = body["encounters"].pop(ref)
    del enc["sealed_id"]
    body["encounters"][MRN_ID] = enc | {"id": MRN_ID}
    body["recordings"][rid]["encounter"] = MRN_ID
    body["version"] = 1
    path.write_text(json.dumps(body))
    assert MRN_ID.encode() in path.read_bytes()
    with open_spool(config) as spool:
        assert spool.recording(rid).encounter == MRN_ID and spool.encounter(MRN_ID).ended
        assert [r.id for r in spool.pending_recordings()] == [rid]
    assert MRN_ID.encode() not in path.read_bytes()
    assert json.loads(path.read_bytes())["version"] == 2
    assert not list(config.dir.glob("ledger.json.corrupt-*"))  # migrated, not set aside


def test_a_sealed_id_moved_to_another_entry_does_not_open(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        _record(spool, "enc-a")
        _record(spool, "enc-b")
        ref_a, ref_b = spool.encounter_ref("enc-a"), spool.encounter_ref("enc-b")
    path = config.dir / "ledger.json"
    body = json.loads(path.read_bytes())
    encs = body["encounters"]
    encs[ref_a]["sealed_id"], encs[ref_b]["sealed_id"] = (
        encs[ref_b]["sealed_id"],
        encs[ref_a]["sealed_id"],
    )
    path.write_text(json.dumps(body))
    with open_spool(config) as spool:  # damage: set aside, rebuilt from the recording headers
        assert sorted(r.encounter for r in spool.recordings()) == ["enc-a", "enc-b"]
        assert any(n.startswith("ledger-reset") for n in spool.notices)
