"""Seeded chaos trials of delivery: random fault schedules, then byte-for-byte comparison.

Each trial (one seed) records a few encounters of known PCM into a fresh spool while the
delivery engine streams them to a fresh emulator through TCP fault proxies, and meanwhile
applies a random schedule of: network cuts, resets and black holes, emulator restarts,
injected 500/503/429/401 answers (gRPC and REST), the service forgetting a recording, and
delivery restarts. Then the network heals and the trial checks the invariant: every
recording's bytes on the service equal the bytes written, no duplicate recording, one
StartProcessing per encounter, spool space reclaimed.

    python -m tests.chaos.trials --n 500 --seed 7       # prints "N passed, M failed"
    make chaos N=500 SEED=7

The device side sits behind `Target` (today `InProcessTarget`: the engine in this process).
A later `DaemonTarget` can run `edge-recorder run` as a subprocess and SIGKILL it: the
schedule and the checks do not change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devtools.emulators.aas.app import Emulator
from devtools.emulators.aas.settings import EmulatorSettings
from tests.chaos.rig import Recording, Rig
from tests.support.emulator import EmulatorHandle

FAULTS = (
    "cut",
    "reset",
    "blackhole",
    "restart_emulator",
    "restart_delivery",
    "grpc_500",
    "grpc_429",
    "rest_503",
    "rest_429",
    "grpc_401",
    "rest_401",
    "forget",
    "forget_closed",
)
TRIAL_UPLINK: dict[str, Any] = {"request_timeout_s": 1.0}


@dataclass
class Step:
    at_chunk: int  # applied before writing this chunk (counted over the whole trial)
    fault: str
    heal_after: int  # chunks until the network heals (network faults)


@dataclass
class Plan:
    seed: int
    layout: list[list[int]]  # per encounter, chunks per recording
    tails: list[list[int]] = field(default_factory=list)  # extra bytes closing each recording
    steps: list[Step] = field(default_factory=list)

    @property
    def total_chunks(self) -> int:
        return sum(sum(enc) for enc in self.layout)


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    layout = [
        [rng.randint(3, 25) for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 3))
    ]
    # Capture's recordings end at any sample, not on a chunk boundary: a random even tail per
    # recording (which also lets StartProcessing's byte total single out a lost recording).
    tails = [[2 * rng.randint(1, 1000) for _ in enc] for enc in layout]
    plan = Plan(seed, layout, tails)
    for _ in range(rng.randint(1, 4)):
        plan.steps.append(
            Step(rng.randrange(plan.total_chunks), rng.choice(FAULTS), rng.randint(1, 12))
        )
    plan.steps.sort(key=lambda s: s.at_chunk)
    return plan


class Target(Protocol):
    """The device under test: capture into the spool, delivery running or not."""

    rig: Rig

    async def start_delivery(self) -> None: ...

    async def stop_delivery(self) -> None: ...


class InProcessTarget:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    async def start_delivery(self) -> None:
        await self.rig.start_engine()

    async def stop_delivery(self) -> None:
        await self.rig.stop_engine()


@dataclass
class Outcome:
    seed: int
    ok: bool
    problems: list[str]
    seconds: float
    plan: Plan


async def _apply(step: Step, target: Target, current: Recording | None) -> None:
    rig = target.rig
    kind = step.fault
    if kind in ("cut", "reset", "blackhole"):
        rig.network(kind)
    elif kind == "restart_emulator":
        await rig.emu.restart()
    elif kind == "restart_delivery":
        await target.stop_delivery()
        await target.start_delivery()
    elif kind in ("forget", "forget_closed"):
        # The service expires a recording while the device is offline: the one being captured,
        # or one it had already confirmed and closed (of any encounter not yet handed to
        # processing), which the device can only notice in StartProcessing's answer.
        rig.network("cut")
        candidates = [r for r in rig.recordings if rig.processing_calls[r.cid] == 0]
        if kind == "forget_closed":
            candidates = [r for r in candidates if r.closed]
        if candidates:
            await rig.forget(candidates[step.heal_after % len(candidates)])
    else:
        where, status = kind.split("_")
        await rig.emu.add_fault(kind="fail", target=where, status=int(status), count=2)


async def run_plan(plan: Plan, workdir: Path, timeout_s: float = 60.0) -> Outcome:
    started = time.monotonic()
    emulator = Emulator(
        EmulatorSettings(data_dir=workdir / "emulator", host="127.0.0.1", grpc_port=0, http_port=0)
    )
    await emulator.start()
    emu = EmulatorHandle(emulator)
    rig = await Rig.create(emu, workdir / "device", **TRIAL_UPLINK)
    target = InProcessTarget(rig)
    problems: list[str] = []
    try:
        await target.start_delivery()
        steps = list(plan.steps)
        heal_at: int | None = None
        chunk = 0
        current: Recording | None = None
        for per_recording, tails in zip(plan.layout, plan.tails, strict=True):
            cid: str | None = None
            for n_chunks, tail in zip(per_recording, tails, strict=True):
                current = rig.begin(cid)
                cid = current.cid
                for _ in range(n_chunks):
                    while steps and steps[0].at_chunk <= chunk:
                        step = steps.pop(0)
                        await _apply(step, target, current)
                        heal_at = chunk + step.heal_after
                    if heal_at is not None and chunk >= heal_at:
                        rig.network("pass")
                        heal_at = None
                    await rig.play(current, 1, interval_s=0.005)
                    chunk += 1
                current.write(tail)
                current.close()
                rig.wake()
            assert cid is not None
            rig.end(cid)
        rig.network("pass")
        rig.wake()
        try:
            await rig.wait_processed(timeout_s)
        except AssertionError as exc:
            problems.append(str(exc))
        problems += await rig.verify()
    finally:
        await rig.close()
        await emu.emulator.stop()  # the current one: a restart replaced the first
    return Outcome(plan.seed, not problems, problems, time.monotonic() - started, plan)


async def run_seed(seed: int, timeout_s: float = 60.0) -> Outcome:
    plan = make_plan(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"chaos-{seed}-") as tmp:
        try:
            async with asyncio.timeout(timeout_s * 2):  # a hang is a failed trial, not a stop
                return await run_plan(plan, Path(tmp), timeout_s)
        except TimeoutError:
            problem = f"trial hung for {timeout_s * 2:g}s (delivery did not stop or finish)"
            return Outcome(seed, False, [problem], time.monotonic() - started, plan)
        except Exception as exc:  # a crash of the trial itself is a failed trial, not a stop
            problem = f"trial raised {type(exc).__name__}: {exc}"
            return Outcome(seed, False, [problem], time.monotonic() - started, plan)


def trial_seeds(base: int, n: int) -> list[int]:
    rng = random.Random(base)
    return [rng.randrange(2**31) for _ in range(n)]


async def _main(n: int, seed: int, verbose: bool) -> int:
    passed = failed = 0
    for trial_seed in trial_seeds(seed, n):
        outcome = await run_seed(trial_seed)
        if outcome.ok:
            passed += 1
        else:
            failed += 1
            faults = ", ".join(f"{s.fault}@{s.at_chunk}" for s in outcome.plan.steps)
            print(f"FAIL seed={trial_seed} faults=[{faults}]", file=sys.stderr)
            for problem in outcome.problems:
                print(f"    {problem}", file=sys.stderr)
        if verbose:
            print(f"seed={trial_seed} ok={outcome.ok} {outcome.seconds:.1f}s", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of trials")
    parser.add_argument("--seed", type=int, default=1, help="seed of the trial seeds")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="SIGKILL trials of the real daemon process (tests/chaos/daemon_trials.py)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        if args.daemon:
            from tests.chaos.daemon_trials import main_daemon

            return asyncio.run(main_daemon(trial_seeds(args.seed, args.n), args.verbose))
        return asyncio.run(_main(args.n, args.seed, args.verbose))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
