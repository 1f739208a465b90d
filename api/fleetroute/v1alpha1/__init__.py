"""Generated protobuf and gRPC code for fleetroute.v1alpha1: do not edit."""
