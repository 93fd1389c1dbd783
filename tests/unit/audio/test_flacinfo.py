"""flacinfo: the length of a streamed FLAC, found from its last frame header."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from edge_recorder.audio.codecs import FlacEncoder
from edge_recorder.audio.flacinfo import FlacLengthError, crc8, total_samples, with_total_samples


def streamed(samples: int, level: int = 5) -> tuple[bytes, np.ndarray]:
    pcm = (np.sin(np.arange(samples) / 7.0) * 9000).astype(np.int16)
    encoder = FlacEncoder(level)
    body = b"".join(encoder.encode(pcm[i : i + 1920]) for i in range(0, samples, 1920))
    return body + encoder.finish(), pcm


def test_crc8_matches_the_flac_reference_value() -> None:
    assert crc8(b"123456789") == 0xF4  # CRC-8/SMBUS (poly 0x07), FLAC's frame header CRC


@pytest.mark.parametrize("samples", [1, 4095, 4096, 4097, 48_000, 16_000 * 90 + 7])
@pytest.mark.parametrize("level", [0, 5, 8])
def test_the_length_is_found_and_every_sample_reads_back(samples: int, level: int) -> None:
    data, pcm = streamed(samples, level)
    assert total_samples(data) == 0  # what the device's stream says: unknown
    fixed = with_total_samples(data)
    assert total_samples(fixed) == samples
    assert len(fixed) == len(data)
    decoded = soundfile.read(io.BytesIO(fixed), dtype="int16")[0]
    assert np.array_equal(decoded, pcm)


def test_a_file_that_states_its_length_is_returned_as_it_is() -> None:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(1000, np.int16), 16000, format="FLAC")
    data = out.getvalue()
    assert total_samples(data) == 1000
    assert with_total_samples(data) is data


def test_not_flac_or_no_frames_is_an_error() -> None:
    with pytest.raises(FlacLengthError):
        with_total_samples(b"RIFF" + bytes(60))
    data, _ = streamed(4096)
    header_only = data[: 8 + 34]
    with pytest.raises(FlacLengthError):
        with_total_samples(header_only)
