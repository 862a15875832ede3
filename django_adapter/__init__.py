"""The reusable Django app of bundlekit: capture changes, export and import bundles.

The public API is importable from here (lazily, so importing the package before
Django's app registry is ready does not import models)::

    from django_adapter import import_bundle, export_pending, retry_failed, BundleReport
"""

_API = {
    "import_bundle": "django_adapter.importer",
    "BundleReport": "django_adapter.importer",
    "export_pending": "django_adapter.exporter",
    "retry_failed": "django_adapter.apply",
    "ApplyResult": "django_adapter.apply",
    "suspended": "django_adapter.capture",
    "SyncError": "django_adapter.exceptions",
    "NaturalKeyError": "django_adapter.exceptions",
    "UnresolvedReference": "django_adapter.exceptions",
    "ChainError": "django_adapter.exceptions",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'django_adapter' has no attribute {name!r}")
