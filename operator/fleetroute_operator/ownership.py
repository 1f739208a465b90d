"""Whether an existing object is ours to apply over: absent, or controlled by this ModelPool.

Server-side apply with force_conflicts takes over every field it sets, ownerReferences included,
so applying over a same-named Deployment someone else made would adopt it (and garbage collection
would delete it with the ModelPool). Before applying, the operator reads each object and refuses
one that a different controller, or none, controls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Manifest = Mapping[str, Any]


def controller(obj: Manifest) -> Mapping[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def owned_by(obj: Manifest, owner: Manifest) -> bool:
    """Whether `owner` (by uid, not by name: a deleted and recreated owner is another one)
    controls `obj`."""
    ref = controller(obj)
    uid = (owner.get("metadata") or {}).get("uid")
    return ref is not None and bool(uid) and ref.get("uid") == uid


def describe_owner(obj: Manifest) -> str:
    """Who an object belongs to, as far as its metadata says: its controller, else the managers
    that wrote it."""
    ref = controller(obj)
    if ref is not None:
        return f"controlled by {ref.get('kind')} {ref.get('name')} (uid {ref.get('uid')})"
    meta = obj.get("metadata") or {}
    # Who wrote the object itself, not its status (the controllers that report on it).
    managers = sorted(
        {
            str(m["manager"])
            for m in meta.get("managedFields") or []
            if m.get("manager") and not m.get("subresource")
        }
    )
    managed_by = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by")
    parts = ["no controller"]
    if managed_by:
        parts.append(f"app.kubernetes.io/managed-by={managed_by}")
    if managers:
        parts.append(f"written by {', '.join(managers)}")
    return "; ".join(parts)


def conflict(existing: Manifest | None, owner: Manifest) -> str | None:
    """None when `existing` is absent or ours; else why it is not ours to take over."""
    if existing is None or owned_by(existing, owner):
        return None
    meta = existing.get("metadata") or {}
    owner_meta = owner.get("metadata") or {}
    return (
        f"{existing.get('kind')} {meta.get('namespace')}/{meta.get('name')} already exists and "
        f"is not owned by {owner.get('kind', 'ModelPool')} {owner_meta.get('name')} "
        f"({describe_owner(existing)}): rename the ModelPool or remove that object"
    )
