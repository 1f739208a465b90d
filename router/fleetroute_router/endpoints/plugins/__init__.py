"""Endpoint-picking plugins, one per folder, each with a README giving its type and formula."""
