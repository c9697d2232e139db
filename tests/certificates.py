"""TLS certificates for the worker-host engines of ``hosts.py``, made with ``cryptography``: a CA,
a server certificate valid for each engine's 127.0.0.N, a client certificate (the master's), and a
client certificate from another CA that the engines must refuse (``rogue``)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key=None, cert=None) -> None:
    from cryptography.hazmat.primitives import serialization

    if key is not None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert(subject, key, issuer, issuer_key, *, ca=False, server_ips=(), client=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    if server_ips:
        sans = [x509.DNSName("localhost")] + [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_certificates(directory: Path, server_ips) -> dict:
    """A CA, one server certificate valid for every IP in ``server_ips``, a client certificate,
    and a client certificate from another CA (``rogue``). Returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert("braindrill test CA", ca_key, None, None, ca=True)
    _write(directory / "ca.pem", cert=ca)
    server_key = _key()
    server = _cert("braindrill worker", server_key, ca.subject, ca_key, server_ips=server_ips)
    _write(directory / "server-key.pem", key=server_key)
    _write(directory / "server-cert.pem", cert=server)
    client_key = _key()
    client = _cert("braindrill master", client_key, ca.subject, ca_key, client=True)
    _write(directory / "key.pem", key=client_key)
    _write(directory / "cert.pem", cert=client)
    rogue_ca_key = _key()
    rogue_ca = _cert("rogue CA", rogue_ca_key, None, None, ca=True)
    rogue_key = _key()
    rogue = _cert("rogue", rogue_key, rogue_ca.subject, rogue_ca_key, client=True)
    _write(directory / "rogue-key.pem", key=rogue_key)
    _write(directory / "rogue-cert.pem", cert=rogue)
    return {
        "ca": str(directory / "ca.pem"),
        "cert": str(directory / "cert.pem"),
        "key": str(directory / "key.pem"),
        "rogue_cert": str(directory / "rogue-cert.pem"),
        "rogue_key": str(directory / "rogue-key.pem"),
    }
