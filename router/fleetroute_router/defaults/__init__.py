"""Configuration shipped with the router: the embedded example fleet and endpoint picker."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EMBEDDED_CONFIG = "example-fleet.yaml"


def embedded_config_path() -> Path:
    """The example fleet's RouterConfig shipped inside the package."""
    return Path(str(resources.files(__name__).joinpath(EMBEDDED_CONFIG)))
