"""`edge-recorder devices`: the capture cards by name, what each can do, which hardware profile
matches it, and the GPIO pin factory gpiozero would use - the first command an installer runs.

Cards come from /proc/asound (names and indexes without opening anything), capabilities from
opening each capture PCM through alsaaudio in non-blocking mode (so a busy mic reports
"busy" instead of hanging), with /proc/asound/cardN/stream0 as a fallback for USB devices.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_recorder.commands._common import add_config_argument, config_path

if TYPE_CHECKING:
    from edge_recorder.config.model import AudioConfig

_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*?)\s+-\s+(.*)$")
# Tried in turn until the device accepts one; once open, the full capability space is read.
_PROBE_SETUPS = [
    (16000, 1, "S16_LE"),
    (48000, 2, "S16_LE"),
    (16000, 2, "S16_LE"),
    (16000, 6, "S16_LE"),
    (16000, 4, "S32_LE"),
    (16000, 8, "S32_LE"),
    (48000, 2, "S32_LE"),
    (44100, 2, "S16_LE"),
    (48000, 1, "S16_LE"),
]


@dataclass
class CapturePcm:
    device: int
    name: str
    pcm: str  # the name to put in audio.device
    channels: list[int] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    rates: str = ""
    error: str = ""


@dataclass
class Card:
    index: int
    id: str
    driver: str
    name: str
    longname: str = ""
    pcms: list[CapturePcm] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list capture cards by name, matching hardware profiles and the GPIO pin factory",
        description="List ALSA capture cards and PCMs by name with the channels, formats and "
        "rates each supports, mark the hardware profile that matches, and show the GPIO pin "
        "factory gpiozero would use. Works without a sound card.",
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-probe", action="store_true", help="do not open any PCM")
    parser.add_argument("--proc", type=Path, default=Path("/proc"), help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def read_cards(proc: Path) -> list[Card] | None:
    """Cards from /proc/asound/cards; None when ALSA has no /proc/asound at all."""
    cards_file = proc / "asound" / "cards"
    try:
        lines = cards_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    cards: list[Card] = []
    for line in lines:
        match = _CARD_LINE.match(line)
        if match:
            index, card_id, driver, name = match.groups()
            cards.append(Card(int(index), card_id, driver.strip(), name.strip()))
        elif cards and line.strip():
            cards[-1].longname = line.strip()
    for card in cards:
        card.pcms = _capture_pcms(proc / "asound" / f"card{card.index}", card.id)
    return cards


def _capture_pcms(card_dir: Path, card_id: str) -> list[CapturePcm]:
    pcms = []
    for pcm_dir in sorted(card_dir.glob("pcm*c")):
        number = int(re.sub(r"\D", "", pcm_dir.name) or 0)
        info = _key_values(pcm_dir / "info")
        pcm = CapturePcm(number, info.get("name", ""), f"plughw:CARD={card_id},DEV={number}")
        _from_stream_file(card_dir / "stream0", pcm)
        pcms.append(pcm)
    return pcms


def _key_values(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _from_stream_file(stream: Path, pcm: CapturePcm) -> None:
    """USB audio lists its capture altsettings in stream0 (readable even when busy)."""
    try:
        text = stream.read_text()
    except OSError:
        return
    capture = text.split("Capture:", 1)[1] if "Capture:" in text else ""
    formats = re.findall(r"Format:\s*(\S+)", capture)
    channels = [int(c) for c in re.findall(r"Channels:\s*(\d+)", capture)]
    rates = re.findall(r"Rates:\s*(.+)", capture)
    pcm.formats = sorted(set(formats))
    pcm.channels = sorted(set(channels))
    pcm.rates = "; ".join(sorted({r.strip() for r in rates}))


def probe_pcm(pcm: CapturePcm, device: str | None = None) -> None:
    """Fill channels/formats/rates by opening the PCM (hw:, no conversion) non-blocking."""
    import alsaaudio

    from edge_recorder.capture.base import classify_alsa_error

    name = device or pcm.pcm.replace("plughw:", "hw:", 1)
    last = ""
    for rate, channels, fmt in _PROBE_SETUPS:
        try:
            handle = alsaaudio.PCM(
                type=alsaaudio.PCM_CAPTURE,
                mode=alsaaudio.PCM_NONBLOCK,
                device=name,
                rate=rate,
                channels=channels,
                format=getattr(alsaaudio, f"PCM_FORMAT_{fmt}"),
                periodsize=rate // 50,
                periods=4,
            )
        except alsaaudio.ALSAAudioError as exc:
            last = str(exc)
            if classify_alsa_error(last) in ("busy", "missing", "unplugged"):
                break
            continue
        try:
            pcm.formats = sorted(handle.getformats())
            pcm.channels = sorted(handle.getchannels())
            rates = handle.getrates()
            pcm.rates = (
                f"{rates[0]}-{rates[1]}"
                if isinstance(rates, tuple)
                else ", ".join(str(r) for r in rates)
                if isinstance(rates, list)
                else str(rates)
            )
            pcm.error = ""
        finally:
            handle.close()
        return
    pcm.error = last or "no tried setup was accepted"


def pin_factory(kind: str) -> dict[str, Any]:
    """The pin factory gpiozero would pick (GPIOZERO_PIN_FACTORY, else panel.pin_factory)."""
    try:
        model = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode()
    except OSError:
        model = ""
    requested = os.environ.get("GPIOZERO_PIN_FACTORY") or (None if kind == "auto" else kind)
    report: dict[str, Any] = {"board": model or "not a Raspberry Pi", "requested": requested}
    from gpiozero import Device

    saved = os.environ.get("GPIOZERO_PIN_FACTORY")
    if requested:
        os.environ["GPIOZERO_PIN_FACTORY"] = requested
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            factory = Device._default_pin_factory()
            report["factory"] = type(factory).__name__
            factory.close()
        except Exception as exc:  # BadPinFactory, ImportError, no /dev/gpiochip...
            report["factory"] = None
            report["error"] = str(exc)
        finally:
            if saved is None:
                os.environ.pop("GPIOZERO_PIN_FACTORY", None)
            else:
                os.environ["GPIOZERO_PIN_FACTORY"] = saved
    report["notes"] = [str(w.message) for w in caught]
    if "Raspberry Pi 5" in model:
        report["notes"].append(
            "Pi 5: only the lgpio factory works (the [pi] extra; systemd/install.sh installs it)"
        )
    return report


def configured_source(audio: AudioConfig, present: set[str]) -> dict[str, Any]:
    """The configured source as it is: the ALSA device (and whether its card is here), or the
    WAV file with the rate and channels it really has, or the synthetic generator. An ALSA
    device name is only reported when ALSA is the source: the unused default would mislead."""
    out: dict[str, Any] = {"source": audio.source, "profile": audio.profile}
    if audio.source == "alsa":
        card = re.search(r"CARD=([^,\s]+)", audio.device)
        return out | {
            "device": audio.device,
            "card_present": bool(card and card.group(1) in present),
        }
    out |= {"device": None, "card_present": None, "speed": audio.speed}
    if audio.source == "synthetic":
        return out | {"rate": audio.rate, "channels": audio.channels, "format": audio.format}
    out |= {"wav_path": str(audio.wav_path), "rate": None, "channels": None, "wav_error": ""}
    try:
        import soundfile

        info = soundfile.info(str(audio.wav_path))
    except Exception as exc:  # soundfile raises its own LibsndfileError as well as OSError
        return out | {"wav_error": str(exc) or type(exc).__name__}
    return out | {
        "rate": int(info.samplerate),
        "channels": int(info.channels),
        "format": str(info.subtype),
        "duration_s": round(float(info.duration), 2),
    }


def describe_configured(conf: dict[str, Any]) -> str:
    """One line for the text report."""
    pace = f"at {conf.get('speed', 1.0):g}x real time" if conf.get("speed") else "unpaced"
    if conf["source"] == "alsa":
        where = "present" if conf["card_present"] else "NOT present"
        return f"configured mic: {conf['device']} (card {where})"
    if conf["source"] == "synthetic":
        return (
            f"configured source: synthetic (generated speech-like bursts, endless), "
            f"{conf['rate']} Hz {conf['channels']} ch {conf['format']}, {pace}; no ALSA device"
        )
    if conf["wav_error"]:
        return f"configured source: wav file {conf['wav_path']} (unreadable: {conf['wav_error']})"
    return (
        f"configured source: wav file {conf['wav_path']} ({conf['rate']} Hz, "
        f"{conf['channels']} ch, {conf['format']}, {conf['duration_s']:g} s), {pace}; "
        "no ALSA device"
    )


def gather(args: argparse.Namespace) -> dict[str, Any]:
    from edge_recorder.config.hardware import all_profiles
    from edge_recorder.config.loader import ConfigError, load_config
    from edge_recorder.config.model import Config

    config, config_note = Config(), ""
    path = config_path(args)
    if path.exists() or getattr(args, "config", None) is not None:
        try:
            config = load_config(path)
        except ConfigError as exc:
            config_note = "; ".join(exc.lines)
    profiles = all_profiles()
    cards = read_cards(args.proc)
    pcm_names: list[str] = []
    if not args.no_probe:
        import alsaaudio

        pcm_names = list(alsaaudio.pcms(alsaaudio.PCM_CAPTURE))
    for card in cards or []:
        card.profiles = [n for n, p in profiles.items() if p.matches(card.id, card.name)]
        if not args.no_probe:
            for pcm in card.pcms:
                probe_pcm(pcm)
    present = {c.id for c in cards or []}
    return {
        "cards": [asdict(c) for c in cards or []],
        "sound_support": cards is not None,
        "capture_pcm_names": pcm_names,
        "configured": configured_source(config.audio, present) | {"config_error": config_note},
        "profiles": {n: {"title": p.title, "kind": p.kind} for n, p in profiles.items()},
        "gpio": pin_factory(config.panel.pin_factory),
    }


def print_report(report: dict[str, Any]) -> None:
    from edge_recorder.config.hardware import all_profiles

    profiles = all_profiles()
    cards = report["cards"]
    if not report["sound_support"]:
        print("No sound cards: this machine has no ALSA sound support (/proc/asound missing).")
    elif not cards:
        print("No sound cards found (ALSA is loaded but lists no card).")
    for card in cards:
        print(f"card {card['index']} [{card['id']}] {card['name']} ({card['driver']})")
        for name in card["profiles"]:
            profile = profiles[name]
            print(f"  matches profile {name!r}: {profile.title}")
            print(f'    audio.profile = "{name}"   device: {profile.device_for(card["id"])}')
        if not card["pcms"]:
            print("  no capture PCM on this card")
        for pcm in card["pcms"]:
            caps = (
                f"channels {pcm['channels']}  formats {', '.join(pcm['formats']) or '?'}  "
                f"rates {pcm['rates'] or '?'}"
            )
            print(f"  {pcm['pcm']}  {pcm['name']}")
            print(f"    {caps}" + (f"  (probe: {pcm['error']})" if pcm["error"] else ""))
    if not cards:
        print('  For a dry run use audio.source = "synthetic" or "wav".')
    if report["capture_pcm_names"]:
        print("ALSA capture PCM names: " + ", ".join(report["capture_pcm_names"]))
    conf = report["configured"]
    if conf["config_error"]:
        print(f"config problem (defaults shown): {conf['config_error']}")
    print(describe_configured(conf))
    gpio = report["gpio"]
    factory = gpio["factory"] or f"none ({gpio.get('error', 'unavailable')})"
    print(f"GPIO: board: {gpio['board']}; pin factory: {factory}")
    if gpio["factory"] is None:
        print(
            "  on a Pi: install the [pi] extra (systemd/install.sh does);"
            ' for simulation: panel.pin_factory = "mock"'
        )
    print("profiles: " + ", ".join(report["profiles"]))


def run(args: argparse.Namespace) -> int:
    report = gather(args)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)
    return 0
