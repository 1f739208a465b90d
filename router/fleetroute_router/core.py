"""The routing core: choose pool and endpoint(s) for a request, and learn each objective.

It holds no request in flight (the data plane does) and measures nothing itself: it turns a
request into a Decision, moves a Decision on retry, and learns the scores it is given."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from fleetroute import routerconfig
from fleetroute.v1alpha1 import config_pb2, learning_pb2
from fleetroute_router import errors, objectives, reward
from fleetroute_router.arm_stats import ArmStatistics, ArmSummary
from fleetroute_router.decisions import Decision
from fleetroute_router.features import Features, RequestInfo, baseline_features, text_features
from fleetroute_router.feedback import DEFAULT_WINDOW_S
from fleetroute_router.fleet import Fleet
from fleetroute_router.load import EndpointChooser, EndpointPick, LeastInFlight, LoadTracker
from fleetroute_router.objectives import QUALITY, Weights
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
    weights: Weights
    window_s: float
    # The policy's TTFT SLO in seconds (0: none), read once per config, not per request.
    ttft_slo_s: float = 0.0
    # Quality scores learned in total (feedback and priors): 0 means quality is unobserved.
    quality_seen: float = 0.0


@dataclass(frozen=True)
class PolicySummary:
    """What GetStats reports of one policy."""

    algorithm: str
    arms: list[ArmSummary]
    quality_observations: float
    quality_weight: float


@dataclass(frozen=True)
class _Candidate:
    """A candidate pool of one requested model, resolved from a fleet once."""

    name: str
    ready: int  # ready endpoints
    addresses: tuple[str, ...]  # every endpoint's, ready or not


def _candidates(
    fleet: Fleet, policy: config_pb2.Policy | None, request: RequestInfo
) -> tuple[_Candidate, ...]:
    if policy is not None:
        pools = [fleet.pools[name] for name in policy.candidates if name in fleet.pools]
    else:
        pools = list(fleet.pools_by_model[request.model])
    return tuple(
        _Candidate(p.name, sum(e.ready for e in p.endpoints), tuple(e.address for e in p.endpoints))
        for p in pools
    )


def _window_s(policy: config_pb2.Policy) -> float:
    if not policy.HasField("feedback_window"):
        return DEFAULT_WINDOW_S
    seconds = policy.feedback_window.ToTimedelta().total_seconds()
    return seconds if seconds > 0 else DEFAULT_WINDOW_S


class RoutingCore:
    """Chooses pool and endpoint(s) for requests of the current fleet, and learns from scores."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        extract: FeatureExtractor = text_features,
        clock: Callable[[], float] = time.monotonic,
        endpoints: Callable[[LoadTracker], EndpointChooser] = LeastInFlight,
    ) -> None:
        self._extract = extract
        self._clock = clock
        self.load = LoadTracker()
        self.endpoints = endpoints(self.load)
        self.guard = SloGuard(clock)
        self._policies: dict[str, _PolicyState] = {}
        # Candidate pools by requested model, resolved once per fleet (off the request path).
        self._candidates: dict[str, tuple[_Candidate, ...]] = {}
        self.arm_stats = ArmStatistics()
        # Requests naming a model rather than a policy: its pools by load, ties in turn.
        self._by_model: SelectionPolicy = LeastLoaded()
        self.fleet = fleet
        self.set_fleet(fleet)

    def set_fleet(self, fleet: Fleet) -> None:
        """Serve a new fleet; a policy whose algorithm is unchanged keeps what it learned (new
        weights and windows apply at once: each objective is learned on its own).

        Raises ConfigError (and changes nothing) when a policy's algorithm parameters are bad.
        """
        policies, fresh = {}, []
        for policy in fleet.config.policies:
            current = self._policies.get(policy.name)
            weights, window = objectives.weights(policy.objective), _window_s(policy)
            if current is not None and current.algorithm == policy.algorithm:
                policies[policy.name] = dataclasses.replace(
                    current, weights=weights, window_s=window, ttft_slo_s=_ttft_slo(policy)
                )
                continue
            try:
                selector = registry.build(policy.algorithm)
            except ValueError as error:
                raise routerconfig.ConfigError(f"policy {policy.name}: {error}") from error
            algorithm = config_pb2.Algorithm()
            algorithm.CopyFrom(policy.algorithm)  # a copy: the next config may reuse messages
            policies[policy.name] = _PolicyState(
                algorithm, selector, weights, window, _ttft_slo(policy)
            )
            fresh.append(policy.name)
        for name in fresh:
            self.arm_stats.reset(name)
        self._policies = policies
        self._candidates = {}
        self.guard.forget({p.name for p in fleet.config.pools})
        self.fleet = fleet

    def route(
        self,
        request: RequestInfo,
        request_id: str = "",
        objective: config_pb2.Objective | None = None,
    ) -> Decision:
        """Decide where a request goes, under the policy's weights or `objective` instead;
        raises InvalidRequest, UnknownModel or NoCapacity."""
        if not request.model:
            raise errors.InvalidRequest("model is required")
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise errors.InvalidRequest(f"prompt longer than {MAX_PROMPT_CHARS} characters")
        fleet = self.fleet
        policy = fleet.policies.get(request.model)
        weights: Weights | None = None
        slo_ttft_s = 0.0
        if policy is not None:
            with span("fleetroute.features"):
                features = self._extract(request)
            state = self._policies[policy.name]
            selector, fail_open = state.selector, policy.failure_mode == config_pb2.FAIL_OPEN
            weights = state.weights if objective is None else objectives.weights(objective)
            slo_ttft_s = state.ttft_slo_s
        elif request.model in fleet.pools_by_model:
            # A served model by name: its pools by load, so only the token estimate is needed.
            features = baseline_features(request)
            selector, fail_open = self._by_model, False
        else:
            raise errors.UnknownModel(
                f"model {request.model!r} is neither a policy alias nor a served model; "
                f"known: {', '.join(fleet.models()) or 'none'}"
            )
        candidates = self._candidates.get(request.model)
        if candidates is None:
            candidates = self._candidates[request.model] = _candidates(fleet, policy, request)
        in_flight = self.load.by_pool.get
        arms = [Arm(c.name, c.ready, in_flight(c.name, 0)) for c in candidates if c.ready]
        if not arms:
            if not fail_open or not any(c.addresses for c in candidates):
                raise errors.NoCapacity(f"no ready endpoint serves {request.model!r}")
            arms = [Arm(c.name, 0, in_flight(c.name, 0)) for c in candidates if c.addresses]
        if policy is not None:
            arms = list(self.guard.admissible(arms, policy.slo))
        with span("fleetroute.decide"):
            choice = selector.choose(features.vector, arms, weights)
        # The chosen pool first; if none of its endpoints is healthy (breakers open), the next
        # best arm's, so one broken pool does not fail requests another could serve.
        pool = fleet.pools[choice.arm]
        with span("fleetroute.pick_endpoint"):
            pick = self.endpoints.choose(
                pool, request, slo_ttft_s=slo_ttft_s, include_unready=fail_open
            )
            if pick is None:  # rare: ranked only then, off the common path
                ranked = sorted(arms, key=lambda a: -choice.scores.get(a.pool, float("-inf")))
                for arm in ranked:
                    if arm.pool == choice.arm:
                        continue
                    pool = fleet.pools[arm.pool]
                    pick = self.endpoints.choose(
                        pool, request, slo_ttft_s=slo_ttft_s, include_unready=fail_open
                    )
                    if pick is not None:
                        break
        if pick is None:
            raise errors.NoCapacity(f"no healthy ready endpoint serves {request.model!r}")
        endpoint = pick.address
        prefill_pool, prefill_endpoint = self._prefill(fleet, pool, policy, features, request, pick)
        ids = os.urandom(32).hex()  # two random 128-bit ids, as uuid4().hex, in one call
        decision = Decision(
            id=ids[:32],
            request_id=request_id or ids[32:],
            policy=policy.name if policy is not None else "",
            model=pool.model,
            pool=pool.name,
            endpoint=endpoint,
            algorithm=selector.name,
            scores=choice.scores,  # every policy makes a fresh mapping per choice
            explored=choice.explored,
            prefill_pool=prefill_pool,
            prefill_endpoint=prefill_endpoint,
            features=features.vector,
            share=1.0 / (1 + self.load.in_flight(endpoint)),
            made_at=self._clock(),
            endpoint_load=pick.load,
            weights=weights,
            prompt_tokens=features.prompt_tokens,
        )
        self.load.start(endpoint, pool.name)
        if policy is not None:
            self.arm_stats.chose(policy.name, pool.name)
        return decision

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
        candidates) than those that failed; None, holding its load, when there is none left."""
        policy = self.fleet.policies_by_name.get(decision.policy)
        fail_open = policy is not None and policy.failure_mode == config_pb2.FAIL_OPEN
        others = [c for c in (policy.candidates if policy else []) if c != decision.pool]
        names = [decision.pool, *others]
        if policy is None:
            names += [p.name for p in self.fleet.pools_by_model.get(decision.model, ())]
        state = self._policies.get(decision.policy)
        slo_ttft_s = state.ttft_slo_s if state is not None else 0.0
        for name in dict.fromkeys(names):
            pool = self.fleet.pools.get(name)
            if pool is None:
                continue
            pick = self.endpoints.choose(
                pool,
                request,
                slo_ttft_s=slo_ttft_s,
                exclude=failed,
                include_unready=fail_open,
            )
            if pick is None:
                continue
            prefill_pool, prefill_endpoint = ("", "")
            if decision.prefill_pool:
                peer = self.fleet.prefill_peer(pool)
                prefill = self.endpoints.choose(peer, request, exclude=failed) if peer else None
                if peer is not None and prefill is not None:
                    prefill_pool, prefill_endpoint = peer.name, prefill.address
            self.load.finish(decision.endpoint, decision.pool)
            moved = dataclasses.replace(
                decision,
                model=pool.model,
                pool=pool.name,
                endpoint=pick.address,
                prefill_pool=prefill_pool,
                prefill_endpoint=prefill_endpoint,
                endpoint_load=pick.load,
                share=1.0 / (1 + self.load.in_flight(pick.address)),
            )
            self.load.start(pick.address, pool.name)
            return moved
        return None

    def release(self, decision: Decision) -> None:
        """The decision's request is over: its endpoint has one request fewer in flight."""
        self.load.finish(decision.endpoint, decision.pool)

    def observe_latency(
        self, decision: Decision, outcome: reward.Outcome, *, ttft_known: bool = False
    ) -> None:
        """Teach the SLO guard what a request of the decision's pool took; `ttft_known`: the
        guard was told this request's TTFT while it streamed, so only its TPOT is new."""
        if ttft_known:
            if outcome.tpot_s is not None:
                self.guard.observe(decision.pool, 1.0 / decision.share - 1.0, None, outcome.tpot_s)
            return
        policy = self.fleet.policies_by_name.get(decision.policy)
        self.guard.observe(
            decision.pool,
            1.0 / decision.share - 1.0,
            outcome.ttft_s,
            outcome.tpot_s,
            e2e_s=outcome.e2e_s if outcome.ttft_s is None else None,
            tokens=outcome.completion_tokens,
            slo=policy.slo if policy is not None else None,
        )

    def learn(self, decision: Decision, scores: Mapping[str, float]) -> bool:
        """Teach the decision's policy the scores its pool earned, by objective; False when the
        policy or pool is gone from the config (nothing learned)."""
        state = self._policies.get(decision.policy)
        if state is None or decision.pool not in self.fleet.pools or not scores:
            return False
        state.selector.update(decision.pool, decision.features, scores)
        self.arm_stats.learned(decision.policy, decision.pool, scores)
        if objectives.OBJECTIVES[QUALITY] in scores:
            state.quality_seen += 1.0
        return True

    def window_s(self, policy_name: str) -> float | None:
        """How long a decision of the policy awaits quality feedback (None: no such policy)."""
        state = self._policies.get(policy_name)
        return state.window_s if state is not None else None

    def weights(self, policy_name: str) -> Weights | None:
        """The policy's current objective weights (None: no such policy)."""
        state = self._policies.get(policy_name)
        return state.weights if state is not None else None

    def quality_unobserved(self, policy_name: str) -> bool:
        """The policy weighs quality but has learned no quality score, from feedback or prior."""
        state = self._policies.get(policy_name)
        return state is not None and state.weights[QUALITY] > 0 and state.quality_seen <= 0

    def stats(self, policy_name: str = "") -> dict[str, PolicySummary]:
        """Summaries per policy (one policy, or all when empty); raises UnknownModel for a
        policy the config does not have."""
        if policy_name and policy_name not in self._policies:
            raise errors.UnknownModel(f"no policy {policy_name!r}")
        names = [policy_name] if policy_name else sorted(self._policies)
        found = {}
        for name in names:
            state = self._policies[name]
            found[name] = PolicySummary(
                state.selector.name,
                self.arm_stats.summary(name, state.weights),
                state.quality_seen,
                float(state.weights[QUALITY]),
            )
        return found

    def selectors(self) -> dict[str, SelectionPolicy]:
        """The live selection policy of each RoutingPolicy by name (for snapshots and merges)."""
        return {name: state.selector for name, state in self._policies.items()}

    def state(self, learning: learning_pb2.RouterLearning) -> None:
        """Add the guard's figures and the decision counts to a snapshot."""
        for pool, figures in self.guard.state().items():
            learning.guard[pool].CopyFrom(figures)
        for policy, counts in self.arm_stats.state().items():
            learning.counts[policy].CopyFrom(counts)

    def restore(self, learning: learning_pb2.RouterLearning, restored: Collection[str]) -> None:
        """Load a snapshot's guard figures and counts; `restored` names the policies whose
        statistics were loaded (their quality observations come back with them)."""
        self.guard.restore({p: f for p, f in learning.guard.items() if p in self.fleet.pools})
        self.arm_stats.restore(learning.counts, set(restored))
        for name in restored:
            state = self._policies.get(name)
            if state is not None:  # feedback counted in status, or a prior's observations
                state.quality_seen = max(
                    self.arm_stats.quality_observations(name),
                    _prior_quality(learning.policies[name]),
                )


def _prior_quality(state: learning_pb2.LearnerState) -> float:
    """Quality observations held in a policy's saved statistics (a prior counts)."""
    name = objectives.OBJECTIVES[QUALITY]
    return sum(arm.observations for arm in state.arms if arm.objective == name)
