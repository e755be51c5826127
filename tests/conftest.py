"""Shared fixtures: every fixture module under tests/fixtures is a pytest plugin."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.moto",
    "tests.fixtures.sftp",
    "tests.fixtures.processes",
    "tests.fixtures.comet_server",
]
