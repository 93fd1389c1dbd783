"""The ledger's entries are plain dataclasses in memory (issue #24), but what is read from disk
is still validated strictly, and a refusal still says what and where, never the content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_recorder.spool.ledger import LEDGER_NAME, LedgerUnreadable, read_ledger_file

RID = "00000000-0000-0000-0000-000000000001"


def _ledger() -> dict[str, Any]:
    retry = {"attempts": 0, "next_attempt_at": None, "last_error": None}
    return {
        "version": 2, "key_id": "k", "next_order": 1, "notices": [],
        "encounters": {"ref1": {"id": "ref1", "order": 0, "created_at": 1.0, "ended": True,
                                "processing_started": False, "retry": dict(retry),
                                "sealed_id": "sealed"}},
        "recordings": {RID: {"id": RID, "encounter": "ref1", "seq": 1, "codec": "pcm16",
                             "sample_rate": 16000, "channels": 1, "created_at": 1.0,
                             "state": "closed", "closed_at": 2.0, "close_reason": "stopped",
                             "length": 10, "confirmed": 0, "finalized": False,
                             "quarantine": None, "retry": dict(retry)}},
    }  # fmt: skip


def _refusal(tmp_path: Path, doc: dict[str, Any]) -> str:
    (tmp_path / LEDGER_NAME).write_text(json.dumps(doc))
    with pytest.raises(LedgerUnreadable) as caught:
        read_ledger_file(tmp_path)
    return caught.value.reason


def test_a_valid_ledger_loads_into_the_same_values(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_text(json.dumps(_ledger()))
    data = read_ledger_file(tmp_path)
    assert data is not None
    assert data.recordings[RID].model_dump() == _ledger()["recordings"][RID]
    assert data.encounters["ref1"].model_dump(exclude={"sealed_id"}) == {
        k: v for k, v in _ledger()["encounters"]["ref1"].items() if k != "sealed_id"
    }


def test_an_unknown_field_is_refused_by_name_of_place(tmp_path: Path) -> None:
    doc = _ledger()
    doc["recordings"][RID]["secret"] = "MRN-1234"
    reason = _refusal(tmp_path, doc)
    assert reason == "extra_forbidden at recordings.<id>.secret"
    assert "MRN" not in reason


def test_an_entry_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    doc = _ledger()
    doc["encounters"]["ref1"]["retry"] = 3
    assert _refusal(tmp_path, doc) == "model_type at encounters.<id>.retry"


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("seq", 1.0, "int_type"),  # strict: no float for an int
        ("length", -1, "greater_than_equal"),
        ("id", "not-a-uuid", "string_pattern_mismatch"),
        ("state", "gone", "literal_error"),
        ("finalized", 1, "bool_type"),
    ],
)
def test_a_mistyped_or_out_of_range_value_is_refused(
    tmp_path: Path, field: str, value: object, kind: str
) -> None:
    doc = _ledger()
    doc["recordings"][RID][field] = value
    assert _refusal(tmp_path, doc) == f"{kind} at recordings.<id>.{field}"
