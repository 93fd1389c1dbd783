"""A fixed-seed set of SIGKILL trials of the real daemon (see daemon_trials.py);
`python -m tests.chaos.trials --daemon --n N --seed S` runs more."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import soundfile

from edge_recorder.config.loader import load_config
from tests.chaos.daemon_rig import (
    DaemonRig,
    is_capture_output,
    make_speech_wav,
    make_speech_wav16,
    reencode,
)
from tests.chaos.daemon_trials import (
    has_kill,
    make_daemon_plan,
    make_nokill_plan,
    run_daemon_plan,
    run_daemon_seed,
)
from tests.chaos.trials import trial_seeds
from tests.integration.daemon.conftest import daemon_config, write_config

FIXED_SEEDS = trial_seeds(20261122, 7)  # a base whose 7 plans cover every fault kind

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def chaos_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav(tmp_path_factory.mktemp("chaos-speech"))


@pytest.mark.parametrize("seed", FIXED_SEEDS)
async def test_daemon_kill_trial_delivers_every_recording_exactly(
    seed: int, chaos_wav: Path
) -> None:
    outcome = await run_daemon_seed(seed, chaos_wav, timeout_s=90)
    assert outcome.ok, f"seed {seed} plan [{outcome.plan.describe()}]: " + "; ".join(
        outcome.problems
    )


NOKILL_SEEDS = trial_seeds(20261123, 3)


@pytest.fixture(scope="module")
def chaos_wav16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav16(tmp_path_factory.mktemp("chaos-speech16"))


@pytest.mark.parametrize("seed", NOKILL_SEEDS)
async def test_no_kill_trial_stores_the_source_wav_sample_for_sample(
    seed: int, chaos_wav16: Path
) -> None:
    """Network faults and injected errors but no kill: besides the device-truth check, every
    recording the service holds equals the 16 kHz source WAV's samples over its frames."""
    census: dict[str, int] = {}
    outcome = await run_daemon_seed(seed, chaos_wav16, timeout_s=90, census=census, kill=False)
    assert outcome.ok, f"seed {seed} plan [{outcome.plan.describe()}]: " + "; ".join(
        outcome.problems
    )
    assert census.get("closed", 0) >= 1  # the sample-exact comparison ran
    assert not has_kill(outcome.plan)


async def test_source_check_notices_a_pipeline_that_touches_samples(
    chaos_wav16: Path, tmp_path: Path
) -> None:
    """The sample-for-sample check is not vacuous: with DC removal on, the pipeline changes
    samples, and the source comparison (alone) reports it."""
    problems = await run_daemon_plan(
        make_nokill_plan(NOKILL_SEEDS[0]),
        tmp_path,
        chaos_wav16,
        overrides={"audio": {"dc_removal": True}},
    )
    assert problems and all("differ from the source WAV" in p for p in problems), problems


def test_fixed_set_kills_mid_recording_and_during_delivery() -> None:
    """The fixed set exercises what it claims: kills while recording and after a stop, and
    network faults down at the moment of a kill."""
    plans = [make_daemon_plan(seed) for seed in FIXED_SEEDS]
    first_phases = [dict((a, t) for t, a in plan.phases[0]) for plan in plans]
    assert any("stop" not in p for p in first_phases)  # killed mid-encounter
    assert any("stop" in p for p in first_phases)  # killed while delivering
    assert any(
        any(a.startswith("net:") and a != "net:pass" for a in p) and "net:pass" not in p
        for p in first_phases
    )  # the network still down at the kill
    text = " ".join(plan.describe() for plan in plans)
    for fault in ("forget", "blackhole", "cut", "reset", "fail:grpc", "fail:rest", "pause"):
        assert fault in text, fault
    assert any(len(plan.phases) > 2 for plan in plans)  # a second kill


async def test_verdict_notices_a_byte_the_service_got_wrong(
    chaos_wav: Path, tmp_path: Path
) -> None:
    """The check is not vacuous: flip one stored byte on the service, the trial fails."""

    async def corrupt(rig: DaemonRig) -> None:
        for cid in rig.encounters():
            session = await rig.emu.session(cid)
            for row in session["recordings"]:
                if row["bytes"]:
                    await asyncio.to_thread(_flip_middle_byte, Path(row["rawFile"]))
                    return
        raise AssertionError("nothing stored to corrupt")

    census: dict[str, int] = {}
    problems = await run_daemon_plan(
        make_daemon_plan(FIXED_SEEDS[0]), tmp_path, chaos_wav, before_verify=corrupt, census=census
    )
    assert any("first difference at" in p for p in problems), problems
    assert sum(census.values()) >= 1


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_crash_truth_accepts_capture_output_and_rejects_a_gap(
    chaos_wav: Path, tmp_path: Path
) -> None:
    """The crash-recovered check accepts exactly what capture can leave in the spool at a
    kill (a streaming prefix, or the output up to a frame plus the close's flush) and
    rejects the same audio with a gap or a repeated chunk."""
    sock = tmp_path / "s"
    sock.mkdir()
    config = write_config(tmp_path / "d.toml", daemon_config(None, tmp_path, sock, chaos_wav))
    period = soundfile.info(str(chaos_wav)).samplerate * load_config(config).audio.period_ms // 1000
    start = period  # capture blocks start on period boundaries
    ends: list[tuple[int, int]] = []
    streamed = reencode(config, start, None, 60000, ends)
    end, length = ends[len(ends) // 2]
    closed = reencode(config, start, end, None)
    assert len(closed) > length  # the flush adds a tail, so the second path is exercised
    assert is_capture_output(config, start, streamed[:41000])
    assert is_capture_output(config, start, closed)
    gap = streamed[:20000] + streamed[23200:41000]
    assert not is_capture_output(config, start, gap)
    repeat = streamed[:20000] + streamed[16800:41000]
    assert not is_capture_output(config, start, repeat)
    assert not is_capture_output(config, start + period, streamed[:41000])  # wrong start
