"""Models of the fleetroute.dev/v1alpha1 custom resources: the one source of their CRD YAML."""

from fleetroute.crds.common import GROUP, VERSION, Condition
from fleetroute.crds.gpupool import GPUPool, GPUPoolSpec, GPUPoolStatus
from fleetroute.crds.modelpool import ModelPool, ModelPoolSpec, ModelPoolStatus
from fleetroute.crds.routingpolicy import RoutingPolicy, RoutingPolicySpec, RoutingPolicyStatus

__all__ = [
    "GROUP",
    "VERSION",
    "Condition",
    "GPUPool",
    "GPUPoolSpec",
    "GPUPoolStatus",
    "ModelPool",
    "ModelPoolSpec",
    "ModelPoolStatus",
    "RoutingPolicy",
    "RoutingPolicySpec",
    "RoutingPolicyStatus",
]
