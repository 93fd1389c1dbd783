"""A capture process for the kill test: appends deterministic audio to a spool and reports.

Run as `python -m tests.integration.spool.spool_child SPOOL_DIR KEY_FILE SEED`. It prints
`begin RID`, `durable RID OFFSET` after each fsync (so every reported offset really is on
disk) and `closed RID LENGTH`, flushing each line, until it is killed. The bytes of recording
RID are `payload(RID)`, so the parent can regenerate them.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool

MAX_RECORDING_BYTES = 600_000
SEGMENT_BYTES = 64 * 1024


def payload(recording_id: str) -> bytes:
    return random.Random(uuid.UUID(recording_id).int).randbytes(MAX_RECORDING_BYTES)


def child_config(directory: Path, key_file: Path) -> SpoolConfig:
    return SpoolConfig(
        dir=directory,
        key_file=key_file,
        segment_bytes=SEGMENT_BYTES,
        fsync_interval_s=0.001,
        reserve_free_bytes=0,
    )


def main(directory: str, key_file: str, seed: int) -> None:
    rng = random.Random(seed)
    spool = Spool.open(child_config(Path(directory), Path(key_file)), environ={})
    for seq in range(1, 10_000):
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        data = payload(rid)
        writer = spool.begin_recording(f"enc-{seed}", seq, rid, codec="pcm16", sample_rate=16000)
        print(f"begin {rid}", flush=True)
        offset = 0
        while offset < MAX_RECORDING_BYTES - 4000 and rng.random() > 0.01:
            size = rng.randint(1, 4000)
            writer.append(data[offset : offset + size])
            offset += size
            if rng.random() < 0.3:
                writer.flush()
                print(f"durable {rid} {writer.durable_offset}", flush=True)
        writer.close()
        print(f"closed {rid} {offset}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
