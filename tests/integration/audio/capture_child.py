"""Run AlsaSource in a fresh process (libasound reads its config once per process, and the
fault shim is an LD_PRELOAD) and report everything it produced.

Usage: python capture_child.py SPEC.json
SPEC: device, format, rate, channels, period_ms, buffer_periods, max_frames, out (raw bytes of
all blocks, concatenated), log (JSON lines: one per block or event), backoff_initial_s,
backoff_max_s, queue_s, deadline_s, hold_s (read nothing until this many frames were
captured, to stall the consumer).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from edge_recorder.audio.frames import AudioFormat, EndOfStream, Frames
from edge_recorder.capture.alsa import AlsaSource


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    fmt = AudioFormat(spec["rate"], spec["channels"], spec["format"])
    source = AlsaSource(
        spec["device"],
        fmt,
        period_ms=spec.get("period_ms", 20),
        buffer_periods=spec.get("buffer_periods", 8),
        backoff_initial_s=spec.get("backoff_initial_s", 0.05),
        backoff_max_s=spec.get("backoff_max_s", 0.4),
        queue_s=spec.get("queue_s", 10.0),
        max_frames=spec["max_frames"],
    )
    deadline = time.monotonic() + spec.get("deadline_s", 20.0)
    hold_until = spec.get("hold_until_frames")
    source.start()
    if hold_until is not None:  # a stalled consumer: wait (on the source's own counters)
        while source.stats.frames + source.stats.dropped_frames < hold_until:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)  # polling a counter with a deadline, not synchronisation
    with Path(spec["out"]).open("wb") as out, Path(spec["log"]).open("w") as log:
        while time.monotonic() < deadline:
            item = source.read(timeout=0.5)
            if item is None:
                continue
            if isinstance(item, Frames):
                out.write(item.data)
                row = {
                    "type": "Frames",
                    "start": item.start_frame,
                    "count": item.count,
                    "lost_before": item.lost_before,
                }
            else:
                row = {
                    "type": type(item).__name__,
                    **dataclasses.asdict(item),
                    "t": time.monotonic(),
                }
            log.write(json.dumps(row) + "\n")
            log.flush()
            if isinstance(item, EndOfStream):
                break
    source.stop()
    print(json.dumps(dataclasses.asdict(source.stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
