"""The fleetroute router: chooses a model pool and endpoint per request, and learns online."""
