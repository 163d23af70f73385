"""Certificates for the secured test broker, made with openssl on every test session.

Generated rather than committed: a committed key is a key anyone can read, and expired
test certificates would break the suite one day for no reason in the code. Everything
is PEM, as both sides take it (Kafka's ``ssl.keystore.type=PEM``, librdkafka's
``ssl.*.location``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"
BROKER_NAMES = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
CLIENT_EXTENSIONS = "basicConstraints=CA:FALSE\n"


@dataclass(frozen=True)
class Pki:
    """A CA, a broker and a client certificate it signed, and a CA nobody trusts."""

    ca: Path
    broker_keystore: Path  # the broker's encrypted PKCS#8 key, then its certificate
    broker_key_password: str
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    client_key_password: str
    other_ca: Path  # signed nothing the broker presents
    stranger_cert: Path  # a client certificate of other_ca
    stranger_key: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    # req -x509 applies the default config's v3_ca section: CA:true, key identifiers.
    _openssl(
        "req", "-x509", "-key", str(key), "-subj", f"/CN={name}", "-days", DAYS, "-out", str(cert)
    )
    return key, cert


def _leaf(
    directory: Path, name: str, ca: tuple[Path, Path], extensions: str, serial: int
) -> tuple[Path, Path]:
    ca_key, ca_cert = ca
    key, csr, cert = (directory / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-set_serial", str(serial), "-days", DAYS, "-extfile", str(ext_file), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path, key_password: str, broker_key_password: str) -> Pki:
    """Write every file into ``directory``; ``key_password`` encrypts a copy of the
    client key, for kafka.tls.key_password. The broker's key is encrypted too, because
    Kafka takes a PEM keystore file only with ``ssl.key.password``; with the PKCS#12
    scheme Java decrypts (PBEWithSHA1AndDESede), not OpenSSL's default PBES2."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "tracebridge-test-ca")
    broker_cert, broker_key = _leaf(directory, "localhost", ca, BROKER_NAMES, 1)
    encrypted_broker_key = directory / "localhost.encrypted.key"
    _openssl(
        "pkcs8", "-topk8", "-in", str(broker_key), "-v1", "PBE-SHA1-3DES",
        "-passout", f"pass:{broker_key_password}", "-out", str(encrypted_broker_key),
    )  # fmt: skip
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(encrypted_broker_key.read_text() + broker_cert.read_text())
    client_cert, client_key = _leaf(directory, "bridge-client", ca, CLIENT_EXTENSIONS, 2)
    encrypted = directory / "bridge-client.encrypted.key"
    _openssl(
        "pkcs8", "-topk8", "-in", str(client_key), "-v2", "aes-256-cbc",
        "-passout", f"pass:{key_password}", "-out", str(encrypted),
    )  # fmt: skip
    other = make_ca(directory, "untrusted-ca")
    stranger_cert, stranger_key = _leaf(directory, "stranger", other, CLIENT_EXTENSIONS, 3)
    return Pki(
        ca=ca[1],
        broker_keystore=keystore,
        broker_key_password=broker_key_password,
        client_cert=client_cert,
        client_key=client_key,
        client_key_encrypted=encrypted,
        client_key_password=key_password,
        other_ca=other[1],
        stranger_cert=stranger_cert,
        stranger_key=stranger_key,
    )
