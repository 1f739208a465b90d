"""TLS on the gRPC API, ext_proc and the proxy from cert/key files, reloaded on rotation;
mutual TLS lets a client with a certificate call control rpcs without a token."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router.auth import TokenFile
from fleetroute_router.control_auth import ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.extproc.server import ExtProcServer
from fleetroute_router.proxy.app import ProxyServer
from fleetroute_router.server import RouterServer
from fleetroute_router.tls import ReloadingTls, TlsError, TlsFiles, from_args

from .certs import Authority, Issued, common_name


def _replace(target: Issued, source: Issued) -> None:
    """Rotate: the target files now hold the source's certificate and key."""
    target.key.write_bytes(source.key.read_bytes())
    target.cert.write_bytes(source.cert.read_bytes())


def _credentials(ca: Path, client: Issued | None = None) -> grpc.ChannelCredentials:
    cert, key = client.pem() if client else (None, None)
    return grpc.ssl_channel_credentials(ca.read_bytes(), key, cert)


async def _stats(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    address = f"127.0.0.1:{port}"
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        try:
            await router_pb2_grpc.RouterStub(channel).GetStats(router_pb2.StatsRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_grpc_speaks_tls_and_new_handshakes_use_a_rotated_cert(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    first, second = Authority(tmp_path, "ca-one"), Authority(tmp_path, "ca-two")
    served = first.issue("router", into="tls")
    tls = ReloadingTls(TlsFiles(served.cert, served.key))
    server = RouterServer(dataplane, "127.0.0.1:0", tls=tls)
    await server.start()
    try:
        assert await _stats(server.port, None) == grpc.StatusCode.UNAVAILABLE  # no plaintext
        assert await _stats(server.port, _credentials(first.ca)) == grpc.StatusCode.OK
        _replace(served, second.issue("router-rotated"))
        # The next connection's handshake already has the new certificate: no restart.
        assert await _stats(server.port, _credentials(first.ca)) == grpc.StatusCode.UNAVAILABLE
        assert await _stats(server.port, _credentials(second.ca)) == grpc.StatusCode.OK
    finally:
        await server.drain(0)


async def test_mutual_tls_admits_certified_clients_to_control_rpcs(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    authority = Authority(tmp_path)
    served = authority.issue("router")
    token = tmp_path / "token"
    token.write_text("c0ntrol")
    tls = ReloadingTls(TlsFiles(served.cert, served.key, client_ca=authority.ca))
    guard = ControlGuard(TokenFile(token), client_certs=tls.mutual)
    server = RouterServer(dataplane, "127.0.0.1:0", guard=guard, tls=tls)
    await server.start()
    try:
        stranger = Authority(tmp_path, "other-ca").issue("intruder", client=True)
        assert await _stats(server.port, _credentials(authority.ca)) == (
            grpc.StatusCode.UNAVAILABLE  # no client certificate: no handshake
        )
        assert await _stats(server.port, _credentials(authority.ca, stranger)) == (
            grpc.StatusCode.UNAVAILABLE  # a certificate the router's CA did not sign
        )
        member = authority.issue("operator", client=True)
        assert await _stats(server.port, _credentials(authority.ca, member)) == (
            grpc.StatusCode.OK  # GetStats without the token: the certificate is enough
        )
    finally:
        await server.drain(0)


async def _peer_name(port: int, ca: Path) -> tuple[str, asyncio.StreamWriter]:
    context = ssl.create_default_context(cafile=ca)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return common_name(ssl.DER_cert_to_PEM_cert(der).encode()), writer


async def test_the_proxy_speaks_tls_and_reloads_a_rotated_cert(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    authority = Authority(tmp_path)
    served = authority.issue("router-1", into="tls")
    tls = ReloadingTls(TlsFiles(served.cert, served.key))
    proxy = ProxyServer(dataplane, "127.0.0.1:0", tls=tls)
    await proxy.start()
    try:
        name, before = await _peer_name(proxy.port, authority.ca)
        assert name == "router-1"
        assert not tls.refresh()  # unchanged files: nothing to do
        _replace(served, authority.issue("router-2"))
        assert tls.refresh()
        name, after = await _peer_name(proxy.port, authority.ca)
        assert name == "router-2"
        context = ssl.create_default_context(cafile=authority.ca)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{proxy.port}/health", ssl=context) as r:
                assert await r.text() == "ok"
            with pytest.raises(aiohttp.ClientError):  # plaintext is refused
                async with session.get(f"http://127.0.0.1:{proxy.port}/health") as r:
                    await r.read()
        for writer in (before, after):
            writer.close()
    finally:
        await proxy.stop()


async def test_a_half_written_rotation_keeps_the_current_cert(
    dataplane: DataPlane, tmp_path: Path
) -> None:
    authority = Authority(tmp_path)
    served = authority.issue("router-1", into="tls")
    tls = ReloadingTls(TlsFiles(served.cert, served.key))
    served.key.write_bytes(b"not a key")
    assert not tls.refresh()
    proxy = ProxyServer(dataplane, "127.0.0.1:0", tls=tls)
    await proxy.start()
    try:
        name, writer = await _peer_name(proxy.port, authority.ca)
        assert name == "router-1"
        writer.close()
    finally:
        await proxy.stop()


async def test_ext_proc_speaks_tls(dataplane: DataPlane, tmp_path: Path) -> None:
    authority = Authority(tmp_path)
    served = authority.issue("router")
    server = ExtProcServer(
        dataplane, "127.0.0.1:0", tls=ReloadingTls(TlsFiles(served.cert, served.key))
    )
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        async with grpc.aio.secure_channel(address, _credentials(authority.ca)) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


def test_tls_flags_must_come_together(tmp_path: Path) -> None:
    assert from_args(None, None, None) is None
    with pytest.raises(TlsError, match="both"):
        from_args(tmp_path / "tls.crt", None, None)
    with pytest.raises(TlsError, match="needs --tls-cert-file"):
        from_args(None, None, tmp_path / "ca.crt")
    with pytest.raises(TlsError, match=r"tls\.crt"):
        from_args(tmp_path / "tls.crt", tmp_path / "tls.key", None)
