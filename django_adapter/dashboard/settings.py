"""The dashboard's switches: the nested ``BUNDLEKIT["DASHBOARD"]`` dict::

    "DASHBOARD": {
        "QUIET_DAYS": 7,     # a sender not heard from for longer is highlighted
        "CHART_DAYS": 28,    # days shown in the records-applied-per-day chart
    }

Everything else (keys, folders, database) is the workflow's own
:func:`django_adapter.conf.get_config`, so the pages show what the commands see.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

DEFAULT_QUIET_DAYS = 7
DEFAULT_CHART_DAYS = 28


@dataclass(frozen=True)
class DashboardSettings:
    quiet_days: int = DEFAULT_QUIET_DAYS
    chart_days: int = DEFAULT_CHART_DAYS


def _positive(raw: dict, key: str, default: int) -> int:
    value = raw.get(key, default)
    if type(value) is not int or value <= 0:
        from django_adapter.conf import ConfigError

        raise ConfigError(f"BUNDLEKIT['DASHBOARD']['{key}'] must be a positive whole number")
    return value


def dashboard_settings() -> DashboardSettings:
    raw = (getattr(settings, "BUNDLEKIT", None) or {}).get("DASHBOARD") or {}
    if not isinstance(raw, dict):
        from django_adapter.conf import ConfigError

        raise ConfigError("BUNDLEKIT['DASHBOARD'] must be a dict")
    return DashboardSettings(
        quiet_days=_positive(raw, "QUIET_DAYS", DEFAULT_QUIET_DAYS),
        chart_days=min(_positive(raw, "CHART_DAYS", DEFAULT_CHART_DAYS), 366),
    )
