"""The Corti emulator's shared state, reached from every route module through `CTX`."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from devtools.emulators.common.faults import Faults
from devtools.emulators.corti.settings import CortiEmulatorSettings
from devtools.emulators.corti.store import CortiStore
from devtools.emulators.corti.tokens import Issuer


@dataclass
class Drop:
    path: str
    count: int
    after_store: bool = False  # store the upload, then drop before answering (lost answer)


@dataclass
class CortiContext:
    settings: CortiEmulatorSettings
    store: CortiStore
    issuer: Issuer
    faults: Faults = field(default_factory=Faults)
    drops: list[Drop] = field(default_factory=list)
    base_url: str = ""
    token_count: int = 0

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/audio-bridge/v2"

    def take_drop(self, path: str, after_store: bool = False) -> bool:
        for drop in self.drops:
            if drop.path in path and drop.after_store == after_store:
                drop.count -= 1
                if drop.count <= 0:
                    self.drops.remove(drop)
                return True
        return False


CTX = web.AppKey("corti", CortiContext)
