"""edc-sync's exception module, kept so ``from django_adapter.exceptions import
SyncError`` goes on working.

The classes live in :mod:`bundlekit.errors` with the rest of the one family:
``SyncError`` is a :class:`~bundlekit.errors.BundleError`, so the CLI prints it
as one line and ``except BundleError`` catches it too.
"""

from bundlekit.errors import ChainError, NaturalKeyError, SyncError, UnresolvedReference

__all__ = ["ChainError", "NaturalKeyError", "SyncError", "UnresolvedReference"]
