"""The floor of `fleetroute bench grpc`: a bare grpc.aio Router server that decides nothing.

Route answers a fixed RouteDecision as large as a real one (one score per arm) and Report a
fixed acknowledgement: what gRPC in Python costs per call before any routing. Run it as
`python -m fleetroute_router.bench.grpcfloor --port PORT [--arms N]`.
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc
from fleetroute_router import runtime


class FloorService(router_pb2_grpc.RouterServicer):
    """Route and Report with canned answers."""

    def __init__(self, arms: int) -> None:
        self._decision = router_pb2.RouteDecision(
            decision_id="0" * 32, request_id="0" * 32, policy="bench", model="bench/echo-1B",
            pool="pool-0", endpoint="127.0.0.1:1", algorithm="linucb",
            scores=[router_pb2.ArmScore(pool=f"pool-{i}", score=0.5) for i in range(arms)],
        )  # fmt: skip
        self._ack = router_pb2.ReportAck(reward=0.5)

    async def Route(
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouteDecision:
        return self._decision

    async def Report(
        self, request: router_pb2.Feedback, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.ReportAck:
        return self._ack

    async def SubmitFeedback(
        self, request: router_pb2.QualityFeedback, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.FeedbackAck:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor only routes")

    async def GetStats(
        self, request: router_pb2.StatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouterStats:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor only routes")


async def _serve(port: int, arms: int) -> None:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServicer_to_server(FloorService(arms), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--arms", type=int, default=16)
    parser.add_argument("--event-loop", choices=runtime.LOOPS, default="asyncio")
    args = parser.parse_args()
    runtime.run(_serve(args.port, args.arms), args.event_loop)


if __name__ == "__main__":
    main()
