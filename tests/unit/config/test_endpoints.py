"""One endpoint rule for every address the device connects to, checked field by field.

The fields are found by walking the Config model, not listed by hand: a new `*_url`,
`*_target`, `*_host` or `endpoint*` field that does not carry the `Endpoint` rule fails here,
and so does one whose rule lets plain text (in any spelling) leave the machine.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge_recorder.config.base import PLAINTEXT_SCHEMES, Endpoint, endpoint_rule
from edge_recorder.config.loader import ConfigError, build_config
from edge_recorder.config.model import Config

# Fields whose names look like addresses but that the device never connects to.
NOT_CONNECTED_TO = {
    "aws.output_s3_uri": "where the service (not the device) writes its output",
}
ADDRESS_WORDS = ("url", "uri", "target", "host", "endpoint")
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost", "LOCALHOST", "127.0.0.9")


def section_models() -> Iterator[tuple[str, type[BaseModel]]]:
    for name, field in Config.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), name
        yield name, model


def models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The models inside an annotation (`X`, `X | None`, `list[X]`...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from models_in(arg)


def walk(model: type[BaseModel], path: str) -> Iterator[tuple[str, str, FieldInfo]]:
    """(owner path, key, field) for every field of `model` and of the models inside it."""
    for key, field in model.model_fields.items():
        yield path, key, field
        for inner in models_in(field.annotation):
            yield from walk(inner, f"{path}.{key}")


def address_fields() -> list[tuple[str, str, Endpoint | None]]:
    """(section, key, rule) for every field anywhere in Config that names an address."""
    return [
        (owner, key, endpoint_rule(field))
        for section, model in section_models()
        for owner, key, field in walk(model, section)
        if any(word in key for word in ADDRESS_WORDS)
    ]


ENDPOINTS = [(s, k, r) for s, k, r in address_fields() if f"{s}.{k}" not in NOT_CONNECTED_TO]
IDS = [f"{s}.{k}" for s, k, _ in ENDPOINTS]


def errors(section: str, values: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config({section: values}, {})
    return caught.value.lines


def flags_for(rule: Endpoint, *, tls: bool) -> dict[str, object]:
    return {} if rule.tls_flag is None else {rule.tls_flag: tls}


def tls_value(rule: Endpoint, host: str) -> str:
    """An address of `host` that is fine for this field wherever the host is."""
    if rule.kind == "url":
        secure = next(s for s in rule.schemes if s not in PLAINTEXT_SCHEMES)
        return f"{secure}://{host}:8080/x"
    return f"{host}:8080" if rule.kind == "grpc" else host


def plaintext_values(rule: Endpoint, host: str) -> list[str]:
    """Every way to spell a plain-text address of `host` for this kind of endpoint."""
    if rule.kind != "url":
        return [f"{host}:8080" if rule.kind == "grpc" else host]
    spellings = []
    for scheme in sorted(PLAINTEXT_SCHEMES):
        for spelled in (
            scheme,
            scheme.upper(),
            scheme.capitalize(),
            scheme[0] + scheme[1:].upper(),
        ):
            spellings.append(f"{spelled}://{host}:8080/x")
    return spellings


def test_the_walk_finds_the_endpoints_of_every_service() -> None:
    assert set(IDS) >= {
        "auth.token_url",
        "aas.grpc_target",
        "aas.rest_url",
        "aas.ws_url",
        "aas.partner_api_url",
        "corti.api_url",
        "corti.auth_url",
        "corti.ws_url",
        "dice.url",
        "dice.token_url",
        "dice.refresh_url",
        "aws.endpoint_url",
        "mqtt.host",
    }
    assert {f"{s}.{k}" for s, k, _ in address_fields()} >= set(NOT_CONNECTED_TO)


@pytest.mark.parametrize(("section", "key", "rule"), ENDPOINTS, ids=IDS)
def test_every_address_field_carries_the_endpoint_rule(
    section: str, key: str, rule: Endpoint | None
) -> None:
    assert rule is not None, f"{section}.{key} looks like an address: annotate it with Endpoint"
    model = dict(section_models())[section]
    # Errors name the key as the file spells it: the section's title is its key.
    assert model.model_config.get("title") == section


@pytest.mark.parametrize(("section", "key", "rule"), ENDPOINTS, ids=IDS)
def test_plain_text_to_another_host_is_refused_in_any_spelling(
    section: str, key: str, rule: Endpoint | None
) -> None:
    assert rule is not None
    for host in ("example.com", "EXAMPLE.com", "10.0.0.5", "[2001:db8::1]"):
        for value in plaintext_values(rule, host):
            (line,) = errors(section, {key: value, **flags_for(rule, tls=False)})
            assert line.startswith(f"{section}"), line
            assert "TLS" in line or "tls" in line, line


@pytest.mark.parametrize(("section", "key", "rule"), ENDPOINTS, ids=IDS)
def test_whitespace_control_characters_and_userinfo_are_refused(
    section: str, key: str, rule: Endpoint | None
) -> None:
    assert rule is not None
    good = tls_value(rule, "127.0.0.1")
    build_config({section: {key: good}}, {})  # the value itself is fine
    for bad in (f" {good}", f"{good} ", f"\t{good}", f"{good}\n", f"{good}\x00", f"\u202e{good}"):
        (line,) = errors(section, {key: bad})
        assert line.startswith(f"{section}.{key}: ") and "whitespace or control" in line
    secret = "pa55word"
    value = good.replace("://", f"://user:{secret}@") if "://" in good else f"user:{secret}@{good}"
    (line,) = errors(section, {key: value})
    assert line.startswith(f"{section}.{key}: ") and "user name or password" in line
    assert secret not in line


@pytest.mark.parametrize(("section", "key", "rule"), ENDPOINTS, ids=IDS)
def test_loopback_may_go_plain_text_where_the_field_allows_it(
    section: str, key: str, rule: Endpoint | None
) -> None:
    assert rule is not None
    canonical = {"[::1]": "[::1]", "LOCALHOST": "localhost"}
    for host in LOOPBACK_HOSTS:
        for value in plaintext_values(rule, host):
            scheme = value.split("://", 1)[0].lower() if "://" in value else None
            if scheme is not None and scheme not in rule.schemes:  # TLS only, even on loopback
                (line,) = errors(section, {key: value})
                assert f"must be {rule.schemes[0]}://" in line
                continue
            config = build_config({section: {key: value, **flags_for(rule, tls=False)}}, {})
            stored = getattr(getattr(config, section), key)
            want = canonical.get(host, host)
            if rule.kind == "url":
                assert stored == f"{scheme}://{want}:8080/x"
            elif rule.kind == "grpc":
                assert stored == f"{want}:8080"
            else:
                assert stored == want.strip("[]")


@pytest.mark.parametrize(("section", "key", "rule"), ENDPOINTS, ids=IDS)
def test_tls_addresses_are_normalised(section: str, key: str, rule: Endpoint | None) -> None:
    assert rule is not None
    if rule.kind == "url":
        secure = next(s for s in rule.schemes if s not in PLAINTEXT_SCHEMES)
        value, want = f"{secure.upper()}://Bücher.Example.COM:443/Path", "xn--bcher-kva.example.com"
        expected = f"{secure}://{want}:443/Path"
    elif rule.kind == "grpc":
        value, expected = "DNS:///Bücher.Example.COM:443", "dns:///xn--bcher-kva.example.com:443"
    else:
        value, expected = "Bücher.Example.COM", "xn--bcher-kva.example.com"
    config = build_config({section: {key: value, **flags_for(rule, tls=True)}}, {})
    assert getattr(getattr(config, section), key) == expected


def test_the_reported_case_corti_auth_url_in_upper_case() -> None:
    (line,) = errors("corti", {"auth_url": "HTTP://auth.example.net/realms"})
    assert line == (
        "corti.auth_url: must use TLS (https://) outside loopback, not http:// to auth.example.net"
    )


def test_a_grpc_target_is_judged_by_its_host() -> None:
    for target in ("aas.example.org:443", "dns:///aas.example.org:443", "[2001:db8::2]:443"):
        (line,) = errors("aas", {"grpc_target": target, "tls": False})
        assert "aas.tls = false (plain text) is only allowed for loopback" in line
    for target in ("https://aas.example.org:443", "aas.example.org:99999", "::1:443"):
        (line,) = errors("aas", {"grpc_target": target})
        assert line.startswith("aas.grpc_target: ")
    config = build_config({"aas": {"grpc_target": "[::1]:50051", "tls": False}}, {})
    assert config.aas.grpc_target == "[::1]:50051"


def test_environment_overrides_meet_the_same_rule() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({}, {"EDGE_RECORDER__CORTI__AUTH_URL": "Http://auth.example.net/realms"})
    assert caught.value.lines[0].startswith("corti.auth_url: must use TLS")


def test_assignment_is_validated_too() -> None:
    config = build_config({}, {})
    with pytest.raises(ValueError, match="must use TLS"):
        config.corti.api_url = "HTTP://api.example.net/v2"
