"""Migrations that change indexes without rebuilding tables."""

import importlib

import pytest
from django.apps import apps
from django.db import connection

from django_adapter.models import IncomingTransaction

ledger_index = importlib.import_module("django_adapter.migrations.0011_ledger_tx_name_index")


def _indexes_on(columns: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, IncomingTransaction._meta.db_table)
    return [name for name, c in found.items() if c["columns"] == columns and c["index"]
            and not c["unique"] and not c["primary_key"]]


@pytest.mark.django_db
def test_the_ledger_is_indexed_by_model_once():
    """Queries by model use ``bk_incoming_object``; no second index pays on each insert."""
    assert _indexes_on(["tx_name"]) == []
    assert _indexes_on(["tx_name", "object_key", "timestamp"]) == ["bk_incoming_object"]


@pytest.mark.django_db(transaction=True)
def test_the_index_drop_runs_both_ways():
    try:
        with connection.schema_editor() as editor:
            ledger_index.add_index(apps, editor)
        assert len(_indexes_on(["tx_name"])) == 1
        with connection.schema_editor() as editor:
            ledger_index.add_index(apps, editor)  # already there: not a second one
        assert len(_indexes_on(["tx_name"])) == 1
    finally:
        with connection.schema_editor() as editor:
            ledger_index.drop_index(apps, editor)
    assert _indexes_on(["tx_name"]) == []
