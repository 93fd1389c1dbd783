"""A delivery test rig: spool in a temp dir, the real emulator behind two TCP fault proxies
(gRPC, and HTTP for REST + tokens), a capture stand-in that writes known PCM through the
spool's writer API, and the delivery engine under test.

Used by tests/integration/delivery/ and by the chaos trials (tests/chaos/trials.py), so both
check the same invariant: for every recording made, the emulator holds exactly the bytes
written to the spool, once (no duplicate recording, no gap), StartProcessing ran once per
encounter, and the spool reclaimed the space.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devtools.faultproxy import FaultProxy
from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import RecordingWriter, Spool, UnknownRecording
from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.bundle import Uplinks
from tests.support.emulator import EmulatorHandle

CHUNK = 3200  # 100 ms of 16 kHz mono PCM16
RATE = 16000

FAST_UPLINK: dict[str, Any] = {
    "retry_initial_s": 0.05,
    "retry_max_s": 0.5,
    "request_timeout_s": 2.0,
    "connect_timeout_s": 1.0,
    "keepalive_s": 5.0,  # the emulator, like real servers, refuses pings more often than 5 s
}


def pcm(seed: int, n_bytes: int) -> bytes:
    """Deterministic noise: a misplaced or repeated chunk changes the bytes."""
    return np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()


def device_config(
    emu: EmulatorHandle, grpc_target: str, http_url: str, tmp: Path, **uplink: Any
) -> Config:
    secret = tmp / "client-secret"
    secret.write_text(emu.client_secret + "\n")
    return Config.model_validate(
        {
            "spool": {
                "dir": str(tmp / "spool"),
                "key_file": str(tmp / "spool.key"),
                "reserve_free_bytes": 0,
            },
            "auth": {
                "mode": "client_credentials",
                "token_url": f"{http_url}/oauth2/token",
                "client_id": emu.client_id,
                "client_secret_file": str(secret),
                "refresh_margin_s": 0,
            },
            "aas": {
                "grpc_target": grpc_target,
                "rest_url": http_url,
                "ws_url": http_url.replace("http://", "ws://", 1),  # the same HTTP port
                "tls": False,
                "customer_id": emu.customer_id,
                "partner_id": emu.partner_id,
                "product_id": emu.product_id,
                "external_user_id": emu.external_user_id,
            },
            "uplink": {**FAST_UPLINK, **uplink},
        }
    )


@dataclass
class Recording:
    rid: str
    cid: str
    seq: int
    writer: RecordingWriter
    data: bytearray = field(default_factory=bytearray)
    seed: int = 0
    closed: bool = False

    def write(self, n_bytes: int = CHUNK) -> None:
        """Append the next `n_bytes` of this recording's known audio, as capture would."""
        chunk = pcm(self.seed * 1_000_003 + len(self.data), n_bytes)
        self.writer.append(chunk)
        self.data += chunk

    def close(self, reason: str = "stopped") -> None:
        self.writer.close(reason)
        self.closed = True


