"""One simulated OpenAI-compatible model server (aiohttp): completions, SSE, /metrics, P/D."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fleetroute_router import openai_api, prefix
from fleetroute_router.features import estimate_tokens
from fleetroute_router.sim.model import ServerModel

WORDS = ("the", "fleet", "routes", "tokens", "to", "a", "fitting", "GPU", "and", "learns")
DEFAULT_OUTPUT_TOKENS = 16
PREFIX_CACHE_BLOCKS = 50_000
KV_TOKENS_PER_SEQUENCE = 2048


@dataclass
class Faults:
    """Misbehaviour tests switch on: fail every request (or `error_rate` percent of them, as
    llm-d-inference-sim's --failure-injection-rate does), hang, or run `slowdown` times slower."""

    error_status: int = 0
    error_rate: float = 0.0
    hang: bool = False
    slowdown: float = 1.0


@dataclass
class Stats:
    served: int = 0
    cancelled: int = 0
    remote_prefills: list[str] = field(default_factory=list)
    prefilled_for_remote: int = 0


class SimServer:
    """Serves one model in one role ('unified', 'prefill' or 'decode') at host:port."""

    def __init__(
        self,
        model: str,
        timing: ServerModel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        role: str = "unified",
        engine: str = "vllm",
    ) -> None:
        self.model, self.timing, self.role, self.engine = model, timing, role, engine
        self.host, self.port = host, port
        self.faults = Faults()
        self.stats = Stats()
        self.waiting = 0
        self.running = 0
        self._kv_tokens = 0
        self._slots = asyncio.Semaphore(timing.max_batch)
        self._cache: OrderedDict[int, None] = OrderedDict()
        # Prefix-cache lookups in prompt tokens, as vLLM counts them (queried, found cached).
        self.prefix_queries = 0
        self.prefix_hits = 0
        self._runner: web.AppRunner | None = None
        # Energy integrated over time (idle included), as a power meter on the replica would.
        self.energy_joules = 0.0
        self._metered_at = time.monotonic()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(openai_api.CHAT_PATH, self._chat)
        app.router.add_post(openai_api.COMPLETIONS_PATH, self._completions)
        app.router.add_get(openai_api.MODELS_PATH, self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app(), handler_cancellation=True, shutdown_timeout=0.1, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the listener and drop requests in flight (a crash, as clients see it)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "sim"}]}
        )

    def _meter(self) -> None:
        """Add the energy spent at the current batch size since the last change."""
        now = time.monotonic()
        self.energy_joules += self.timing.power_watts(self.running) * (now - self._metered_at)
        self._metered_at = now

    async def _metrics(self, request: web.Request) -> web.Response:
        self._meter()
        labels = f'model_name="{self.model}"'
        if self.engine == "sglang":
            names = ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage")
        else:
            names = (
                "vllm:num_requests_running",
                "vllm:num_requests_waiting",
                "vllm:kv_cache_usage_perc",
            )
        capacity = KV_TOKENS_PER_SEQUENCE * self.timing.max_batch
        values = (self.running, self.waiting, min(1.0, self._kv_tokens / capacity))
        lines = []
        for name, value in zip(names, values, strict=True):
            lines += [f"# TYPE {name} gauge", f"{name}{{{labels}}} {value}"]
        if self.engine != "sglang":
            for family, count in (
                ("vllm:prefix_cache_queries", self.prefix_queries),
                ("vllm:prefix_cache_hits", self.prefix_hits),
            ):
                lines += [f"# TYPE {family} counter", f"{family}_total{{{labels}}} {count}"]
        per_gpu = self.timing.power_watts(self.running) / self.timing.gpus
        lines.append("# TYPE DCGM_FI_DEV_POWER_USAGE gauge")
        lines += [
            f'DCGM_FI_DEV_POWER_USAGE{{gpu="{i}",modelName="sim"}} {per_gpu:.1f}'
            for i in range(self.timing.gpus)
        ]
        lines += [
            "# TYPE fleetroute_sim_energy_joules counter",
            f"fleetroute_sim_energy_joules_total {self.energy_joules:.3f}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        if self.faults.error_status:
            return _error(self.faults.error_status, "injected fault", "InternalServerError")
        if self.faults.error_rate and random.random() * 100 < self.faults.error_rate:  # noqa: S311
            return _error(500, "injected fault", "InternalServerError")
        try:
            return await self._generate(request, body, chat)
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            raise

    async def _generate(
        self, request: web.Request, body: dict[str, Any], chat: bool
    ) -> web.StreamResponse:
        if self.faults.hang:
            await asyncio.Event().wait()
        text = openai_api.prompt_text(body)
        prompt_tokens = estimate_tokens(text)
        kv_params = body.get("kv_transfer_params")
        kv_params = kv_params if isinstance(kv_params, dict) else {}
        remote_decode = bool(kv_params.get("do_remote_decode"))
        remote_prefill = bool(kv_params.get("do_remote_prefill"))
        wanted = openai_api.max_tokens(body)
        output_tokens = 1 if remote_decode else (wanted or DEFAULT_OUTPUT_TOKENS)
        stream = bool(body.get("stream")) and not remote_decode
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self._meter()
        self.running += 1
        held = prompt_tokens
        self._kv_tokens += held
        try:
            if remote_prefill:
                self.stats.remote_prefills.append(
                    f"{kv_params.get('remote_host')}:{kv_params.get('remote_port')}"
                )
                await self._sleep(self.timing.kv_transfer_s(prompt_tokens))
            else:
                cached = min(self._cache_lookup(text), prompt_tokens)
                self.prefix_queries += prompt_tokens
                self.prefix_hits += cached
                await self._sleep(self.timing.prefill_s(max(prompt_tokens - cached, 1)))
            ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:16]}"
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": prompt_tokens + output_tokens,
            }
            finish = "length" if wanted or remote_decode else "stop"
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(
                    request, ident, chat, output_tokens, finish, usage if include_usage else None
                )
            words = []
            for i in range(output_tokens):
                if i:
                    await self._sleep(self.timing.decode_step_s(self.running))
                words.append(WORDS[i % len(WORDS)])
            self.stats.served += 1
            if remote_decode:
                self.stats.prefilled_for_remote += 1
            return web.json_response(
                self._document(ident, chat, " ".join(words), finish, usage, remote_decode, text)
            )
        finally:
            self._meter()
            self.running -= 1
            self._kv_tokens -= held
            self._slots.release()

    async def _stream(
        self,
        request: web.Request,
        ident: str,
        chat: bool,
        tokens: int,
        finish: str,
        usage: dict[str, int] | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(tokens):
            if i:
                await self._sleep(self.timing.decode_step_s(self.running))
            word = WORDS[i % len(WORDS)] + " "
            last = i == tokens - 1
            if chat:
                delta: dict[str, Any] = {"content": word}
                if i == 0:
                    delta["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": delta}
            else:
                choice = {"index": 0, "text": word, "logprobs": None}
            choice["finish_reason"] = finish if last else None
            chunk = {"id": ident, "object": kind, "created": created, "model": self.model}
            await response.write(_event({**chunk, "choices": [choice]}))
        if usage is not None:
            chunk = {"id": ident, "object": kind, "created": created, "model": self.model}
            await response.write(_event({**chunk, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.stats.served += 1
        return response

    def _document(
        self,
        ident: str,
        chat: bool,
        text: str,
        finish: str,
        usage: dict[str, int],
        remote_decode: bool,
        prompt: str,
    ) -> dict[str, Any]:
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        document: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": usage,
        }
        if remote_decode:
            document["kv_transfer_params"] = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "remote_engine_id": f"sim-{self.port}",
                "remote_block_ids": list(range(len(prefix.block_hashes(prompt)) + 1)),
                "remote_host": self.host,
                "remote_port": self.port,
            }
        return document

    def _cache_lookup(self, text: str) -> int:
        """Prompt tokens found in the prefix cache; remembers this prompt's blocks."""
        hits = 0
        blocks = prefix.block_hashes(text)
        for block in blocks:
            if block not in self._cache:
                break
            hits += 1
        for block in blocks:
            self._cache[block] = None
            self._cache.move_to_end(block)
        while len(self._cache) > PREFIX_CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return estimate_tokens("x" * (hits * prefix.DEFAULT_BLOCK_CHARS))

    async def _sleep(self, seconds: float) -> None:
        delay = seconds * self.faults.slowdown
        if delay > 0:
            await asyncio.sleep(delay)


def _event(document: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"


def _error(status: int, message: str, kind: str = "BadRequestError") -> web.Response:
    return web.json_response(openai_api.error_body(message, kind), status=status)
