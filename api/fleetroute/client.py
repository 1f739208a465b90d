"""`fleetroute route`: ask a running router where a request would go, and print the decision."""

from __future__ import annotations

import argparse

import grpc
from google.protobuf import json_format

from fleetroute.v1alpha1 import router_pb2, router_pb2_grpc


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--router", default="127.0.0.1:50051", help="router gRPC address")
    parser.add_argument("--model", required=True, help="policy alias or model name")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("prompt", help="prompt text")


def run(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.router) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        try:
            decision = stub.Route(
                router_pb2.RouteRequest(model=args.model, prompt=args.prompt), timeout=args.timeout
            )
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}")
            return 1
    print(json_format.MessageToJson(decision, indent=2))
    return 0
