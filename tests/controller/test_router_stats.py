"""What the router learned, as RoutingPolicy status shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import kopf
import pytest

from fleetroute import routerconfig
from fleetroute.v1alpha1 import router_pb2
from fleetroute_operator import handlers, reconcile
from fleetroute_operator.router_stats import (
    ArmSummary,
    CachedStats,
    RouterAccess,
    Stats,
    grpc_fetcher,
    summarise,
)
from fleetroute_operator.settings import Settings
from fleetroute_router.auth import TokenFile
from fleetroute_router.control_auth import ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.fleet import Fleet
from fleetroute_router.server import RouterServer
from fleetroute_router.tls import ReloadingTls, TlsFiles
from tests.controller.fakes import FakeKube, with_identity
from tests.router.certs import Authority
from tests.router.conftest import EMBEDDED


def _reply() -> router_pb2.RouterStats:
    return router_pb2.RouterStats(
        policies=[
            router_pb2.PolicyStats(
                policy="llm/chat",
                algorithm="linucb",
                arms=[
                    router_pb2.ArmStats(
                        pool="llm/llama-8b-l4",
                        decisions=61,
                        share=0.61,
                        rewards=50,
                        mean_reward=0.78,
                    ),
                    router_pb2.ArmStats(
                        pool="llm/llama-70b-decode", decisions=39, share=0.39, rewards=0
                    ),
                ],
            )
        ]
    )


def test_summary_puts_the_most_chosen_arm_first() -> None:
    arms = summarise(_reply())["llm/chat"].arms
    assert arms == (
        ArmSummary("llm/llama-8b-l4", 0.61, 0.78),
        ArmSummary("llm/llama-70b-decode", 0.39, None),
    )


def test_policy_status_shows_arms_and_top_arm(example_objects: list[dict[str, Any]]) -> None:
    body = with_identity(next(o for o in example_objects if o["kind"] == "RoutingPolicy"))
    status = reconcile.routingpolicy_status(body, {}, summarise(_reply())["llm/chat"])
    assert status["topArm"] == "llama-8b-l4"
    assert status["arms"] == [
        {"modelPool": "llama-8b-l4", "share": "0.61", "meanReward": "0.780"},
        {"modelPool": "llama-70b-decode", "share": "0.39", "meanReward": "-"},
    ]


def test_policy_status_keeps_what_it_knew_when_the_router_is_away(
    example_objects: list[dict[str, Any]],
) -> None:
    body = with_identity(next(o for o in example_objects if o["kind"] == "RoutingPolicy"))
    body["status"] = {
        "topArm": "llama-8b-l4",
        "arms": [{"modelPool": "llama-8b-l4", "share": "1.00", "meanReward": "-"}],
    }
    status = reconcile.routingpolicy_status(body, {})
    assert status["topArm"] == "llama-8b-l4"


class Unreachable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


def test_cached_stats_fetch_once_per_period_and_survive_errors() -> None:
    calls: list[float] = []
    now = [0.0]

    def fetch() -> Stats:
        calls.append(now[0])
        if len(calls) == 2:
            raise Unreachable()
        return summarise(_reply())

    cache = CachedStats(fetch, period_s=5.0, clock=lambda: now[0])
    assert "llm/chat" in cache.get()
    now[0] = 1.0
    assert "llm/chat" in cache.get()
    assert calls == [0.0]
    now[0] = 6.0
    assert cache.get() == {}
    now[0] = 12.0
    assert "llm/chat" in cache.get()


def test_policy_handler_writes_learned_arms(example_objects: list[dict[str, Any]]) -> None:
    state = handlers.State(FakeKube(), Settings())
    state.router_stats = CachedStats(lambda: summarise(_reply()), period_s=5.0)
    patch = kopf.Patch()
    body = kopf.Body(
        with_identity(next(o for o in example_objects if o["kind"] == "RoutingPolicy"))
    )
    handlers.policy_status(body=body, patch=patch, memo=kopf.Memo(state=state), index_modelpools={})
    assert patch["status"]["topArm"] == "llama-8b-l4"
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "CandidatesMissing"


def test_a_policy_weighing_quality_says_whether_it_has_observed_any(
    example_objects: list[dict[str, Any]],
) -> None:
    body = with_identity(next(o for o in example_objects if o["kind"] == "RoutingPolicy"))
    assert body["spec"]["objective"]["quality"] > 0
    unseen = reconcile.routingpolicy_status(body, {}, summarise(_reply())["llm/chat"])
    (condition,) = [c for c in unseen["conditions"] if c["type"] == "QualityObserved"]
    assert (condition["status"], condition["reason"]) == ("False", "NoQualityFeedback")
    assert "POST /v1/feedback" in condition["message"]
    reply = _reply()
    reply.policies[0].quality_observations = 12
    body["status"] = unseen
    seen = reconcile.routingpolicy_status(body, {}, summarise(reply)["llm/chat"])
    (condition,) = [c for c in seen["conditions"] if c["type"] == "QualityObserved"]
    assert (condition["status"], condition["reason"]) == ("True", "QualityFeedback")
    away = reconcile.routingpolicy_status(body, {})
    (condition,) = [c for c in away["conditions"] if c["type"] == "QualityObserved"]
    assert condition["status"] == "Unknown"
    body["spec"]["objective"]["quality"] = 0.0
    body["status"] = seen
    unweighted = reconcile.routingpolicy_status(body, {}, summarise(reply)["llm/chat"])
    assert [c["type"] for c in unweighted["conditions"]] == ["Ready"]


async def test_the_fetcher_reaches_a_router_behind_mutual_tls_and_a_token(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path)
    served = authority.issue("router")
    token = tmp_path / "token"
    token.write_text("c0ntrol\n")
    tls = ReloadingTls(TlsFiles(served.cert, served.key))
    dataplane = DataPlane(Fleet.from_config(routerconfig.load(EMBEDDED)), scrape=False)
    server = RouterServer(dataplane, "127.0.0.1:0", guard=ControlGuard(TokenFile(token)), tls=tls)
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        for access in (RouterAccess(ca_file=authority.ca), RouterAccess(token_file=token)):
            with pytest.raises(grpc.RpcError) as raised:  # no token; no TLS
                await asyncio.to_thread(grpc_fetcher(address, access=access))
            assert raised.value.code() in {  # type: ignore[attr-defined]
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.UNAVAILABLE,
            }
        fetch = grpc_fetcher(address, access=RouterAccess(token_file=token, ca_file=authority.ca))
        stats = await asyncio.to_thread(fetch)
        assert list(stats) == ["llm/chat"]
    finally:
        await server.drain(0)
