"""Configuration shipped with the router."""
