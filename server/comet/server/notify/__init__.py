"""Notifications: email reports and signed webhooks, queued in PostgreSQL and
delivered by a worker on every instance (each delivery exactly once across them).

``events`` turns what happened (jobs, audit log, presence) into deliveries,
``outbox`` is the queue and its worker, ``email`` and ``webhooks`` compose and send,
``settings`` holds what admins configure. Must not import grpc."""
