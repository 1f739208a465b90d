"""Small pieces of the OpenAI HTTP API shared by the proxy, ext_proc and the simulator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetroute_router.features import chat_prompt

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"


# Deeper than any real request; deep enough nesting would exhaust the parser's recursion.
MAX_BODY_DEPTH = 64


def load_body(raw: bytes) -> Any:
    """A request body decoded from JSON; ValueError when it is not JSON (bad UTF-8 included) or
    nests deeper than MAX_BODY_DEPTH arrays and objects."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_BODY_DEPTH} levels") from None
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise ValueError(f"nested deeper than {MAX_BODY_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return document


def prompt_text(body: Mapping[str, Any]) -> str:
    """The prompt of a completions or chat completions body (chat: 'role: content' lines)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        pairs = []
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, Mapping)
                )
            pairs.append((str(message.get("role", "")), str(content or "")))
        return chat_prompt(pairs)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(str(p) for p in prompt)
    return str(prompt) if prompt is not None else ""


def max_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


def usage_of(document: Mapping[str, Any]) -> Usage | None:
    usage = document.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return Usage(
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )


MAX_SSE_LINE = 1 << 20


class StreamUsage:
    """Follows an SSE response chunk by chunk: counts events and keeps the last usage seen.

    Cheap on the hot path: a chunk is parsed only when it mentions usage. A line longer than
    MAX_SSE_LINE is not kept (nor re-joined on every chunk): it is dropped, and counted in
    `oversized`.
    """

    def __init__(self) -> None:
        self.events = 0
        self.usage: Usage | None = None
        self.oversized = 0
        self._tail = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        if self._skipping:  # inside an oversized line: wait for its end
            end = chunk.find(b"\n")
            if end < 0:
                return
            self._skipping, chunk = False, chunk[end + 1 :]
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > MAX_SSE_LINE:
            self._tail, self._skipping = b"", True
            self.oversized += 1
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            self.events += 1
            if b'"usage"' in payload:
                try:
                    found = usage_of(json.loads(payload))
                except ValueError:
                    continue
                if found is not None:
                    self.usage = found

    def result(self) -> Usage | None:
        """Usage reported by the server, or (0, events) estimated from the chunks."""
        if self.usage is not None:
            return self.usage
        return Usage(0, self.events) if self.events else None
