"""Token pair renewal: refresh before expiry, replace both, sign in again when refused."""

from __future__ import annotations

import asyncio

import pytest

from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.dice import tokens as t


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """Plays the sign-in endpoint: numbered pairs, a refresh revokes the pair it used."""

    def __init__(self, clock: Clock, lifetime_s: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime_s
        self.issued = 0
        self.valid_refresh: set[str] = set()
        self.calls: list[str] = []
        self.fail_next: UplinkError | None = None

    async def grant(self, url: str, form: dict[str, str]) -> t.TokenPair:
        self.calls.append(f"{form['grant_type']}@{url}")
        await asyncio.sleep(0)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if form["grant_type"] == "refresh_token":
            if form["refresh_token"] not in self.valid_refresh:
                raise UplinkError(ErrorKind.AUTH, "revoked", transport="auth", status=401)
            self.valid_refresh.discard(form["refresh_token"])
        else:
            assert form["password"] == "pw"
        self.issued += 1
        refresh = f"r{self.issued}"
        self.valid_refresh.add(refresh)
        now = self.clock()
        return t.TokenPair(
            f"a{self.issued}",
            refresh,
            t.refresh_deadline(now, self.lifetime, 60),
            now + self.lifetime,
        )


def provider(clock: Clock, issuer: Issuer) -> t.PasswordGrantTokens:
    tokens = t.PasswordGrantTokens(
        "https://auth.example/token",
        "user",
        lambda: "pw",
        refresh_url="https://auth.example/refresh",
        clock=clock,
    )
    tokens._grant = issuer.grant  # type: ignore[method-assign]
    return tokens


async def test_the_pair_is_refreshed_before_expiry_and_replaced_whole() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    tokens = provider(clock, issuer)
    assert await tokens.token() == "a1"
    clock.now += 3545  # inside the 60 s margin before expiry
    assert await tokens.token() == "a2"
    assert issuer.calls == [
        "password@https://auth.example/token",
        "refresh_token@https://auth.example/refresh",
    ]
    pair = tokens._pair
    assert pair is not None and (pair.access, pair.refresh) == ("a2", "r2")
    assert "r1" not in issuer.valid_refresh  # the old pair is gone at the issuer too


async def test_a_refused_refresh_falls_back_to_signing_in() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    tokens = provider(clock, issuer)
    await tokens.token()
    issuer.valid_refresh.clear()  # the server revoked everything
    assert await tokens.refresh("a1") == "a2"
    assert (tokens.sign_ins, tokens.refreshes) == (2, 0)


async def test_a_network_failure_during_refresh_is_not_a_sign_in() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    tokens = provider(clock, issuer)
    await tokens.token()
    issuer.fail_next = UplinkError(ErrorKind.UNAVAILABLE, "down", transport="auth")
    with pytest.raises(UplinkError) as down:
        await tokens.refresh("a1")
    assert down.value.kind is ErrorKind.UNAVAILABLE and tokens.sign_ins == 1
    assert await tokens.refresh("a1") == "a2" and tokens.refreshes == 1  # the pair survived


async def test_concurrent_callers_share_one_renewal() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    tokens = provider(clock, issuer)
    got = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert got == ["a1"] * 5 and issuer.issued == 1
    # a rejected token already replaced by another task comes back without a round trip
    await tokens.refresh("a1")
    assert await tokens.refresh("a1") == "a2" and issuer.issued == 2


def test_lifetimes_deadlines_and_error_texts() -> None:
    assert t.lifetime_of({"expires_in": 120}) == 120.0
    assert t.lifetime_of({"expires_in": "30"}) == 30.0
    assert t.lifetime_of({}) == t.DEFAULT_LIFETIME_S == 3600.0
    assert t.lifetime_of({"expires_in": True}) == 3600.0
    assert t.refresh_deadline(0, 3600, 60) == 3540
    assert t.refresh_deadline(0, 60, 60) == 30  # never in the first half of a short life
    assert t.error_message(401, {"detail": "Incorrect username or password"}, "") == (
        "Incorrect username or password"
    )
    detail = {"detail": [{"loc": ["body", "username"], "msg": "field required", "type": "x"}]}
    assert t.error_message(422, detail, "") == "body.username: field required"
    assert t.error_message(400, {"error": "invalid_grant"}, "") == "invalid_grant"
    assert t.error_message(502, None, "") == "sign-in answered HTTP 502"
