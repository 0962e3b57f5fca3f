"""A small device CA (design §7.2 option 2): issue and revoke client certificates; the CRL Mosquitto reads.

Files under the CA folder: ``ca.key`` (0600), ``ca.crt``, ``crl.pem`` (always present, empty at first:
Mosquitto's ``crlfile`` must exist), ``index.json`` (every issued serial with its common name and, once
revoked, when). A device's certificate carries its id as common name; Mosquitto with
``use_identity_as_username`` makes that the user name, so the ACL's ``%u`` patterns bind it to its topics.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "INSA IIoT Workbench device CA"
CRL_DAYS = 30


class CertError(RuntimeError):
    """A CA operation cannot be done; the message is one line for the operator."""


@dataclass(frozen=True)
class Issued:
    """The files written for one certificate."""

    key: Path
    cert: Path
    ca: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class CertAuthority:
    """The CA kept in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key_path = folder / "ca.key"
        self.cert_path = folder / "ca.crt"
        self.crl_path = folder / "crl.pem"
        self.index_path = folder / "index.json"

    def init(self, days: int = 3650, force: bool = False) -> Path:
        """Create the CA key, its self-signed certificate and an empty CRL; returns the certificate's path."""
        if self.cert_path.exists() and not force:
            raise CertError(
                f"a CA already exists in {self.folder} (--force replaces it and every certificate)"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write(self.key_path, key_bytes, private=True)
        _write(self.cert_path, cert.public_bytes(pem))
        self._save_index({})
        self._write_crl()
        return self.cert_path

    def issue(self, name: str, out: Path, days: int = 825, server: bool = False) -> Issued:
        """Key and certificate for ``name``: a device id, or with ``server`` host names/addresses (a,b)."""
        ca_key, ca_cert = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cn = name.split(",")[0] if server else name  # a server's other names go to subjectAltName
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(name)), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        pem = serialization.Encoding.PEM
        key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        issued = Issued(out / f"{cn}.key", out / f"{cn}.crt", out / "ca.crt")
        _write(issued.key, key_bytes, private=True)
        _write(issued.cert, cert.public_bytes(pem))
        _write(issued.ca, ca_cert.public_bytes(pem))
        index = self._index()
        index[str(cert.serial_number)] = {"cn": cn, "issued_at": now.isoformat(), "revoked_at": None}
        self._save_index(index)
        return issued

    def revoke(self, name: str) -> int:
        """Revoke every certificate issued to ``name``, rewrite the CRL; returns how many were revoked."""
        index = self._index()
        now = _now().isoformat()
        revoked = 0
        for entry in index.values():
            if entry["cn"] == name and entry["revoked_at"] is None:
                entry["revoked_at"] = now
                revoked += 1
        if not revoked:
            raise CertError(f"no valid certificate was issued to {name!r}")
        self._save_index(index)
        self._write_crl()
        return revoked

    def revoked_serials(self) -> set[int]:
        """Serial numbers the CRL lists."""
        return {int(serial) for serial, entry in self._index().items() if entry["revoked_at"]}

    def _write_crl(self) -> None:
        ca_key, ca_cert = self._load()
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for serial, entry in self._index().items():
            if entry["revoked_at"]:
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial))
                    .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
                    .build()
                )
                builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(ca_key, hashes.SHA256())
        _write(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if not self.cert_path.exists() or not self.key_path.exists():
            raise CertError(f"no CA in {self.folder}: run `workbench certs init-ca` first")
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def _index(self) -> dict[str, dict[str, str | None]]:
        if not self.index_path.exists():
            return {}
        found: dict[str, dict[str, str | None]] = json.loads(self.index_path.read_text())
        return found

    def _save_index(self, index: dict[str, dict[str, str | None]]) -> None:
        _write(self.index_path, json.dumps(index, indent=1).encode(), private=True)


def _alt_names(name: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for part in name.split(","):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(part)))
        except ValueError:
            names.append(x509.DNSName(part))
    return names
