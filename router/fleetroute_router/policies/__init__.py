"""Selection policies: which candidate pool (arm) serves a request."""

from fleetroute_router.policies.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB
from fleetroute_router.policies.base import Arm, Choice, SelectionPolicy
from fleetroute_router.policies.baseline import LeastLoaded, RoundRobin, Static, UniformRandom
from fleetroute_router.policies.guard import SloGuard
from fleetroute_router.policies.linear import ArmStatistics, LinearModel

__all__ = [
    "Arm",
    "ArmStatistics",
    "Choice",
    "EpsilonGreedy",
    "LeastLoaded",
    "LinUCB",
    "LinearBandit",
    "LinearModel",
    "LinearThompson",
    "RoundRobin",
    "SelectionPolicy",
    "SloGuard",
    "Static",
    "UniformRandom",
]
