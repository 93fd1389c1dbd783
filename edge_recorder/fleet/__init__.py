"""Fleet status and commands over MQTT.

Small modules with one job each: `topics` names things, `payloads` builds what is published
(pure, patient-free), `commands` validates what arrives, `sysinfo` reads the machine,
`homeassistant` builds discovery configs, `reporter` owns the network, `watch` models the
operator's table. The JSON Schemas in `schemas/` document every payload and tests hold the
code to them.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

__all__ = ["SCHEMA_DIR"]
