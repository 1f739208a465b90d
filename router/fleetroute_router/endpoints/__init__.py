"""Endpoint picking in a pool: scraped metrics, filter/scorer/picker plugins, circuit breakers."""
