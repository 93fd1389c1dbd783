"""A WAV (or any libsndfile-readable) file played as if it were a microphone.

For demos, `analyze` and tests: blocks of `period_ms` are released at `speed` x real time
(0 = as fast as the consumer reads), then `EndOfStream`. Samples are handed over exactly as
ALSA would deliver them (S16_LE, S24_LE in a 4-byte container, or S32_LE), so the pipeline
cannot tell a file from a device. No thread is needed: pacing happens inside `read()`.
`read_upto()` hands over several periods at once when the last of them is due (one timer
wait and one file read per encoder chunk instead of one per period: the same bytes at the
same moments, for a fraction of the CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_recorder.audio.frames import AudioFormat, EndOfStream, Frames, SampleFormat, SourceEvent
from edge_recorder.capture.base import CaptureStats, Pacer, period_frames

# libsndfile subtype -> (ALSA-style format, numpy dtype soundfile should read into)
_SUBTYPES: dict[str, tuple[SampleFormat, str]] = {
    "PCM_U8": ("S16_LE", "int16"),
    "PCM_S8": ("S16_LE", "int16"),
    "PCM_16": ("S16_LE", "int16"),
    "PCM_24": ("S24_LE", "int32"),
    "PCM_32": ("S32_LE", "int32"),
    "FLOAT": ("S32_LE", "float64"),  # libsndfile does not scale float->int: we do
    "DOUBLE": ("S32_LE", "float64"),
}
MAX_FILE_CHANNELS = 32


def sample_format_for(subtype: str) -> tuple[SampleFormat, str]:
    """The format frames will carry for a file subtype (unknown subtypes: float -> S32_LE)."""
    return _SUBTYPES.get(subtype, ("S32_LE", "float64"))


def to_alsa_bytes(block: np.ndarray[Any, Any], sample_format: SampleFormat) -> bytes:
    """Interleaved little-endian bytes as ALSA delivers them for `sample_format`.

    soundfile reads 24-bit audio into int32 left-aligned (value << 8); ALSA's S24_LE keeps the
    24 bits in the low bytes, so shift right (arithmetic, keeps the sign).
    """
    if block.dtype.kind == "f":  # float files: full scale 1.0 -> S32_LE full scale
        block = np.round(np.clip(block, -1.0, 1.0) * (2**31 - 1)).astype(np.int32)
    if sample_format == "S24_LE":
        block = block >> 8
    dtype = "<i2" if sample_format == "S16_LE" else "<i4"
    return np.ascontiguousarray(block, dtype=dtype).tobytes()


UNKNOWN_LENGTH = 1 << 62  # libsndfile's frame count for a file that does not state its length


class WavSource:
    """Frames from a file, paced; `EndOfStream` (repeated on every later read) at the end."""

    def __init__(self, path: Path, *, speed: float = 1.0, period_ms: int = 20) -> None:
        import soundfile

        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.path = path
        self._file = soundfile.SoundFile(str(path))  # raises early for a missing/bad file
        if self._file.frames >= UNKNOWN_LENGTH and self._file.format == "FLAC":
            self._file = self._reopen_streamed_flac(path)
        channels = int(self._file.channels)
        if not 1 <= channels <= MAX_FILE_CHANNELS:
            self._file.close()
            raise ValueError(f"{path}: {channels} channels is not supported")
        sample_format, self._dtype = sample_format_for(str(self._file.subtype))
        self._format = AudioFormat(int(self._file.samplerate), channels, sample_format)
        self.total_frames = int(self._file.frames)
        self._block = period_frames(self._format.rate, period_ms)
        self._pacer = Pacer(self._block / self._format.rate, speed)
        self._index = 0
        self._position = 0
        self._ended = False
        self.stats = CaptureStats()

    def _reopen_streamed_flac(self, path: Path) -> Any:
        """A streamed FLAC (the device's own: length unknown in its header) read from memory
        with its length filled in; libsndfile would otherwise lose the last block."""
        import io

        import soundfile

        from edge_recorder.audio.flacinfo import with_total_samples

        self._file.close()
        return soundfile.SoundFile(io.BytesIO(with_total_samples(path.read_bytes())))

    @property
    def format(self) -> AudioFormat:
        return self._format

    def start(self) -> None:
        self._pacer.start()

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        if self._ended or self._position >= self.total_frames:
            return self._end()
        if not self._pacer.wait_for_block(self._index, timeout):
            return None
        return self._read_blocks(1)

    def read_upto(self, frames: int, timeout: float | None = None) -> Frames | SourceEvent | None:
        """The whole periods covering `frames` frames as one block, released when the last of
        them is due; when `timeout` runs out first, the periods due by then (None if none)."""
        if self._ended or self._position >= self.total_frames:
            return self._end()
        wanted = max(1, -(-frames // self._block))
        periods = wanted
        if not self._pacer.wait_for_block(self._index + wanted - 1, timeout):
            if self._pacer.stopped:
                return None
            periods = 0  # out of time: take what is due (a paced source never runs ahead)
            while periods < wanted and self._pacer.wait_for_block(self._index + periods, 0):
                periods += 1
            if periods == 0:
                return None
        return self._read_blocks(periods)

    def _read_blocks(self, periods: int) -> Frames | EndOfStream:
        block = self._file.read(self._block * periods, dtype=self._dtype, always_2d=True)
        if len(block) == 0:  # header promised more than the file holds
            return self._end()
        frames = Frames(
            to_alsa_bytes(block, self._format.sample_format), self._format, self._position
        )
        self._index += periods
        self._position += len(block)
        self.stats.frames += len(block)
        return frames

    def _end(self) -> EndOfStream:
        if not self._ended:
            self._ended = True
            self._file.close()
        return EndOfStream(at_frame=self._position)

    def stop(self) -> None:
        self._pacer.stop()
        if not self._ended:
            self._ended = True
            self._file.close()
