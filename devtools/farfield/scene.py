"""One evaluation scene: two talkers taking turns in a simulated exam room, heard by a
profile's array, with the noise kept apart from the speech so any SNR can be mixed exactly.

A scene depends on (profile, RT60, seconds, seed) only; the SNR is applied afterwards by
`mix`, so the four SNRs of a room share one (slow) image-method simulation. Scenes are cached
as .npz files keyed by a hash of those parameters and `SCENE_VERSION`: the first bench run
simulates, later runs load.

The reference is the anechoic sum of both talkers as it arrives at the array centre (direct
path only, same propagation delay and 1/r level as in the room): what a perfect far-field
front end could deliver without knowing who talks. `dry` keeps each talker's own speech too.
A small array cannot remove much late reverberation, which caps SI-SDR against that reference
(about -3 dB at RT60 0.5 s even without noise); `early` (direct path + the first 50 ms of
reflections, which listeners and recognisers fuse with the direct sound) is kept as a secondary
reference so noise reduction is also visible on its own.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import _audio
from devtools.farfield import geometry, noise

F32 = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
RATE = _audio.RATE
SCENE_VERSION = 2  # bump when the generation changes: old cache entries are then ignored
POINT_NOISE_DB = -6.0  # the vent fan's power relative to the diffuse noise, at the reference mic
SPEECH_LEVEL_DBFS = -26.0  # active speech level at the reference mic after mixing (ITU-T P.56)
REFERENCE_MIC = 0  # the SNR is defined at the profile's first channel
CACHE_ENV = "EDGE_RECORDER_FARFIELD_CACHE"
EARLY_MS = 50.0  # early reflections kept in the secondary reference (speech clarity's C50)
VOICES = ("en-us", "en-gb+f3")  # clinician, patient: different voices, so turns are audible


@dataclass(frozen=True)
class SceneSpec:
    """What a scene depends on (the cache key)."""

    profile: str
    rt60_s: float
    seconds: float
    seed: int

    def key(self) -> str:
        text = json.dumps({**self.__dict__, "v": SCENE_VERSION, "room": geometry.ROOM_M})
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Scene:
    """Separate parts of a scene, all at `RATE`, (M, N) per mic or (N,) mono."""

    spec: SceneSpec
    speech: F32  # (M, N) both talkers, reverberant, at each mic
    noise: F32  # (M, N) diffuse + fan, unit power at the reference mic
    reference: F32  # (N,) anechoic sum of both talkers at the array centre
    early: F32  # (N,) the same with the room's first EARLY_MS of reflections (secondary)
    dry: F32  # (2, N) clinician's and patient's dry speech (as spoken, before the room)
    labels: Bools  # 10 ms speech activity of `reference`
    positions_m: npt.NDArray[np.float64]  # (M, 3) in the board's frame, as the profile gives

    @property
    def channels(self) -> int:
        return int(self.speech.shape[0])


@functools.lru_cache(maxsize=8)
def conversation(seconds: float, seed: int) -> tuple[F32, F32]:
    """(clinician, patient) dry tracks: they take turns, 0.5-2.5 s apart, never overlapping,
    sentences and speeds drawn per seed (espeak-ng via benchmarks/_audio.py)."""
    rng = np.random.default_rng([seed, 7])
    n = int(seconds * RATE)
    tracks = np.zeros((2, n), np.float32)
    at = int(rng.uniform(0.3, 1.0) * RATE)
    who = 0
    while at < n:
        text = _audio.SENTENCES[int(rng.integers(len(_audio.SENTENCES)))]
        speech = _audio.speak(text, VOICES[who], speed=int(rng.integers(150, 180)))
        speech = speech * np.float32(rng.uniform(0.7, 1.0))
        end = min(n, at + speech.size)
        tracks[who, at:end] = speech[: end - at]
        at = end + int(rng.uniform(0.5, 2.5) * RATE)
        who = 1 - who
    return tracks[0], tracks[1]


def _pra() -> Any:
    """pyroomacoustics, untyped: imported by name so mypy treats it as Any either way."""
    return importlib.import_module("pyroomacoustics")


def _room(rt60_s: float, max_order: int | None = None) -> Any:
    pra = _pra()
    absorption, order = pra.inverse_sabine(rt60_s, list(geometry.ROOM_M))
    return pra.ShoeBox(
        list(geometry.ROOM_M),
        fs=RATE,
        materials=pra.Material(absorption),
        max_order=order if max_order is None else max_order,
    )


def _simulate(
    room: Any, mics_m: npt.NDArray[np.float64], sources: list[Any], n: int
) -> tuple[F32, list[list[Any]]]:
    """(sources, M, n) images of each source at each mic (trimmed to the scene length), and the
    room impulse responses (`rir[mic][source]`)."""
    for position, signal in sources:
        room.add_source(list(position), signal=np.asarray(signal, np.float64))
    room.add_microphone_array(np.asarray(mics_m, np.float64).T)
    premix = room.simulate(return_premix=True)
    out = np.zeros((len(sources), mics_m.shape[0], n), np.float32)
    length = min(n, premix.shape[2])
    out[:, :, :length] = premix[:, :, :length]
    return out, room.rir


def _early(rir: Any, distance_m: float, dry: F32) -> F32:
    """`dry` through the first `EARLY_MS` of `rir` after the direct path (faded out over 5 ms):
    the direct sound plus the early reflections that the ear fuses with it."""
    pra = _pra()
    direct = pra.constants.get("frac_delay_length") // 2 + distance_m * RATE / pra.constants.get(
        "c"
    )
    end = int(direct + EARLY_MS * RATE / 1000)
    taps = np.asarray(rir, np.float64)[:end].copy()
    fade = min(taps.size, RATE // 200)
    taps[taps.size - fade :] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
    size = 1 << (dry.size + taps.size - 2).bit_length()
    wet = np.fft.irfft(np.fft.rfft(dry.astype(np.float64), size) * np.fft.rfft(taps, size), size)
    return np.asarray(wet[: dry.size], np.float32)


def build(
    spec: SceneSpec, talkers_at: tuple[geometry.Talker, geometry.Talker] | None = None
) -> Scene:
    """Simulate a scene (no cache): talkers and fan through the room, diffuse noise on top.
    `talkers_at` replaces the seed's talker places (devtools/farfield/calibrated.py moves them;
    such a scene must not be cached under the spec's key)."""
    n = int(spec.seconds * RATE)
    board = geometry.board_positions_m(spec.profile)
    m = board.shape[0]
    centre = np.asarray([geometry.DEVICE_M])
    mics = np.vstack([geometry.board_to_room(board), centre])  # + a virtual mic at the centre
    clinician, patient = talkers_at or geometry.place_talkers(spec.seed)
    dry = np.stack(conversation(spec.seconds, spec.seed))
    rng = np.random.default_rng([spec.seed, 11])
    fan = noise.fan(n, RATE, rng)
    talkers = [(clinician.position(), dry[0]), (patient.position(), dry[1])]
    images, rir = _simulate(_room(spec.rt60_s), mics, [*talkers, (geometry.VENT_M, fan)], n)
    direct, _ = _simulate(_room(spec.rt60_s, max_order=0), centre, talkers, n)
    reference = direct[:, 0].sum(axis=0)
    early = sum(
        _early(rir[m][k], float(np.linalg.norm(np.subtract(position, centre[0]))), dry[k])
        for k, (position, _) in enumerate(talkers)
    )
    fan_image = images[2, :m] / np.sqrt(np.mean(images[2, REFERENCE_MIC].astype(np.float64) ** 2))
    hvac = noise.diffuse(board, n, RATE, rng)
    noise_total = hvac + fan_image * np.float32(10 ** (POINT_NOISE_DB / 20))
    noise_total /= np.sqrt(np.mean(noise_total[REFERENCE_MIC].astype(np.float64) ** 2))
    return Scene(
        spec=spec,
        speech=(images[0, :m] + images[1, :m]).astype(np.float32),
        noise=noise_total.astype(np.float32),
        reference=reference.astype(np.float32),
        early=np.asarray(early, np.float32),
        dry=dry.astype(np.float32),
        labels=_audio.labels_of(reference.astype(np.float32)),
        positions_m=board,
    )


