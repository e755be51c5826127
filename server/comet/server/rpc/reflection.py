"""gRPC server reflection, so grpcurl and similar tools can list and call services."""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection

from comet.v1 import admin_pb2, control_pb2, notify_pb2, storage_pb2


def enable_reflection(server: grpc.aio.Server, *extra: str) -> None:
    names = [
        control_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        control_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
        admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
        storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name,
        notify_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
        *extra,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
