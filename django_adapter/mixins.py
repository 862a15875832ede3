"""``SyncModelMixin``: what makes a model synced (its changes captured)."""

from __future__ import annotations

from django.db import connections, models, router, transaction

from django_adapter.managers import SyncManager


class SyncModelMixin(models.Model):
    """Every insert, update and delete of a concrete subclass is captured as an
    ``OutgoingTransaction`` on the same database, in the same DB transaction.

    Subclasses need ``natural_key()`` and a default manager with
    ``get_by_natural_key()`` (``manage.py check`` says so otherwise): autoincrement
    pks differ between the laptop and the server, so rows are found by natural key.
    """

    #: How ``serialization.is_synced`` recognises a synced model without importing
    #: this module (which would import capture, which imports serialization).
    bundlekit_synced = True

    objects = SyncManager()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        # Remember the values as loaded (a tuple reference, no copy): an update that
        # renames the object then carries its natural key from before the change.
        # (**kwargs: Django 6.1 passes fetch_mode.)
        obj = super().from_db(db, field_names, values, **kwargs)
        obj._bk_loaded = (tuple(field_names), tuple(values))
        return obj

    def save_base(self, *args, **kwargs):
        # Django sends post_save after its own transaction block has ended; wrapping
        # the whole save keeps the change and its OutgoingTransaction in one commit.
        using = kwargs.get("using") or router.db_for_write(self.__class__, instance=self)
        kwargs["using"] = using
        connection = connections[using]
        if not connection.in_atomic_block:
            with transaction.atomic(using=using, savepoint=False):
                return super().save_base(*args, **kwargs)
        # Already in a transaction: what atomic(savepoint=False) would add is to
        # mark it for rollback when the save or its capture fails (2us a save).
        try:
            return super().save_base(*args, **kwargs)
        except BaseException:
            if connection.in_atomic_block and not connection.closed_in_transaction:
                connection.needs_rollback = True
            raise
