"""The encrypted, crash-safe on-disk spool: the single source of truth for recorded audio.

`Spool.open(config.spool)` is the entry point; see `store.py` for the API and
docs/spool-and-delivery.md for the on-disk format and guarantees.
"""

from edge_recorder.spool.errors import (
    CorruptRecord,
    RecordingClosed,
    SpoolDiskFull,
    SpoolError,
    SpoolFull,
    SpoolIOError,
    SpoolKeyError,
    SpoolLocked,
    SpoolRefused,
    UnknownRecording,
)
from edge_recorder.spool.policy import SpaceStatus
from edge_recorder.spool.state import EncounterInfo, RecordingInfo
from edge_recorder.spool.store import Spool
from edge_recorder.spool.writer import RecordingWriter

__all__ = [
    "CorruptRecord",
    "EncounterInfo",
    "RecordingClosed",
    "RecordingInfo",
    "RecordingWriter",
    "SpaceStatus",
    "Spool",
    "SpoolDiskFull",
    "SpoolError",
    "SpoolFull",
    "SpoolIOError",
    "SpoolKeyError",
    "SpoolLocked",
    "SpoolRefused",
    "UnknownRecording",
]
