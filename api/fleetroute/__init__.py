"""fleetroute: the API shared by the operator and the router, and the command line."""

__version__ = "0.1.0"
