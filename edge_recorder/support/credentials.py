"""Secrets by reference: a file named in the config, or a systemd credential.

systemd's `LoadCredential=` puts each secret in `$CREDENTIALS_DIRECTORY/<name>`, readable only
by the service; that is the preferred source on a device. A `*_file` key wins when set, so a
developer can point at a file without systemd.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class SecretUnavailable(Exception):
    """The secret could not be read; the message says where it was looked for."""


def credential_path(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Path of systemd credential `name`, if the service was started with credentials."""
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    candidate = Path(directory) / name
    return candidate if candidate.exists() else None


def secret_source(
    file: Path | None, credential: str, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Where the secret would be read from: the configured file, else the credential."""
    if file is not None:
        return file
    return credential_path(credential, environ)


def read_secret(
    file: Path | None, credential: str, environ: Mapping[str, str] | None = None
) -> str:
    """The secret's text with surrounding whitespace stripped; never logged by callers."""
    source = secret_source(file, credential, environ)
    if source is None:
        raise SecretUnavailable(
            f"no secret file configured and no systemd credential '{credential}'"
        )
    try:
        value = source.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretUnavailable(f"cannot read secret file {source}: {exc.strerror}") from None
    if not value:
        raise SecretUnavailable(f"secret file {source} is empty")
    return value
