"""The manager and queryset of synced models: bulk writes are captured too.

Plain ``QuerySet.update()`` and ``bulk_create()`` send no signals, so they would
bypass capture; these run them and capture every row they wrote.
"""

from __future__ import annotations

from django.db import models, transaction

from django_adapter import capture


class SyncQuerySet(models.QuerySet):
    """Queryset whose bulk writes are captured too."""

    def update(self, **kwargs):
        if not capture.is_enabled():
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            return capture.captured_update(self, kwargs, super().update)

    update.alters_data = True

    def bulk_create(self, objs, *args, **kwargs):
        if not capture.is_enabled():
            return super().bulk_create(objs, *args, **kwargs)
        capture.check_bulk_create(self.model, kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            return capture.captured_bulk_create(self, objs, args, kwargs, super().bulk_create)

    bulk_create.alters_data = True


class SyncManager(models.Manager.from_queryset(SyncQuerySet)):
    """Base for the default manager of a synced model; add ``get_by_natural_key``."""
