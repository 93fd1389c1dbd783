"""The delegated token file: bounded, re-read when renewed, never quoted in an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.delegated import MAX_TOKEN_BYTES, DelegatedTokenProvider


async def test_an_opaque_token_is_used_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("opaque-token\n")
    assert await DelegatedTokenProvider(path).token() == "opaque-token"


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read"), ("", "empty"), ("x" * (MAX_TOKEN_BYTES + 1), "over 16 KiB")],
    ids=["missing", "empty", "oversized"],
)
async def test_an_unusable_file_is_an_auth_error_naming_the_file(
    tmp_path: Path, content: str | None, words: str
) -> None:
    path = tmp_path / "delegated.jwt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UplinkError) as info:
        await DelegatedTokenProvider(path).token()
    assert info.value.kind is ErrorKind.AUTH and info.value.retryable
    assert str(path) in str(info.value) and words in str(info.value)
    assert "xxxx" not in str(info.value)


async def test_a_401_rereads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("old")
    provider = DelegatedTokenProvider(path)
    assert await provider.token() == "old"
    path.write_text("new")  # same size, maybe the same mtime: only a refresh must see it
    assert await provider.refresh("old") == "new"
