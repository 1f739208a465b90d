"""Router metrics: names, bounded labels, exemplars that carry trace ids, exposition formats."""

from __future__ import annotations

import re

import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fleetroute_router import errors
from fleetroute_router.decisions import Decision
from fleetroute_router.fleet import Fleet
from fleetroute_router.telemetry.exposition import render
from fleetroute_router.telemetry.metrics import RouterMetrics
from fleetroute_router.telemetry.recorder import RouterTelemetry, Served
from fleetroute_router.telemetry.tracing import Tracing

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
REQUEST_ID = "req-7f3a9c-unique-request-id"
PROMPT = "a secret prompt that must never become a label"


def decision(pool: str = "llm/llama-8b-l4", **changes: object) -> Decision:
    fields: dict[str, object] = {
        "id": "decision-42",
        "request_id": REQUEST_ID,
        "policy": "llm/chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "pool": pool,
        "endpoint": "127.0.0.1:8201",
        "algorithm": "linucb",
        "scores": {"llm/llama-8b-l4": 0.7, "llm/qwen-14b-a10g": 0.4},
        "features": np.zeros(3),
        "share": 0.5,
    }
    fields.update(changes)
    return Decision(**fields)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_served_request_updates_every_request_series(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    d = decision()
    telemetry.decided(d, 0.002)
    pool = fleet.pools[d.pool]
    dollars = pool.gpus_per_replica * pool.gpu.cost_per_gpu_hour * 1.2 / 3600 * 0.5
    assert dollars > 0
    result = Served(
        e2e_s=1.2,
        ttft_s=0.3,
        prompt_tokens=100,
        completion_tokens=31,
        joules=150.0,
        energy_source="measured",
        reward=0.8,
        dollars=dollars,  # reward.score computes it once; telemetry records it
    )
    telemetry.served(d, result)
    r = telemetry.registry
    route = {"policy": "llm/chat", "model": d.model, "pool": d.pool}
    assert (
        value(
            r, "fleetroute_router_requests_total", **route, endpoint=d.endpoint, outcome="success"
        )
        == 1
    )
    assert value(r, "fleetroute_router_ttft_seconds_count", **route) == 1
    assert value(r, "fleetroute_router_ttft_seconds_sum", **route) == pytest.approx(0.3)
    assert value(r, "fleetroute_router_tpot_seconds_sum", **route) == pytest.approx(0.9 / 30)
    assert value(r, "fleetroute_router_request_duration_seconds_sum", **route) == pytest.approx(1.2)
    assert value(r, "fleetroute_router_tokens_total", **route, direction="output") == 31
    assert value(r, "fleetroute_router_tokens_total", **route, direction="input") == 100
    assert value(
        r, "fleetroute_router_energy_joules_total", **route, source="measured"
    ) == pytest.approx(150.0)
    assert pool.gpu.carbon_intensity == 120
    assert value(r, "fleetroute_router_carbon_grams_total", **route) == pytest.approx(
        150.0 / 3.6e6 * 120
    )
    assert value(
        r, "fleetroute_router_grid_carbon_intensity", pool=d.pool, source="config"
    ) == pytest.approx(120)
    assert value(
        r, "fleetroute_router_cost_dollars_total", model=d.model, pool=d.pool
    ) == pytest.approx(dollars)
    assert value(r, "fleetroute_router_reward_sum", policy="llm/chat", pool=d.pool) == 0.8
    # SLO of llm/chat: ttft 0.5 s (met by 0.3 s), tpot 0.05 s (met by 0.03 s)
    for metric in ("ttft", "tpot"):
        slo = {"policy": "llm/chat", "pool": d.pool, "metric": metric}
        assert value(r, "fleetroute_router_slo_requests_total", **slo, result="met") == 1
    assert value(r, "fleetroute_router_slo_seconds", policy="llm/chat", metric="ttft") == 0.5
    assert value(r, "fleetroute_router_slo_seconds", policy="llm/chat", metric="tpot") == 0.05
    decisions = {
        "policy": "llm/chat",
        "algorithm": "linucb",
        "pool": d.pool,
        "mode": "aggregated",
        "choice": "exploit",
    }
    assert value(r, "fleetroute_router_decisions_total", **decisions) == 1
    assert value(r, "fleetroute_router_decision_duration_seconds_count", policy="llm/chat") == 1
    assert (
        value(r, "fleetroute_router_arm_score", policy="llm/chat", pool="llm/qwen-14b-a10g") == 0.4
    )


def test_a_slow_answer_misses_its_slo(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    d = decision()
    telemetry.served(d, Served(e2e_s=3.0, ttft_s=0.9, completion_tokens=2))
    labels = {"policy": "llm/chat", "pool": d.pool, "metric": "ttft"}
    r = telemetry.registry
    assert value(r, "fleetroute_router_slo_requests_total", **labels, result="missed") == 1
    assert value(r, "fleetroute_router_slo_requests_total", **labels, result="met") is None


def test_decisions_count_as_explore_when_the_policy_says_so(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    telemetry.decided(decision(), 0.001)
    telemetry.decided(decision(explored=True), 0.001)
    telemetry.decided(decision(explored=True), 0.001)
    labels = {"policy": "llm/chat", "algorithm": "linucb", "pool": "llm/llama-8b-l4"}
    r = telemetry.registry
    counted = "fleetroute_router_decisions_total"
    assert value(r, counted, **labels, mode="aggregated", choice="exploit") == 1
    assert value(r, counted, **labels, mode="aggregated", choice="explore") == 2


def test_disaggregated_decisions_count_in_the_pd_mode(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    d = decision(
        "llm/llama-70b-decode",
        prefill_pool="llm/llama-70b-prefill",
        prefill_endpoint="127.0.0.1:8101",
        scores={"llm/llama-70b-decode": 0.2, "llm/llama-8b-l4": 0.6},
        explored=True,
    )
    telemetry.decided(d, 0.001)
    labels = {
        "policy": "llm/chat",
        "algorithm": "linucb",
        "pool": "llm/llama-70b-decode",
        "mode": "disaggregated",
        "choice": "explore",
    }
    assert value(telemetry.registry, "fleetroute_router_decisions_total", **labels) == 1


def test_retries_fallbacks_and_failures_are_counted(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    r = telemetry.registry
    # zero from the start, so rates and panels have data before the first incident
    assert value(r, "fleetroute_router_retries_total", pool="llm/qwen-14b-a10g") == 0
    assert (
        value(r, "fleetroute_router_fallbacks_total", policy="llm/chat", reason="other_pool") == 0
    )
    first = decision()
    same_pool = decision(endpoint="127.0.0.1:8202")
    other_pool = decision("llm/qwen-14b-a10g", endpoint="127.0.0.1:8301")
    telemetry.retried(first, same_pool)
    telemetry.retried(same_pool, other_pool)
    telemetry.fallback(other_pool, "prefill_local")
    telemetry.finished(other_pool, "failure")
    assert value(r, "fleetroute_router_retries_total", pool="llm/llama-8b-l4") == 2
    assert (
        value(r, "fleetroute_router_fallbacks_total", policy="llm/chat", reason="other_pool") == 1
    )
    assert (
        value(r, "fleetroute_router_fallbacks_total", policy="llm/chat", reason="prefill_local")
        == 1
    )
    labels = {"policy": "llm/chat", "model": other_pool.model, "pool": "llm/qwen-14b-a10g"}
    assert (
        value(
            r,
            "fleetroute_router_requests_total",
            **labels,
            endpoint="127.0.0.1:8301",
            outcome="failure",
        )
        == 1
    )


def test_rejected_requests_count_by_reason_and_reraise() -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    with pytest.raises(errors.UnknownModel), telemetry.request("POST", "/v1/chat/completions", {}):
        raise errors.UnknownModel("no such model")
    r = telemetry.registry
    assert value(r, "fleetroute_router_rejected_requests_total", reason="unknown_model") == 1
    assert value(r, "fleetroute_router_rejected_requests_total", reason="overloaded") == 0


def test_breakers_and_in_flight_are_read_at_scrape_time(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    open_now = {"127.0.0.1:8301"}
    telemetry.watch(
        is_open=lambda address: address in open_now,
        in_flight=lambda pool: 3 if pool.name == "llm/llama-8b-l4" else 0,
    )
    r = telemetry.registry
    breaker = "fleetroute_router_circuit_breaker_open"
    assert value(r, breaker, pool="llm/qwen-14b-a10g", endpoint="127.0.0.1:8301") == 1
    assert value(r, breaker, pool="llm/llama-8b-l4", endpoint="127.0.0.1:8201") == 0
    assert value(r, "fleetroute_router_in_flight_requests", pool="llm/llama-8b-l4") == 3
    open_now.clear()
    assert value(r, breaker, pool="llm/qwen-14b-a10g", endpoint="127.0.0.1:8301") == 0


def test_exemplars_carry_the_trace_id_in_openmetrics_only(
    fleet: Fleet, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing)
    telemetry.set_fleet(fleet)
    with telemetry.request("POST", "/v1/chat/completions", {}) as span:
        assert span is not None
        trace_id = format(span.get_span_context().trace_id, "032x")
        telemetry.served(decision(), Served(e2e_s=0.5, ttft_s=0.1, completion_tokens=5))
    body, content_type = render(telemetry.registry, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    exemplars = [
        sample.exemplar
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name.startswith("fleetroute_router_ttft_seconds") and sample.exemplar
    ]
    assert [e.labels["trace_id"] for e in exemplars] == [trace_id]
    plain, plain_type = render(telemetry.registry, "text/plain")
    assert plain_type.startswith("text/plain")
    assert b"trace_id" not in plain


def test_no_exemplar_without_a_sampled_trace(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))  # tracing off
    telemetry.set_fleet(fleet)
    with telemetry.request("POST", "/v1/chat/completions", {}) as span:
        assert span is None
        telemetry.served(decision(), Served(e2e_s=0.5, ttft_s=0.1))
    body, _ = render(telemetry.registry, OPENMETRICS)
    assert b"trace_id" not in body


def test_labels_never_hold_request_ids_or_prompt_text(fleet: Fleet, tracing: Tracing) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()), tracing)
    telemetry.set_fleet(fleet)
    headers = {"x-request-id": REQUEST_ID}
    with telemetry.request("POST", "/v1/chat/completions", headers):
        telemetry.requested(model="fleet/chat", operation="chat", prompt=PROMPT)
        d = decision()
        telemetry.decided(d, 0.001)
        telemetry.served(d, Served(e2e_s=0.5, ttft_s=0.1, completion_tokens=5, reward=0.5))
        telemetry.finished(d, "cancelled")
    body, _ = render(telemetry.registry, OPENMETRICS)
    text = body.decode()
    assert "fleetroute_router_requests_total" in text
    assert REQUEST_ID not in text
    assert "decision-42" not in text
    assert "secret prompt" not in text
    names = {m.group(1) for m in re.finditer(r"^([a-z_:]+)[{ ]", text, re.M)}
    assert all(n.startswith("fleetroute_router_") for n in names)


def test_a_set_aside_arms_score_does_not_go_stale(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    telemetry.decided(decision(), 0.001)
    r = telemetry.registry
    arm = {"policy": "llm/chat", "pool": "llm/qwen-14b-a10g"}
    assert value(r, "fleetroute_router_arm_score", **arm) == 0.4
    telemetry.decided(decision(scores={"llm/llama-8b-l4": 0.7}), 0.001)  # the guard set it aside
    score = value(r, "fleetroute_router_arm_score", **arm)
    assert score is not None
    assert np.isnan(score)


def test_feedback_and_objective_series(fleet: Fleet) -> None:
    telemetry = RouterTelemetry(RouterMetrics(CollectorRegistry()))
    telemetry.set_fleet(fleet)
    d = decision()
    telemetry.scored(d, {"quality": 0.9, "latency": 0.5})
    telemetry.feedback("llm/chat", "judge", "accepted")
    telemetry.awaiting_dropped(2, 1)
    r = telemetry.registry
    quality = {"policy": "llm/chat", "pool": d.pool, "objective": "quality"}
    assert value(r, "fleetroute_router_objective_score_sum", **quality) == pytest.approx(0.9)
    feedback = {"policy": "llm/chat", "source": "judge", "result": "accepted"}
    assert value(r, "fleetroute_router_feedback_total", **feedback) == 1
    dropped = {"stage": "feedback", "reason": "expired"}
    assert value(r, "fleetroute_router_pending_dropped_total", **dropped) == 2
    dropped["reason"] = "capacity"
    assert value(r, "fleetroute_router_pending_dropped_total", **dropped) == 1
