"""Array processing on simulated free-field arrays: direction finding and SNR gains.

The simulator is deliberately simple (plane waves, exact fractional delays by phase shifts,
independent sensor noise): what is measured is the steering, the tracking and the
interference rejection, not room acoustics.
"""

from __future__ import annotations

import math
import tomllib

import numpy as np
import numpy.typing as npt
import pytest

from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array.beamformers import DasProcessor
from edge_recorder.audio.array.doa import SpeechGate
from edge_recorder.audio.array.geometry import angle_deg, direction
from edge_recorder.audio.array.postfilter import GAIN_FLOOR, decision_directed_gains
from edge_recorder.config.hardware import PACKAGE_PROFILES

RATE = 16000
F64 = npt.NDArray[np.float64]


def geometry(profile: str) -> F64:
    """Mic positions (metres) as the shipped hardware profile gives them."""
    with (PACKAGE_PROFILES / f"{profile}.toml").open("rb") as f:
        return np.array(tomllib.load(f)["audio"]["mic_positions_mm"]) / 1000.0


SIX = geometry("respeaker-6mic-array")
FOUR = geometry("respeaker-4mic-array")


def speechlike(n: int, rng: np.random.Generator, rate: int = RATE) -> F64:
    """Unit-RMS noise with speech's spectral tilt (100 Hz-6 kHz), on for ~60 % of 100 ms
    slots with soft edges: talk spurts and pauses, which the gates must tell apart."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    tilt = np.where((f > 100) & (f < 6000), 1 / np.sqrt(np.maximum(f, 100) / 100), 0)
    x = np.fft.irfft(spectrum * tilt, n)
    slot = rate // 10
    envelope = np.repeat(rng.random(n // slot + 1) < 0.6, slot)[:n].astype(float)
    ramp = np.hanning(rate // 50)
    envelope = np.convolve(envelope, ramp / ramp.sum(), "same")
    x *= envelope
    return x / math.sqrt(float(np.mean(x**2)))


def propagate(x: F64, positions: F64, u: F64, rate: int = RATE) -> F64:
    """(n, M): a plane wave from direction u at each mic (exact fractional delays)."""
    n = x.size
    t = -(positions @ u) / 343.0  # closer to the source (p·u > 0): earlier
    f = np.fft.rfftfreq(n, 1 / rate)
    spectra = np.fft.rfft(x)[:, None] * np.exp(-2j * np.pi * f[:, None] * t[None, :])
    return np.fft.irfft(spectra, n, axis=0)


def steered(positions: F64, mix: npt.NDArray[np.float32]) -> DasProcessor:
    processor = make_array_processor("das", positions)
    assert isinstance(processor, DasProcessor)
    processor.process(mix)
    return processor


@pytest.mark.parametrize("name", ["six", "four"])
@pytest.mark.parametrize(("azimuth", "elevation"), [(33, 27), (147, 12), (251, 38), (318, 52)])
def test_the_beam_is_steered_within_10_degrees_of_the_talker(
    name: str, azimuth: float, elevation: float
) -> None:
    positions = SIX if name == "six" else FOUR
    rng = np.random.default_rng(int(azimuth))
    u = direction(azimuth, elevation)
    talker = propagate(speechlike(6 * RATE, rng), positions, u) * 0.05
    mix = (talker + 0.01 * rng.standard_normal(talker.shape)).astype(np.float32)
    tracker = steered(positions, mix).tracker
    assert tracker.steered
    assert angle_deg(tracker.direction, u) <= 10.0


def test_the_beam_follows_a_new_talker_but_not_a_door_slam() -> None:
    rng = np.random.default_rng(7)
    first, second, slam = direction(60, 20), direction(240, 30), direction(150, 10)
    n = 5 * RATE
    a = propagate(speechlike(n, rng), SIX, first) * 0.05
    b = propagate(speechlike(n, rng), SIX, second) * 0.05
    mix_a = a + 0.005 * rng.standard_normal(a.shape)
    bang = np.zeros(n)
    bang[8 * 2048 : 9 * 2048] = rng.standard_normal(2048)  # 128 ms: one piece of a 256 ms window
    mix_a += propagate(bang, SIX, slam) * 0.3
    processor = make_array_processor("das", SIX)
    assert isinstance(processor, DasProcessor)
    errors = []
    for start in range(0, n, 2048):  # one batch at a time: watch every beam move
        processor.process(mix_a[start : start + 2048].astype(np.float32))
        if processor.tracker.steered:
            errors.append(angle_deg(processor.tracker.direction, first))
    assert len(errors) > 30
    assert max(errors) <= 10.0  # locked on the talker, never swung to the slam
    processor.process((b + 0.005 * rng.standard_normal(b.shape)).astype(np.float32))
    assert angle_deg(processor.tracker.direction, second) <= 10.0


def test_noise_alone_does_not_steer_the_beam() -> None:
    rng = np.random.default_rng(3)
    noise = (0.01 * rng.standard_normal((5 * RATE, 6))).astype(np.float32)
    tracker = steered(SIX, noise).tracker
    assert not tracker.steered
    assert tracker.direction.tolist() == [0.0, 0.0, 1.0]  # broadside: the plain average


def beam_parts(kind: str, positions: F64, target: F64, noise: F64) -> tuple[F64, F64]:
    """What the processor made of the target and of the noise, adapting on target + noise:
    the same (time-varying) weights are applied to each part separately."""
    processor = make_array_processor(kind, positions)
    stack = np.stack([target + noise, target, noise]).astype(np.float32)
    if kind == "average":
        out = np.stack([processor.process(part) for part in stack])
    else:
        out = processor.process_stack(stack)  # type: ignore[attr-defined]
    settled = slice(2 * RATE + processor.delay_samples, None)
    return out[1, settled].astype(np.float64), out[2, settled].astype(np.float64)


def energy_db(x: F64) -> float:
    return 10 * math.log10(float(np.sum(x**2)))


def output_snr(kind: str, positions: F64, target: F64, noise: F64) -> float:
    talker, rest = beam_parts(kind, positions, target, noise)
    return energy_db(talker) - energy_db(rest)


def interfered(positions: F64) -> tuple[F64, F64]:
    """A talker at (33°, 27°); a steady noise source (a fan) at (210°, 12°) and sensor noise."""
    rng = np.random.default_rng(11)
    n = 12 * RATE
    target = propagate(speechlike(n, rng), positions, direction(33, 27)) * 0.05
    interferer = propagate(rng.standard_normal(n), positions, direction(210, 12)) * 0.03
    return target, interferer + 0.005 * rng.standard_normal(target.shape)


@pytest.mark.parametrize("name", ["six", "four"])
def test_das_and_mvdr_beat_the_average_against_a_point_interferer(name: str) -> None:
    positions = SIX if name == "six" else FOUR
    target, noise = interfered(positions)
    average = output_snr("average", positions, target, noise)
    das = output_snr("das", positions, target, noise)
    mvdr = output_snr("mvdr", positions, target, noise)
    assert das - average >= 1.0  # measured +1.7 (six), +2.4 (four)
    assert mvdr - average >= 8.0  # measured +11.2, +10.7


@pytest.mark.parametrize("name", ["six", "four"])
def test_mvdr_does_not_cancel_the_talker_in_uncorrelated_noise(name: str) -> None:
    """With only sensor noise the ideal MVDR is delay-and-sum: the noise gate must keep the
    talker out of the noise covariance, or the beam would null the talker itself."""
    positions = SIX if name == "six" else FOUR
    target, _ = interfered(positions)
    noise = 0.02 * np.random.default_rng(12).standard_normal(target.shape)
    das = output_snr("das", positions, target, noise)
    mvdr = output_snr("mvdr", positions, target, noise)
    assert mvdr >= das - 1.0  # measured -0.3 dB (six and four)


def test_the_postfilter_removes_noise_without_eating_the_talker() -> None:
    target, noise = interfered(SIX)
    mvdr_talker, mvdr_rest = beam_parts("mvdr", SIX, target, noise)
    pf_talker, pf_rest = beam_parts("mvdr-postfilter", SIX, target, noise)
    gain = (energy_db(pf_talker) - energy_db(pf_rest)) - (
        energy_db(mvdr_talker) - energy_db(mvdr_rest)
    )
    assert gain >= 2.0  # measured +3.6 dB (+4.2 with the noise tracked on the output)
    assert energy_db(pf_talker) - energy_db(mvdr_talker) >= -1.0  # measured -0.06 dB


def test_in_a_pause_the_postfilter_takes_the_noise_down_to_its_floor() -> None:
    """Against the beam's known output noise (wᴴRw) a pause is all noise: nearly every bin
    sits at the -12 dB floor, and never below it."""
    target, noise = interfered(SIX)
    x = target + noise
    x[8 * RATE :] = noise[8 * RATE :]  # the talker stops; 4 s of the fan and the mics' hiss
    pause = {}
    for kind in ("mvdr", "mvdr-postfilter"):
        processor = make_array_processor(kind, SIX)
        out = processor.process(x.astype(np.float32)).astype(np.float64)
        pause[kind] = energy_db(out[9 * RATE + processor.delay_samples :])
    drop = pause["mvdr-postfilter"] - pause["mvdr"]
    assert 20 * math.log10(GAIN_FLOOR) - 0.5 <= drop <= -8.0, drop  # measured -10.7 dB


def test_digital_silence_does_not_blind_the_noise_gate() -> None:
    """A lost-frames gap (zeros) must not drag the noise floor to nothing: the floor only
    rises ~5 dB/s, so every frame after it would look like speech for half a minute."""
    rng = np.random.default_rng(4)
    band = np.ones(257, bool)

    def batch(scale: float) -> npt.NDArray[np.complex128]:
        return np.fft.rfft(rng.standard_normal((6, 8, 512)) * scale, axis=-1)

    gate = SpeechGate(band)
    for _ in range(5):
        gate.update(batch(0.01))
    floor = gate.floor
    speech, noise = gate.update(batch(0.0))
    assert not speech.any() and not noise.any()  # silence is neither
    assert gate.floor == floor
    speech, noise = gate.update(batch(0.01))
    assert noise.sum() >= 4 and not speech.any()


def test_the_decision_directed_gain_floors_noise_and_passes_strong_speech() -> None:
    """The post-filters' gain step: noise at its known power goes to the floor, a bin 20 dB
    over it passes nearly whole, the gain never leaves [floor, 1), and the smoothing carries
    a frame's clean speech into the next frame's gain (the tail of a word is kept)."""
    inverse = np.full(4, 0.5)  # noise power 2
    quiet, clean = decision_directed_gains(np.full((1, 4), 2.0), inverse, np.zeros(4))
    assert np.allclose(quiet, GAIN_FLOOR) and np.allclose(clean, GAIN_FLOOR**2 * 2.0)
    word = np.array([[200.0] * 4, [200.0] * 4, [2.0] * 4])  # two loud frames, then quiet
    gains, clean = decision_directed_gains(word, inverse, np.zeros(4), 0.9)
    assert np.all(gains[1] > 0.98) and np.all(gains[1] < 1.0)
    assert np.all(gains[2] > 0.85)  # a-priori SNR ~ 0.9 x 100 carried from frame 1
    assert np.allclose(clean, gains[2] ** 2 * 2.0)
    rng = np.random.default_rng(3)
    power = rng.exponential(5.0, (50, 100))
    gains, _ = decision_directed_gains(power, np.ones(100), rng.exponential(5.0, 100))
    assert np.all(gains >= GAIN_FLOOR) and np.all(gains < 1.0)
    # frame by frame or all at once: the same gains
    one_by_one, carry = [], rng.exponential(5.0, 100)
    start = carry.copy()
    for b in range(50):
        g, carry = decision_directed_gains(power[b : b + 1], np.ones(100), carry)
        one_by_one.append(g[0])
    together, last = decision_directed_gains(power, np.ones(100), start)
    assert np.array_equal(np.stack(one_by_one), together) and np.array_equal(carry, last)
