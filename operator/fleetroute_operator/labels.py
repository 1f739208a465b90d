"""Label and annotation keys the operator puts on what it creates, and how it sanitises values."""

from __future__ import annotations

import hashlib
import re

DOMAIN = "fleetroute.dev"
MODELPOOL = f"{DOMAIN}/modelpool"
MODEL = f"{DOMAIN}/model"
ROLE = f"{DOMAIN}/role"
GPU_POOL = f"{DOMAIN}/gpu-pool"
MODEL_ANNOTATION = f"{DOMAIN}/model"
ROUTER_CONFIG = f"{DOMAIN}/router-config"

MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR_NAME = "fleetroute-operator"

_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")


def label_value(text: str) -> str:
    """A valid label value for any text: invalid runs become '-', long values keep a hash suffix."""
    value = _INVALID.sub("-", text).strip("-_.")
    if len(value) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        value = value[:54].rstrip("-_.") + "-" + digest
    return value


def pool_labels(name: str, model: str, role: str, gpu_pool: str | None) -> dict[str, str]:
    """Labels of every object and pod belonging to one ModelPool."""
    labels = {
        "app.kubernetes.io/name": "model-server",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "fleetroute",
        MANAGED_BY: OPERATOR_NAME,
        MODELPOOL: name,
        MODEL: label_value(model),
        ROLE: role,
    }
    if gpu_pool:
        labels[GPU_POOL] = gpu_pool
    return labels
