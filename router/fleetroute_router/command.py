"""`fleetroute serve`: run the router on a config file, or on the embedded simulated fleet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as k8s_config

from fleetroute import routerconfig
from fleetroute.replica_learning import Owner
from fleetroute_router import admin, errors, runtime, tls, unreported, workers
from fleetroute_router.auth import TokenFile
from fleetroute_router.config_source import ConfigSource
from fleetroute_router.control_auth import ControlGuard
from fleetroute_router.dataplane import DataPlane
from fleetroute_router.defaults import embedded_config_path
from fleetroute_router.endpoints import scraper
from fleetroute_router.endpoints.config import EndpointConfigError
from fleetroute_router.extproc.server import ExtProcServer
from fleetroute_router.features import FEATURE_NAMES
from fleetroute_router.learning.publisher import DEFAULT_PERIOD_S, Publisher
from fleetroute_router.learning.replicas import ReplicaLearning
from fleetroute_router.learning.snapshot import Snapshotter
from fleetroute_router.learning.store import KubeStore
from fleetroute_router.proxy.app import Limits, ProxyServer
from fleetroute_router.proxy.upstream import Timeouts
from fleetroute_router.server import RouterServer
from fleetroute_router.sim.fleet import SimFleet
from fleetroute_router.telemetry import tracing
from fleetroute_router.telemetry.exposition import MetricsServer

log = logging.getLogger(__name__)
EXAMPLE = (
    "from openai import OpenAI\n"
    'client = OpenAI(base_url="{base}", api_key="unused")\n'
    "reply = client.chat.completions.with_raw_response.create(\n"
    '    model="{model}", messages=[{{"role": "user", "content": "Hello"}}])\n'
    'print(reply.headers["x-fleetroute-pool"], reply.parse().choices[0].message.content)'
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Serves an OpenAI-compatible HTTP proxy, the Router gRPC API and an Envoy ext_proc "
        "service over one routing core. Without --config it serves the embedded example "
        "fleet, answered by simulated model servers on 127.0.0.1."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="RouterConfig file (JSON or YAML), reloaded on change; default: the embedded fleet",
    )
    parser.add_argument(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start a simulated model server at every endpoint of the config "
        "(default: on for the embedded fleet, off with --config)",
    )
    parser.add_argument(
        "--sim-ports",
        choices=("config", "free"),
        default="config",
        help="where simulated servers listen: the config's endpoint ports, or free ports the OS "
        "picks (the router then sends to those; lets a second fleet run beside a first)",
    )
    parser.add_argument(
        "--sim-speed",
        type=float,
        default=1.0,
        help="simulated latency scale: 1 = modelled GPU figures, 0 = instant",
    )
    parser.add_argument("--http", default="127.0.0.1:8080", help="proxy address; '' disables")
    parser.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC listen address (host:port)")
    parser.add_argument(
        "--ext-proc", default="127.0.0.1:9002", help="ext_proc address; '' disables"
    )
    parser.add_argument(
        "--endpoint-picker",
        type=Path,
        default=None,
        help="endpoint-picker plugins/profiles YAML (default: the embedded one)",
    )
    parser.add_argument(
        "--first-byte-timeout", type=float, default=120.0, help="seconds before trying elsewhere"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="router processes on the same ports (SO_REUSEPORT), sharing what they learn "
        "through this one (workers.py); needs --config and fixed ports",
    )
    parser.add_argument(
        "--event-loop",
        choices=runtime.LOOPS,
        default=runtime.default_loop(),
        help="uvloop (the default where installed) or asyncio's standard loop",
    )
    parser.add_argument("--max-in-flight", type=int, default=2048, help="proxy requests at once")
    parser.add_argument("--max-queue", type=int, default=2048, help="queued beyond that; then 429")
    parser.add_argument(
        "--ext-proc-max-in-flight",
        type=int,
        default=2048,
        help="ext_proc requests routed and not yet answered; more are answered 429",
    )
    parser.add_argument(
        "--max-grpc-calls",
        type=int,
        default=4096,
        help="calls (gRPC API) and streams (ext_proc) handled at once; more get RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--reload-interval", type=float, default=1.0, help="seconds between config checks"
    )
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="grace period on SIGTERM")
    parser.add_argument(
        "--admin",
        default=admin.DEFAULT_ADDRESS,
        help="admin listener (host:port) for /metrics, /stats and /health, apart from the "
        "public ports; '' disables",
    )
    parser.add_argument(
        "--metrics",
        default="",
        help="also serve /metrics alone on this host:port (a thread of its own)",
    )
    parser.add_argument(
        "--proxy-metrics",
        action="store_true",
        help="also serve /metrics on the public proxy port (--http); off: only the admin "
        "listener has it",
    )
    parser.add_argument(
        "--learning-state",
        type=Path,
        default=None,
        help="file of what the policies learned: restored on start, saved periodically and on "
        "shutdown (default: learning starts afresh and is not kept)",
    )
    parser.add_argument(
        "--snapshot-interval", type=float, default=60.0, help="seconds between learning snapshots"
    )
    parser.add_argument(
        "--learning-prior",
        type=Path,
        default=None,
        help="learning state to start from for policies --learning-state does not have, e.g. "
        "quality priors from `fleetroute replay --train DATA --export-state FILE`",
    )
    share = parser.add_argument_group(
        "sharing learning between replicas",
        "Each replica publishes what it learned to a ConfigMap of its namespace, owned by its "
        "Pod, and merges every other replica's (see docs/replica-learning.md).",
    )
    share.add_argument(
        "--learning-publish",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="share learning with the other replicas through the Kubernetes API (needs "
        "--pod-name); the cluster then keeps it, so --learning-state is not used with it",
    )
    share.add_argument(
        "--learning-publish-period",
        type=float,
        default=DEFAULT_PERIOD_S,
        help="seconds between publishes (and reads of the other replicas' learning)",
    )
    share.add_argument(
        "--pod-name",
        default=os.environ.get("FLEETROUTE_POD_NAME", ""),
        help="this replica's Pod: it names the replica and owns its ConfigMap "
        "(default: $FLEETROUTE_POD_NAME, set by the chart from the downward API)",
    )
    share.add_argument(
        "--pod-uid",
        default=os.environ.get("FLEETROUTE_POD_UID", ""),
        help="the Pod's uid, for the ConfigMap's ownerReference (default: $FLEETROUTE_POD_UID; "
        "without one the ConfigMap has no owner and outlives the replica)",
    )
    share.add_argument(
        "--pod-namespace",
        default=os.environ.get("FLEETROUTE_POD_NAMESPACE", ""),
        help="namespace of the learning ConfigMaps (default: $FLEETROUTE_POD_NAMESPACE, else "
        "the service account's namespace, else default)",
    )
    share.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig to reach the API server with (default: in-cluster, else $KUBECONFIG)",
    )
    parser.add_argument(
        "--feedback-token-file",
        type=Path,
        default=None,
        help="file holding the bearer token that POST /v1/feedback, SubmitFeedback and Report "
        "with quality must carry (re-read when it changes); default: feedback is open",
    )
    parser.add_argument(
        "--control-token-file",
        type=Path,
        default=None,
        help="file holding the bearer token that the gRPC control rpcs (Report, GetStats) must "
        "carry (re-read when it changes); with --tls-client-ca-file a verified client "
        "certificate is accepted instead; default: control rpcs are open",
    )
    parser.add_argument(
        "--tls-cert-file",
        type=Path,
        default=None,
        help="PEM certificate chain: the gRPC API, ext_proc and the proxy then speak TLS only "
        "(reloaded when the file changes; e.g. a cert-manager Secret's tls.crt)",
    )
    parser.add_argument("--tls-key-file", type=Path, default=None, help="its PEM private key")
    parser.add_argument(
        "--tls-client-ca-file",
        type=Path,
        default=None,
        help="PEM CA bundle: clients of every TLS listener must present a certificate it "
        "signed (mutual TLS); such a client may call the control rpcs without a token",
    )
    parser.add_argument(
        "--upstream-ca-file",
        type=Path,
        default=None,
        help="PEM CA bundle verifying model servers of pools whose scheme is https "
        "(default: the system's CAs)",
    )
    parser.add_argument(
        "--max-pending-feedback",
        type=int,
        default=100_000,
        help="decisions held awaiting quality feedback; the oldest go first beyond that",
    )
    parser.add_argument(
        "--unreported-ttl",
        type=float,
        default=30.0,
        help="seconds at most that a gRPC Route awaiting its Report holds its endpoint's load "
        "(less when the policy's SLO says a request takes less: 2 x its budget)",
    )
    parser.add_argument(
        "--unreported-floor",
        type=float,
        default=2.0,
        help="seconds at least that an unreported gRPC Route is held",
    )
    parser.add_argument(
        "--max-unreported",
        type=int,
        default=4096,
        help="gRPC Routes awaiting their Report in all; more get RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--max-unreported-per-client",
        type=int,
        default=512,
        help="gRPC Routes one client host may have awaiting their Report",
    )
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=scraper.DEFAULT_INTERVAL_S,
        help="seconds between two scrapes of a model server's /metrics (queue, KV cache): "
        "fresher figures for the endpoint picker against the router's idle CPU",
    )
    parser.add_argument(
        "--prune-grace",
        type=float,
        default=300.0,
        help="seconds an endpoint gone from the config keeps its breaker state, learned TTFT "
        "and metric series (a pod back under the same address keeps them)",
    )
    parser.add_argument(
        "--trace-content",
        action="store_true",
        default=None,
        help="record prompt and completion text in traces (tracing itself is configured by "
        "the OTEL_* variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)",
    )


def _picker_config(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise EndpointConfigError(f"{path}: not a mapping")
    return document


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    source = ConfigSource(args.config or embedded_config_path())
    source.reload()
    try:
        secure = tls.from_args(args.tls_cert_file, args.tls_key_file, args.tls_client_ca_file)
    except tls.TlsError as error:
        raise routerconfig.ConfigError(str(error)) from None
    assert source.fleet is not None  # noqa: S101 (reload raises otherwise)
    simulate = args.simulate if args.simulate is not None else args.config is None
    async with contextlib.AsyncExitStack() as stack:
        traces = tracing.Tracing.from_env(capture_content=args.trace_content)
        stack.callback(tracing.install, tracing.install(traces))
        stack.callback(traces.shutdown)
        if simulate:
            sims = SimFleet(
                source.fleet.config, speed=args.sim_speed, free_ports=args.sim_ports == "free"
            )
            await sims.start()
            stack.push_async_callback(sims.stop)
            if args.sim_ports == "free":
                source.rewrite(sims.remap)
        dataplane = DataPlane(
            source.fleet,
            picker_config=_picker_config(args.endpoint_picker),
            feedback_token=_token(args.feedback_token_file),
            feedback_capacity=args.max_pending_feedback,
            unreported=_unreported(args),
            upstream_ca=args.upstream_ca_file,
            prune_grace_s=args.prune_grace,
            scrape_interval_s=_scrape_interval(args.scrape_interval),
        )
        dataplane.start()
        stack.push_async_callback(dataplane.close)
        source.subscribe(dataplane.set_fleet)
        if args.learning_state or args.learning_prior:
            await _keep_learning(stack, dataplane, args)
        if args.learning_publish:
            await _share_learning(stack, dataplane, args)
        if args.metrics:
            metrics = MetricsServer(dataplane.telemetry.registry, args.metrics)
            metrics.start()
            stack.callback(metrics.stop)
        hub = getattr(args, "hub", None)  # a worker of serve --workers (workers.py)
        if hub is not None:
            sharing = asyncio.create_task(workers.share(dataplane.core.selectors, hub))
            stack.push_async_callback(_cancel, sharing)
        reuse = hub is not None
        if args.admin:
            admin_server = admin.AdminServer(dataplane, args.admin)
            await admin_server.start()
            stack.push_async_callback(admin_server.stop)
        if secure is not None:
            reload = asyncio.create_task(secure.watch(args.reload_interval))
            stack.callback(reload.cancel)
        guard = ControlGuard(
            _token(args.control_token_file), client_certs=secure is not None and secure.mutual
        )
        grpc_server = RouterServer(
            dataplane,
            args.grpc,
            guard=guard,
            tls=secure,
            max_concurrent_rpcs=args.max_grpc_calls,
            reuse_port=reuse,
        )
        await grpc_server.start()
        stack.push_async_callback(grpc_server.drain, args.drain_seconds)
        lines = [f"fleetroute router serving {source.path}"]
        if simulate:
            lines.append(f"  simulated model servers: {len(sims.servers)} on 127.0.0.1")
        if args.http:
            proxy = ProxyServer(
                dataplane,
                args.http,
                limits=Limits(max_in_flight=args.max_in_flight, max_queue=args.max_queue),
                timeouts=Timeouts(first_byte_s=args.first_byte_timeout),
                drain_s=args.drain_seconds,
                metrics=args.proxy_metrics,
                tls=secure,
                reuse_port=reuse,
            )
            await proxy.start()
            stack.push_async_callback(proxy.stop)
            base = f"{'https' if secure else 'http'}://{proxy.address}/v1"
            model = next(iter(dataplane.fleet.policies), "MODEL")
            lines += [
                f"  OpenAI-compatible API: {base}  (models: {', '.join(source.fleet.models())})",
                "  point an OpenAI client at it, e.g.:",
                *("    " + line for line in EXAMPLE.format(base=base, model=model).splitlines()),
            ]
        lines.append(f"  Router gRPC API: {args.grpc.rsplit(':', 1)[0]}:{grpc_server.port}")
        if args.admin:
            lines.append(f"  admin (/metrics, /stats): http://{admin_server.address}")
        if args.ext_proc:
            extproc = ExtProcServer(
                dataplane,
                args.ext_proc,
                tls=secure,
                max_in_flight=args.ext_proc_max_in_flight,
                max_streams=args.max_grpc_calls,
                reuse_port=reuse,
            )
            await extproc.start()
            stack.push_async_callback(extproc.stop)
            lines.append(f"  Envoy ext_proc: {args.ext_proc.rsplit(':', 1)[0]}:{extproc.port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # before saying it is ready: no early kill
            loop.add_signal_handler(sig, stop.set)
        print("\n".join(lines), flush=True)
        gc.freeze()  # start-up objects leave the collector's generations: shorter GC pauses
        watcher = asyncio.create_task(source.watch(args.reload_interval))
        await stop.wait()
        log.info("draining (up to %.0fs)", args.drain_seconds)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _scrape_interval(seconds: float) -> float:
    if not seconds > 0:
        raise routerconfig.ConfigError(f"--scrape-interval must be above 0, got {seconds}")
    return seconds


def _unreported(args: argparse.Namespace) -> unreported.Limits:
    try:
        return unreported.Limits(
            ttl_s=args.unreported_ttl,
            floor_s=args.unreported_floor,
            max_total=args.max_unreported,
            max_per_peer=args.max_unreported_per_client,
        )
    except ValueError as error:
        raise routerconfig.ConfigError(str(error)) from None


def _token(path: Path | None) -> TokenFile | None:
    if path is None:
        return None
    try:
        return TokenFile(path)
    except errors.Unauthenticated as error:
        raise routerconfig.ConfigError(str(error)) from None


async def _keep_learning(
    stack: contextlib.AsyncExitStack, dataplane: DataPlane, args: argparse.Namespace
) -> None:
    """Restore what the policies learned (the state file, else the prior), then snapshot it
    to the state file until shutdown."""
    snapshots = Snapshotter(
        args.learning_state or args.learning_prior,
        dataplane.core.selectors,
        FEATURE_NAMES,
        extra=dataplane.save_state,
        on_restore=dataplane.restore_state,
        prior=args.learning_prior,
    )
    try:
        restored = snapshots.restore()
    except ValueError as error:
        raise routerconfig.ConfigError(str(error)) from error
    log.info("learning restored for %d policies", len(restored))
    if not args.learning_state:
        return  # a prior alone: nothing is written back
    task = asyncio.create_task(snapshots.run(args.snapshot_interval))

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        snapshots.close()

    stack.push_async_callback(stop)


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _namespace(given: str) -> str:
    if given:
        return given
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


async def _share_learning(
    stack: contextlib.AsyncExitStack, dataplane: DataPlane, args: argparse.Namespace
) -> None:
    """Load the cluster's merged learning before serving, then publish and merge every period
    in the background until shutdown, and once more on the way out."""
    if not args.pod_name:
        raise routerconfig.ConfigError("--learning-publish needs --pod-name ($FLEETROUTE_POD_NAME)")
    if args.learning_state:
        raise routerconfig.ConfigError(
            "--learning-publish keeps learning in the cluster: drop --learning-state (a "
            "restored file would count the other replicas' learning twice)"
        )
    if args.learning_publish_period <= 0:
        raise routerconfig.ConfigError("--learning-publish-period must be above 0")
    namespace = _namespace(args.pod_namespace)
    try:
        kube = await asyncio.to_thread(KubeStore, namespace, args.kubeconfig)
    except (k8s_config.ConfigException, OSError) as error:
        raise routerconfig.ConfigError(
            f"no Kubernetes API to publish learning to: {error}"
        ) from None
    sync = ReplicaLearning(
        args.pod_name, dataplane.core.selectors, lambda: dataplane.core.arm_stats, FEATURE_NAMES
    )
    publisher = Publisher(
        sync,
        kube,
        namespace=namespace,
        owner=Owner(args.pod_name, args.pod_uid) if args.pod_uid else None,
        period_s=args.learning_publish_period,
        registry=dataplane.telemetry.registry,
    )
    if await publisher.load():
        log.info(
            "learning of %d other replicas merged from namespace %s", len(sync.peers), namespace
        )
    else:
        log.warning("serving on local learning until the cluster's can be read")
    task = asyncio.create_task(publisher.run())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publisher.close()

    stack.push_async_callback(stop)


def run(args: argparse.Namespace) -> int:
    problems = workers.problems(args)
    if problems:
        log.error("cannot start: %s", "; ".join(problems))
        return 2
    if args.workers > 1:
        return workers.supervise(args)
    runtime.single_blas_thread()
    try:
        runtime.run(serve(args), args.event_loop)
    except (routerconfig.ConfigError, EndpointConfigError) as error:
        log.error("cannot start: %s", error)
        return 2
    except OSError as error:
        log.error("cannot start: %s", error)
        return 2
    return 0
