"""FLAC frame scanning and cutting: every part decodes on its own (ffmpeg, an independent
decoder) and the parts' samples concatenate to the original exactly."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import pytest

from edge_recorder.audio.codecs import FlacEncoder
from edge_recorder.uplinks.corti import flac
from edge_recorder.uplinks.corti.parts import plan_flac


def encoded(seconds: float, seed: int = 1) -> tuple[np.ndarray, bytes]:
    """Noise through the device's own streaming FLAC encoder (what the spool holds)."""
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)
    enc = FlacEncoder(5)
    out = b"".join(enc.encode(samples[i : i + 1600]) for i in range(0, len(samples), 1600))
    return samples, out + enc.finish()


def decode(data: bytes) -> np.ndarray:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "flac", "-i", "pipe:0", "-f", "s16le", "pipe:1"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    assert done.stderr == b""
    return np.frombuffer(done.stdout, dtype="<i2")


def scan(data: bytes) -> flac.FlacLayout:
    async def read(start: int, end: int) -> bytes:
        return data[start:end]

    return asyncio.run(flac.scan(len(data), read))


def test_scan_finds_every_frame_across_small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    samples, data = encoded(20)
    whole = scan(data)
    monkeypatch.setattr(flac, "SCAN_WINDOW", 997)  # windows end inside headers and frames
    assert scan(data) == whole
    assert (whole.sample_rate, whole.block_size) == (16000, 4096)
    assert len(whole.frames) == -(-len(samples) // 4096)
    assert whole.frames[0] == whole.header_bytes


def test_a_corrupted_header_byte_is_not_a_frame() -> None:
    _, data = encoded(2)
    layout = scan(data)
    at = layout.frames[1]
    assert flac.frame_number(data, at) == 1
    broken = data[: at + 2] + bytes([data[at + 2] ^ 0x10]) + data[at + 3 :]
    assert flac.frame_number(broken, at) is None  # CRC-8 catches it


@pytest.mark.parametrize(("max_bytes", "max_s"), [(120_000, 7200.0), (10**7, 3.0)])
def test_parts_are_valid_flac_files_that_tile_the_audio(max_bytes: int, max_s: float) -> None:
    samples, data = encoded(20)
    plan = plan_flac(scan(data), len(data), max_bytes, max_s)
    assert plan.count >= 4
    decoded = []
    for part in plan.parts():
        prefix = data[: plan.prefix_bytes(part)]
        blob = prefix + data[part.start : part.end]
        assert blob[:4] == b"fLaC" and len(blob) <= max_bytes
        pcm = decode(blob)
        assert len(pcm) <= max_s * 16000
        decoded.append(pcm)
    assert np.array_equal(np.concatenate(decoded), samples)


def test_a_recording_within_limits_is_one_part() -> None:
    _, data = encoded(3)
    plan = plan_flac(scan(data), len(data), 150_000_000, 7200)
    assert [(p.start, p.end) for p in plan.parts()] == [(0, len(data))]
    with pytest.raises(ValueError, match="larger than upload_max_bytes"):
        plan_flac(scan(data), len(data), 200, 7200)
