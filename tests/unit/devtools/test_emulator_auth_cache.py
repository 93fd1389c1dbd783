"""The AAS emulator remembers tokens it verified (issue #24: the RSA check and PyJWT's scan
cost more than the storeChunk they guard), without accepting anything it refused before."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from devtools.emulators.aas import auth as auth_module
from devtools.emulators.aas.auth import AuthError, Issuer
from devtools.emulators.aas.settings import EmulatorSettings


def issuer(tmp_path: Path, **settings: object) -> Issuer:
    made = Issuer(EmulatorSettings(data_dir=tmp_path, **settings))  # type: ignore[arg-type]
    made.issuer_url = "http://127.0.0.1:1"
    return made


def test_a_token_is_verified_once_then_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = issuer(tmp_path)
    token, _ = auth.mint(auth.settings.client_id, app_only=True)
    assert auth.verify(token).client_id == auth.settings.client_id
    decodes: list[str] = []
    real_decode = jwt.decode

    def counted(token: str, *args: object, **kwargs: object) -> object:
        decodes.append(token)
        return real_decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counted)
    for _ in range(3):
        assert auth.verify(token).client_id == auth.settings.client_id
    assert decodes == []  # no signature check again
    with pytest.raises(AuthError):
        auth.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_a_remembered_token_still_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = issuer(tmp_path, token_lifetime_s=60.0)
    token, _ = auth.mint(auth.settings.client_id, app_only=True)
    auth.verify(token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(time=lambda: expires + 1.0))
    with pytest.raises(AuthError, match="expired"):
        auth.verify(token)


def test_a_token_for_another_issuer_url_is_checked_again(tmp_path: Path) -> None:
    auth = issuer(tmp_path)
    token, _ = auth.mint(auth.settings.client_id, app_only=True)
    auth.verify(token)
    auth.issuer_url = "http://127.0.0.1:2"  # restarted on another port
    with pytest.raises(AuthError, match="invalid"):
        auth.verify(token)
