"""Seeded chaos trials that SIGKILL the real daemon (`python -m edge_recorder run`), and
no-kill trials whose stored audio must equal the source WAV sample for sample.

A trial (one seed) is a few phases separated by SIGKILL + restart. In each phase, at seeded
instants: `ctl start` an encounter, pause/resume it (a new recording), stop it, cut / reset /
black-hole the network (sometimes still down at the kill, healed after the restart), make the
emulator fail the next N gRPC or REST calls with 500/429/401, or forget the open recording
while offline. The first phase always ends in a kill, while recording or during delivery
right after the stop. At the end the network heals, an open encounter is stopped, and the
trial waits (deadline) until the service holds everything, then checks the invariant of
`daemon_rig` (every recording the device made: the service's bytes equal the device's).

    python -m tests.chaos.trials --daemon --n 20 --seed 7     # prints "N passed, M failed"
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.emulators.aas.app import Emulator
from devtools.emulators.aas.settings import EmulatorSettings
from tests.chaos.daemon_rig import DaemonRig, make_speech_wav, make_speech_wav16
from tests.support.emulator import EmulatorHandle

NETWORK = ("cut", "reset", "blackhole")
FAILS = ("grpc:500", "grpc:429", "grpc:401", "rest:500", "rest:429", "rest:401")


@dataclass
class DaemonPlan:
    seed: int
    phases: list[list[tuple[float, str]]] = field(default_factory=list)  # (t, action)

    def describe(self) -> str:
        return " | ".join(", ".join(f"{a}@{t:.2f}" for t, a in phase) for phase in self.phases)


def _encounter(rng: random.Random, t0: float) -> tuple[list[tuple[float, str]], float]:
    """start, maybe pause/resume (a second recording), stop; returns events and stop time."""
    stop = t0 + rng.uniform(0.6, 1.8)
    events = [(t0, "start")]
    if rng.random() < 0.4:
        pause = rng.uniform(t0 + 0.2, stop - 0.3)
        events += [(pause, "pause"), (pause + 0.15, "resume")]
    events.append((stop, "stop"))
    return events, stop


def make_daemon_plan(seed: int) -> DaemonPlan:
    rng = random.Random(seed)
    plan = DaemonPlan(seed)
    # Phase 1: an encounter, killed while recording or while delivering right after the stop.
    events, stop = _encounter(rng, 0.0)
    kill = rng.uniform(0.15, stop) if rng.random() < 0.7 else stop + rng.uniform(0.0, 0.5)
    phase = [e for e in events if e[0] < kill]
    post: list[tuple[float, str]] = []
    if rng.random() < 0.6:
        mode, down = rng.choice(NETWORK), rng.uniform(0.0, kill)
        phase.append((down, f"net:{mode}"))
        if rng.random() < 0.3:
            phase.append((down + 0.01, "forget"))
        if rng.random() < 0.5:
            phase.append((rng.uniform(down, kill), "net:pass"))
        else:  # still down at the kill, heals after the restart
            post.append((rng.uniform(0.0, 0.6), "net:pass"))
    if rng.random() < 0.5:
        fault = f"fail:{rng.choice(FAILS)}:{rng.randint(1, 3)}"
        (phase if rng.random() < 0.5 else post).append((rng.uniform(0.0, kill), fault))
    phase.append((kill, "kill"))
    plan.phases.append(sorted(phase))
    # Phase 2 (after the restart): maybe a new encounter, sometimes killed again.
    if rng.random() < 0.6:
        events, stop = _encounter(rng, rng.uniform(0.0, 0.3))
        if rng.random() < 0.3:
            kill = rng.uniform(events[0][0] + 0.1, stop + 0.3)
            post += [e for e in events if e[0] < kill] + [(kill, "kill")]
            plan.phases.append(sorted(post))
            post = []
        else:
            post += events
    plan.phases.append(sorted(post))
    return plan


def make_nokill_plan(seed: int) -> DaemonPlan:
    """No SIGKILL: one or two encounters (sometimes paused) under network faults and injected
    errors, the network healed before the end. Run with a 16 kHz mono source (`source_exact`),
    so the verdict also compares every recording with the source WAV sample for sample."""
    rng = random.Random(seed)
    phase: list[tuple[float, str]] = []
    t = 0.0
    for _ in range(rng.randint(1, 2)):
        events, stop = _encounter(rng, t)
        phase += events
        down = rng.uniform(t, stop)
        phase.append((down, f"net:{rng.choice(NETWORK)}"))
        if rng.random() < 0.3:
            phase.append((down + 0.01, "forget"))
        phase.append((rng.uniform(down, stop + 0.4), "net:pass"))
        if rng.random() < 0.5:
            phase.append((rng.uniform(t, stop), f"fail:{rng.choice(FAILS)}:{rng.randint(1, 3)}"))
        t = stop + rng.uniform(0.1, 0.5)
    return DaemonPlan(seed, [sorted(phase)])


def has_kill(plan: DaemonPlan) -> bool:
    return any(action == "kill" for phase in plan.phases for _, action in phase)


async def _act(rig: DaemonRig, action: str) -> None:
    kind, _, arg = action.partition(":")
    if kind == "start":
        await rig.begin_encounter()
    elif kind in ("pause", "resume", "stop"):
        if rig.open_cid is not None:
            await rig.command(kind)
            if kind == "stop":
                rig.open_cid = None
    elif kind == "net":
        rig.network(arg)
    elif kind == "forget":
        await rig.forget_current()
    elif kind == "fail":
        target, status, count = arg.split(":")
        await rig.emu.add_fault(kind="fail", target=target, status=int(status), count=int(count))
    elif kind == "kill":
        await rig.kill_and_restart()
    else:
        raise ValueError(action)


BeforeVerify = Callable[[DaemonRig], Awaitable[None]]


async def run_daemon_plan(
    plan: DaemonPlan,
    workdir: Path,
    wav: Path,
    deliver_timeout_s: float = 40.0,
    before_verify: BeforeVerify | None = None,
    census: dict[str, int] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """Run `plan`; the invariant's problems ([] = it holds). `before_verify` lets a test
    tamper with the service's copy to prove the verdict notices; `census` receives how many
    recordings of each kind (closed / crash-recovered / empty) the trial checked."""
    emulator = Emulator(
        EmulatorSettings(data_dir=workdir / "emulator", host="127.0.0.1", grpc_port=0, http_port=0)
    )
    await emulator.start()
    emu = EmulatorHandle(emulator)
    sock_dir = Path(tempfile.mkdtemp(prefix="er-c-"))  # sun_path is short; workdir may not be
    exact = not has_kill(plan)
    rig = DaemonRig(emu, workdir / "device", sock_dir, wav, source_exact=exact, overrides=overrides)
    (workdir / "device").mkdir(parents=True)
    try:
        await rig.start()
        for phase in plan.phases:
            began = time.monotonic()
            for at, action in phase:
                delay = began + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the plan's pacing, not synchronisation
                await _act(rig, action)
        rig.network("pass")
        if rig.open_cid is not None:
            await _act(rig, "stop")
        await rig.wait_delivered(deliver_timeout_s)
        await rig.daemon.stop()
        if before_verify is not None:
            await before_verify(rig)
        problems = await rig.verify()
        if census is not None:
            for kind, count in rig.kinds.items():
                census[kind] = census.get(kind, 0) + count
        return problems
    finally:
        await rig.stop()
        await emu.emulator.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@dataclass
class DaemonOutcome:
    seed: int
    ok: bool
    problems: list[str]
    seconds: float
    plan: DaemonPlan


async def run_daemon_seed(
    seed: int,
    wav: Path,
    timeout_s: float = 90.0,
    census: dict[str, int] | None = None,
    *,
    kill: bool = True,
) -> DaemonOutcome:
    """One trial; `kill=False` runs a no-kill plan (give it the 16 kHz `make_speech_wav16`)."""
    plan = make_daemon_plan(seed) if kill else make_nokill_plan(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"chaosd-{seed}-") as tmp:
        try:
            async with asyncio.timeout(timeout_s):  # a hang is a failed trial, not a stop
                problems = await run_daemon_plan(plan, Path(tmp), wav, census=census)
        except TimeoutError:
            problems = [f"trial hung for {timeout_s:g}s"]
        except Exception as exc:  # a crash of the trial itself is a failed trial, not a stop
            problems = [f"trial raised {type(exc).__name__}: {exc}"]
    return DaemonOutcome(seed, not problems, problems, time.monotonic() - started, plan)


async def main_daemon(seeds: list[int], verbose: bool) -> int:
    """Every fourth trial runs without a kill, against the 16 kHz source (sample-exact check)."""
    passed = failed = 0
    census: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="chaosd-wav-") as tmp:
        wav, wav16 = make_speech_wav(Path(tmp)), make_speech_wav16(Path(tmp))
        for index, seed in enumerate(seeds):
            kill = index % 4 != 3
            outcome = await run_daemon_seed(seed, wav if kill else wav16, census=census, kill=kill)
            if outcome.ok:
                passed += 1
            else:
                failed += 1
                print(f"FAIL seed={seed} plan=[{outcome.plan.describe()}]", file=sys.stderr)
                for problem in outcome.problems:
                    print(f"    {problem}", file=sys.stderr)
            if verbose:
                print(f"seed={seed} ok={outcome.ok} {outcome.seconds:.1f}s", file=sys.stderr)
    if verbose:
        print(f"recordings checked: {census}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
