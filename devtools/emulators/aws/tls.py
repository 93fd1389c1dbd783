"""A local CA and a server certificate for 127.0.0.1/localhost, made once per data dir:
awscrt speaks HTTP/2 only over TLS, so the emulator needs a certificate the device trusts
(`aws.ca_file`)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.emulators.common.pki import new_ca, new_leaf, write_cert, write_key


def ensure_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) in `folder`, created on first use (10 years)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    if ca_file.exists() and cert_file.exists() and key_file.exists():
        return ca_file, cert_file, key_file
    ca, ca_key = new_ca("aws emulator CA", days=3650, path_length=0)
    cert, key = new_leaf(
        ca, ca_key, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, days=3650, loopback_san=True
    )
    write_cert(ca, ca_file)
    write_cert(cert, cert_file)
    key_file.touch(mode=0o600)
    write_key(key, key_file)
    return ca_file, cert_file, key_file


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["h2"])
    return ctx
