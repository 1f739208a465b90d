"""Benchmarks run by `fleetroute bench NAME`, each printing ratios against a baseline run."""
