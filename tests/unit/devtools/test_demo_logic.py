"""Pure parts of the demo: reading the daemon's log, the emulator's banner, judging a verdict."""

from __future__ import annotations

import io

from devtools.demo.services import parse_banner
from devtools.demo.timeline import DeliveryWatcher, Timeline, describe_pattern
from devtools.demo.verdict import RecordingCheck, Verdict, closed_recordings, render, sha256

LOG = (
    'ts=2026-11-21T00:48:06.123Z level=info logger=capture.worker msg="recording audio closed" '
    "recording_id=4636a41d-251f-4680-beb4-c906bf419c9f reason=pause start_frame=3520 "
    "end_frame=213440 length_bytes=419840\n"
    'ts=2026-11-21T00:48:09.001Z level=info logger=capture.worker msg="recording audio opened" '
    "recording_id=38877980-c40f-4d7c-b506-074858a1c92e seq=2\n"
)


def test_closed_recordings_reads_frame_range_and_length() -> None:
    (rec,) = closed_recordings(LOG).values()
    assert rec.recording_id == "4636a41d-251f-4680-beb4-c906bf419c9f"
    assert (rec.reason, rec.start_frame, rec.end_frame, rec.length) == (
        "pause",
        3520,
        213440,
        419840,
    )


def test_parse_banner_takes_ports_and_the_device_config_path() -> None:
    info: dict[str, str] = {}
    parse_banner(
        "aas-emulator grpc_port=4001 http_port=4002 http_url=http://127.0.0.1:4002\n", info
    )
    parse_banner("dev client: client_id=x client_secret=y\n", info)
    parse_banner("device config: /tmp/d/emulator-device.toml\n", info)
    assert info["grpc_port"] == "4001" and info["http_url"] == "http://127.0.0.1:4002"
    assert info["device_config"] == "/tmp/d/emulator-device.toml"
    assert "client_secret" not in info


def check(**changes: object) -> RecordingCheck:
    fields: dict[str, object] = {
        "seq": 1,
        "recording_id": "r1",
        "close_reason": "stop",
        "device_bytes": 6,
        "device_sha256": sha256(b"abcdef"),
        "spool_length": 6,
        "service_bytes": 6,
        "service_sha256": sha256(b"abcdef"),
        "service_state": "finalized",
        "file": "/x/r1.wav",
    }
    fields.update(changes)
    return RecordingCheck(**fields)  # type: ignore[arg-type]


def test_a_recording_holds_only_when_bytes_hashes_and_spool_length_agree() -> None:
    assert check().holds
    assert not check(service_sha256=sha256(b"abcdeX")).holds
    assert not check(service_bytes=5).holds
    assert not check(spool_length=7).holds
    assert not check(device_bytes=0, spool_length=0, service_bytes=0).holds


def test_the_verdict_needs_every_recording_processing_and_no_problem() -> None:
    assert Verdict([check()], [], processing_started=True).holds
    assert not Verdict([], [], processing_started=True).holds
    assert not Verdict([check()], [], processing_started=False).holds
    assert not Verdict([check()], ["the service holds recording r9"], True).holds
    assert not Verdict([check(), check(seq=2, service_bytes=4)], [], True).holds
    text = "\n".join(render(Verdict([check(), check(seq=2, service_bytes=4)], [], True)))
    assert "MISMATCH" in text and "VERDICT: FAIL" in text
    assert "VERDICT: PASS" in "\n".join(render(Verdict([check()], [], True)))


def test_delivery_watcher_reports_new_recordings_state_changes_and_processing() -> None:
    out = io.StringIO()
    watcher = DeliveryWatcher(Timeline(out), fetch_session=None)  # type: ignore[arg-type]
    rec = {"recordingId": "r1", "sequenceNumber": 1, "transport": "grpc", "state": "open"}
    watcher.report({"recordings": [{**rec, "bytes": 3200}]})
    watcher.report({"recordings": [{**rec, "bytes": 6400}]})  # progress: not yet (2 s rule)
    watcher.report({"recordings": [{**rec, "bytes": 6400, "state": "closed"}]})
    watcher.report({"recordings": [{**rec, "bytes": 6400, "state": "finalized"}]})
    watcher.report({"recordings": [], "processingStarted": True})
    watcher.report({"recordings": [], "processingStarted": True})
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert "service opened recording #1 (grpc)" in lines[0]
    assert "closed: service holds 6400 bytes (0.2 s of audio)" in lines[1]
    assert "finalized" in lines[2] and "StartProcessing" in lines[3]


def test_led_patterns_are_described_with_their_documented_meaning() -> None:
    assert describe_pattern("recording") == "recording: RGB solid red (recording)"
    assert describe_pattern("paused").startswith("paused: RGB amber 1 s / off 1 s (encounter")
    assert describe_pattern("no-such-pattern") == "no-such-pattern"
