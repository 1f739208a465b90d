"""Envoy ext_proc service, compatible with the Gateway API Inference Extension."""
