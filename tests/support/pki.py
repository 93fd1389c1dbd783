"""A throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1/localhost and a
client certificate, written as PEM files (one helper for every TLS test: uplink and MQTT)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.emulators.common.pki import new_ca, new_leaf, write_cert, write_key


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, tag: str = "test") -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = new_ca(f"{tag} CA", days=1, path_length=None)
    server, server_key = new_leaf(
        ca, ca_key, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, days=1, loopback_san=True
    )
    client, client_key = new_leaf(
        ca, ca_key, "edge-device", ExtendedKeyUsageOID.CLIENT_AUTH, days=1, loopback_san=False
    )
    pki = Pki(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )
    write_cert(ca, pki.ca_file)
    write_cert(server, pki.server_cert)
    write_cert(client, pki.client_cert)
    write_key(server_key, pki.server_key)
    write_key(client_key, pki.client_key)
    return pki
