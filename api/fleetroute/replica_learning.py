"""The ConfigMaps router replicas publish their learning in: names, labels, (de)serialisation.

Shared by the router (which writes and merges them) and the operator (which reads them for
RoutingPolicy status). One replica's object holds a zlib-compressed RouterLearning in
`binaryData`, split over keys of at most CHUNK_BYTES and, when larger than OBJECT_BYTES, over
further part objects `<head>-part-<n>`; the head carries the sequence number and the part count
in annotations, and every part repeats the sequence number, so a reader never mixes two
publishes.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetroute.v1alpha1 import learning_pb2

GROUP = "fleetroute.dev"
# Label on every learning object; its value says which kind.
KIND_LABEL = f"{GROUP}/learning"
REPLICA_KIND, BASE_KIND = "replica", "base"
# Label naming the publishing replica (its Pod), on each of its objects.
REPLICA_LABEL = f"{GROUP}/replica"
SEQUENCE = f"{GROUP}/sequence"
PARTS = f"{GROUP}/parts"
PART = f"{GROUP}/part"
PUBLISHED_AT = f"{GROUP}/published-at"
# The replica's full name (the label holds at most 63 characters of it).
REPLICA_ANNOTATION = f"{GROUP}/replica"
# Base object: which replicas' last states it holds, as JSON {replica: sequence}.
FOLDED = f"{GROUP}/folded"
# Held on every replica object until its last state is folded into the base.
FINALIZER = f"{GROUP}/fold-learning"
BASE_NAME = "fleetroute-learning-base"
PREFIX = "fleetroute-learning-"
CHUNK_KEY = "learning-{:04d}.pb.zlib"
# binaryData is base64 in the object: 560 KiB of bytes stay well under the 1 MiB limit.
CHUNK_BYTES = 128 * 1024
OBJECT_BYTES = 560 * 1024
_NAME = re.compile(r"[^a-z0-9-]+")


def object_name(replica: str) -> str:
    """The head object of a replica's learning (a DNS-1123 name derived from the pod name)."""
    name = _NAME.sub("-", replica.lower()).strip("-")
    return (PREFIX + name)[:253].rstrip("-")


def part_name(head: str, part: int) -> str:
    """The name of part `part` (1, 2, ...) of a publish too large for one object."""
    return f"{head}-part-{part}"


