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


def assemble(objects: Sequence[Mapping[str, Any]]) -> tuple[list[Published], list[str]]:
    """Group listed ConfigMaps (as dicts, labelled KIND_LABEL=replica) into complete publishes;
    also returns what could not be read (a part missing or from another publish, broken data)."""
    heads: dict[str, Mapping[str, Any]] = {}
    parts: dict[str, dict[int, Mapping[str, Any]]] = {}
    for obj in objects:
        meta = _meta(obj)
        annotations = meta.get("annotations") or {}
        replica = (meta.get("labels") or {}).get(REPLICA_LABEL, "")
        if PART in annotations:
            parts.setdefault(replica, {})[int(annotations[PART])] = obj
        else:
            heads[replica] = obj
    found, problems = [], []
    for replica, head in sorted(heads.items()):
        meta = _meta(head)
        annotations = meta.get("annotations") or {}
        sequence = int(annotations.get(SEQUENCE, "0"))
        count = int(annotations.get(PARTS, "1"))
        datas = [head.get("binaryData") or {}]
        for n in range(1, count):
            part = parts.get(replica, {}).get(n)
            seq = int((_meta(part).get("annotations") or {}).get(SEQUENCE, "-1")) if part else -1
            if part is None or seq != sequence:
                problems.append(f"{replica}: part {n} of publish {sequence} is missing")
                break
            datas.append(part.get("binaryData") or {})
        else:
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
                    str(meta.get("name", "")),
                    str(meta.get("resourceVersion", "")),
                )
            )
    return found, problems
