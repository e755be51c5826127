"""The Comet agent: backup engine, storage backends, job runner, scheduler, local API.

The engine packages (``repository``, ``storage``, ``backup``, ``restore``,
``maintenance``) are synchronous and framework-free: they never import grpc, asyncio
or Qt, and never print. asyncio and gRPC live only in ``service``/``rpc`` modules.
"""

__version__ = "0.1.0"
