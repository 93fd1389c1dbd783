"""`edge-recorder run` exits with the status its condition calls for, as a real process.

A condition only a person can fix (a bad config, a missing extra, a wrong or missing spool
key, a spool the service user may not touch) must exit with a status the unit does not restart
on (tests/integration/systemd/test_unit_file.py checks the unit lists them), and say why in
STATUS= before it goes. A spool held by another process is restarted (75). Never a traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from edge_recorder.app.daemon import spool_exit
from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool, SpoolIOError, SpoolKeyError, SpoolLocked
from edge_recorder.support import exitcodes

from .conftest import NotifySocket

REPO = Path(__file__).resolve().parents[3]
OTHER_KEY = "ab" * 32  # a valid key, but not the one the spool was written with


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory every user can read (the permission case runs the daemon as nobody)."""
    path = Path(tempfile.mkdtemp(prefix="er-exit-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config(place: Path, **sections: dict[str, Any]) -> Path:
    tree: dict[str, Any] = {
        "device": {"id": "room-9"},
        "audio": {"source": "synthetic"},
        "vad": {"engine": "energy"},
        "spool": {"dir": str(place / "spool"), "key_file": str(place / "spool.key")},
        "control": {"socket": str(place / "ctl.sock")},
        "panel": {"pin_factory": "mock"},
        "log": {"format": "logfmt"},
    }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    path = place / "config.toml"
    path.write_text(tomli_w.dumps(tree))
    path.chmod(0o644)
    return path


def run_daemon(
    path: Path,
    notify: NotifySocket,
    *,
    as_nobody: bool = False,
    pythonpath: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_RECORDER", "WATCHDOG_"))}
    env.pop("JOURNAL_STREAM", None)
    env.update(NOTIFY_SOCKET=notify.address, GPIOZERO_PIN_FACTORY="mock")
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (pythonpath, REPO) if p is not None)
    command = [sys.executable, "-m", "edge_recorder", "run", "--config", str(path)]
    if as_nobody and os.geteuid() == 0:  # root reads anything: drop to an unprivileged user
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60, cwd=path.parent, check=False
    )


def status_lines(notify: NotifySocket) -> list[str]:
    return [f["STATUS"] for f in notify.drain() if "STATUS" in f]


def assert_exit(
    done: subprocess.CompletedProcess[str], code: exitcodes.ExitCode, notify: NotifySocket
) -> str:
    """The status, no traceback, and the STATUS= line systemd keeps after the exit."""
    assert done.returncode == code.code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    (status,) = status_lines(notify)
    assert f"exit {code.code}" in status
    assert ("not restarted" in status) is code.person_must_act
    return status


def make_spool(place: Path) -> None:
    """A spool written with the key in spool.key (the daemon's first start would do this)."""
    spool = Spool.open(SpoolConfig(dir=place / "spool", key_file=place / "spool.key"))
    spool.close()


def test_invalid_config_exits_78_and_says_which_key(
    place: Path, notify_socket: NotifySocket
) -> None:
    done = run_daemon(config(place, vad={"engine": "psychic"}), notify_socket)
    status = assert_exit(done, exitcodes.CONFIG, notify_socket)
    assert status.startswith("invalid configuration (vad.engine; 1 problem(s)")
    assert "psychic" not in status  # STATUS= is readable by every user: keys, never values
    assert not (place / "spool").exists()


def test_a_config_that_is_not_utf8_exits_78(place: Path, notify_socket: NotifySocket) -> None:
    path = config(place)
    path.write_bytes(path.read_bytes().replace(b'id = "room-9"', b'location = "Z\xfcrich"'))
    done = run_daemon(path, notify_socket)
    assert_exit(done, exitcodes.CONFIG, notify_socket)
    assert "not UTF-8 text (byte 0xfc at line " in done.stderr


def test_a_missing_optional_extra_exits_78(place: Path, notify_socket: NotifySocket) -> None:
    hide = place / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(  # as if the 'aws' extra were not installed
        "import sys\nsys.modules['botocore'] = None\nsys.modules['awscrt'] = None\n"
    )
    path = config(place, uplink={"service": "aws-healthscribe"})
    done = run_daemon(path, notify_socket, pythonpath=hide)
    assert_exit(done, exitcodes.CONFIG, notify_socket)
    assert "needs the optional extra 'aws'" in done.stderr


def test_a_wrong_spool_key_exits_77_and_leaves_the_spool_alone(
    place: Path, notify_socket: NotifySocket
) -> None:
    make_spool(place)
    before = spool_data(place)
    (place / "spool.key").write_text(OTHER_KEY + "\n")
    done = run_daemon(config(place), notify_socket)
    status = assert_exit(done, exitcodes.NO_ACCESS, notify_socket)
    assert "is not the key this spool was written with" in status
    assert spool_data(place) == before


def spool_data(place: Path) -> list[tuple[str, bytes]]:
    """Every spool file's bytes except the owner lock, which names the pid that last held it."""
    root = place / "spool"
    return sorted(
        (str(p.relative_to(root)), p.read_bytes())
        for p in root.rglob("*")
        if p.is_file() and p.name != "lock"
    )


def test_a_missing_spool_key_exits_77(place: Path, notify_socket: NotifySocket) -> None:
    make_spool(place)
    (place / "spool.key").unlink()
    done = run_daemon(config(place), notify_socket)
    status = assert_exit(done, exitcodes.NO_ACCESS, notify_socket)
    assert "spool.key is missing" in status
    assert not (place / "spool.key").exists()  # no new key invented over the old data


def test_a_spool_the_service_user_cannot_access_exits_77(
    place: Path, notify_socket: NotifySocket
) -> None:
    spool = place / "spool"
    spool.mkdir(mode=0o700)
    if os.geteuid() != 0:  # the test's own user: take the permission away instead
        spool.chmod(0)
    try:
        done = run_daemon(config(place), notify_socket, as_nobody=True)
    finally:
        spool.chmod(0o700)
    status = assert_exit(done, exitcodes.NO_ACCESS, notify_socket)
    assert "Permission denied" in status and str(spool) in status


def test_a_spool_held_by_another_process_exits_75_and_is_restarted(
    place: Path, notify_socket: NotifySocket
) -> None:
    holder = Spool.open(SpoolConfig(dir=place / "spool", key_file=place / "spool.key"))
    try:
        done = run_daemon(config(place), notify_socket)
    finally:
        holder.close()
    status = assert_exit(done, exitcodes.SPOOL_LOCKED, notify_socket)
    assert "in use by another process" in status and "restarting" in status


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (SpoolKeyError("wrong key"), exitcodes.NO_ACCESS),
        (SpoolLocked("held"), exitcodes.SPOOL_LOCKED),
        (PermissionError(errno.EACCES, "Permission denied", "/var/lib/x"), exitcodes.NO_ACCESS),
        (OSError(errno.EROFS, "Read-only file system", "/var/lib/x"), exitcodes.NO_ACCESS),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x"), exitcodes.NO_ACCESS),
        (OSError(errno.EIO, "Input/output error", "/var/lib/x"), exitcodes.FAILURE),
        (OSError(errno.ENOSPC, "No space left on device", "/x"), exitcodes.FAILURE),
        (SpoolIOError("I/O error while saving"), exitcodes.FAILURE),
    ],
)
def test_spool_errors_map_to_statuses(exc: BaseException, expected: exitcodes.ExitCode) -> None:
    code, reason = spool_exit(exc)
    assert code == expected and reason


def test_a_spool_error_made_from_a_permission_error_is_no_access() -> None:
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/var/lib/x/ledger")
        except PermissionError as os_exc:
            raise SpoolIOError("I/O error while saving the ledger") from os_exc
    except SpoolIOError as exc:
        assert spool_exit(exc)[0] == exitcodes.NO_ACCESS
