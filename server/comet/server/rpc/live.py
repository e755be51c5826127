"""The registry of agents whose live connection this server instance holds, and
the correlation of remote commands with their replies."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from comet.server.errors import DeviceOfflineError, offline
from comet.v1 import control_pb2


@dataclass(eq=False)
class LiveConnection:
    device_id: str
    user_id: str
    outbox: asyncio.Queue[control_pb2.ServerMessage | None] = field(default_factory=asyncio.Queue)
    pending: dict[str, asyncio.Future[control_pb2.CommandReply]] = field(default_factory=dict)
    seen: bool = True

    def close(self) -> None:
        self.outbox.put_nowait(None)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    DeviceOfflineError(f"device {self.device_id} disconnected before replying")
                )

    def resolve(self, reply: control_pb2.CommandReply) -> None:
        future = self.pending.pop(reply.request_id, None)
        if future is not None and not future.done():
            future.set_result(reply)


class LiveRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, LiveConnection] = {}

    def register(self, connection: LiveConnection) -> None:
        """Adds a connection; an older one from the same device is closed."""
        old = self._connections.get(connection.device_id)
        self._connections[connection.device_id] = connection
        if old is not None:
            old.close()

    def unregister(self, connection: LiveConnection) -> bool:
        """Removes the connection if it is still the device's current one."""
        if self._connections.get(connection.device_id) is connection:
            del self._connections[connection.device_id]
            return True
        return False

    def get(self, device_id: str) -> LiveConnection | None:
        return self._connections.get(device_id)

    def close_device(self, device_id: str) -> None:
        connection = self._connections.pop(device_id, None)
        if connection is not None:
            connection.close()

    def take_seen(self) -> list[str]:
        """Device ids that sent anything since the last call."""
        seen = [c.device_id for c in self._connections.values() if c.seen]
        for connection in self._connections.values():
            connection.seen = False
        return seen

    def __len__(self) -> int:
        return len(self._connections)

    async def send(
        self, device_id: str, command: control_pb2.Command, *, timeout: float
    ) -> control_pb2.CommandReply:
        connection = self._connections.get(device_id)
        if connection is None:
            raise DeviceOfflineError(offline(device_id))
        request_id = command.request_id or str(uuid.uuid4())
        command.request_id = request_id
        future: asyncio.Future[control_pb2.CommandReply] = (
            asyncio.get_running_loop().create_future()
        )
        connection.pending[request_id] = future
        connection.outbox.put_nowait(control_pb2.ServerMessage(command=command))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as e:
            raise DeviceOfflineError(
                f"device {device_id} did not reply within {timeout:.0f} s"
            ) from e
        finally:
            connection.pending.pop(request_id, None)
