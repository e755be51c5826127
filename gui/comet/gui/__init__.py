"""Comet Backup, the desktop app (``comet-gui``): a thin PyQt6 front end of the local
agent. Only ``agent_client`` (and its ``convert``) talk to the agent and import grpc or
generated protobuf code; every other module works with ``records`` and Qt signals.
Nothing here imports the backup engine, and worker threads never touch widgets.
"""