class Rig:
    def __init__(
        self, emu: EmulatorHandle, grpc: FaultProxy, http: FaultProxy, tmp: Path, config: Config
    ) -> None:
        self.emu, self.grpc, self.http, self.tmp, self.config = emu, grpc, http, tmp, config
        self.spool = Spool.open(config.spool, environ={})
        self.engine: DeliveryEngine | None = None
        self.task: asyncio.Task[None] | None = None
        self.recordings: list[Recording] = []
        self.encounters: list[str] = []
        self.processing_calls: collections.Counter[str] = collections.Counter()
        self.forgotten: set[str] = set()  # encounters the service lost a closed recording of
        self._seq: collections.Counter[str] = collections.Counter()

    @classmethod
    async def create(cls, emu: EmulatorHandle, tmp: Path, **uplink: Any) -> Rig:
        await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
        grpc_port = int(emu.grpc_target.rsplit(":", 1)[1])
        http_port = int(emu.http_url.rsplit(":", 1)[1])
        grpc = await FaultProxy("127.0.0.1", grpc_port).start()
        http = await FaultProxy("127.0.0.1", http_port).start()
        config = device_config(
            emu, f"127.0.0.1:{grpc.port}", f"http://127.0.0.1:{http.port}", tmp, **uplink
        )
        return cls(emu, grpc, http, tmp, config)

    # ---- the engine ----------------------------------------------------------------------
    def uplinks(self) -> Uplinks:
        """Real uplinks, with StartProcessing counted per encounter."""
        uplinks = aas_uplinks(self.config)
        original = uplinks.live.start_processing

        async def counted(session: Any, recording_guids: Any = ()) -> Any:
            result = await original(session, recording_guids)
            self.processing_calls[session.correlation_id] += 1
            return result

        uplinks.live.start_processing = counted  # type: ignore[method-assign]
        return uplinks

    async def start_engine(self) -> DeliveryEngine:
        assert self.task is None, "engine already running"
        self.engine = DeliveryEngine(self.config, self.spool, uplinks=self.uplinks())
        self.task = asyncio.create_task(self.engine.run())
        return self.engine

    async def stop_engine(self) -> None:
        """Cancel the engine at whatever it was doing (an in-process 'restart')."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        if self.engine is not None:
            await self.engine.aclose()
            self.engine = None

    async def close(self) -> None:
        await self.stop_engine()
        await self.grpc.stop()
        await self.http.stop()
        self.spool.close()

    def wake(self) -> None:
        if self.engine is not None:
            self.engine.wake()

    # ---- the network ---------------------------------------------------------------------
    async def forget(self, rec: Recording) -> bool:
        """The service loses `rec` (expiry); False when it never had it."""
        try:
            state = (await self.emu.recording(rec.cid, rec.rid))["state"]
        except LookupError:
            return False
        try:  # never one already handed to processing: that is processed data, not delivery
            await self.emu.forget_recording(rec.cid, rec.rid, unless_processing=True)
        except LookupError:
            return False
        if state != "open":
            self.forgotten.add(rec.cid)  # StartProcessing may then run a second time
        return True

    def network(self, mode: str) -> None:
        """pass | cut | reset | blackhole, on both links (one host, one network)."""
        for proxy in (self.grpc, self.http):
            getattr(proxy, {"pass": "pass_through"}.get(mode, mode))()

    # ---- capture stand-in ----------------------------------------------------------------
    def begin(self, cid: str | None = None) -> Recording:
        """Start the next recording of encounter `cid` (a new encounter when None)."""
        if cid is None:
            cid = f"enc-{uuid.uuid4().hex[:12]}"
        if cid not in self.encounters:
            self.encounters.append(cid)
        self._seq[cid] += 1
        rid = str(uuid.uuid4())
        writer = self.spool.begin_recording(
            cid, self._seq[cid], rid, codec="pcm16", sample_rate=RATE
        )
        rec = Recording(rid, cid, self._seq[cid], writer, seed=len(self.recordings) + 1)
        self.recordings.append(rec)
        self.wake()
        return rec

    def end(self, cid: str) -> None:
        self.spool.end_encounter(cid)
        self.wake()

    async def play(self, rec: Recording, chunks: int, interval_s: float = 0.01) -> None:
        """Write `chunks` 100 ms chunks, one per `interval_s` (capture's pace, sped up)."""
        for _ in range(chunks):
            rec.write()
            self.wake()
            await asyncio.sleep(interval_s)  # pacing like a microphone, not synchronisation

    # ---- checks --------------------------------------------------------------------------
    def all_processed(self) -> bool:
        """Every encounter started processing and the spool holds none of its audio."""
        left = {r.id for r in self.spool.recordings()}
        if any(r.rid in left for r in self.recordings):
            return False
        for cid in self.encounters:  # a processed encounter leaves the ledger with its audio
            with contextlib.suppress(UnknownRecording):
                if not self.spool.encounter(cid).processing_started:
                    return False
        return True

    async def wait_processed(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.all_processed():
            if time.monotonic() > deadline:
                raise AssertionError(f"not delivered within {timeout_s}s: {self.describe()}")
            await asyncio.sleep(0.02)

    async def wait_recordings_delivered(self, timeout_s: float = 30.0) -> None:
        """Every closed recording so far is confirmed and finalized (processing may wait)."""
        deadline = time.monotonic() + timeout_s
        while any(r.state == "closed" and not r.delivered for r in self.spool.recordings()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not delivered within {timeout_s}s: {self.describe()}")
            await asyncio.sleep(0.02)

    def describe(self) -> str:
        rows = [
            f"{r.id[:8]} seq={r.seq} {r.state} len={r.length} conf={r.confirmed} "
            f"fin={r.finalized} q={r.quarantine} err={r.last_error}"
            for r in self.spool.recordings()
        ]
        snap = self.engine.snapshot() if self.engine else None
        return "; ".join(rows) + f" | snapshot={snap}"

    async def server_bytes(self, rec: Recording) -> bytes:
        try:
            return await self.emu.recording_bytes(rec.cid, rec.rid)
        except LookupError:
            return await self.emu.recording_bytes(rec.cid, rec.seq)

    async def verify(self) -> list[str]:
        """Problems with the delivery invariant; [] when every recording arrived exactly."""
        problems: list[str] = []
        for cid in self.encounters:
            mine = [r for r in self.recordings if r.cid == cid]
            try:
                session = await self.emu.session(cid)
            except LookupError:
                problems.append(f"{cid}: unknown to the service")
                continue
            if len(session["recordings"]) != len(mine):
                problems.append(
                    f"{cid}: service holds {len(session['recordings'])} recordings, "
                    f"device made {len(mine)}"
                )
            if not session.get("processingStarted"):
                problems.append(f"{cid}: processing not started")
            # Once, or twice when the service lost a closed recording: the first answer shows
            # the shortfall, the lost recording is delivered again, then StartProcessing again.
            allowed = (1, 2) if cid in self.forgotten else (1,)
            if self.processing_calls[cid] not in allowed:
                problems.append(f"{cid}: StartProcessing ran {self.processing_calls[cid]} times")
            for rec in mine:
                try:
                    got = await self.server_bytes(rec)
                except LookupError:
                    problems.append(f"{rec.rid} (seq {rec.seq}): missing on the service")
                    continue
                if got != bytes(rec.data):
                    problems.append(_diff(rec, got))
        return problems


def _diff(rec: Recording, got: bytes) -> str:
    want = bytes(rec.data)
    first = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None)
    return (
        f"{rec.rid} (seq {rec.seq}): service holds {len(got)} bytes, device wrote {len(want)}, "
        f"first difference at {first if first is not None else min(len(want), len(got))}"
    )
