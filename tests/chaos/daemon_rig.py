"""A rig around the REAL daemon (`python -m edge_recorder run`): an in-process emulator behind
two TCP fault proxies (gRPC; HTTP for REST, WebSocket and tokens), a WAV "mic" at 8x, the
control socket, SIGKILL + restart, and the device truth each trial is checked against.

Device truth (what the device encoded, per recording), from facts the device leaves behind:

- Clean close: capture logs "recording audio closed ... start_frame end_frame length_bytes".
  The pipeline is deterministic and each recording gets a fresh `Pipeline` from its first
  frame, so re-encoding the WAV frames [start, end) here reproduces the recording's bytes;
  their length must also equal the spool writer's own `length_bytes`.
- Open at a SIGKILL: no closing line exists. Right after the kill (process dead, files still),
  the trial copies the spool directory and opens the COPY with `Spool.open` — the same
  start-up repair the restarted daemon runs on the original — and reads every recording it
  holds (decrypted). Those bytes are the device truth for a crash-recovered recording (the
  restarted daemon closes it at that length). They are checked on their own too: they must be
  a prefix of the pipeline's streaming output from the "recording audio first frame"
  `start_frame`, or (a kill inside a pause/stop, after the final flush was stored but before
  the close was logged) that output up to some frame plus the flush; empty when capture never
  logged a first frame. So a gap or duplicate inside the spool itself is caught too.

The copy matters because the real spool is reclaimed once the service started processing,
usually before a trial could read it, and reading the live spool would race the daemon.

The invariant checked: for every recording the device made (opened in any daemon log, or
present in any post-kill snapshot), the emulator holds exactly one recording with its
sequence number in the encounter the device opened it for (named by the GUID when it came
over gRPC, by the sequence number over REST), with bytes equal to the device truth; every
encounter started processing; and the final spool holds nothing (space reclaimed after the
ack). A recording with no audio (killed before its first frame) may be absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.faultproxy import FaultProxy
from edge_recorder.audio.frames import Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.audio.vad import make_engine
from edge_recorder.capture.wav import WavSource
from edge_recorder.config.loader import load_config
from edge_recorder.spool import Spool
from tests.integration.daemon.conftest import (
    SENTENCE,
    DaemonProcess,
    daemon_config,
    write_config,
)
from tests.integration.systemd.conftest import NotifySocket
from tests.support.emulator import EmulatorHandle

SPEED = 8.0
_OPENED = re.compile(r'msg="recording audio opened" recording_id=(?P<id>\S+) seq=(?P<seq>\d+)')
_FIRST = re.compile(
    r'msg="recording audio first frame" recording_id=(?P<id>\S+) start_frame=(?P<start>\d+)'
)
_CLOSED = re.compile(
    r'msg="recording audio closed" recording_id=(?P<id>\S+) reason=(?P<reason>\S+) '
    r"start_frame=(?P<start>-?\d+) end_frame=(?P<end>\S+) length_bytes=(?P<length>\d+)"
)


def make_speech_wav(folder: Path) -> Path:
    """~3 min of espeak-ng speech (22.05 kHz, so the resampler runs): ~23 s of "mic" at 8x,
    more than any daemon run of a trial lasts."""
    folder.mkdir(parents=True, exist_ok=True)
    one, long = folder / "one.wav", folder / "speech.wav"
    if not long.exists():
        subprocess.run(["espeak-ng", "-w", str(one), SENTENCE], check=True, capture_output=True)
        cmd = ["sox", str(one), str(long), "pad", "0", "1", "repeat", "30"]
        subprocess.run(cmd, check=True, capture_output=True)
    return long


def make_speech_wav16(folder: Path) -> Path:
    """The same speech as 16 kHz mono PCM16, the format the service stores: with no DC removal
    or gain the pipeline must pass every sample through untouched (the source-exact check)."""
    long = make_speech_wav(folder)
    out = folder / "speech-16k.wav"
    if not out.exists():
        cmd = ["sox", str(long), "-r", "16000", "-c", "1", "-b", "16", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
    return out


@dataclass
class DeviceRecording:
    """One recording the device made, and what it must have encoded."""

    rid: str
    cid: str
    seq: int
    truth: bytes | None = None  # device bytes; None until established
    how: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Run:
    """One daemon process's life: its log and the encounters started in it (log offsets)."""

    daemon: DaemonProcess
    notify: NotifySocket
    pump: asyncio.Task[None]
    starts: list[tuple[int, str]] = field(default_factory=list)  # (log offset, correlation id)
    killed: bool = False


