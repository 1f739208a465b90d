"""`fleetroute top`: a live terminal view of a running router's policies and pools.

snapshot    one reading of the router: GetStats over gRPC and its /metrics
view        rates between two readings: decisions/s, split, reward, watts and gCO2e per arm
render      the view as rich tables
command     the subcommand: poll, render live (or once), exit on Ctrl-C
"""

from fleetroute.top.command import configure, run

__all__ = ["configure", "run"]
