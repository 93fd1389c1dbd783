"""Every exit status `edge-recorder` uses, in one table.

Why a table: systemd restarts the daemon on any failure (`Restart=on-failure`, every 2 s), so a
failure that only a person can cure (a config to fix, a spool key to restore, a permission to
grant) must exit with a status the unit lists in `RestartPreventExitStatus=`; otherwise the
device loops forever, rewriting the same error into the journal. The unit's test reads
`no_restart_codes()` from here, so a new "a person must act" status cannot be forgotten in
the unit. Values follow sysexits.h where one fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.config.errors import EX_CONFIG


@dataclass(frozen=True)
class ExitCode:
    """One exit status: its number, its sysexits name and when it is used."""

    code: int
    name: str
    meaning: str
    person_must_act: bool = False  # a restart cannot help: systemd must not restart on it


# `edge-recorder run` (the daemon).
OK = ExitCode(0, "OK", "stopped cleanly (SIGTERM)")
FAILURE = ExitCode(
    1, "FAILURE", "an error a restart may cure (spool I/O error, an unexpected crash)"
)
SPOOL_LOCKED = ExitCode(
    75,
    "EX_TEMPFAIL",
    "the spool is locked by another process: normally a short `edge-recorder spool` command, "
    "whose lock the kernel drops when it ends, so a restart is what recovers",
)
NO_ACCESS = ExitCode(
    77,
    "EX_NOPERM",
    "the spool key is missing, wrong or unreadable, or the spool directory cannot be used "
    "(permissions, a read-only file system, a file where the directory should be): restore "
    "the key or fix the path or ownership, then start the service",
    person_must_act=True,
)
CONFIG = ExitCode(
    EX_CONFIG,
    "EX_CONFIG",
    "invalid configuration, or a configured feature whose optional extra is not installed: "
    "fix it (`edge-recorder check`), then start the service",
    person_must_act=True,
)
DAEMON_CODES: tuple[ExitCode, ...] = (OK, FAILURE, SPOOL_LOCKED, NO_ACCESS, CONFIG)

# `edge-recorder ctl` (the client). 0 done, 1 refused by the daemon (the reply says why).
CTL_BAD_CONTEXT = ExitCode(65, "EX_DATAERR", "ctl: bad --context-json")
CTL_UNAVAILABLE = ExitCode(69, "EX_UNAVAILABLE", "ctl: the daemon is not running or not answering")
CTL_BUSY = ExitCode(
    75, "EX_TEMPFAIL", "ctl: the daemon is running but too busy to take the request; try again"
)
CTL_PROTOCOL = ExitCode(76, "EX_PROTOCOL", "ctl: a reply that is not the control protocol")
CTL_NO_PERMISSION = ExitCode(77, "EX_NOPERM", "ctl: no permission on the control socket")
CTL_CODES: tuple[ExitCode, ...] = (
    OK,
    ExitCode(1, "REFUSED", "ctl: the daemon refused the command"),
    CTL_BAD_CONTEXT,
    CTL_UNAVAILABLE,
    CTL_BUSY,
    CTL_PROTOCOL,
    CTL_NO_PERMISSION,
    CONFIG,
)


def no_restart_codes() -> tuple[int, ...]:
    """The daemon's statuses systemd must not restart on (`RestartPreventExitStatus=`)."""
    return tuple(sorted(code.code for code in DAEMON_CODES if code.person_must_act))
