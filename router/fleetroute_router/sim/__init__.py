"""Simulated OpenAI-compatible model servers: the embedded default fleet and test backends."""
