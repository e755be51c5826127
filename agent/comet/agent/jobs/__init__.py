"""Jobs: their records and log (stored locally first), the runner that executes them
on worker threads, and the outbox that ships them to the server."""
