"""`spool purge` under a running daemon says so first, not after asking for --force and --yes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli
from tests.unit.spool.helpers import new_id, open_spool, spool_config


def test_purge_reports_the_held_lock_before_any_question(run_cli: RunCli, tmp_path: Path) -> None:
    config = spool_config(tmp_path)
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'[spool]\ndir = "{config.dir}"\nkey_file = "{config.key_file}"\nreserve_free_bytes = 0\n'
    )
    with open_spool(config) as spool:  # the "daemon": it holds the spool's lock
        w = spool.begin_recording("enc-1", 1, new_id(), codec="pcm16", sample_rate=16000)
        w.append(b"\x01" * 3200)
        w.close()  # undelivered: without the lock check, purge would first ask for --force
        held = run_cli("spool", "purge", w.recording_id, "--config", str(toml))
        assert held.returncode == 1
        assert "in use by another process" in held.stderr
        assert "--force" not in held.stderr and "--yes" not in held.stderr
        assert [r.id for r in spool.recordings()] == [w.recording_id]
    freed = run_cli("spool", "purge", w.recording_id, "--yes", "--config", str(toml))
    assert freed.returncode == 1 and "--force" in freed.stderr  # the usual order once free
