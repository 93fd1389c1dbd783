"""An encounter's EHR context: sealed beside its audio, survives a restart, gone with the audio."""

from __future__ import annotations

from pathlib import Path

from edge_recorder.spool.context import CONTEXT_DIR
from tests.unit.spool.helpers import new_id, open_spool, spool_config

CONTEXT = {"external_user_id": "dr-jane-doe-4711", "ehr_instance_id": "epic-prod-eu"}


def _files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool" / CONTEXT_DIR).glob("*"))


def test_context_is_sealed_at_rest_and_read_back_after_a_restart(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        spool.save_context("enc-MRN-12345", CONTEXT)
    (path,) = _files(tmp_path)
    blob = path.read_bytes()
    assert b"dr-jane-doe" not in blob and b"epic" not in blob  # no plaintext on disk
    assert "MRN" not in path.name  # the file name does not carry the encounter id
    assert path.stat().st_mode & 0o777 == 0o600
    with open_spool(config) as spool:
        assert spool.encounter_context("enc-MRN-12345") == CONTEXT
        assert spool.encounter_context("another-encounter") is None


def test_a_tampered_or_moved_context_is_refused_not_crashed_on(tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    with open_spool(config) as spool:
        spool.save_context("enc-a", CONTEXT)
        spool.save_context("enc-b", {"external_user_id": "someone-else"})
        path_a, path_b = (spool._contexts().directory / n for n in _names(spool))
        path_b.write_bytes(path_a.read_bytes())  # a's sealed context under b's name
        assert spool.encounter_context("enc-b") is None  # file name is associated data
        blob = bytearray(path_a.read_bytes())
        blob[-1] ^= 1
        path_a.write_bytes(bytes(blob))
        assert spool.encounter_context("enc-a") is None


def _names(spool) -> list[str]:  # type: ignore[no-untyped-def]
    return [spool._contexts()._file_name("enc-a"), spool._contexts()._file_name("enc-b")]


def test_context_goes_when_processing_started_or_the_encounter_is_purged(tmp_path: Path) -> None:
    with open_spool(spool_config(tmp_path)) as spool:
        for enc in ("enc-done", "enc-purged"):
            spool.save_context(enc, CONTEXT)
            w = spool.begin_recording(enc, 1, new_id(), codec="pcm16", sample_rate=16000)
            w.append(b"\x01\x02" * 100)
            w.close()
            spool.end_encounter(enc)
        rid = next(r.id for r in spool.recordings() if r.encounter == "enc-done")
        spool.confirm(rid, 200)
        spool.mark_finalized(rid)
        spool.mark_processing_started("enc-done")
        assert spool.encounter_context("enc-done") is None
        assert spool.encounter_context("enc-purged") == CONTEXT
        spool.purge("enc-purged", force=True)
        assert spool.encounter_context("enc-purged") is None
    assert _files(tmp_path) == []
