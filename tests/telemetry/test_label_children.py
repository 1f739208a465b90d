"""The label-children cache: one labels() per series, and forgetting series that were removed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from fleetroute_router.telemetry.children import LabelChildren


def _counter() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("c", "a counter", ["pool", "endpoint"], registry=registry)


def test_the_same_series_gets_the_same_child() -> None:
    _, counter = _counter()
    children = LabelChildren()
    first = children.child(counter, "a", "10.0.0.1:8000")
    assert children.child(counter, "a", "10.0.0.1:8000") is first
    assert children.child(counter, "a", "10.0.0.2:8000") is not first
    assert len(children) == 2


def test_a_removed_endpoint_is_forgotten_and_counted_again_when_it_returns() -> None:
    registry, counter = _counter()
    children = LabelChildren()
    children.child(counter, "a", "10.0.0.1:8000").inc()
    children.child(counter, "a", "10.0.0.2:8000").inc()
    counter.remove("a", "10.0.0.1:8000")  # pruning a churned pod's series
    assert children.forget("10.0.0.1:8000") == 1
    children.child(counter, "a", "10.0.0.1:8000").inc()
    sample = {"pool": "a", "endpoint": "10.0.0.1:8000"}
    assert registry.get_sample_value("c_total", sample) == 1.0  # exported, not an orphan
    assert registry.get_sample_value("c_total", {**sample, "endpoint": "10.0.0.2:8000"}) == 1.0


def test_forgetting_a_metric_drops_only_its_children() -> None:
    _, counter = _counter()
    other = Counter("d", "another", ["pool"], registry=CollectorRegistry())
    children = LabelChildren()
    kept = children.child(other, "a")
    children.child(counter, "a", "x")
    counter.clear()
    children.forget_metric(counter)
    assert len(children) == 1
    assert children.child(other, "a") is kept