def cache_dir() -> Path:
    """$EDGE_RECORDER_FARFIELD_CACHE, else <tmp>/edge-recorder-farfield."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "edge-recorder-farfield")


def load(spec: SceneSpec, directory: Path | None = None) -> Scene:
    """The scene from the cache, simulated and stored on a miss (written atomically, so two
    runs at once never read half a file)."""
    directory = directory or cache_dir()
    path = directory / f"{spec.profile}-rt{spec.rt60_s:g}-{spec.key()}.npz"
    if path.exists():
        with np.load(path) as data:
            return Scene(
                spec=spec,
                speech=data["speech"],
                noise=data["noise"],
                reference=data["reference"],
                early=data["early"],
                dry=data["dry"],
                labels=data["labels"],
                positions_m=data["positions_m"],
            )
    scene = build(spec)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as tmp:
        np.savez(
            tmp,
            speech=scene.speech,
            noise=scene.noise,
            reference=scene.reference,
            early=scene.early,
            dry=scene.dry,
            labels=scene.labels,
            positions_m=scene.positions_m,
        )
    Path(tmp.name).replace(path)
    return scene


def active_power(signal: F32, labels: Bools) -> float:
    """Mean power over the 10 ms frames labelled speech (the "active speech" of P.56, with the
    labels of the dry reference, so every channel and candidate is measured on the same frames)."""
    frames = min(labels.size, signal.size // _audio.LABEL_HOP)
    active = np.repeat(labels[:frames], _audio.LABEL_HOP)
    return float(np.mean(signal[: active.size][active].astype(np.float64) ** 2))


def mix(scene: Scene, snr_db: float) -> F32:
    """(N, M) float32 capture at `snr_db`: active-speech power of the reverberant speech over the
    noise's power (whole scene), both at the reference mic (channel 0); then one gain on every
    channel puts the active speech at -26 dBFS there, as a well-set capture gain would."""
    speech_power = active_power(scene.speech[REFERENCE_MIC], scene.labels)
    noise_power = float(np.mean(scene.noise[REFERENCE_MIC].astype(np.float64) ** 2))
    noise_gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    level = 10 ** (SPEECH_LEVEL_DBFS / 20) / np.sqrt(speech_power)
    mixed = (scene.speech + scene.noise * np.float32(noise_gain)) * np.float32(level)
    return np.ascontiguousarray(mixed.T, dtype=np.float32)
