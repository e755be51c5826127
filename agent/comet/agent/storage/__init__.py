"""Storage backends for Storage Vaults behind one small ``Storage`` protocol.

Backends (local path, in-memory, S3, SFTP, Comet Server bucket) implement
``comet.agent.storage.base.Storage``; retry and fault injection are wrappers that
implement the same protocol. Must not import grpc, asyncio or Qt.
"""
