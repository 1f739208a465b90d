"""TLS for the router's listeners from cert/key files (e.g. a cert-manager Secret), reloaded
when the files change: new handshakes use the new certificate, open connections keep theirs."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)
Stamp = tuple[tuple[int, int], ...]


class TlsError(ValueError):
    """The TLS files cannot be read or do not make a certificate and key."""


@dataclass(frozen=True)
class TlsFiles:
    """Where a listener's certificate chain, its key and (for mTLS) the clients' CA are."""

    cert: Path
    key: Path
    # Clients must present a certificate signed by this CA (mutual TLS); None: no client certs.
    client_ca: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())

    def stamp(self) -> Stamp:
        """Modification time and size of each file (a mounted Secret changes by a symlink
        swap: stat follows it)."""
        try:
            return tuple((s.st_mtime_ns, s.st_size) for s in map(os.stat, self.paths))
        except OSError as error:
            raise TlsError(f"TLS file {error.filename}: {error.strerror}") from None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """Key, certificate chain and client CA, as PEM bytes."""
        try:
            key, cert = self.key.read_bytes(), self.cert.read_bytes()
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as error:
            raise TlsError(f"TLS file {error.filename}: {error.strerror}") from None
        return key, cert, ca


class ReloadingTls:
    """One set of TLS files serving every listener: a gRPC credential whose certificate is
    re-read on the handshake after the files change, and an ssl.SSLContext (for aiohttp)
    reloaded in place by `refresh()` (which `watch()` calls periodically)."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._stamp = files.stamp()
        self._grpc_stamp = self._stamp
        self.context = self._new_context()
        self._grpc_config = self._grpc_configuration()
        self.reloads = 0

    @property
    def mutual(self) -> bool:
        return self.files.client_ca is not None

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(context)
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        try:
            context.load_cert_chain(self.files.cert, self.files.key)
            if self.files.client_ca is not None:
                context.load_verify_locations(cafile=self.files.client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as error:
            raise TlsError(f"TLS files {self.files.cert}, {self.files.key}: {error}") from None

    def _grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        key, cert, ca = self.files.read()
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials that pick up rotated files on the next handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config,
            self._grpc_fetch,  # type: ignore[arg-type]  # None means "unchanged" (gRPC docs)
            require_client_authentication=self.mutual,
        )

    def _grpc_fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC asks before each handshake: a new configuration when the files changed."""
        try:
            stamp = self.files.stamp()
            if stamp == self._grpc_stamp:
                return None
            config = self._grpc_configuration()
        except TlsError as error:
            log.error("keeping the current gRPC certificate: %s", error)
            return None
        self._grpc_stamp = stamp
        log.info("gRPC certificate reloaded from %s", self.files.cert)
        return config

    def refresh(self) -> bool:
        """Reload the SSLContext's certificate if the files changed; True when reloaded (a
        half-written rotation is retried at the next call)."""
        try:
            stamp = self.files.stamp()
            if stamp == self._stamp:
                return False
            self._load(self.context)  # in place: later handshakes use the new certificate
        except TlsError as error:
            log.error("keeping the current certificate: %s", error)
            return False
        self._stamp = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.files.cert)
        return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Refresh forever, every `interval_s`."""
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()


def from_args(cert: Path | None, key: Path | None, client_ca: Path | None) -> ReloadingTls | None:
    """The TLS of `--tls-cert-file/--tls-key-file/--tls-client-ca-file`; None without them."""
    if cert is None and key is None:
        if client_ca is not None:
            raise TlsError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
        return None
    if cert is None or key is None:
        raise TlsError("TLS needs both --tls-cert-file and --tls-key-file")
    return ReloadingTls(TlsFiles(cert, key, client_ca))
