"""Secrets by reference: file first, then the systemd credential, with clear failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.support.credentials import SecretUnavailable, read_secret


def test_file_wins_over_credential(tmp_path: Path) -> None:
    (tmp_path / "file").write_text(" from-file \n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "name").write_text("from-credential")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_secret(tmp_path / "file", "name", env) == "from-file"
    assert read_secret(None, "name", env) == "from-credential"


def test_missing_and_empty_secrets_say_where_they_looked(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="systemd credential 'aas-client-secret'"):
        read_secret(None, "aas-client-secret", {})
    with pytest.raises(SecretUnavailable, match="cannot read secret file"):
        read_secret(tmp_path / "absent", "x", {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretUnavailable, match="is empty"):
        read_secret(tmp_path / "empty", "x", {})
