"""End-to-end tests and the local Kubernetes cluster harness they run against."""
