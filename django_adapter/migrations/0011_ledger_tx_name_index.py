"""The ledger's own index on ``tx_name`` goes: ``bk_incoming_object`` (tx_name,
object_key, timestamp) starts with that column and serves every query by it, and
each index costs every imported row an insert.

Only the index is dropped (found by introspection, whatever its name): Django's
own ``AlterField`` would rebuild the whole table on SQLite, minutes on a server
that holds millions of rows.
"""

from django.db import migrations, models


def _single_column_indexes(schema_editor, table: str, column: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        found = schema_editor.connection.introspection.get_constraints(cursor, table)
    return [name for name, c in found.items()
            if c["columns"] == [column] and c["index"] and not c["unique"]
            and not c["primary_key"] and not c["foreign_key"]]


def drop_index(apps, schema_editor):
    model = apps.get_model("django_adapter", "IncomingTransaction")
    table = model._meta.db_table
    for name in _single_column_indexes(schema_editor, table, "tx_name"):
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def add_index(apps, schema_editor):
    model = apps.get_model("django_adapter", "IncomingTransaction")
    if not _single_column_indexes(schema_editor, model._meta.db_table, "tx_name"):
        field = model._meta.get_field("tx_name")
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):

    dependencies = [
        ("django_adapter", "0010_attachment_receipts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="incomingtransaction",
                    name="tx_name",
                    field=models.CharField(max_length=255),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, add_index)],
        ),
    ]
