"""Shared by the reliability tests: running the CLI, counting database rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The start of every settings module the reliability tests write next to their
#: databases (``HERE`` is that folder); each test adds its DATABASES after it.
SETTINGS_HEAD = """
import os
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "reliability-tests-only"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_adapter",
                  "tests.test_app"]
"""


def bundle_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
               stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``bundle ARGS`` in a subprocess, as a person runs it."""
    full_env = {**os.environ, "BUNDLEKIT_NO_PROGRESS": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(cwd or ROOT), str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "bundlekit", *args],
        input=stdin, capture_output=True, text=True, cwd=cwd or ROOT, env=full_env,
        timeout=timeout,
    )


def one_clean_line(result: subprocess.CompletedProcess) -> str:
    """A failure is one line on stderr, no traceback, a non-zero exit; return the line."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def row_counts(using: str) -> dict[str, int]:
    """Rows per table of the adapter and the test app on ``using`` (Django must be set up)."""
    from django.apps import apps

    out = {}
    for label in ("django_adapter", "test_app"):
        for model in apps.get_app_config(label).get_models():
            out[model._meta.label] = model._base_manager.using(using).count()
    return out


def snapshot(using: str) -> dict[str, list]:
    """Every row of the adapter's ledger tables and the test app, comparable across runs."""
    from django.apps import apps

    out = {}
    for label in ("django_adapter", "test_app"):
        for model in apps.get_app_config(label).get_models():
            fields = [f.attname for f in model._meta.concrete_fields
                      if f.attname not in ("id", "received", "updated", "applied_datetime",
                                           "created", "consumed_datetime")]
            out[model._meta.label] = sorted(
                map(repr, model._base_manager.using(using).values_list(*fields))
            )
    return out
