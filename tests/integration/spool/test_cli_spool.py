"""`edge-recorder spool list|show|retry|purge` as a real process against a real spool."""

from __future__ import annotations

import json
from pathlib import Path

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool
from tests.conftest import RunCli
from tests.unit.spool.helpers import new_id, open_spool, spool_config


def _setup(tmp_path: Path) -> tuple[Path, SpoolConfig, list[str]]:
    config = spool_config(tmp_path)
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'[spool]\ndir = "{config.dir}"\nkey_file = "{config.key_file}"\nreserve_free_bytes = 0\n'
    )
    ids = []
    with open_spool(config) as spool:
        for seq in (1, 2):
            w = spool.begin_recording("enc-1", seq, new_id(), codec="pcm16", sample_rate=16000)
            w.append(b"\x01" * 3200 * seq)
            w.close()
            ids.append(w.recording_id)
        spool.note_failure(ids[1], "HTTP 503 from storeChunk", next_attempt_at=9e9)
        spool.confirm(ids[0], 3200)
        spool.mark_finalized(ids[0])
    return toml, config, ids


def test_list_and_show(run_cli: RunCli, tmp_path: Path) -> None:
    toml, config, ids = _setup(tmp_path)
    listing = run_cli("spool", "list", "--config", str(toml))
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:4] == ["ENCOUNTER", "#", "RECORDING", "STATE"]
    assert ids[0][:8] in lines[1] and "delivered" in lines[1]
    assert ids[1][:8] in lines[2] and "pending" in lines[2] and "HTTP 503" in lines[2]
    assert "2 recording(s)" in lines[-1]
    rows = json.loads(run_cli("spool", "list", "--json", "--config", str(toml)).stdout)
    assert [(r["recording"], r["attempts"], r["length"]) for r in rows] == [
        (ids[0], 0, 3200),
        (ids[1], 1, 6400),
    ]
    show = run_cli("spool", "show", ids[1][:8], "--json", "--config", str(toml))
    body = json.loads(show.stdout)
    assert body["recording"] == ids[1] and body["segments"][0]["base_offset"] == 0
    with open_spool(config) as spool:
        ref = spool.encounter_ref("enc-1")
    shown = run_cli("spool", "show", "enc-1", "--config", str(toml)).stdout  # the key is here
    assert ref in shown and "enc-1" not in shown  # the ledger names it by its keyed ref
    assert f"id={ref}" in run_cli("spool", "show", ref, "--config", str(toml)).stdout
    missing = run_cli("spool", "show", "nope", "--config", str(toml))
    assert missing.returncode == 1 and "no encounter or recording 'nope'" in missing.stderr


def test_list_works_while_the_daemon_holds_the_spool(run_cli: RunCli, tmp_path: Path) -> None:
    toml, config, ids = _setup(tmp_path)
    with open_spool(config):
        listing = run_cli("spool", "list", "--config", str(toml))
    assert listing.returncode == 0 and ids[1][:8] in listing.stdout


def test_retry_directly_and_through_the_running_daemon(run_cli: RunCli, tmp_path: Path) -> None:
    toml, config, ids = _setup(tmp_path)
    done = run_cli("spool", "retry", ids[1], "--config", str(toml))
    assert done.returncode == 0 and "1 changed" in done.stdout
    with open_spool(config) as spool:
        assert spool.recording(ids[1]).next_attempt_at is None
        spool.quarantine(ids[1], "400 invalid")
        queued = run_cli("spool", "retry", "--all", "--config", str(toml))
        assert queued.returncode == 0 and "queued" in queued.stdout
        assert spool.recording(ids[1]).quarantine is not None
        spool.sync()  # the daemon's next timer tick applies it
        assert spool.recording(ids[1]).quarantine is None


def test_purge_confirms_and_refuses_undelivered(run_cli: RunCli, tmp_path: Path) -> None:
    toml, config, ids = _setup(tmp_path)
    no_tty = run_cli("spool", "purge", ids[0], "--config", str(toml))
    assert no_tty.returncode == 1 and "add --yes" in no_tty.stderr
    undelivered = run_cli("spool", "purge", "enc-1", "--yes", "--config", str(toml))
    assert undelivered.returncode == 1 and "--force" in undelivered.stderr
    delivered_only = run_cli("spool", "purge", ids[0], "--yes", "--config", str(toml))
    assert delivered_only.returncode == 0, delivered_only.stderr
    with open_spool(config) as spool:
        assert [r.id for r in spool.recordings()] == [ids[1]]
        held = run_cli("spool", "purge", ids[1], "--yes", "--force", "--config", str(toml))
        assert held.returncode == 1 and "in use by another process" in held.stderr
    forced = run_cli("spool", "purge", ids[1][:6], "--yes", "--force", "--config", str(toml))
    assert forced.returncode == 0 and "purged 1" in forced.stdout
    with Spool.open(config, environ={}) as spool:
        assert spool.recordings() == []
    assert list((config.dir / "segments").iterdir()) == []


def test_purge_asks_on_a_terminal(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    toml, config, ids = _setup(tmp_path)
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_recorder", "spool", "purge", ids[0], "--config",
             str(toml)],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        os.write(master, b"y\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "Delete? [y/N]" in out and "purged 1 recording(s)" in out
    with open_spool(config) as spool:
        assert [r.id for r in spool.recordings()] == [ids[1]]
