"""One RoutingPolicy: its split over pools, reward per objective, feedback, exploration."""

from __future__ import annotations

from typing import Final

from fleetroute_dashboards.common import slo_attainment
from fleetroute_dashboards.panels import Dashboard, Panel, Query, Row, Variable
from fleetroute_dashboards.promql import (
    DECISIONS,
    FEEDBACK,
    OBJECTIVE_SCORE,
    PENDING,
    PENDING_DROPPED,
    POLICY,
    POLICY_DECISIONS,
    POLICY_POOL_DECISIONS,
    QUALITY_UNOBSERVED,
    RATE,
    ROUTE,
    mean,
    rate,
    share,
)

ACCEPTED: Final = POLICY + ', result="accepted"'
VARIABLES: Final = (
    Variable("policy", "Policy", f'label_values({DECISIONS}{{policy!=""}}, policy)'),
    Variable("pool", "Pool", f"label_values({DECISIONS}, pool)"),
)

DASHBOARD: Final = Dashboard(
    uid="fleetroute-policy",
    title="fleetroute / routing policy",
    description="One RoutingPolicy: how it splits traffic over its candidate pools, the reward "
    "it learns from per objective, how many decisions get a quality label, and how often it "
    "explores.",
    variables=VARIABLES,
    rows=(
        Row(
            "Split",
            (
                Panel(
                    "Split per pool",
                    "Share of the policy's decisions each candidate pool receives, over time.",
                    [
                        Query(
                            f"{rate(DECISIONS, POLICY_POOL_DECISIONS, 'policy, pool')} / on "
                            f"(policy) group_left {rate(DECISIONS, POLICY_DECISIONS, 'policy')}",
                            "{{policy}} → {{pool}}",
                        )
                    ],
                    "percentunit",
                    stack=True,
                    max=1,
                ),
                Panel(
                    "Decisions per second by pool",
                    "Decisions by chosen pool and mode (aggregated, or a P/D split).",
                    [
                        Query(
                            rate(DECISIONS, POLICY_POOL_DECISIONS, "policy, pool, mode"),
                            "{{pool}} {{mode}}",
                        )
                    ],
                    "reqps",
                    stack=True,
                ),
                Panel(
                    "Arm scores at the latest decision",
                    "The value the policy gave each candidate pool (UCB / sampled / estimated).",
                    [
                        Query(
                            f"max by (policy, pool) (fleetroute_router_arm_score{{{ROUTE}}})",
                            "{{policy}} {{pool}}",
                        )
                    ],
                ),
            ),
        ),
        Row(
            "Reward",
            (
                Panel(
                    "Reward per objective",
                    "Mean score in [0, 1] of each objective (quality, latency, energy, cost) "
                    "that the reward weighs.",
                    [
                        Query(
                            mean(OBJECTIVE_SCORE, ROUTE, "policy, objective"),
                            "{{policy}} {{objective}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "Reward per objective and pool",
                    "Mean objective scores per chosen pool.",
                    [
                        Query(
                            mean(OBJECTIVE_SCORE, ROUTE, "pool, objective"),
                            "{{pool}} {{objective}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "Mean reward by pool",
                    "Mean reward in [0, 1] the policy learned from, per chosen pool. "
                    "Exemplars link to the request's trace.",
                    [
                        Query(
                            mean("fleetroute_router_reward", ROUTE, "policy, pool"),
                            "{{policy}} → {{pool}}",
                            True,
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
            ),
        ),
        Row(
            "Feedback",
            (
                Panel(
                    "Feedback coverage",
                    "Share of decisions that got an accepted quality label.",
                    [
                        Query(
                            f"{rate(FEEDBACK, ACCEPTED, 'policy')} / "
                            f"{rate(DECISIONS, POLICY_DECISIONS, 'policy')}",
                            "{{policy}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                Panel(
                    "Feedback by result",
                    "Feedback reports by source and result (accepted, duplicate, conflict, "
                    "unknown, expired, invalid, unauthorized).",
                    [Query(rate(FEEDBACK, POLICY, "source, result"), "{{source}} {{result}}")],
                    "reqps",
                    stack=True,
                ),
                Panel(
                    "Decisions learned without a quality label",
                    "Decisions per second whose quality was never observed.",
                    [Query(rate(QUALITY_UNOBSERVED, POLICY, "policy"), "{{policy}}")],
                    "reqps",
                ),
                Panel(
                    "Decisions waiting for feedback",
                    "Decisions the router holds until their feedback arrives or expires.",
                    [Query(f"sum({PENDING})", "pending")],
                ),
                Panel(
                    "Pending decisions dropped",
                    "Held decisions dropped, by reason (expired, capacity).",
                    [
                        Query(
                            f"sum by (reason) (rate({PENDING_DROPPED}[{RATE}]))",
                            "{{reason}}",
                        )
                    ],
                    "ops",
                ),
            ),
        ),
        Row(
            "Exploration and outcomes",
            (
                Panel(
                    "Exploration rate",
                    "Share of decisions where the policy chose an arm other than its "
                    "best-scored one.",
                    [
                        Query(
                            share(DECISIONS, 'choice="explore"', POLICY_DECISIONS, "policy"),
                            "{{policy}}",
                        )
                    ],
                    "percentunit",
                    max=1,
                ),
                slo_attainment("Share of served requests that met each objective."),
                Panel(
                    "Energy and carbon of the policy's requests",
                    "Watts drawn and grams of CO2e per hour by the requests the policy routed.",
                    [
                        Query(
                            rate("fleetroute_router_energy_joules_total", ROUTE, "policy"),
                            "W {{policy}}",
                        ),
                        Query(
                            f"{rate('fleetroute_router_carbon_grams_total', ROUTE, 'policy')}"
                            " * 3600",
                            "gCO2e/h {{policy}}",
                        ),
                    ],
                ),
            ),
        ),
    ),
)
