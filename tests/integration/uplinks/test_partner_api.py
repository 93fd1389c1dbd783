"""The partner API (`PUT /ambient-sessions`) on a host and token scope of its own, as the live
service serves it (`aas.partner_api_url`, `auth.partner_scope`); audio calls stay on `rest_url`."""

from __future__ import annotations

from pathlib import Path

import jwt

from devtools.faultproxy import FaultProxy
from edge_recorder.uplinks.aas.factory import aas_uplinks
from edge_recorder.uplinks.aas.identity import aas_identity
from edge_recorder.uplinks.aas.rest import AasRestClient
from tests.integration.uplinks.conftest import device_config, pcm_audio
from tests.support.emulator import MakeEmulator


async def test_sessions_go_to_the_partner_host_with_their_own_scope(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator()
    partner = await FaultProxy("127.0.0.1", int(emu.http_url.rsplit(":", 1)[1])).start()
    try:
        config = device_config(
            emu,
            tmp_path,
            aas={"partner_api_url": f"http://127.0.0.1:{partner.port}"},
            auth={"partner_scope": "ambient.sessions"},
        )
        uplinks = aas_uplinks(config)
        rest = uplinks.store_forward
        assert isinstance(rest, AasRestClient)
        session = aas_identity(config.aas, "enc-partner")
        await rest.create_session(session)
        assert partner.stats.connections == 1  # the session went through the partner host
        audio = pcm_audio(16000)

        async def read(start: int, end: int) -> bytes:
            return audio[start:end]

        await rest.upload_recording(session, 1, len(audio), read)
        assert partner.stats.connections == 1  # the audio did not
        assert await emu.recording_bytes("enc-partner", 1) == audio
        claims = jwt.decode(await rest._partner_tokens.token(), options={"verify_signature": False})
        assert claims.get("roles") == ["ambient.sessions"] or claims.get("scp") == [
            "ambient.sessions"
        ]
        await uplinks.aclose()
    finally:
        await partner.stop()
