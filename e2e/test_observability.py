"""Observability against real components: Prometheus scrapes a router under load and the
operator on the local cluster, and every panel query of every dashboard must return data;
Jaeger v2 receives the router's and the operator's traces over OTLP. The router reads one
endpoint's GPU power from a fake DCGM exporter (real dcgm-exporter exposition text) and one
pool's grid carbon intensity from a metric.

Prometheus and Jaeger are built from their Go modules on first use and cached
(e2e/observability_stack.py); everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import observability_stack as stack
from e2e.localcluster import Cluster, free_ports
from e2e.operator_process import OperatorProcess
from e2e.waiting import wait_for
from tests.router.sources.dcgm_exporter import POD_WATTS, exposition

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FLEET = ROOT / "router/fleetroute_router/defaults/example-fleet.yaml"
DASHBOARDS = ROOT / "dashboards"
DCGM_POOL = "llm/llama-70b-decode"
CARBON_POOL = "llm/llama-8b-l4"
GRID_INTENSITY = 412.0
NAMESPACE = "obs-e2e"
CONFIG_NAMESPACE = "obs-e2e-system"
GPUPOOL = "obs-e2e-h100"
ROUTER_SERVICE = "fleetroute-router"
OPERATOR_SERVICE = "fleetroute-operator"
POLICY_MODEL = "fleet/chat"
LONG_PROMPT = " ".join(["tell me about energy aware routing of language model requests"] * 120)


def long_prompt() -> str:
    """A prompt past the P/D threshold that no server has cached (a fresh prefix)."""
    return f"{secrets.token_hex(8)} {LONG_PROMPT}"


# Grafana's variables as the dashboard's "All" selection and a rate window of a few scrapes.
VARIABLES = {"$__rate_interval": "30s", "$policy": ".*", "$pool": ".*"}


def _otel_env(jaeger: stack.Jaeger, service: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }


def _post(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(  # noqa: S310 (http only)
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (http)
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def chat(model: str, prompt: str, *, stream: bool = True, max_tokens: int = 24) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
    }


class RouterProcess:
    """`fleetroute serve` on a copy of the example fleet, its simulated servers on free ports."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        config: dict[str, Any] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.workdir = workdir
        self.env = env
        self.document = config or yaml.safe_load(EXAMPLE_FLEET.read_text())
        self._own_ports = config is None
        if edit is not None:
            edit(self.document)
        self.config = workdir / "router-config.yaml"
        self.log_path = workdir / "router.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._rebinds = 0
        self._new_ports()

    def _new_ports(self) -> None:
        if self._own_ports:
            addresses = [e for p in self.document["pools"] for e in p["endpoints"]]
            for endpoint, port in zip(addresses, free_ports(len(addresses)), strict=True):
                endpoint["address"] = f"127.0.0.1:{port}"
        self.config.write_text(yaml.safe_dump(self.document))
        self.port, self.admin_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, simulate: bool = True) -> None:
        argv = [
            sys.executable, "-m", "fleetroute", "serve",
            "--config", str(self.config),
            "--simulate" if simulate else "--no-simulate",
            "--sim-speed", "0.05",
            "--http", f"127.0.0.1:{self.port}",
            "--admin", f"127.0.0.1:{self.admin_port}",
            "--grpc", "127.0.0.1:0",
            "--ext-proc", "",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )

        def healthy() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                if "address already in use" in self.log_tail() and self._rebinds < 3:
                    # A free port taken by another process since it was chosen: choose anew.
                    self._rebinds += 1
                    self._new_ports()
                    self.start(simulate)
                    return False
                raise AssertionError(f"router exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for("router /health", healthy, timeout=60)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no router log)"


class Load:
    """Background clients: streamed and whole chat requests through the policy alias and by
    model name (long prompts split P/D), and some requests the router must refuse."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url, self.clients = url, clients
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.feedback: dict[int, int] = {}  # feedback answers by HTTP status
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _requests(self, index: int) -> Iterator[dict[str, Any]]:
        while True:
            yield chat(POLICY_MODEL, f"client {index}: what is a GPU?")
            yield chat(POLICY_MODEL, f"client {index}: summarise routing", stream=False)
            yield chat("meta-llama/Llama-3.1-70B-Instruct", long_prompt())
            yield chat("meta-llama/Llama-3.1-8B-Instruct", "hello", max_tokens=8)
            yield chat("no-such-model", "refused")

    def _run(self, index: int) -> None:
        for body in self._requests(index):
            if self._stop.is_set():
                return
            status, headers, _ = _post(f"{self.url}/v1/chat/completions", body)
            decision = headers.get("x-fleetroute-decision-id")
            if status == 200 and decision and body["model"] == POLICY_MODEL:
                # a judge grades the policy's answers: feedback coverage and quality scores
                grade = {"decision_id": decision, "score": 0.9, "source": "judge"}
                feedback, _, _ = _post(f"{self.url}/v1/feedback", grade)
                with self._lock:
                    self.feedback[feedback] = self.feedback.get(feedback, 0) + 1
            with self._lock:
                self.sent += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
            self._stop.wait(0.05)

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def binaries() -> None:
    durations = stack.build()
    for name, seconds in durations.items():
        print(f"built {name} in {seconds:.0f}s")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observability")


@pytest.fixture(scope="module")
def jaeger(binaries: None, workdir: Path) -> Iterator[stack.Jaeger]:
    directory = workdir / "jaeger"
    directory.mkdir()
    process = stack.Jaeger(directory)
    process.start()
    yield process
    process.stop()


class _DcgmExporter(http.server.BaseHTTPRequestHandler):
    """A node's DCGM exporter: dcgm-exporter's exposition, plus a grid-intensity series."""

    def do_GET(self) -> None:
        body = exposition(carbon_intensity=GRID_INTENSITY).encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def dcgm_exporter() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DcgmExporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def _with_metric_sources(url: str) -> Callable[[dict[str, Any]], None]:
    """Give the first 70B decode endpoint its node's DCGM exporter, and the L4 pool its grid
    carbon intensity from a metric."""

    def edit(document: dict[str, Any]) -> None:
        pools = {p["name"]: p for p in document["pools"]}
        pools[DCGM_POOL]["endpoints"][0]["power"] = {
            "url": url,
            "labels": {"pod": "llama-70b-decode-0", "namespace": "llm"},
        }
        pools[CARBON_POOL]["gpu"]["carbonIntensityFrom"] = {
            "url": url,
            "metric": "grid_carbon_intensity_grams_per_kwh",
            "labels": {"zone": "DE"},
        }

    return edit


@pytest.fixture(scope="module")
def router(jaeger: stack.Jaeger, workdir: Path, dcgm_exporter: str) -> Iterator[RouterProcess]:
    directory = workdir / "router"
    directory.mkdir()
    process = RouterProcess(
        directory, _otel_env(jaeger, ROUTER_SERVICE), edit=_with_metric_sources(dcgm_exporter)
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, jaeger: stack.Jaeger, workdir: Path
) -> Iterator[tuple[OperatorProcess, str]]:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for path in (ROOT / "crds").glob("*.yaml"):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    for namespace in (NAMESPACE, CONFIG_NAMESPACE):
        cluster.kubectl("create", "namespace", namespace, check=False)
    gpupool = {
        "apiVersion": "fleetroute.dev/v1alpha1",
        "kind": "GPUPool",
        "metadata": {"name": GPUPOOL},
        "spec": {
            "product": "NVIDIA-H100-80GB-HBM3",
            "power": {"idleWatts": 70, "maxWatts": 700},
            "costPerGpuHour": "2.50",
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(gpupool))
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    process = OperatorProcess(
        cluster.kubeconfig,
        workdir / "operator.log",
        "--router-config-namespace",
        CONFIG_NAMESPACE,
        "--namespace",
        NAMESPACE,
        "--metrics",
        address,
    )
    with _environment(_otel_env(jaeger, OPERATOR_SERVICE)):
        process.start()
    yield process, address
    process.stop()
    cluster.kubectl("delete", "gpupool", GPUPOOL, "--ignore-not-found", "--timeout=30s")


@pytest.fixture(scope="module")
def prometheus(
    router: RouterProcess, operator: tuple[OperatorProcess, str], workdir: Path
) -> Iterator[stack.Prometheus]:
    directory = workdir / "prometheus"
    directory.mkdir()
    process = stack.Prometheus(
        directory,
        [
            stack.ScrapeTarget("fleetroute-router", f"127.0.0.1:{router.admin_port}"),
            stack.ScrapeTarget("fleetroute-operator", operator[1]),
        ],
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def load(router: RouterProcess) -> Iterator[Load]:
    generator = Load(router.url)
    generator.start()
    yield generator
    generator.stop()


# --------------------------------------------------------------------------------------------
# Metrics and the dashboard


def _panel_queries() -> list[tuple[str, str]]:
    """(dashboard: panel title, PromQL with the variables filled in) of every dashboard."""
    found = []
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert len(paths) == 4, paths
    for path in paths:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{panel['title']}: unresolved variable in {expr}"
                found.append((f"{path.stem}: {panel['title']}", expr))
    return found


def test_prometheus_scrapes_the_router_and_the_operator(
    prometheus: stack.Prometheus, load: Load
) -> None:
    def both_up() -> bool:
        up = prometheus.targets_up()
        return up.get("fleetroute-router") is True and up.get("fleetroute-operator") is True

    wait_for("both scrape targets up", both_up, timeout=60)
    wait_for(
        "router requests in Prometheus",
        lambda: prometheus.query("sum(fleetroute_router_requests_total) > 20"),
        timeout=120,
    )
    assert load.statuses.get(200, 0) > 0, load.statuses


def test_every_dashboard_panel_query_returns_data(
    prometheus: stack.Prometheus, operator: tuple[OperatorProcess, str], load: Load
) -> None:
    queries = _panel_queries()
    assert len(queries) >= 60
    failures: dict[str, str] = {}

    def all_answer() -> bool:
        failures.clear()
        for title, expr in queries:
            try:
                result = prometheus.query(expr)
            except Exception as error:  # an invalid query fails at once, below
                failures[title] = f"ERROR {error}: {expr}"
                continue
            if not result:
                failures[title] = f"no data: {expr}"
        return not failures

    with contextlib.suppress(AssertionError):
        wait_for("every panel query to return data", all_answer, timeout=180, interval=3)
    errored = {t: f for t, f in failures.items() if f.startswith("ERROR")}
    assert not failures, (
        f"{len(failures)} of {len(queries)} panel queries failed "
        f"({len(errored)} errors; load statuses {load.statuses}, feedback {load.feedback}):\n"
        + "\n".join(f"  {t}: {f}" for t, f in failures.items())
        + f"\noperator log:\n{operator[0].log_tail(15)}"
    )


def test_exemplars_link_latency_samples_to_stored_traces(
    prometheus: stack.Prometheus, jaeger: stack.Jaeger, load: Load
) -> None:
    def exemplars() -> list[dict[str, Any]] | None:
        found = prometheus.exemplars("fleetroute_router_ttft_seconds_bucket")
        return [e for series in found for e in series["exemplars"]] or None

    samples = wait_for("TTFT exemplars in Prometheus", exemplars, timeout=90)
    trace_ids = {e["labels"]["trace_id"] for e in samples}
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids)
    # the exemplar's trace is in the trace store (Grafana's exemplar link lands somewhere)
    wait_for(
        "an exemplar's trace in Jaeger",
        lambda: any(jaeger.trace(t) for t in sorted(trace_ids)[:10]),
        timeout=60,
    )


def test_power_comes_from_the_dcgm_exporter_and_carbon_from_a_metric(
    prometheus: stack.Prometheus, load: Load
) -> None:
    def exporter_watts() -> list[dict[str, Any]] | None:
        return (
            prometheus.query(
                f'fleetroute_router_endpoint_power_watts{{pool="{DCGM_POOL}", '
                'source="dcgm_exporter"}'
            )
            or None
        )

    (series,) = wait_for("exporter power in Prometheus", exporter_watts, timeout=60)
    assert float(series["value"][1]) == POD_WATTS
    (intensity,) = prometheus.query(
        f'fleetroute_router_grid_carbon_intensity{{pool="{CARBON_POOL}"}}'
    )
    assert (intensity["metric"]["source"], float(intensity["value"][1])) == (
        "metric",
        GRID_INTENSITY,
    )
    configured = prometheus.query(
        'fleetroute_router_grid_carbon_intensity{pool="llm/llama-70b-decode"}'
    )
    assert [(s["metric"]["source"], float(s["value"][1])) for s in configured] == [
        ("config", 350.0)
    ]
    wait_for(
        "carbon of served requests per policy and pool",
        lambda: prometheus.query(
            'sum by (policy, pool) (fleetroute_router_carbon_grams_total{policy="llm/chat"}) > 0'
        ),
        timeout=60,
    )
    assert prometheus.query(
        f'sum(fleetroute_router_energy_joules_total{{pool="{DCGM_POOL}", source="dcgm"}}) > 0'
    )


# --------------------------------------------------------------------------------------------
# Traces


def _spans_by_name(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    spans: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        spans.setdefault(span["operationName"], []).append(span)
    return spans


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def wait_trace(jaeger: stack.Jaeger, trace_id: str, *names: str) -> dict[str, Any]:
    """The stored trace once it holds spans of all these names (spans arrive in batches)."""

    def complete() -> dict[str, Any] | None:
        trace = jaeger.trace(trace_id)
        return trace if trace and set(names) <= set(_spans_by_name(trace)) else None

    return wait_for(f"trace {trace_id} with spans {names} in Jaeger", complete, timeout=60)


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def test_a_callers_traceparent_is_continued_with_the_expected_spans(
    router: RouterProcess, jaeger: stack.Jaeger
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    status, headers, _ = _post(
        f"{router.url}/v1/chat/completions",
        chat(POLICY_MODEL, "trace me please"),
        {"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert status == 200
    root_name = f"chat {POLICY_MODEL}"
    spans = _spans_by_name(wait_trace(jaeger, trace_id, root_name, "fleetroute.upstream.decode"))
    (root,) = spans[root_name]
    assert _parent(root) == caller_span  # continued from the caller's span
    for child in ("fleetroute.features", "fleetroute.decide", "fleetroute.pick_endpoint"):
        assert _parent(spans[child][0]) == root["spanID"], child
    decode = spans["fleetroute.upstream.decode"][0]
    assert _parent(decode) == root["spanID"]
    tags = _tags(root)
    assert tags["gen_ai.request.model"] == POLICY_MODEL
    assert tags["gen_ai.operation.name"] == "chat"
    assert tags["gen_ai.response.model"] == headers["x-fleetroute-model"]
    assert tags["fleetroute.policy"] == "llm/chat"
    assert tags["fleetroute.pool"] == headers["x-fleetroute-pool"]
    assert tags["fleetroute.endpoint"] == headers["x-fleetroute-endpoint"]
    assert tags["gen_ai.usage.output_tokens"] > 0
    assert tags["fleetroute.ttft.observed_s"] > 0
    assert tags["fleetroute.slo.ttft_s"] == 0.5
    assert tags["fleetroute.energy.joules"] >= 0
    assert "fleetroute.arm.scores" in tags
    assert "gen_ai.prompt" not in tags  # no prompt text unless enabled
    assert _tags(decode)["server.address"] == "127.0.0.1"


def test_a_pd_request_traces_prefill_and_decode(
    router: RouterProcess, jaeger: stack.Jaeger
) -> None:
    trace_id = secrets.token_hex(16)
    status, headers, _ = _post(
        f"{router.url}/v1/chat/completions",
        chat("meta-llama/Llama-3.1-70B-Instruct", long_prompt()),
        {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert status == 200
    assert headers.get("x-fleetroute-prefill-endpoint")

    root_name = "chat meta-llama/Llama-3.1-70B-Instruct"
    spans = _spans_by_name(wait_trace(jaeger, trace_id, root_name, "fleetroute.upstream.prefill"))
    prefill = spans["fleetroute.upstream.prefill"][0]
    assert _tags(prefill)["fleetroute.endpoint"] == headers["x-fleetroute-prefill-endpoint"]
    (root,) = spans[root_name]
    assert _parent(prefill) == root["spanID"]
    root_tags = _tags(root)
    assert root_tags["fleetroute.decision.mode"] == "disaggregated"
    # measured energy (the simulated servers and the exporter report DCGM power), H100 grid
    assert root_tags["fleetroute.energy.source"] == "dcgm"
    assert root_tags["fleetroute.energy.measured"] is True
    assert root_tags["fleetroute.carbon.intensity_g_per_kwh"] == 350
    assert root_tags["fleetroute.carbon.grams"] == pytest.approx(
        root_tags["fleetroute.energy.joules"] / 3.6e6 * 350
    )


def test_the_operator_traces_its_reconciles(
    operator: tuple[OperatorProcess, str], jaeger: stack.Jaeger
) -> None:
    def reconcile() -> list[dict[str, Any]] | None:
        traces = jaeger.traces(OPERATOR_SERVICE, operation="reconcile GPUPool")
        return [
            span
            for trace in traces
            for span in trace["spans"]
            if _tags(span).get("fleetroute.resource.name") == GPUPOOL
        ] or None

    spans = wait_for("a GPUPool reconcile span", reconcile, timeout=90)
    assert _tags(spans[0])["fleetroute.result"] == "success"


class _Spy(http.server.BaseHTTPRequestHandler):
    """A model server answering one OpenAI chat completion and remembering request headers."""

    seen: list[dict[str, str]] = []  # noqa: RUF012 (one test, one server)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps(
            {
                "id": "spy",
                "object": "chat.completion",
                "model": "spy-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_backend_receives_the_routers_traceparent(jaeger: stack.Jaeger, workdir: Path) -> None:
    spy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Spy)
    threading.Thread(target=spy.serve_forever, daemon=True).start()
    config = {
        "pools": [
            {
                "name": "spy/pool",
                "model": "spy-model",
                "role": "ROLE_UNIFIED",
                "gpusPerReplica": 1,
                "gpu": {"product": "NVIDIA-L4", "idleWatts": 16, "maxWatts": 72},
                "endpoints": [{"address": f"127.0.0.1:{spy.server_port}", "ready": True}],
            }
        ]
    }
    directory = workdir / "spy-router"
    directory.mkdir()
    router = RouterProcess(directory, _otel_env(jaeger, ROUTER_SERVICE), config)
    router.start(simulate=False)
    try:
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        status, _, _ = _post(
            f"{router.url}/v1/chat/completions",
            chat("spy-model", "hi", stream=False),
            {"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert status == 200, router.log_tail()
    finally:
        router.stop()
        spy.shutdown()
        spy.server_close()
    (received,) = [h["traceparent"] for h in _Spy.seen if "traceparent" in h]
    version, sent_trace, parent_span, flags = received.split("-")
    assert (version, sent_trace, flags) == ("00", trace_id, "01")
    assert parent_span != caller_span  # the router's own span sits in between
    trace = wait_trace(jaeger, trace_id, "fleetroute.upstream.decode", "POST")
    decode = _spans_by_name(trace)["fleetroute.upstream.decode"][0]
    # the backend's parent is the aiohttp client instrumentation's span under our decode span
    (call,) = [s for s in trace["spans"] if s["spanID"] == parent_span]
    assert _parent(call) == decode["spanID"]
    assert _tags(call)["span.kind"] == "client"
