"""protos/openapi.yaml is a valid OpenAPI 3 document and the emulator answers by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from tests.integration.emulator.conftest import (
    AUDIO_QS,
    chunk_form,
    chunk_metadata,
    finalize_body,
    rest_headers,
)

SPEC_PATH = Path(__file__).resolve().parents[3] / "protos" / "openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def _deref(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def check_response(
    spec: dict[str, Any], path: str, method: str, status: int, content_type: str, body: Any
) -> None:
    operation = spec["paths"][path][method]
    assert str(status) in operation["responses"], f"{method} {path} {status} not documented"
    response = _deref(spec, operation["responses"][str(status)])
    if status == 204:
        return
    media = response["content"].get(content_type)
    assert media is not None, f"{content_type} not documented for {status}"
    schema = _deref(spec, media["schema"])
    OAS30Validator(schema).validate(body)


def test_document_is_valid_openapi(spec) -> None:
    validate(spec)


async def test_served_document_is_the_file(aas_emulator, http) -> None:
    async with http.get(aas_emulator.http_url + "/openapi.yaml") as resp:
        assert resp.status == 200
        assert yaml.safe_load(await resp.text()) == yaml.safe_load(SPEC_PATH.read_text())


async def _call(http, method, url, **kwargs):
    async with http.request(method, url, **kwargs) as resp:
        if resp.content_type == "application/json":
            return resp.status, resp.content_type, await resp.json()
        return resp.status, resp.content_type, await resp.text()


async def test_answers_match_the_documented_schemas(aas_emulator, http, token, spec) -> None:
    base = aas_emulator.http_url
    cid = "enc-openapi"
    cases = []
    finalize = base + "/audio/finalizeUpload" + AUDIO_QS
    store = base + "/audio/storeChunk" + AUDIO_QS
    sessions = base + f"/ambient-sessions?api-version=2&customerId={aas_emulator.customer_id}"
    session_body = {
        "correlationId": cid,
        "productId": aas_emulator.product_id,
        "customerId": aas_emulator.customer_id,
        "externalUserId": "dr",
    }
    h = rest_headers
    cases.append(
        ("/ambient-sessions", "put", sessions, {"json": session_body, "headers": h(token)})
    )
    cases.append(
        ("/ambient-sessions", "put", sessions, {"json": session_body, "headers": h(token)})
    )
    cases.append(("/ambient-sessions", "put", sessions, {"json": {}, "headers": h(token)}))
    meta = chunk_metadata(cid, 1, 2)
    for _ in range(2):
        cases.append(
            (
                "/audio/storeChunk",
                "put",
                store,
                {"data": chunk_form(meta, b"ab"), "headers": h(token)},
            )
        )
    cases.append(
        ("/audio/storeChunk", "put", store, {"data": chunk_form(meta, b"zz"), "headers": h(token)})
    )
    cases.append(
        (
            "/audio/storeChunk",
            "put",
            store,
            {"data": chunk_form(chunk_metadata("ghost", 1, 1), None), "headers": h(token)},
        )
    )
    for body, headers in (
        (finalize_body(cid, 1, 2), h(token)),
        (finalize_body(cid, 1, 1), h(token)),
        ({}, h(token)),
        (finalize_body("ghost", 1, 1), h(token)),
        (finalize_body(cid, 1, 2), h(None)),
        (finalize_body(cid, 1, 2), {"Authorization": f"Bearer {token}"}),
    ):
        cases.append(
            ("/audio/finalizeUpload", "post", finalize, {"json": body, "headers": headers})
        )
    stranger = await aas_emulator.mint_token(clientId="stranger")
    cases.append(("/audio/finalizeUpload", "post", finalize, {"json": {}, "headers": h(stranger)}))
    cases.append(
        (
            "/ambient-sessions/{correlationId}",
            "delete",
            base + "/ambient-sessions/nobody",
            {"headers": h(token)},
        )
    )
    seen = set()
    for path, method, url, kwargs in cases:
        status, content_type, body = await _call(http, method.upper(), url, **kwargs)
        check_response(spec, path, method, status, content_type, body)
        seen.add((path, status))
    # the run covered success and each documented failure class
    assert {s for _, s in seen} >= {200, 201, 400, 401, 403, 404, 409}
