"""The web console and HTTP JSON API: an ASGI app (Starlette) served by
``comet-server serve --web-listen`` in the server's own event loop.

Thin by design: every route has a row in ``authorization.HTTP_ACTIONS`` and is
checked by ``authorization.require`` before its handler runs (exactly as the gRPC
guard does); handlers call the stores and ``comet.server.administration`` and render
a template or JSON. No business rule lives here or in the templates.

Must not import grpc servicers; it may use the protobuf ``Command`` the router sends."""