class DaemonRig:
    def __init__(
        self,
        emu: EmulatorHandle,
        workdir: Path,
        sock_dir: Path,
        wav: Path,
        *,
        source_exact: bool = False,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.emu, self.workdir, self.sock_dir, self.wav = emu, workdir, sock_dir, wav
        # A 16 kHz mono PCM16 source with DC removal off: every closed recording must then
        # also equal the source WAV's own samples over its frame range.
        self.source_exact = source_exact
        self.overrides = overrides or {}  # config sections a test changes (e.g. to break it)
        self.grpc: FaultProxy | None = None
        self.http: FaultProxy | None = None
        self.config: Path = workdir / "device.toml"
        self.runs: list[Run] = []
        self.snapshots: list[Path] = []
        self.open_cid: str | None = None
        self.network_mode = "pass"
        self._snap_cache: dict[Path, dict[str, tuple[str, int, bytes]]] = {}
        self.kinds: dict[str, int] = {}  # how each recording's truth was established (a census)

    async def start(self) -> None:
        grpc_port = int(self.emu.grpc_target.rsplit(":", 1)[1])
        http_port = int(self.emu.http_url.rsplit(":", 1)[1])
        self.grpc = await FaultProxy("127.0.0.1", grpc_port).start()
        self.http = await FaultProxy("127.0.0.1", http_port).start()
        http = f"127.0.0.1:{self.http.port}"
        tree = daemon_config(self.emu, self.workdir, self.sock_dir, self.wav)
        tree["audio"]["speed"] = SPEED
        if self.source_exact:
            tree["audio"]["dc_removal"] = False
        for section, values in self.overrides.items():
            tree.setdefault(section, {}).update(values)
        tree["auth"]["token_url"] = f"http://{http}/oauth2/token"
        tree["aas"].update(
            grpc_target=f"127.0.0.1:{self.grpc.port}",
            rest_url=f"http://{http}",
            ws_url=f"ws://{http}",
        )
        tree["uplink"].update(
            request_timeout_s=1.0, connect_timeout_s=1.0, retry_initial_s=0.05, retry_max_s=0.5
        )
        write_config(self.config, tree)
        await self.launch()

    # ---- the daemon --------------------------------------------------------------------------
    @property
    def daemon(self) -> DaemonProcess:
        return self.runs[-1].daemon

    async def launch(self) -> None:
        notify = NotifySocket()
        log = self.workdir / f"daemon-{len(self.runs)}.log"
        daemon = DaemonProcess(self.config, notify, log)
        pump = asyncio.get_running_loop().create_task(daemon.pump_notify())
        self.runs.append(Run(daemon, notify, pump))
        await daemon.start()
        await daemon.ready()

    async def kill_and_restart(self) -> None:
        """SIGKILL the daemon, snapshot its spool as the kill left it, start a new one."""
        run = self.runs[-1]
        await run.daemon.signal(signal.SIGKILL)
        await run.daemon.wait_exit()
        run.killed = True
        self.open_cid = None  # the restarted daemon ends it (crash recovery)
        snap = self.workdir / f"snapshot-{len(self.snapshots)}"
        await asyncio.to_thread(shutil.copytree, self.workdir / "spool", snap)
        self.snapshots.append(snap)
        self._snap_cache[snap] = await asyncio.to_thread(_read_snapshot, self.config, snap)
        await self._reap(run)
        await self.launch()

    async def command(self, cmd: str) -> dict[str, Any]:
        reply = await self.daemon.request({"cmd": cmd})
        if not reply.get("ok"):
            raise AssertionError(f"ctl {cmd} refused: {reply}; log:\n{self.daemon.log[-2000:]}")
        return reply

    async def begin_encounter(self) -> None:
        offset = len(self.daemon.log)
        reply = await self.command("start")
        cid = str(reply["data"]["correlation_id"])
        self.runs[-1].starts.append((offset, cid))
        self.open_cid = cid

    async def stop(self) -> None:
        await self.daemon.stop()
        for run in self.runs:
            await self._reap(run)
        for proxy in (self.grpc, self.http):
            if proxy is not None:
                await proxy.stop()

    @staticmethod
    async def _reap(run: Run) -> None:
        if run.daemon.proc is not None and run.daemon.proc.returncode is None:
            await run.daemon.stop()
        run.pump.cancel()
        await asyncio.gather(run.pump, return_exceptions=True)
        run.notify.close()

    # ---- faults ------------------------------------------------------------------------------
    def network(self, mode: str) -> None:
        """pass | cut | reset | blackhole on both links (one host, one network)."""
        self.network_mode = mode
        for proxy in (self.grpc, self.http):
            assert proxy is not None
            getattr(proxy, {"pass": "pass_through"}.get(mode, mode))()

    def current_recording(self) -> str | None:
        opened = _OPENED.findall(self.daemon.log)
        return opened[-1][0] if opened and self.open_cid else None

    async def forget_current(self) -> None:
        """While the device is offline, the service expires the latest recording if it is still
        "open" there. Not a closed one: a close the service acknowledged (all bytes stored) is
        what lets the device reclaim the audio after StartProcessing, so forgetting it would be
        the service losing confirmed data, not a fault the device can be asked to survive. The
        network is down, so a close the service handles after this check never reaches the
        device as an acknowledgement."""
        rid, cid = self.current_recording(), self.open_cid
        if rid is None or cid is None or self.network_mode == "pass":
            return
        with contextlib.suppress(LookupError):
            if (await self.emu.recording(cid, rid))["state"] == "open":
                await self.emu.forget_recording(cid, rid)

    # ---- waiting -----------------------------------------------------------------------------
    def device_recordings(self) -> dict[str, DeviceRecording]:
        """Every recording opened in any daemon log, in the encounter started before it."""
        out: dict[str, DeviceRecording] = {}
        for run in self.runs:
            log = run.daemon.log
            for m in _OPENED.finditer(log):
                cid = next((c for off, c in reversed(run.starts) if off <= m.start()), None)
                if cid is not None:
                    out[m["id"]] = DeviceRecording(m["id"], cid, int(m["seq"]))
        for snap in self.snapshots:  # a kill between begin_recording and its log line
            for rid, (cid, seq, _) in self._snap_cache[snap].items():
                out.setdefault(rid, DeviceRecording(rid, cid, seq))
        return out

    def encounters(self) -> list[str]:
        return [cid for run in self.runs for _, cid in run.starts]

    async def undelivered(self) -> list[str]:
        """What the service does not hold yet ([] once everything is delivered)."""
        recs = self.device_recordings()
        missing: list[str] = []
        for cid in self.encounters():
            try:
                session = await self.emu.session(cid)
            except LookupError:
                missing.append(f"{cid}: no session")
                continue
            held = {r["sequenceNumber"]: r for r in session["recordings"]}
            if not session.get("processingStarted"):
                missing.append(f"{cid}: processing not started")
            for rec in recs.values():
                state = held.get(rec.seq, {}).get("state")
                if rec.cid == cid and state != "finalized":
                    missing.append(f"{cid}/{rec.rid} seq={rec.seq}: {state}")
        status = await self.daemon.status()
        if int(status["backlog"]["recordings"]):
            missing.append(f"backlog {status['backlog']}")
        return missing

    async def wait_delivered(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while missing := await self.undelivered():
            if time.monotonic() > deadline:
                raise AssertionError(f"not delivered within {timeout_s:g}s: {missing}")
            await asyncio.sleep(0.1)

    # ---- the verdict -------------------------------------------------------------------------
    async def verify(self) -> list[str]:
        """Problems with the invariant (see the module docstring); [] when it holds."""
        problems: list[str] = []
        recs = self.device_recordings()
        await asyncio.to_thread(self._establish_truth, recs)
        for cid in self.encounters():
            try:
                session = await self.emu.session(cid)
            except LookupError:
                problems.append(f"{cid}: unknown to the service")
                continue
            if not session.get("processingStarted"):
                problems.append(f"{cid}: processing not started")
            held = [r["sequenceNumber"] for r in session["recordings"]]
            mine = {r.seq for r in recs.values() if r.cid == cid and r.truth != b""}
            empty = {r.seq for r in recs.values() if r.cid == cid and r.truth == b""}
            if len(held) != len(set(held)):
                problems.append(f"{cid}: duplicate recordings on the service: seqs {held}")
            extra = set(held) - mine - empty
            if extra:
                problems.append(f"{cid}: service holds seqs the device never made: {extra}")
            if mine - set(held):
                problems.append(f"{cid}: missing on the service: seqs {sorted(mine - set(held))}")
            for row in session["recordings"]:  # gRPC names it by GUID, REST by sequence
                rec = next(
                    (r for r in recs.values() if r.cid == cid and r.seq == row["sequenceNumber"]),
                    None,
                )
                if rec is not None and row["recordingId"] not in (rec.rid, str(rec.seq)):
                    problems.append(f"{cid}: seq {rec.seq} stored as {row['recordingId']}")
        for rec in recs.values():
            kind = rec.how + ("-empty" if rec.truth == b"" else "")
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            problems += rec.problems
            if rec.truth is None:
                continue
            try:
                got = await self._service_bytes(rec)
            except LookupError:
                continue  # reported above as missing (an empty one may be absent)
            if got != rec.truth:
                problems.append(_diff(rec, got))
        leftover = await asyncio.to_thread(_read_snapshot, self.config, self.workdir / "spool")
        if leftover:
            problems.append(f"spool not reclaimed after delivery: {sorted(leftover)}")
        return problems

    async def _service_bytes(self, rec: DeviceRecording) -> bytes:
        for row in (await self.emu.session(rec.cid))["recordings"]:
            if row["sequenceNumber"] == rec.seq:
                return await self.emu.recording_bytes(rec.cid, row["recordingId"])
        raise LookupError(rec.rid)

    def _establish_truth(self, recs: dict[str, DeviceRecording]) -> None:
        logs = "\n".join(run.daemon.log for run in self.runs)
        closed = {m["id"]: m for m in _CLOSED.finditer(logs)}
        first = {m["id"]: int(m["start"]) for m in _FIRST.finditer(logs)}
        snaps: dict[str, bytes] = {}
        for snap in self.snapshots:
            for rid, (_, _, data) in self._snap_cache[snap].items():
                snaps.setdefault(rid, data)  # the first snapshot after its kill
        for rec in recs.values():
            if rec.rid in closed:
                m = closed[rec.rid]
                start, length = int(m["start"]), int(m["length"])
                want = b"" if start < 0 else reencode(self.config, start, int(m["end"]), None)
                rec.truth, rec.how = want, "closed"
                if len(want) != length:
                    rec.problems.append(
                        f"{rec.rid}: re-encoding gives {len(want)} bytes, writer said {length}"
                    )
                if rec.rid in snaps and snaps[rec.rid] != want:
                    rec.problems.append(f"{rec.rid}: spool snapshot differs from re-encoding")
                if self.source_exact and start >= 0:
                    source = _source_samples(self.wav, start, int(m["end"]))
                    if want != source:
                        rec.problems.append(
                            f"{rec.rid}: {len(want)} bytes differ from the source WAV's "
                            f"{len(source)} bytes of frames [{start}, {m['end']})"
                        )
            elif rec.rid in snaps:
                data = snaps[rec.rid]
                rec.truth, rec.how = data, "crash-recovered"
                first_frame = first.get(rec.rid)
                if first_frame is None:
                    if data:
                        rec.problems.append(f"{rec.rid}: {len(data)} bytes but no first frame")
                elif not is_capture_output(self.config, first_frame, data):
                    rec.problems.append(
                        f"{rec.rid}: spool holds {len(data)} bytes that are not the "
                        f"pipeline's output from frame {first_frame}"
                    )
            else:
                rec.problems.append(f"{rec.rid}: neither closed in a log nor in a snapshot")


def _source_samples(wav: Path, start: int, end: int) -> bytes:
    """The source WAV's own PCM16 samples for frames [start, end)."""
    import soundfile

    samples, rate = soundfile.read(wav, dtype="int16", start=start, stop=end)
    assert rate == 16000 and samples.ndim == 1, "the source-exact WAV must be 16 kHz mono"
    return bytes(samples.tobytes())


def _read_snapshot(config_path: Path, directory: Path) -> dict[str, tuple[str, int, bytes]]:
    """Open a spool directory (copy) as a restarted daemon would; every recording's bytes."""
    spool_cfg = load_config(config_path).spool.model_copy(update={"dir": directory})
    out: dict[str, tuple[str, int, bytes]] = {}
    with Spool.open(spool_cfg, environ={}) as spool:
        for info in spool.recordings():
            data = bytearray()
            while len(data) < info.length:
                chunk = spool.read(info.id, len(data), 1 << 20)
                if not chunk:
                    break
                data += chunk
            out[info.id] = (info.encounter, info.seq, bytes(data))
    return out


def is_capture_output(config_path: Path, start: int, data: bytes) -> bool:
    """Whether a crash-recovered recording holds what capture made from frame `start`: a
    prefix of the streaming output, or (a kill while the recording was being closed, after
    the pipeline's final flush was stored but before the close) the output up to some frame
    plus the flush."""
    ends: list[tuple[int, int]] = []  # (end frame, output length) after each chunk
    streamed = reencode(config_path, start, None, len(data), ends)
    if streamed == data:
        return True
    for end, length in ends:  # few candidates: the flush is a short tail
        tail_fits = length < len(data) <= length + _MAX_FLUSH
        if (  # the costly re-encoding only for a candidate whose prefix already matches
            tail_fits
            and data[:length] == streamed[:length]
            and reencode(config_path, start, end, None) == data
        ):
            return True
    return False


_MAX_FLUSH = 16384  # bytes a Pipeline.finish() may add (resampler/encoder tail), generous


def reencode(
    config_path: Path,
    start: int,
    end: int | None,
    length: int | None,
    ends: list[tuple[int, int]] | None = None,
) -> bytes:
    """The pipeline's output for WAV frames from `start`: up to frame `end` plus the final
    flush (a clean close), or the first `length` bytes of the streaming output (a recording
    cut short by a kill, which never ran the flush). `ends` collects (end frame, length)
    after each chunk."""
    cfg = load_config(config_path)
    assert cfg.audio.wav_path is not None
    engine = make_engine(cfg.vad.engine, cfg.vad)
    source = WavSource(cfg.audio.wav_path, speed=0, period_ms=cfg.audio.period_ms)
    source.start()
    pipeline = Pipeline(source.format, cfg.audio, cfg.vad, cfg.encoding, engine=engine)
    out = bytearray()
    try:
        while length is None or len(out) < length:
            item = source.read(1.0)
            if not isinstance(item, Frames) or (end is not None and item.start_frame >= end):
                break
            if item.start_frame >= start:
                out += pipeline.process(item).encoded
                if ends is not None:
                    ends.append((item.start_frame + item.count, len(out)))
        if end is not None:
            out += pipeline.finish().encoded
    finally:
        source.stop()
    return bytes(out if length is None else out[:length])


def _diff(rec: DeviceRecording, got: bytes) -> str:
    want = rec.truth or b""
    first = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None)
    at = first if first is not None else min(len(want), len(got))
    return (
        f"{rec.rid} ({rec.how}, seq {rec.seq}): service holds {len(got)} bytes, device "
        f"{len(want)}, first difference at {at}"
    )
