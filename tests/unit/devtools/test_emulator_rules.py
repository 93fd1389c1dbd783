"""Pure rules of the emulator: byte offsets and REST chunk reconciliation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.emulators.aas import rules

STORED = b"0123456789"


def plan(offset: int, data: bytes) -> bytes:
    return rules.plan_write(len(STORED), offset, data, lambda o, n: STORED[o : o + n])


def test_append_at_the_end() -> None:
    assert plan(10, b"ab") == b"ab"


def test_resent_bytes_are_ignored() -> None:
    assert plan(3, b"345") == b""


def test_overlap_then_new_bytes_appends_only_the_tail() -> None:
    assert plan(8, b"89XY") == b"XY"


def test_different_bytes_at_a_stored_offset_conflict() -> None:
    with pytest.raises(rules.OffsetConflict, match="differ"):
        plan(3, b"3X5")


def test_gap_is_refused_with_the_held_count() -> None:
    with pytest.raises(rules.OffsetGap, match="holds 10 bytes"):
        plan(11, b"x")


@given(st.binary(min_size=1, max_size=64), st.lists(st.integers(1, 16), max_size=8))
def test_any_resend_pattern_rebuilds_the_same_bytes(payload: bytes, cuts: list[int]) -> None:
    """Chunks sent in order, each resent once, reproduce the payload exactly."""
    stored = bytearray()
    offset = 0
    sizes = [*cuts, len(payload)]
    for size in sizes:
        piece = payload[offset : offset + size]
        if not piece:
            break
        for _ in range(2):
            snapshot = bytes(stored)
            stored += rules.plan_write(
                len(snapshot), offset, piece, lambda o, n, s=snapshot: s[o : o + n]
            )
        offset += len(piece)
    assert bytes(stored) == payload[:offset]


def test_chunk_beyond_declared_total() -> None:
    with pytest.raises(rules.TotalMismatch, match="beyond totalChunks 3"):
        rules.check_chunk(4, False, [1, 2], None, 3)


def test_is_last_disagreeing_with_total() -> None:
    with pytest.raises(rules.TotalMismatch, match="totalChunks 5"):
        rules.check_chunk(4, True, [1], None, 5)


def test_is_last_below_an_uploaded_chunk() -> None:
    with pytest.raises(rules.TotalMismatch, match="chunk 6 was already uploaded"):
        rules.check_chunk(4, True, [1, 6], None, None)


def test_total_below_received() -> None:
    with pytest.raises(rules.TotalMismatch, match="chunk 4 was uploaded"):
        rules.check_total(3, [1, 4], None)
    with pytest.raises(rules.TotalMismatch, match="chunk 2 was marked isLast"):
        rules.check_total(3, [1, 2], 2)
    rules.check_total(3, [2], None)


def test_finalize_errors_follow_the_seed_order() -> None:
    errors = rules.finalize_errors({"recordingId": 0, "totalChunks": True})
    assert errors == [
        "productId is required (valid UUID)",
        "partnerId is required (valid UUID)",
        "customerId is required (valid UUID)",
        "correlationId is required (non-empty string)",
        "recordingId must be a positive integer (> 0)",
        "totalChunks must be a positive integer (> 0)",
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("abc_DEF-1|2", True), ("", False), ("a" * 128, True), ("a" * 129, False), ("a b", False)],
)
def test_correlation_id_charset(value: str, ok: bool) -> None:
    assert rules.valid_correlation_id(value) is ok


@pytest.mark.parametrize("cid", ["..", ".", "a/b", "../../etc", "~x", "é", "x" * 500, "a%2E"])
def test_session_directory_names_stay_inside(cid: str, tmp_path) -> None:
    from devtools.emulators.aas.store import Store, dir_name

    name = dir_name(cid)
    assert name not in (".", "..") and "/" not in name and len(name) <= 200
    store = Store(tmp_path)
    store.upsert_session(cid, "rest")
    assert (tmp_path / "sessions" / name / "session.json").exists()
    assert store.delete_session(cid)
    assert (tmp_path / "sessions").is_dir()
    assert Store(tmp_path).sessions == {}


def test_distinct_ids_get_distinct_directories() -> None:
    from devtools.emulators.aas.store import dir_name

    ids = ["a.b", "a%2Eb", "a~b", "a%7Eb", "a_b", "a-b"]
    assert len({dir_name(i) for i in ids}) == len(ids)
