"""AWS credentials from the standard sources only, through botocore's provider chain.

Environment variables, the shared credentials/config files (optionally a named `profile`),
web identity, container and instance-role credentials: whatever botocore resolves, refreshed
by botocore when they are temporary. Never from the device config text. Resolution may touch
the network (instance metadata), so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge_recorder.uplinks.aws.signing import Credentials
from edge_recorder.uplinks.base import ErrorKind, UplinkError


class CredentialSource:
    """`get()` the current credentials; `refresh()` forgets them after an auth refusal."""

    def __init__(self, profile: str | None = None) -> None:
        self._profile = profile
        self._resolved: Any = None
        self.method = ""

    def _resolve(self) -> Credentials:
        import botocore.exceptions  # type: ignore[import-untyped]
        import botocore.session  # type: ignore[import-untyped]

        try:
            if self._resolved is None:
                session = botocore.session.Session(profile=self._profile)
                self._resolved = session.get_credentials()
            if self._resolved is None:
                raise UplinkError(
                    ErrorKind.AUTH,
                    "no AWS credentials found (environment, shared files, role)",
                    transport="auth",
                    retryable=True,
                )
            frozen = self._resolved.get_frozen_credentials()
            self.method = str(getattr(self._resolved, "method", ""))
        except botocore.exceptions.BotoCoreError as exc:
            raise UplinkError(
                ErrorKind.AUTH,
                f"AWS credentials: {type(exc).__name__}",
                transport="auth",
                retryable=True,
            ) from exc
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def get(self) -> Credentials:
        return await asyncio.to_thread(self._resolve)

    def refresh(self) -> None:
        self._resolved = None
