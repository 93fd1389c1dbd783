"""`spool list` shows each encounter's whole ref, and `spool show|retry|purge` take a prefix
(4+ characters) of an encounter ref as they do of a recording id; an ambiguous prefix names
the candidates."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import RunCli
from tests.unit.spool.helpers import open_spool, spool_config


def _setup(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """Two encounters; the second one's two recordings share their first 8 hex digits, and
    the first encounter's recording starts like the first encounter's ref (so a short prefix
    of that ref is ambiguous across kinds)."""
    config = spool_config(tmp_path)
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'[spool]\ndir = "{config.dir}"\nkey_file = "{config.key_file}"\nreserve_free_bytes = 0\n'
    )
    with open_spool(config) as spool:
        refs = [spool.encounter_ref("enc-1"), spool.encounter_ref("enc-2")]
        ids = [
            f"{refs[0][:6]}00-0000-4000-8000-000000000001",
            "abcd1234-0000-4000-8000-000000000002",
            "abcd1234-0000-4000-8000-000000000003",
        ]
        for encounter, seq, rid in (
            ("enc-1", 1, ids[0]),
            ("enc-2", 1, ids[1]),
            ("enc-2", 2, ids[2]),
        ):
            w = spool.begin_recording(encounter, seq, rid, codec="pcm16", sample_rate=16000)
            w.append(b"\x01" * 3200)
            w.close()
    return toml, refs, ids


def test_list_shows_the_whole_ref_and_show_finds_the_encounter_by_it(
    run_cli: RunCli, tmp_path: Path
) -> None:
    toml, refs, _ = _setup(tmp_path)
    listing = run_cli("spool", "list", "--config", str(toml))
    assert listing.returncode == 0, listing.stderr
    column = [line.split()[0] for line in listing.stdout.splitlines()[1:4]]
    assert column == [refs[0], refs[1], refs[1]]
    assert all(re.fullmatch(r"[0-9a-f]{12}", ref) for ref in column)
    for ref in column:  # what the list shows is what show takes
        shown = run_cli("spool", "show", ref, "--json", "--config", str(toml))
        assert json.loads(shown.stdout)["encounter"]["id"] == ref, shown.stderr


def test_show_finds_an_encounter_by_a_prefix_of_its_ref(run_cli: RunCli, tmp_path: Path) -> None:
    toml, refs, ids = _setup(tmp_path)
    for length in (4, 8, 11):
        shown = run_cli("spool", "show", refs[1][:length], "--json", "--config", str(toml))
        assert shown.returncode == 0, shown.stderr
        body = json.loads(shown.stdout)
        assert body["encounter"]["id"] == refs[1]
        assert [r["recording"] for r in body["recordings"]] == ids[1:]
    # a recording prefix still works
    rec = run_cli("spool", "show", ids[0][:12], "--json", "--config", str(toml))
    assert json.loads(rec.stdout)["recording"] == ids[0]


def test_an_ambiguous_prefix_lists_the_candidates(run_cli: RunCli, tmp_path: Path) -> None:
    toml, refs, ids = _setup(tmp_path)
    across = run_cli("spool", "show", refs[0][:6], "--config", str(toml))
    assert across.returncode == 1 and across.stdout == ""
    assert "matches 2 entries" in across.stderr
    assert f"encounter {refs[0]}" in across.stderr
    assert f"recording {ids[0]} (encounter {refs[0]})" in across.stderr
    two = run_cli("spool", "show", "abcd", "--config", str(toml))
    assert two.returncode == 1
    assert ids[1] in two.stderr and ids[2] in two.stderr and f"encounter {refs[1]}" in two.stderr
    short = run_cli("spool", "show", refs[0][:3], "--config", str(toml))
    assert short.returncode == 1 and "at least 4 characters" in short.stderr


def test_purge_takes_an_encounter_prefix(run_cli: RunCli, tmp_path: Path) -> None:
    toml, refs, ids = _setup(tmp_path)
    done = run_cli("spool", "purge", refs[1][:8], "--yes", "--force", "--config", str(toml))
    assert done.returncode == 0, done.stderr
    assert "purged 2 recording(s)" in done.stdout
    rows = json.loads(run_cli("spool", "list", "--json", "--config", str(toml)).stdout)
    assert [r["recording"] for r in rows] == [ids[0]]
