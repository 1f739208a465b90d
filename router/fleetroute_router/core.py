"""The routing core both transports share: place a request, then learn from its outcome."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors, reward
from fleetroute_router.decisions import Decision, PendingDecisions
from fleetroute_router.features import Features, RequestInfo, baseline_features
from fleetroute_router.fleet import Fleet
from fleetroute_router.load import LoadTracker
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm, SelectionPolicy

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 4_000_000
FeatureExtractor = Callable[[RequestInfo], Features]


@dataclass
class _PolicyState:
    algorithm: config_pb2.Algorithm
    selector: SelectionPolicy


class RoutingCore:
    """Chooses pool and endpoint(s) for requests of the current fleet, and learns from feedback."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        extract: FeatureExtractor = baseline_features,
        decision_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._extract = extract
        self._clock = clock
        self._pending = PendingDecisions(ttl_s=decision_ttl_s, clock=clock)
        self.load = LoadTracker()
        self._policies: dict[str, _PolicyState] = {}
        self.fleet = fleet
        self.set_fleet(fleet)

    def set_fleet(self, fleet: Fleet) -> None:
        """Serve a new fleet; a policy whose algorithm is unchanged keeps what it learned."""
        policies = {}
        for policy in fleet.config.policies:
            current = self._policies.get(policy.name)
            if current is not None and current.algorithm == policy.algorithm:
                policies[policy.name] = current
            else:
                policies[policy.name] = _PolicyState(
                    policy.algorithm, registry.build(policy.algorithm)
                )
        self._policies = policies
        self.fleet = fleet

    def route(self, request: RequestInfo, request_id: str = "") -> Decision:
        """Decide where a request goes; raises InvalidRequest, UnknownModel or NoCapacity."""
        if not request.model:
            raise errors.InvalidRequest("model is required")
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise errors.InvalidRequest(f"prompt longer than {MAX_PROMPT_CHARS} characters")
        fleet = self.fleet
        features = self._extract(request)
        policy = fleet.policies.get(request.model)
        if policy is not None:
            candidates = [fleet.pools[name] for name in policy.candidates if name in fleet.pools]
            state = self._policies[policy.name]
            selector, fail_open = state.selector, policy.failure_mode == config_pb2.FAIL_OPEN
        elif request.model in fleet.pools_by_model:
            candidates = list(fleet.pools_by_model[request.model])
            selector, fail_open = registry.build(config_pb2.Algorithm(name="least-loaded")), False
        else:
            raise errors.UnknownModel(
                f"model {request.model!r} is neither a policy alias nor a served model; "
                f"known: {', '.join(fleet.models()) or 'none'}"
            )
        arms = [
            Arm(p.name, sum(e.ready for e in p.endpoints), self.load.pool_in_flight(p))
            for p in candidates
            if any(e.ready for e in p.endpoints)
        ]
        if not arms:
            if not fail_open or not any(p.endpoints for p in candidates):
                raise errors.NoCapacity(f"no ready endpoint serves {request.model!r}")
            arms = [Arm(p.name, 0, self.load.pool_in_flight(p)) for p in candidates if p.endpoints]
        choice = selector.choose(features.vector, arms)
        pool = fleet.pools[choice.arm]
        endpoint = self.load.pick(pool, include_unready=fail_open)
        if endpoint is None:
            raise errors.NoCapacity(f"pool {pool.name} has no ready endpoint")
        prefill_pool, prefill_endpoint = self._prefill(fleet, pool, policy, features)
        share = 1.0 / (1 + self.load.in_flight(endpoint))
        decision = Decision(
            id=uuid.uuid4().hex,
            request_id=request_id or uuid.uuid4().hex,
            policy=policy.name if policy is not None else "",
            model=pool.model,
            pool=pool.name,
            endpoint=endpoint,
            algorithm=selector.name,
            scores=dict(choice.scores),
            prefill_pool=prefill_pool,
            prefill_endpoint=prefill_endpoint,
            features=features.vector,
            share=share,
            made_at=self._clock(),
        )
        self.load.start(endpoint)
        for expired in self._pending.add(decision):
            self.load.finish(expired.endpoint)
        return decision

    def _prefill(
        self,
        fleet: Fleet,
        pool: config_pb2.Pool,
        policy: config_pb2.Policy | None,
        features: Features,
    ) -> tuple[str, str]:
        """Prefill pool and endpoint when the request is long enough to split, else empty."""
        peer = fleet.prefill_peer(pool)
        threshold = policy.min_uncached_prompt_tokens if policy is not None else 0
        if peer is None or features.prompt_tokens < threshold:
            return "", ""
        endpoint = self.load.pick(peer)
        return (peer.name, endpoint) if endpoint else ("", "")

    def report(self, decision_id: str, outcome: reward.Outcome) -> reward.Scores:
        """Learn from a decision's outcome; raises UnknownDecision for unknown or expired ids."""
        if not decision_id:
            raise errors.InvalidRequest("decision_id is required")
        decision = self._pending.take(decision_id)
        if decision is None:
            raise errors.UnknownDecision(
                f"no pending decision {decision_id!r} (unknown or expired)"
            )
        self.load.finish(decision.endpoint)
        pool = self.fleet.pools.get(decision.pool)
        policy = next((p for p in self.fleet.config.policies if p.name == decision.policy), None)
        if pool is None or policy is None:
            return reward.Scores(0.0, 0.0, 0.0, 0.0, 0.0)
        scores = reward.score(policy, pool, outcome, decision.share)
        state = self._policies.get(policy.name)
        if state is not None:
            state.selector.update(decision.pool, decision.features, scores.reward)
        return scores
