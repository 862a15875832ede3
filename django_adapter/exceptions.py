"""Errors of the Django adapter.

``SyncError`` keeps edc-sync's name so code written against edc-sync still catches
what it used to.  Problems with a bundle *file* stay bundlekit's ``BundleError``
family; these classes are about models, configuration and the ledger.
"""


class SyncError(Exception):
    """A synced model or a sync operation cannot work as configured."""


class NaturalKeyError(SyncError):
    """A model lacks ``natural_key()`` / ``get_by_natural_key()``, so its rows cannot
    be found again on another database whose autoincrement pks differ."""


class UnresolvedReference(SyncError):
    """A foreign key or m2m target named in a record is not (yet) on this database.

    Raised while applying; the importer defers the transaction to the end of the
    bundle and only records it as failed if the target never appears.
    """


class ChainError(SyncError):
    """The local export chain state does not match what is in the outbox."""
