"""A hung API server (accepts connections, never answers): every call ends in an error."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import api, auth  # kopf's request, as its watchers and patches use it
from kopf._cogs.structs import credentials
from kubernetes import client as k8s_client

from fleetroute_operator import handlers
from fleetroute_operator.kube import ApiError, ApiKube, client_without_read_retries
from fleetroute_operator.settings import Settings

# Far above the calls' timeout: only guards the test run against a call that never returns.
GUARD_S = 60.0
TIMEOUT_S = 0.3


class HungServer:
    """A 127.0.0.1 socket that accepts every connection and never reads or writes on it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kube(hung: HungServer) -> ApiKube:
    configuration = k8s_client.Configuration(host=f"http://127.0.0.1:{hung.port}")
    return ApiKube(client_without_read_retries(configuration), timeout=TIMEOUT_S)


def _outcome(call: Callable[[], Any]) -> BaseException | None:
    """What the call raised (None if it returned), run in a thread like kopf's workers."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # the outcome is what the test checks
            result.append(error)
        else:
            result.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(GUARD_S)
    assert not worker.is_alive(), "the call never returned: the worker is held"
    return result[0]


def test_building_the_client_does_not_call_the_api(hung: HungServer) -> None:
    configuration = k8s_client.Configuration(host=f"http://127.0.0.1:{hung.port}")
    ApiKube(client_without_read_retries(configuration), timeout=TIMEOUT_S)
    assert hung.accepted == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda k: k.get("apps/v1", "Deployment", "x", "llm"), id="get"),
        pytest.param(lambda k: k.list("v1", "Pod", "llm", "a=b"), id="list"),
        pytest.param(
            lambda k: k.apply(
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "y"}}
            ),
            id="apply",
        ),
        pytest.param(
            lambda k: k.patch_status("fleetroute.dev/v1alpha1", "GPUPool", "x", None, {}),
            id="patch_status",
        ),
    ],
)
def test_every_call_fails_retriably_instead_of_hanging(
    kube: ApiKube, hung: HungServer, call: Callable[[ApiKube], Any]
) -> None:
    error = _outcome(lambda: call(kube))
    assert isinstance(error, ApiError), error
    assert error.retriable
    assert "timed out" in str(error).lower()
    assert len(hung.accepted) == 1  # one attempt: a timed-out read is not repeated


def test_a_reconcile_on_a_hung_api_server_is_retried_later(
    kube: ApiKube, example_objects: list[dict[str, Any]]
) -> None:
    body = next(o for o in example_objects if o["metadata"]["name"] == "llama-8b-l4")
    body = {**body, "metadata": {**body["metadata"], "uid": "uid-1", "generation": 1}}
    gpu_pool = next(o for o in example_objects if o["metadata"]["name"] == "l4")
    state = handlers.State(kube, Settings())
    error = _outcome(
        lambda: handlers.modelpool_reconcile(
            body=kopf.Body(body),
            patch=kopf.Patch(),
            memo=kopf.Memo(state=state),
            index_gpupools={"l4": [gpu_pool]},
            index_nodes={},
            index_gpu_pods={},
        )
    )
    assert isinstance(error, kopf.TemporaryError), error
    assert "timed out" in str(error).lower()


async def test_kopfs_own_requests_to_a_hung_api_server_fail(hung: HungServer) -> None:
    """kopf bounds a request by settings.networking.request_timeout, which the operator sets
    (to 30 s; shortened here), instead of its default of 5 minutes."""
    settings = kopf.OperatorSettings()
    handlers._configure(settings=settings)
    assert settings.networking.request_timeout == handlers.REQUEST_TIMEOUT_S
    settings.networking.request_timeout = TIMEOUT_S
    context = auth.APIContext(credentials.ConnectionInfo(server=f"http://127.0.0.1:{hung.port}"))
    try:
        task = asyncio.ensure_future(
            api.request(
                "get",
                "/api/v1/namespaces/llm/pods",
                settings=settings,
                backoffs=[],  # kopf's own retries (settings.networking.error_backoffs) are finite
                context=context,
                logger=logging.getLogger(__name__),
            )
        )
        done, _ = await asyncio.wait([task], timeout=GUARD_S)
        assert task in done, "kopf's request never returned"
        with pytest.raises(TimeoutError):
            task.result()
    finally:
        await context.session.close()
    assert len(hung.accepted) == 1
