"""The fleetroute operator: reconciles GPUPools, ModelPools and RoutingPolicies with kopf."""
