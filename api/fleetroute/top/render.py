"""The view as rich renderables: a header line and one table per policy."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from fleetroute.top.view import ArmView, PolicyView, View

COLUMNS = (
    "pool",
    "dec/s",
    "split",
    "share",
    "reward",
    "W",
    "J/req",
    "measured",
    "gCO2e/h",
    "err/s",
)


def _bar(fraction: float, width: int = 10) -> str:
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "█" * filled + "·" * (width - filled)


def _row(arm: ArmView) -> list[str]:
    return [
        arm.pool,
        f"{arm.decisions_per_s:.1f}",
        f"{_bar(arm.split)} {arm.split:4.0%}",
        f"{arm.share:.0%}",
        f"{arm.mean_reward:.3f}" if arm.rewards else "-",
        f"{arm.watts:.1f}",
        f"{arm.joules_per_request:.1f}" if arm.joules_per_request is not None else "-",
        f"{arm.measured:.0%}" if arm.measured is not None else "-",
        f"{arm.grams_per_hour:.2f}",
        f"{arm.errors_per_s:.1f}",
    ]


def policy_table(policy: PolicyView) -> Table:
    table = Table(
        title=f"{policy.policy}  ({policy.algorithm})  {policy.decisions_per_s:.1f} decisions/s",
        title_justify="left",
        expand=True,
    )
    for index, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if index in (0, 2) else "right", no_wrap=True)
    for arm in sorted(policy.arms, key=lambda a: -a.split):
        table.add_row(*_row(arm))
    return table


def render(view: View, router: str) -> RenderableType:
    header = Text.assemble(
        ("fleetroute top", "bold"),
        f"  router {router}  config {view.revision or '-'}  over {view.interval_s:.1f}s  ",
        ("split", "bold"),
        ": last interval, ",
        ("share", "bold"),
        ": since start, ",
        ("measured", "bold"),
        ": energy from DCGM",
    )
    if not view.policies:
        return Group(header, Text("no routing policy in the router's config"))
    return Group(header, *(policy_table(p) for p in view.policies))
