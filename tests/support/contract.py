"""The vendors' own clients for the contract tests: Node.js and the npm-locked SDKs that
`make test` installs (`make node`) in tests/contract/. Missing means a broken setup: fail,
never skip."""

from __future__ import annotations

import shutil
from pathlib import Path

CONTRACT = Path(__file__).resolve().parents[1] / "contract"


def node(package: str) -> str:
    """The node binary, once `package` (e.g. "@corti/sdk") is installed beside the scripts."""
    found = shutil.which("node")
    assert found, "Node.js is missing: `make test` installs it (apt nodejs)"
    assert (CONTRACT / "node_modules" / package).is_dir(), (
        f"the locked {package} is missing: `make test` runs npm ci in tests/contract"
    )
    return found
