"""``comet-server health``: ask a server's standard gRPC health service whether it
serves (the container image's HEALTHCHECK; Kubernetes probes it natively)."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from comet.agent.transport import sync_channel


def check_health(url: str, timeout: float) -> str:
    """The overall status name (``SERVING``, ``NOT_SERVING``…), or ``UNREACHABLE``.
    An https URL is verified like any client's (system roots): behind a proxy that
    terminates TLS, probe the instance's own plaintext listener instead."""
    channel = sync_channel(url)
    try:
        # The stubs package types HealthStub without its methods.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError:
        return "UNREACHABLE"
    finally:
        channel.close()
