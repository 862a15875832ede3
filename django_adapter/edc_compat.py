"""edc-sync's queryset API on the ledger tables, as edc-sync users call it::

    OutgoingTransaction.objects.filter(is_consumed_server=False).copy_to_incoming_transaction("server")
    IncomingTransaction.objects.filter(is_consumed=False).deserialize(check_hostname=False)

The ledger tables (``models.py``) use these querysets; the engine they call is
imported when they are called, so the tables never import the engine (which
imports them).
"""

from __future__ import annotations

from django.db import models


class OutgoingTransactionQuerySet(models.QuerySet):
    def copy_to_incoming_transaction(self, using: str):
        """edc-sync's direct route: copy these rows into another alias's ledger.

        Rows already in the target ledger are counted as duplicates (or conflicts
        when the content differs), never stored twice.  Returns a ``CopyResult``.
        """
        from django_adapter.apply import copy_to_incoming

        return copy_to_incoming(self, using)


class IncomingTransactionQuerySet(models.QuerySet):
    def deserialize(self, custom_device=None, check_hostname=True):
        """edc-sync's apply call: apply the pending rows of this queryset in order.

        ``check_hostname`` (edc-sync's default True) skips transactions produced on
        this very host, so a laptop never re-applies its own changes; ``custom_device``
        names the host to compare against instead of this machine's hostname.
        Returns an ``ApplyResult`` with counts and one message per failure.
        """
        from django_adapter.apply import apply_queryset

        return apply_queryset(self, custom_device=custom_device, check_hostname=check_hostname)
