"""Suite-wide rules: which database backend this run uses, and whether it may skip.

``make test`` runs the suite on SQLite, then the Django tests again with
``BUNDLEKIT_TEST_DB=postgres`` and ``=mysql``. On a developer machine without
those servers their run skips with a reason; in CI (``CI=true``) a missing
server fails the run loudly instead.
"""

import os
import socket

import pytest

BACKEND = os.environ.get("BUNDLEKIT_TEST_DB", "sqlite")
SERVERS = {
    "postgres": ("BUNDLEKIT_PG_HOST", "BUNDLEKIT_PG_PORT", 5432),
    "mysql": ("BUNDLEKIT_MYSQL_HOST", "BUNDLEKIT_MYSQL_PORT", 3306),
}


def _server_answers(backend: str) -> bool:
    host_var, port_var, default_port = SERVERS[backend]
    host = os.environ.get(host_var, "127.0.0.1")
    port = int(os.environ.get(port_var, default_port))
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    if BACKEND in SERVERS and not _server_answers(BACKEND):
        message = f"the {BACKEND} server does not answer (BUNDLEKIT_TEST_DB={BACKEND})"
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(f"CI requires {message}")
        config._bundlekit_skip_reason = message


def pytest_collection_modifyitems(config, items):
    reason = getattr(config, "_bundlekit_skip_reason", None)
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))
