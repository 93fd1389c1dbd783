"""Whatever bytes the config file holds, `check` (and `run`, which loads it the same way) ends
with exit 0 or 78 and readable `key: reason` lines: never a traceback, which is exit 1 and,
under the unit's `Restart=on-failure`, a restart loop.

A deterministic fuzz: 200 mutations of the shipped example (bit flips, truncation, bytes that
are not UTF-8, huge numbers, deep nesting, NUL bytes, odd values) through the `check`
command's own entry point, in-process so the 200 cases take seconds (the real process is in
tests/integration/test_cli_check.py). Before the fix 51 of these 200 ended in a traceback
(28 UnicodeDecodeError, 23 RecursionError); a 5,000-digit integer raised ValueError too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_recorder import cli
from edge_recorder.config.errors import MAX_CONFIG_BYTES
from edge_recorder.config.loader import ConfigError, load_config

SEED = 19
CASES = 200
MARKER = "Room-Marker-7f3a"  # planted in the file: an error may never dump the file's text
NOT_UTF8 = (b"\xfc", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80")
ODD_VALUES = (
    b"1e999", b"-1e999", b"nan", b"inf", b"99999999999999999999999", b"{}", b"[[]]",
    b'"\\u0000"', b"1979-05-27T07:32:00Z", b'"a\\u0000b"', b"true", b'"' + b"x" * 5000 + b'"',
    b"-0", b"0x7fffffffffffffffffff", b"'''\n'''",
)  # fmt: skip


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    cut = rng.randrange(len(data))
    if rng.random() < 0.5:  # at a line end: often still a valid (shorter) config
        cut = data.rfind(b"\n", 0, cut) + 1
    return data[:cut]


def flip_in_comment(rng: random.Random, data: bytes) -> bytes:
    """A flipped bit in a comment: still TOML unless it made a control or non-UTF-8 byte."""
    starts = [i for i in range(len(data)) if data.startswith(b"# ", i)]
    out = bytearray(data)
    at = rng.choice(starts) + 2
    out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def insert_non_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + rng.choice(NOT_UTF8) + data[at:]


def huge_number(rng: random.Random, data: bytes) -> bytes:
    digits = rng.choice([20, 400, 5000])
    return data + b"\n[spool]\nmax_bytes = " + b"9" * digits + b"\n"


def deep_array(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([50, 500, 5000])
    return data + b"\nx = " + b"[" * depth + b"1" + b"]" * depth + b"\n"


def deep_table(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([50, 2000])
    return data.replace(b"[device]", b"[device]\nnested = " + b"{a=" * depth + b"1" + b"}" * depth)


def insert_nul(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + b"\x00" + data[at:]


def odd_value(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    settings = [i for i, line in enumerate(lines) if b" = " in line and not line.startswith(b"#")]
    at = rng.choice(settings)
    lines[at] = lines[at].split(b" = ")[0] + b" = " + rng.choice(ODD_VALUES)
    return b"\n".join(lines)


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    flip_bits, flip_in_comment, truncate, insert_non_utf8, huge_number, deep_array, deep_table,
    insert_nul, odd_value,
)  # fmt: skip


def seed_config(repo_root: Path) -> bytes:
    text = (repo_root / "config.example.toml").read_text()
    assert '\nlocation = ""\n' in text
    return text.replace('\nlocation = ""\n', f'\nlocation = "{MARKER}"\n', 1).encode()


def mutated_configs(repo_root: Path) -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    base = seed_config(repo_root)
    cases = []
    for _ in range(CASES):
        mutation = rng.choice(MUTATIONS)
        cases.append((mutation.__name__, mutation(rng, base)))
    return cases


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("EDGE_RECORDER")]:
        monkeypatch.delenv(name)


def run_check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`edge-recorder check --config PATH` through the CLI's own entry point."""
    try:
        code = cli.main(["check", "--config", str(path)])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_any_mutation_exits_0_or_78_with_key_reason_lines(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes: dict[bool, int] = {}
    for n, (mutation, data) in enumerate(mutated_configs(repo_root)):
        path = tmp_path / f"c{n}.toml"
        path.write_bytes(data)
        code, out, err = run_check(path, capsys)  # any exception fails the test here
        # a valid config without service endpoints also exits 78 (it cannot deliver)
        valid = f"{path} is valid" in out
        outcomes[valid] = outcomes.get(valid, 0) + 1
        assert code in (0, 78), (mutation, code, err[-500:])
        assert "Traceback" not in err + out
        if code == 0:
            assert out.rstrip().endswith("result: ok") and err == ""
            continue
        header, *lines = err.splitlines()
        assert header == f"edge-recorder: invalid configuration ({path}):", (mutation, err)
        assert lines, mutation
        for line in lines:
            assert line.startswith("  ") and len(line) < 400, (mutation, line[:500])
        assert len(err) < 4000, (mutation, len(err))  # bounded: never the file's text
    # The fuzz must exercise both outcomes, or it proves nothing about either.
    assert outcomes.get(True, 0) >= 10 and outcomes.get(False, 0) >= 100, outcomes


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'[device]\nlocation = "Z\xfcrich ' + MARKER.encode() + b'"\n', "not UTF-8 text"),
        (b'[device]\nlocation = "a\x00b"\n', "TOML syntax error"),
        (b'[spool]\ndir = "/var/lib/a\\u0000b"\n', "a path must not contain a NUL"),
        (b"[spool]\nmax_bytes = " + b"9" * 5000 + b"\n", "TOML value too large"),
        (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "TOML nested too deeply"),
        (b"# " + b"x" * MAX_CONFIG_BYTES + b"\n", "larger than 1024 KiB"),
    ],
    ids=["latin-1", "nul", "nul-in-a-path", "huge-number", "deep-nesting", "huge-file"],
)
def test_unreadable_files_are_config_errors_without_their_text(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (line,) = caught.value.lines
    assert reason in line and MARKER not in line and len(line) < 300


def test_a_latin_1_byte_is_located_by_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'[device]\nid = "room-1"\nlocation = "Z\xfcrich"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.lines == [
        f"{path}: not UTF-8 text (byte 0xfc at line 3, column 14); save the file as UTF-8"
    ]