def encode(learning: learning_pb2.RouterLearning) -> list[dict[str, str]]:
    """`binaryData` of each object (head first) holding a learning message."""
    packed = zlib.compress(learning.SerializeToString(deterministic=True), level=6)
    chunks = [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]
    per_object = max(1, OBJECT_BYTES // CHUNK_BYTES)
    objects: list[dict[str, str]] = []
    for start in range(0, len(chunks), per_object):
        objects.append(
            {
                CHUNK_KEY.format(start + i): base64.b64encode(chunk).decode()
                for i, chunk in enumerate(chunks[start : start + per_object])
            }
        )
    return objects


def decode(binary_data: Sequence[Mapping[str, str]]) -> learning_pb2.RouterLearning:
    """The learning message of the objects' `binaryData` (head first); ValueError when broken."""
    chunks: dict[str, str] = {}
    for data in binary_data:
        chunks.update(data)
    try:
        packed = b"".join(base64.b64decode(chunks[k]) for k in sorted(chunks))
        learning = learning_pb2.RouterLearning()
        learning.ParseFromString(zlib.decompress(packed))
    except Exception as error:  # binascii, zlib and protobuf errors alike
        raise ValueError(f"not a fleetroute learning object: {error}") from error
    return learning


@dataclass(frozen=True)
class Published:
    """One replica's last publish as read from the cluster."""

    replica: str
    sequence: int
    published_at: datetime | None
    learning: learning_pb2.RouterLearning
    # Set when the replica's Pod is gone and the object waits to be folded into the base.
    deleting: bool = False
    name: str = ""
    resource_version: str = ""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of an annotation, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(annotations: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return int(annotations.get(key, default))
    except (TypeError, ValueError):
        return -1


def assemble(objects: Sequence[Mapping[str, Any]]) -> tuple[list[Published], list[str]]:
    """Group listed ConfigMaps (as dicts) into complete publishes, a head with its parts; also
    returns what could not be read (a part missing or from another publish, broken data)."""
    heads: dict[str, Mapping[str, Any]] = {}
    parts: dict[str, dict[int, Mapping[str, Any]]] = {}
    for obj in objects:
        meta = _meta(obj)
        name = str(meta.get("name", ""))
        annotations = meta.get("annotations") or {}
        if PART in annotations:
            parts.setdefault(name.rsplit("-part-", 1)[0], {})[_number(annotations, PART, -1)] = obj
        else:
            heads[name] = obj
    found, problems = [], []
    for name, head in sorted(heads.items()):
        meta = _meta(head)
        annotations = meta.get("annotations") or {}
        replica = str(
            annotations.get(REPLICA_ANNOTATION)
            or (meta.get("labels") or {}).get(REPLICA_LABEL, "")
            or name
        )
        sequence = _number(annotations, SEQUENCE, 0)
        count = _number(annotations, PARTS, 1)
        datas = [head.get("binaryData") or {}]
        for n in range(1, count):
            part = parts.get(name, {}).get(n)
            seq = _number(_meta(part).get("annotations") or {}, SEQUENCE, -1) if part else -1
            if part is None or seq != sequence:
                problems.append(f"{replica}: part {n} of publish {sequence} is missing")
                break
            datas.append(part.get("binaryData") or {})
        else:
            if sequence < 0 or count < 1:
                problems.append(f"{replica}: {SEQUENCE} or {PARTS} is not a number")
                continue
            try:
                learning = decode(datas)
            except ValueError as error:
                problems.append(f"{replica}: {error}")
                continue
            found.append(
                Published(
                    replica,
                    sequence,
                    parse_time(annotations.get(PUBLISHED_AT)),
                    learning,
                    bool(meta.get("deletionTimestamp")),
                    name,
                    str(meta.get("resourceVersion", "")),
                )
            )
    return found, problems


@dataclass(frozen=True)
class Owner:
    """The Pod a replica's objects belong to: the garbage collector deletes them after it."""

    name: str
    uid: str


def manifests(
    namespace: str,
    replica: str,
    sequence: int,
    learning: learning_pb2.RouterLearning,
    owner: Owner | None = None,
    published_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMaps of one replica's publish, parts first and the head last: a reader that
    sees the head's new sequence number finds parts carrying it (write them in this order)."""
    labels = {KIND_LABEL: REPLICA_KIND, REPLICA_LABEL: _label_value(replica)}
    return _objects(
        namespace,
        object_name(replica),
        labels,
        {SEQUENCE: str(sequence), REPLICA_ANNOTATION: replica},
        learning,
        owner,
        published_at,
    )


def base_manifests(
    namespace: str,
    sequence: int,
    learning: learning_pb2.RouterLearning,
    folded: Mapping[str, int],
    published_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMaps of the compacted base (no owner: it outlives every replica); `folded`
    says up to which sequence number each departed replica is in it."""
    annotations = {SEQUENCE: str(sequence), FOLDED: json.dumps(dict(folded), sort_keys=True)}
    labels = {KIND_LABEL: BASE_KIND, REPLICA_LABEL: BASE_KIND}
    return _objects(namespace, BASE_NAME, labels, annotations, learning, None, published_at)


def _objects(
    namespace: str,
    head: str,
    labels: Mapping[str, str],
    head_annotations: Mapping[str, str],
    learning: learning_pb2.RouterLearning,
    owner: Owner | None,
    published_at: datetime | None,
) -> list[dict[str, Any]]:
    when = format_time(published_at or datetime.now(UTC))
    datas = encode(learning)
    found: list[dict[str, Any]] = []
    for n, data in enumerate(datas):
        annotations = {SEQUENCE: head_annotations[SEQUENCE], PUBLISHED_AT: when}
        if n == 0:
            annotations.update(head_annotations)
            annotations[PARTS] = str(len(datas))
        else:
            annotations[PART] = str(n)
            if REPLICA_ANNOTATION in head_annotations:
                annotations[REPLICA_ANNOTATION] = head_annotations[REPLICA_ANNOTATION]
        metadata: dict[str, Any] = {
            "name": head if n == 0 else part_name(head, n),
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": annotations,
        }
        if owner is not None:
            # No blockOwnerDeletion: it would need update rights on the Pod's finalizers.
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Pod", "name": owner.name, "uid": owner.uid}
            ]
        found.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "binaryData": data}
        )
    return found[1:] + found[:1]


def kind_of(obj: Mapping[str, Any]) -> str:
    """replica or base (the KIND_LABEL value), "" for anything else."""
    return str((_meta(obj).get("labels") or {}).get(KIND_LABEL, ""))


@dataclass(frozen=True)
class Base:
    """The compacted base as read from the cluster."""

    sequence: int
    learning: learning_pb2.RouterLearning
    folded: Mapping[str, int]
    resource_version: str = ""


def read_base(objects: Sequence[Mapping[str, Any]]) -> tuple[Base | None, list[str]]:
    """The base among listed learning objects (None when there is none yet or it is broken),
    and what could not be read."""
    found, problems = assemble([o for o in objects if kind_of(o) == BASE_KIND])
    if not found:
        return None, problems
    head = next(o for o in objects if _meta(o).get("name") == BASE_NAME)
    text = (_meta(head).get("annotations") or {}).get(FOLDED, "{}")
    try:
        raw = json.loads(text)
        folded = {str(k): int(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as error:
        return None, [*problems, f"base: {FOLDED} is not a JSON map of numbers: {error}"]
    item = found[0]
    return Base(item.sequence, item.learning, folded, item.resource_version), problems


def replicas(objects: Sequence[Mapping[str, Any]]) -> tuple[list[Published], list[str]]:
    """The replicas' complete publishes among listed learning objects, and what could not be
    read."""
    return assemble([o for o in objects if kind_of(o) == REPLICA_KIND])


def _label_value(text: str) -> str:
    """A label value (at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return value.strip("-_.")


def replica_selector() -> str:
    """The label selector of every replica learning object."""
    return f"{KIND_LABEL}={REPLICA_KIND}"
