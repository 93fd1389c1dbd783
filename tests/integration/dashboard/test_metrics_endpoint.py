"""GET /metrics is valid OpenMetrics, and behind a login or bearer token when auth is on."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from edge_recorder.dashboard.auth import write_user
from tests.integration.dashboard.conftest import Dashboard, DashboardFactory, fleet_has


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        for s in family.samples
    }


async def test_metrics_parse_as_openmetrics(dashboard: Dashboard) -> None:
    dashboard.publisher.device("exam-1", backlog={"bytes": 4096})
    async with dashboard.session() as session:
        await fleet_has(session, lambda p: p["counts"]["online"] == 1)
        async with session.get("/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await reply.text()
    found = samples(text)
    assert text.endswith("# EOF\n")
    up = found[
        ("edge_recorder_device_up", (("device_id", "exam-1"), ("location", "Room of exam-1")))
    ]
    assert up == 1.0
    assert found[("edge_recorder_device_backlog_bytes", (("device_id", "exam-1"),))] == 4096
    assert found[("edge_recorder_dashboard_broker_connected", ())] == 1.0


async def test_metrics_need_a_token_or_session_when_auth_is_on(
    dashboard_factory: DashboardFactory, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    write_user(users, "alice", "viewer", "alice-secret-1")
    token = tmp_path / "metrics-token"
    token.write_text("s3cret-token-value\n")
    dash = dashboard_factory(auth={"users_file": str(users), "metrics_token_file": str(token)})
    async with dash.session() as session:
        async with session.get("/metrics") as reply:
            assert reply.status == 401
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in ("Bearer s3cret-token-valuX", "Basic s3cret-token-value", "Bearer"):
            async with session.get("/metrics", headers={"Authorization": wrong}) as reply:
                assert reply.status == 401, wrong
        async with session.get(
            "/metrics", headers={"Authorization": "Bearer s3cret-token-value"}
        ) as reply:
            assert reply.status == 200
            assert samples(await reply.text())[("edge_recorder_dashboard_broker_connected", ())]
        form = {"username": "alice", "password": "alice-secret-1", "next": "/"}
        async with session.post("/login", data=form, allow_redirects=False) as reply:
            assert reply.status == 303
        async with session.get("/metrics") as reply:
            assert reply.status == 200
