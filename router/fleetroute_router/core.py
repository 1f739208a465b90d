"""The routing core both transports share: place a request, then learn from its outcome."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2
from fleetroute_router import errors, reward
from fleetroute_router.arm_stats import ArmStatistics, ArmSummary
from fleetroute_router.decisions import Decision, PendingDecisions
from fleetroute_router.features import Features, RequestInfo, text_features
from fleetroute_router.fleet import Fleet
from fleetroute_router.load import EndpointChooser, EndpointPick, LeastInFlight, LoadTracker
from fleetroute_router.policies import registry
from fleetroute_router.policies.base import Arm, SelectionPolicy
from fleetroute_router.policies.baseline import LeastLoaded
from fleetroute_router.policies.guard import SloGuard
from fleetroute_router.telemetry.tracing import span

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 4_000_000
# Requests that name a model rather than a policy split a P/D pair from this prompt length on.
DEFAULT_MIN_UNCACHED_PROMPT_TOKENS = 512
FeatureExtractor = Callable[[RequestInfo], Features]


def _ttft_slo(policy: config_pb2.Policy | None) -> float:
    if policy is None or not policy.slo.HasField("ttft"):
        return 0.0
    return float(policy.slo.ttft.ToTimedelta().total_seconds())


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
        extract: FeatureExtractor = text_features,
        decision_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        endpoints: Callable[[LoadTracker], EndpointChooser] = LeastInFlight,
    ) -> None:
        self._extract = extract
        self._clock = clock
        self._pending = PendingDecisions(ttl_s=decision_ttl_s, clock=clock)
        self.load = LoadTracker()
        self.endpoints = endpoints(self.load)
        self.guard = SloGuard()
        self.expired_total = 0
        self._partial: dict[str, reward.Outcome] = {}
        self._policies: dict[str, _PolicyState] = {}
        self.arm_stats = ArmStatistics()
        # Requests naming a model rather than a policy: its pools by load, ties in turn.
        self._by_model: SelectionPolicy = LeastLoaded()
        self.fleet = fleet
        self.set_fleet(fleet)

    def set_fleet(self, fleet: Fleet) -> None:
        """Serve a new fleet; a policy whose algorithm is unchanged keeps what it learned.

        Raises ConfigError (and changes nothing) when a policy's algorithm parameters are bad.
        """
        policies, fresh = {}, []
        for policy in fleet.config.policies:
            current = self._policies.get(policy.name)
            if current is not None and current.algorithm == policy.algorithm:
                policies[policy.name] = current
                continue
            try:
                selector = registry.build(policy.algorithm)
            except ValueError as error:
                raise routerconfig.ConfigError(f"policy {policy.name}: {error}") from error
            algorithm = config_pb2.Algorithm()
            algorithm.CopyFrom(policy.algorithm)  # a copy: the next config may reuse messages
            policies[policy.name] = _PolicyState(algorithm, selector)
            fresh.append(policy.name)
        for name in fresh:
            self.arm_stats.reset(name)
        self._policies = policies
        self.fleet = fleet

    def route(self, request: RequestInfo, request_id: str = "") -> Decision:
        """Decide where a request goes; raises InvalidRequest, UnknownModel or NoCapacity."""
        if not request.model:
            raise errors.InvalidRequest("model is required")
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise errors.InvalidRequest(f"prompt longer than {MAX_PROMPT_CHARS} characters")
        fleet = self.fleet
        with span("fleetroute.features"):
            features = self._extract(request)
        policy = fleet.policies.get(request.model)
        if policy is not None:
            candidates = [fleet.pools[name] for name in policy.candidates if name in fleet.pools]
            state = self._policies[policy.name]
            selector, fail_open = state.selector, policy.failure_mode == config_pb2.FAIL_OPEN
        elif request.model in fleet.pools_by_model:
            candidates = list(fleet.pools_by_model[request.model])
            selector, fail_open = self._by_model, False
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
        if policy is not None:
            arms = list(self.guard.admissible(arms, policy.slo))
        with span("fleetroute.decide"):
            choice = selector.choose(features.vector, arms)
        pool = fleet.pools[choice.arm]
        slo_ttft = _ttft_slo(policy)
        with span("fleetroute.pick_endpoint"):
            pick = self.endpoints.choose(
                pool, request, slo_ttft_s=slo_ttft, include_unready=fail_open
            )
        if pick is None:
            raise errors.NoCapacity(f"pool {pool.name} has no healthy ready endpoint")
        endpoint = pick.address
        prefill_pool, prefill_endpoint = self._prefill(fleet, pool, policy, features, request, pick)
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
            explored=choice.explored,
            prefill_pool=prefill_pool,
            prefill_endpoint=prefill_endpoint,
            features=features.vector,
            share=share,
            made_at=self._clock(),
            endpoint_load=pick.load,
        )
        self.load.start(endpoint)
        if policy is not None:
            self.arm_stats.chose(policy.name, pool.name)
        for expired in self._pending.add(decision):
            self.load.finish(expired.endpoint)
            self.expired_total += 1
            partial = self._partial.pop(expired.id, None)
            if partial is not None:
                self.expire_learn(expired, partial)
        return decision

    def record_partial(self, decision_id: str, outcome: reward.Outcome) -> None:
        """Keep what the data plane measured of a request (TTFT, e2e, energy) before its
        feedback; if the feedback never arrives, the decision learns from this at expiry."""
        if decision_id in self._pending:
            self._partial[decision_id] = outcome

    def expire_learn(self, decision: Decision, partial: reward.Outcome) -> float | None:
        """Learn from an expired decision's measured latency/energy/cost (quality unknown);
        returns the partial reward learned, None when nothing measured applies."""
        pool = self.fleet.pools.get(decision.pool)
        policy = self.fleet.policies_by_name.get(decision.policy)
        state = self._policies.get(decision.policy)
        if pool is None or policy is None or state is None:
            return None
        queue = 1.0 / decision.share - 1.0
        self.guard.observe(decision.pool, queue, partial.ttft_s, partial.tpot_s)
        value = reward.partial_score(policy, pool, partial, decision.share)
        if value is not None:
            state.selector.update(decision.pool, decision.features, value)
            self.arm_stats.learned(decision.policy, decision.pool, value)
        return value

    def stats(self, policy_name: str = "") -> dict[str, tuple[str, list[ArmSummary]]]:
        """Algorithm and arm summaries per policy (one policy, or all when empty); raises
        UnknownModel for a policy the config does not have."""
        if policy_name and policy_name not in self._policies:
            raise errors.UnknownModel(f"no policy {policy_name!r}")
        names = [policy_name] if policy_name else sorted(self._policies)
        return {
            name: (self._policies[name].selector.name, self.arm_stats.summary(name))
            for name in names
        }

    def selectors(self) -> dict[str, SelectionPolicy]:
        """The live selection policy of each RoutingPolicy by name (for snapshots and merges)."""
        return {name: state.selector for name, state in self._policies.items()}

    def _prefill(
        self,
        fleet: Fleet,
        pool: config_pb2.Pool,
        policy: config_pb2.Policy | None,
        features: Features,
        request: RequestInfo,
        decode: EndpointPick,
    ) -> tuple[str, str]:
        """Prefill pool and endpoint when the prompt tokens the decode endpoint does not have
        cached reach the policy's threshold, else empty."""
        peer = fleet.prefill_peer(pool)
        threshold = (
            policy.min_uncached_prompt_tokens
            if policy is not None
            else DEFAULT_MIN_UNCACHED_PROMPT_TOKENS
        )
        if peer is None or features.prompt_tokens - decode.cached_tokens < threshold:
            return "", ""
        pick = self.endpoints.choose(peer, request)
        return (peer.name, pick.address) if pick else ("", "")

    def retry(
        self, decision: Decision, request: RequestInfo, failed: Collection[str]
    ) -> Decision | None:
        """The decision moved to another endpoint of its pool (then of its policy's other
        candidates) than those that failed; None when there is none left."""
        current = self._pending.take(decision.id)
        if current is None:
            return None
        self.load.finish(current.endpoint)
        policy = self.fleet.policies_by_name.get(current.policy)
        fail_open = policy is not None and policy.failure_mode == config_pb2.FAIL_OPEN
        others = [c for c in (policy.candidates if policy else []) if c != current.pool]
        names = [current.pool, *others]
        if policy is None:
            names += [p.name for p in self.fleet.pools_by_model.get(current.model, ())]
        for name in dict.fromkeys(names):
            pool = self.fleet.pools.get(name)
            if pool is None:
                continue
            pick = self.endpoints.choose(
                pool,
                request,
                slo_ttft_s=_ttft_slo(policy),
                exclude=failed,
                include_unready=fail_open,
            )
            if pick is None:
                continue
            prefill_pool, prefill_endpoint = ("", "")
            if current.prefill_pool:
                peer = self.fleet.prefill_peer(pool)
                prefill = self.endpoints.choose(peer, request, exclude=failed) if peer else None
                if peer is not None and prefill is not None:
                    prefill_pool, prefill_endpoint = peer.name, prefill.address
            moved = dataclasses.replace(
                current,
                model=pool.model,
                pool=pool.name,
                endpoint=pick.address,
                prefill_pool=prefill_pool,
                prefill_endpoint=prefill_endpoint,
                endpoint_load=pick.load,
                share=1.0 / (1 + self.load.in_flight(pick.address)),
            )
            self.load.start(pick.address)
            self._pending.add(moved)
            return moved
        self.load.start(current.endpoint)
        self._pending.add(current)  # still pending: the caller reports its failure
        return None

    def abandon(self, decision_id: str) -> None:
        """Forget a decision without learning (the client went away before an outcome)."""
        decision = self._pending.take(decision_id)
        self._partial.pop(decision_id, None)
        if decision is not None:
            self.load.finish(decision.endpoint)

    def report(self, decision_id: str, outcome: reward.Outcome) -> reward.Scores:
        """Learn from a decision's outcome; raises UnknownDecision for unknown or expired ids."""
        if not decision_id:
            raise errors.InvalidRequest("decision_id is required")
        decision = self._pending.take(decision_id)
        self._partial.pop(decision_id, None)
        if decision is None:
            raise errors.UnknownDecision(
                f"no pending decision {decision_id!r} (unknown or expired)"
            )
        self.load.finish(decision.endpoint)
        pool = self.fleet.pools.get(decision.pool)
        policy = self.fleet.policies_by_name.get(decision.policy)
        if pool is None or policy is None:
            return reward.Scores(0.0, 0.0, 0.0, 0.0, 0.0)
        queue = 1.0 / decision.share - 1.0
        self.guard.observe(decision.pool, queue, outcome.ttft_s, outcome.tpot_s)
        scores = reward.score(policy, pool, outcome, decision.share)
        state = self._policies.get(policy.name)
        if state is not None:
            state.selector.update(decision.pool, decision.features, scores.reward)
            self.arm_stats.learned(policy.name, decision.pool, scores.reward)
        return scores
