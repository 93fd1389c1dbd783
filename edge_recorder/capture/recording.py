"""One recording being captured: the pipeline's bytes into its spool writer, and what to say
when the spool refuses them.

The capture thread (worker.py) owns it from the open to the close. A refused append stops
storing (later audio is counted, never silently dropped: the close logs how much was not
stored) and raises the fault the controller shows on the LED, the status and MQTT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.encounter import events as ev
from edge_recorder.spool import RecordingWriter, SpoolError, SpoolFull
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)


@dataclass
class OpenRecording:
    writer: RecordingWriter
    pipeline: Pipeline
    post: Callable[[ev.Event], None]
    start_frame: int | None = None
    end_frame: int = 0
    failed: str | None = None  # the spool refused an append: later audio is counted, not stored
    unstored_bytes: int = 0

    def store(self, data: bytes) -> None:
        if not data:
            return
        if self.failed is not None:
            self.unstored_bytes += len(data)
            return
        try:
            self.writer.append(data)
        except SpoolFull as exc:
            self.failed = str(exc)
            self.unstored_bytes += len(data)
            log.error("spool refused audio; capture into this recording stops", error=str(exc))
            self.post(ev.SpoolFull(hard=True))
        except (SpoolError, OSError) as exc:  # the directory vanished, EIO, read-only...
            self.failed = storage_reason(exc)
            self.unstored_bytes += len(data)
            log.error("spool write failed; capture into this recording stops", error=self.failed)
            self.post(ev.StorageFault(self.failed))

    def close(self, reason: str) -> int | None:
        """Flush the pipeline into the writer and close it; returns the length in bytes."""
        try:
            self.store(self.pipeline.finish().encoded)
        except Exception:
            log.exception("flushing the pipeline failed; the recording keeps what it has")
        if self.unstored_bytes:
            why = self.failed or "the spool was full"
            log.error("audio not stored", reason=why, unstored_bytes=self.unstored_bytes)
        try:
            self.writer.close(reason)
        except (SpoolError, OSError) as exc:  # storage gone: the fault is already raised
            log.error("recording could not be closed in the spool", error=storage_reason(exc))
            self.post(ev.StorageFault(storage_reason(exc)))
            return None
        log.info(
            "recording audio closed",
            recording_id=self.writer.recording_id,
            reason=reason,
            start_frame=self.start_frame if self.start_frame is not None else -1,
            end_frame=self.end_frame,
            length_bytes=self.writer.offset,
        )
        return self.writer.offset


def storage_reason(exc: BaseException) -> str:
    """A short, log- and status-safe reason for a spool storage failure (paths only)."""
    cause = exc if isinstance(exc, OSError) else (exc.__cause__ or exc)
    if isinstance(cause, OSError) and cause.strerror:
        where = f": {cause.filename}" if cause.filename else ""
        return f"{cause.strerror} (errno {cause.errno}){where}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]
