"""TLS for the brokers' listeners: a certificate authority of the deployment and a server certificate signed
by it, as PEM files Kafka reads directly (``ssl.keystore.type=PEM``) and Python clients trust
(``ALLIANCE_KAFKA_SSL_CAFILE``).

``python -m infra tls --out DIR --hosts kafka-1,kafka-2,kafka-3,localhost`` makes them for compose; the
local broker and the local cluster make their own under their home (``tls/``) at the first start.

Files of a directory: ``ca.pem`` (the CA certificate: public, what clients trust), ``ca.key`` (the CA's
private key, 0600: only needed to issue another server certificate), ``server.pem`` (the server's private
key, its certificate and the CA certificate, 0600: the brokers' keystore), and the same key and chain as
``server.key`` (0600) and ``server.crt`` for PostgreSQL, which reads them as two files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.credentials import write_atomically
from infra.errors import InfraError

CA_DAYS = 3650
SERVER_DAYS = 825  # what browsers and most TLS stacks accept at most for a server certificate
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    directory: Path

    @classmethod
    def of(cls, home: Path) -> TlsFiles:
        """The files a local server keeps under its ``home`` (``tls/``)."""
        return cls(home / "tls")

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca, self.server, self.server_key, self.server_cert))

    def hosts(self) -> set[str]:
        """The names and addresses the server certificate is valid for."""
        cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return {*names.get_values_for_type(x509.DNSName),
                *(str(ip) for ip in names.get_values_for_type(x509.IPAddress))}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chengdu-Chongqing alliance backbone"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure(directory: Path, hosts: tuple[str, ...] | list[str] = LOCAL_HOSTS) -> TlsFiles:
    """The CA and a server certificate for ``hosts`` in ``directory``: made if missing, the server
    certificate made again (by the same CA) if it does not cover every host."""
    files = TlsFiles(directory)
    if files.exists() and set(hosts) <= files.hosts():
        return files
    if not hosts:
        raise InfraError("a server certificate needs at least one host name or address")
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    if files.ca.exists() and files.ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
        loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise InfraError(f"{files.ca_key} is not the RSA key this tool makes")
        ca_key = loaded
    elif files.ca.exists():
        raise InfraError(f"{files.ca} exists without its key {files.ca_key}: a new server certificate needs it "
                         f"(or remove {directory} to make a new CA, which every client then has to trust)")
    else:
        ca_key = _key()
        ca_name = _name("alliance backbone CA")
        ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        write_atomically(files.ca_key, _pkcs8(ca_key), 0o600)
        write_atomically(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = _key()
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    write_atomically(files.server_key, _pkcs8(key), 0o600)
    write_atomically(files.server_cert, chain, 0o644)
    write_atomically(files.server, _pkcs8(key) + chain, 0o600)
    return files
