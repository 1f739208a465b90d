"""`fleetroute replay`: offline benchmarks of selection policies on logged routing outcomes."""
