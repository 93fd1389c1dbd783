"""What `demo --keep` leaves to explore, and one demo per work directory.

After the verdict the speech WAV is nearly used up: a WAV mic ends, and the daemon would then
report `error no_mic` to everything one tries. So keep mode restarts the daemon with the
endless synthetic source (speech-like tones; see `capture/synthetic.py`) and says so.

The hints name the `edge-recorder` that runs this demo (`.venv/bin/edge-recorder` after `make
demo`), since a development checkout does not put the virtualenv on PATH.

Two demos in one work directory would share the run directory (logs, spool, the service's
data) and trip over each other ("backlog did not drain"); a lock on the work directory makes
the second say so at once instead.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from edge_recorder.support import pidlock

LOCK_NAME = "demo.lock"

#: What keep mode's daemon listens to instead of the WAV (merged into [audio]).
ENDLESS_MIC: dict[str, Any] = {"source": "synthetic", "speed": 1.0}
ENDLESS_MIC_TEXT = (
    'audio.source = "synthetic" at real time: endless speech-like tones (no words; the VAD '
    "may hear no speech in them)"
)


class WorkDirBusy(RuntimeError):
    """Another demo runs in this work directory."""


def edge_recorder_command(cwd: Path | None = None) -> str:
    """The command that runs this edge-recorder, for a shell: the console script next to the
    running interpreter (relative to `cwd` when inside it), else `python -m edge_recorder`."""
    here = Path.cwd() if cwd is None else cwd
    script = Path(sys.executable).parent / "edge-recorder"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m edge_recorder"
    try:
        shown = script.relative_to(here)
    except ValueError:
        return shlex.quote(str(script))
    return shlex.quote(str(shown) if shown.parent != Path() else f"./{shown}")


def keep_hints(config: Path, broker_port: int, topic_prefix: str, http_url: str) -> list[str]:
    tool = edge_recorder_command()
    return [
        "--keep: everything keeps running until Ctrl-C. Try:",
        f"  {tool} ctl status --config {shlex.quote(str(config))}",
        f"  {tool} ctl start --config {shlex.quote(str(config))}   (a new encounter)",
        f"  mosquitto_sub -h 127.0.0.1 -p {broker_port} -t '{topic_prefix}/#' -v",
        f"  curl {http_url}/_emulator/sessions",
    ]


class WorkDirLock:
    """An flock on `<work dir>/demo.lock` held for the whole run (the kernel drops it if the
    demo dies, so it is never stale); the file holds the holder's pid for the message."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / LOCK_NAME
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = pidlock.acquire(self.path, 0o644)
        except pidlock.LockHeld as held:
            raise WorkDirBusy(
                f"another demo (pid {held.holder}) is running in {self.path.parent}; wait for "
                "it, or give this one its own: --work-dir DIR"
            ) from None

    def release(self) -> None:
        pidlock.release(self._fd)
        self._fd = -1
