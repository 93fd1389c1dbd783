"""The demo's verdict: for every recording, the service holds exactly the device's bytes.

The device side: the spool deletes audio once the service has started processing it, so
by the time the verdict runs the spool no longer holds it. What the device encoded is
instead established from two independent facts the daemon leaves behind:
- the capture thread logs each recording's source frame range and final spool length
  ("recording audio closed" ... `start_frame`, `end_frame`, `length_bytes`);
- the pipeline is deterministic (`capture.worker` feeds each recording a fresh `Pipeline`
  from its first frame), so running the same `Pipeline` over the same WAV frames, here,
  reproduces the bytes the daemon appended to the spool.
The recording holds iff the service's bytes equal that reproduction byte for byte (length
and sha256) AND the length equals what the spool writer itself reported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLOSED = re.compile(
    r'msg="recording audio closed" recording_id=(?P<id>\S+) reason=(?P<reason>\S+) '
    r"start_frame=(?P<start>-?\d+) end_frame=(?P<end>\d+) length_bytes=(?P<length>\d+)"
)


@dataclass(frozen=True)
class ClosedRecording:
    """One "recording audio closed" line of the daemon's log."""

    recording_id: str
    reason: str
    start_frame: int
    end_frame: int
    length: int


def closed_recordings(log_text: str) -> dict[str, ClosedRecording]:
    out: dict[str, ClosedRecording] = {}
    for m in _CLOSED.finditer(log_text):
        rec = ClosedRecording(
            m["id"], m["reason"], int(m["start"]), int(m["end"]), int(m["length"])
        )
        out[rec.recording_id] = rec
    return out


def reencode(config_path: Path, ranges: list[tuple[int, int]]) -> list[bytes]:
    """What the daemon's pipeline makes of the WAV's frames [start, end), for each range."""
    from edge_recorder.audio.frames import Frames
    from edge_recorder.audio.pipeline import Pipeline
    from edge_recorder.audio.vad import make_engine
    from edge_recorder.capture.wav import WavSource
    from edge_recorder.config.loader import load_config

    cfg = load_config(config_path)
    assert cfg.audio.wav_path is not None
    engine = make_engine(cfg.vad.engine, cfg.vad)
    results = []
    for start, end in ranges:
        source = WavSource(cfg.audio.wav_path, speed=0, period_ms=cfg.audio.period_ms)
        source.start()
        pipeline = Pipeline(source.format, cfg.audio, cfg.vad, cfg.encoding, engine=engine)
        out = bytearray()
        while True:
            item = source.read(1.0)
            if not isinstance(item, Frames) or item.start_frame >= end:
                break
            if item.start_frame >= start:
                out += pipeline.process(item).encoded
        out += pipeline.finish().encoded
        source.stop()
        results.append(bytes(out))
    return results


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RecordingCheck:
    seq: int
    recording_id: str
    close_reason: str
    device_bytes: int
    device_sha256: str
    spool_length: int
    service_bytes: int
    service_sha256: str
    service_state: str
    file: str | None

    @property
    def holds(self) -> bool:
        return (
            self.device_bytes > 0
            and self.device_bytes == self.spool_length == self.service_bytes
            and self.device_sha256 == self.service_sha256
        )


@dataclass(frozen=True)
class Verdict:
    checks: list[RecordingCheck]
    problems: list[str]
    processing_started: bool

    @property
    def holds(self) -> bool:
        return (
            bool(self.checks)
            and not self.problems
            and self.processing_started
            and all(c.holds for c in self.checks)
        )


def judge(
    session: dict[str, Any],
    service_bytes: dict[str, bytes],
    log_text: str,
    config_path: Path,
) -> Verdict:
    """Compare every recording the daemon closed with what the service holds."""
    closed = closed_recordings(log_text)
    problems: list[str] = []
    service = {r["recordingId"]: r for r in session.get("recordings", [])}
    mine = list(closed)
    for rid in mine:
        if rid not in service:
            problems.append(f"recording {rid} closed by the device is unknown to the service")
    for rid in service:
        if rid not in closed:
            problems.append(f"the service holds recording {rid} the device never closed")
    known = [rid for rid in mine if rid in service]
    device = reencode(config_path, [(closed[r].start_frame, closed[r].end_frame) for r in known])
    checks = []
    for rid, data in zip(known, device, strict=True):
        rec, held = service[rid], service_bytes.get(rid, b"")
        checks.append(
            RecordingCheck(
                seq=int(rec["sequenceNumber"]),
                recording_id=rid,
                close_reason=closed[rid].reason,
                device_bytes=len(data),
                device_sha256=sha256(data),
                spool_length=closed[rid].length,
                service_bytes=len(held),
                service_sha256=sha256(held),
                service_state=str(rec["state"]),
                file=rec.get("file"),
            )
        )
    checks.sort(key=lambda c: c.seq)
    return Verdict(checks, problems, bool(session.get("processingStarted")))


def render(verdict: Verdict) -> list[str]:
    """The verdict block printed at the end of the demo."""
    lines = ["", "VERDICT"]
    for c in verdict.checks:
        mark = "MATCH" if c.holds else "MISMATCH"
        lines += [
            f"  recording #{c.seq} {c.recording_id} (closed: {c.close_reason}, "
            f"service: {c.service_state}): {mark}",
            f"    device  {c.device_bytes:>9} bytes  sha256 {c.device_sha256}"
            f"  (spool writer reported {c.spool_length})",
            f"    service {c.service_bytes:>9} bytes  sha256 {c.service_sha256}",
            f"    listen: {c.file or '(no playable file)'}",
        ]
    lines += [f"  problem: {p}" for p in verdict.problems]
    lines.append(f"  processing started: {'yes' if verdict.processing_started else 'NO'}")
    audio_s = sum(c.device_bytes for c in verdict.checks) / 32000
    if verdict.holds:
        lines.append(
            f"VERDICT: PASS - the service holds exactly the device's bytes for all "
            f"{len(verdict.checks)} recordings ({audio_s:.1f} s of audio)"
        )
    else:
        lines.append("VERDICT: FAIL - the service does not hold exactly the device's audio")
    return lines
