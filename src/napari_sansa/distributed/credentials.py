"""Mutual TLS for the SANSA server: a certificate authority of its own, a server and a client
certificate, and the Dask ``Security`` objects that require them on both sides.

``DIR/`` holds the authority (``ca.pem``, ``ca.key``) and the server's pair (``server.pem``,
``server.key``); ``DIR/client/`` holds what a laptop needs (``ca.pem``, ``client.pem``,
``client.key``). Every file is readable by its owner only (where the system has POSIX modes).
Dask's TLS contexts verify the peer's certificate in both directions (``ssl.CERT_REQUIRED``),
so a client without a certificate of this authority is refused by the handshake.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from napari_sansa.engine.errors import SansaError

CA, SERVER, CLIENT = "ca", "server", "client"
CLIENT_FOLDER = "client"
VALID_DAYS = 3650
KEY_BITS = 2048


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


def _pair(folder: Path, name: str) -> Pair:
    return Pair(folder / f"{name}.pem", folder / f"{name}.key")


def _private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (created so: never readable by others meanwhile)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if sys.platform != "win32":
        os.chmod(path, 0o600)


def _certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, hosts: tuple[str, ...] = ()):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        # the server's pair also connects its workers to its scheduler, as a client
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if hosts else []
        usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if hosts:
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _write(pair: Pair, cert, key) -> None:
    from cryptography.hazmat.primitives import serialization

    _private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    encoded = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _private(pair.key, encoded)


def ensure_credentials(folder: str | os.PathLike, host: str = "127.0.0.1") -> Path:
    """The server's credentials in ``folder``: those there, else a new authority, server and
    client certificate (the client's in ``folder/client``, to copy to the laptops)."""
    folder = Path(folder).expanduser().absolute()
    ca, server = _pair(folder, CA), _pair(folder, SERVER)
    client_folder = folder / CLIENT_FOLDER
    client = _pair(client_folder, CLIENT)
    needed = (ca.cert, ca.key, server.cert, server.key, client.cert, client.key, client_folder / "ca.pem")
    if all(p.is_file() for p in needed):
        return folder
    if any(p.exists() for p in needed):
        missing = next(p for p in needed if not p.is_file())
        raise SansaError(f"The credentials in {folder} are incomplete ({missing.name} is missing): "
                         "remove the folder to make new ones, or give another --credentials.")  # fmt: skip
    try:
        client_folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if sys.platform != "win32":
            os.chmod(folder, 0o700)
        ca_key = _new_key()
        _write(ca, _certificate("napari-sansa CA", ca_key, "napari-sansa CA", ca_key, ca=True), ca_key)
        hosts = tuple(dict.fromkeys((host, "127.0.0.1", "localhost")))
        for pair, name, names in (
            (server, "napari-sansa server", hosts),
            (client, "napari-sansa client", ()),
        ):
            key = _new_key()
            _write(pair, _certificate(name, key, "napari-sansa CA", ca_key, ca=False, hosts=names), key)
        _private(client_folder / "ca.pem", ca.cert.read_bytes())
    except OSError as exc:
        raise SansaError(f"Cannot write the credentials in {folder}: {exc}") from None
    return folder


def server_security(folder: str | os.PathLike):
    """The scheduler's and workers' ``Security``: TLS only, each side's certificate required."""
    from distributed.security import Security

    folder = Path(folder).expanduser().absolute()
    ca, server = _pair(folder, CA), _pair(folder, SERVER)
    client = _pair(folder / CLIENT_FOLDER, CLIENT)
    return Security(
        require_encryption=True,
        tls_ca_file=str(ca.cert),
        tls_scheduler_cert=str(server.cert),
        tls_scheduler_key=str(server.key),
        tls_worker_cert=str(server.cert),
        tls_worker_key=str(server.key),
        tls_client_cert=str(client.cert),
        tls_client_key=str(client.key),
    )


def client_security(folder: str | os.PathLike):
    """A laptop's ``Security`` from the server's ``DIR/client`` folder (copied there)."""
    from distributed.security import Security

    folder = Path(folder).expanduser().absolute()
    client = _pair(folder, CLIENT)
    files = (folder / "ca.pem", client.cert, client.key)
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise SansaError(
            f"No client credentials in {folder} ({', '.join(missing)} missing): copy the server's "
            "credentials folder's client/ here."
        )
    return Security(
        require_encryption=True,
        tls_ca_file=str(folder / "ca.pem"),
        tls_client_cert=str(client.cert),
        tls_client_key=str(client.key),
    )
