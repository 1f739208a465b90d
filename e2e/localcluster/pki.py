"""Cluster certificates (a self-signed CA, serving and client certs) and kubeconfig files."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import settings


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise settings.ClusterError(
            "the openssl CLI is needed to create the cluster certificates (apt-get install openssl)"
        )
    result = subprocess.run(
        [openssl, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise settings.ClusterError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate identity (user name and groups)."""

    name: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS: Final = (
    ClientIdentity("admin", "fleetroute-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "fleetroute-kwok", ("system:masters",)),
    # The API server's client identity towards aggregated API servers (request-header auth).
    ClientIdentity("front-proxy-client", "front-proxy-client"),
)

SERVING_SANS: Final = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:10.96.0.1",
)


class PKI:
    """Self-signed CA, API server serving cert, client certs and the service-account key pair."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        self.serving_cert = directory / "apiserver.crt"
        self.serving_key = directory / "apiserver.key"

    def client_cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.ca_cert.exists():
            self._ec_key(self.ca_key)
            _openssl(
                "req", "-x509", "-new", "-key", str(self.ca_key), "-sha256", "-days", "3650",
                "-subj", "/CN=fleetroute-e2e-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
                "-out", str(self.ca_cert),
                cwd=self.dir,
            )  # fmt: skip
        if not self.serving_cert.exists():
            self._leaf(
                self.serving_cert,
                self.serving_key,
                "/CN=kube-apiserver",
                "serverAuth",
                SERVING_SANS,
            )
        for client in CLIENTS:
            cert, key = self.client_cert(client.name)
            if not cert.exists():
                subject = "".join(f"/O={group}" for group in client.groups) + f"/CN={client.user}"
                self._leaf(cert, key, subject, "clientAuth", ())
        if not self.sa_key.exists():
            _openssl(
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                str(self.sa_key),
                cwd=self.dir,
            )
            _openssl(
                "pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub), cwd=self.dir
            )

    def _ec_key(self, path: Path) -> None:
        _openssl(
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(path),
            cwd=self.dir,
        )

    def _leaf(self, cert: Path, key: Path, subject: str, usage: str, sans: Sequence[str]) -> None:
        self._ec_key(key)
        csr = cert.with_suffix(".csr")
        ext = cert.with_suffix(".ext")
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=self.dir)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey", str(self.ca_key),
            "-set_serial", str(secrets.randbits(63)), "-days", "3650", "-sha256",
            "-extfile", str(ext), "-out", str(cert),
            cwd=self.dir,
        )  # fmt: skip
        csr.unlink()
        ext.unlink()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """Write a kubeconfig (JSON is valid YAML) with the certificates embedded."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fleetroute",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
            }
        ],
        "contexts": [
            {
                "name": "fleetroute",
                "context": {"cluster": "fleetroute", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "fleetroute",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
