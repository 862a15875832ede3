"""Suite-wide rules: which database backend this run uses, and whether it may skip.

``make test`` runs the suite on SQLite, then the Django tests again with
``BUNDLEKIT_TEST_DB=postgres`` and ``=mysql``. On a developer machine without
those servers their run skips with a reason; in CI (``CI=true``) a missing
server fails the run loudly instead.

Tests under tests/reliability get the ``reliability`` marker; each test marked
``attack`` (issue 10) leaves one line with its outcome in the reliability
figures when the run includes the reliability suite (so the adversarial row of
docs/RELIABILITY.md counts every attack tried, refused or accepted), not in the
extra PostgreSQL/MariaDB/Django 4.2 passes, which would replace those figures.
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


@pytest.hookimpl(tryfirst=True)  # before -m selects on it
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith("tests/reliability/"):
            item.add_marker(pytest.mark.reliability)
        if item.get_closest_marker("attack") is not None:
            item.user_properties.append(("attack", True))  # travels with the report
    reason = getattr(config, "_bundlekit_skip_reason", None)
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))



def pytest_collection_finish(session):
    global _ATTACK_FIGURES
    _ATTACK_FIGURES = any(item.get_closest_marker("reliability") for item in session.items)


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    """One figure line per attack test: refused (it passed), accepted (it failed: the
    attack got through, or the test broke; a strict xfail is a known open attack),
    or skipped."""
    if not _ATTACK_FIGURES or ("attack", True) not in report.user_properties:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        from tests.reliability.figures import write

        known = {}
        if hasattr(report, "wasxfail"):
            outcome = "accepted"
            known = {"known": report.wasxfail or "a strict xfail"}
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "refused" if report.passed else "accepted"
        write("attack", report.nodeid, outcome=outcome, trials=int(outcome != "skipped"),
              rejected=int(outcome == "refused"), accepted=int(outcome == "accepted"), **known)


_ATTACK_FIGURES = False
