"""Uplinks for `aws-connect-health` and `aws-healthscribe` (same code, different profile).

- live only for PCM: only PCM lets transcript offsets (seconds) become a byte watermark; FLAC
  or Ogg Opus recordings are delivered whole after they close (store-and-forward stream);
- holds_copy = False: the service offers no call that says how much audio a session holds,
  so the StartProcessing counts could only echo the device's own bookkeeping; the spool keeps
  each recording until its stream ended cleanly after END_OF_SESSION.
"""

from __future__ import annotations

from edge_recorder.config.model import Config
from edge_recorder.uplinks.aws.client import AwsScribeClient
from edge_recorder.uplinks.aws.credentials import CredentialSource
from edge_recorder.uplinks.aws.protocol import (
    PROFILES,
    check_sample_rate,
    configuration_event,
    media_encoding,
)
from edge_recorder.uplinks.aws.stream import AudioSpec
from edge_recorder.uplinks.base import SessionIdentity, UplinkState
from edge_recorder.uplinks.bundle import Uplinks


def aws_uplinks(config: Config, state: UplinkState) -> Uplinks:
    """ValueError names the offending key (codec, rate, missing Connect Health ids)."""
    profile = PROFILES[config.uplink.service]
    cfg = config.aws
    codec = config.encoding.codec
    encoding = media_encoding(profile, codec)
    rate, channels = int(config.audio.output_rate), 1  # the pipeline's mono output
    check_sample_rate(profile, rate)
    if profile.name == "aws-connect-health":
        missing = [k for k in ("domain_id", "subscription_id") if getattr(cfg, k) is None]
        if missing:
            raise ValueError("aws." + ", aws.".join(missing) + " must be set for Connect Health")
    configuration_event(profile, cfg)  # what the service requires is configured (else ValueError)
    spec = AudioSpec(
        encoding=encoding,
        sample_rate=rate,
        byte_rate=rate * 2 * channels if codec == "pcm16" else None,
        block_align=2 * channels,
    )
    creds = CredentialSource(cfg.profile)
    client = AwsScribeClient(
        profile,
        cfg,
        spec,
        state,
        creds,
        connect_timeout_s=config.uplink.connect_timeout_s,
        request_timeout_s=config.uplink.request_timeout_s,
    )
    locale = cfg.language_code

    async def check_auth() -> object:
        await creds.get()
        return creds.method or "aws credentials"

    return Uplinks(
        service=profile.name,
        live=client,
        store_forward=client,
        identity=lambda cid: SessionIdentity.local(cid, locale),
        check_auth=check_auth,
        live_enabled=codec == "pcm16",
        holds_copy=False,
    )
