"""The server's storage role: buckets of "Comet Server" Storage Vaults.

Each bucket is a directory of objects on the server's disk (``files``) and a row in
PostgreSQL with its owner, the hash of its credential, its quota and its usage
(``store``). Must not import grpc, protobuf or the agent's storage package.
"""
