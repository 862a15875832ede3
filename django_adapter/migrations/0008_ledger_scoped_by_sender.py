"""Transaction ids are scoped by the key that signed them (issue 10).

Existing ledger rows get the fingerprint of their bundle's signer, and rows of
models whose primary key travels (UUIDs) are named by that key alone in
``object_key`` (the stale rule's name of an object), as new rows are.
"""

from django.db import migrations, models


def forwards(apps, schema_editor):
    from django.apps import apps as live_apps

    from django_adapter.codec import object_key
    from django_adapter.serialization import pk_travels

    db = schema_editor.connection.alias
    Incoming = apps.get_model("django_adapter", "IncomingTransaction")
    Bundle = apps.get_model("django_adapter", "ImportedBundle")
    for pk, fingerprint in Bundle.objects.using(db).values_list("pk", "fingerprint").iterator():
        Incoming.objects.using(db).filter(bundle_id=pk).update(sender=fingerprint)
    for name in Incoming.objects.using(db).values_list("tx_name", flat=True).distinct():
        try:
            model = live_apps.get_model(name)
        except (LookupError, ValueError):
            continue
        if not pk_travels(model):
            continue
        changed = []
        for row in Incoming.objects.using(db).filter(tx_name=name).only("pk", "tx_pk").iterator():
            try:
                key = str(model._meta.pk.to_python(row.tx_pk))
            except Exception:  # noqa: BLE001 - left as it was
                continue
            row.object_key = object_key(name, key, None)
            changed.append(row)
            if len(changed) >= 500:
                Incoming.objects.using(db).bulk_update(changed, ["object_key"])
                changed = []
        Incoming.objects.using(db).bulk_update(changed, ["object_key"])


class Migration(migrations.Migration):

    dependencies = [
        ("django_adapter", "0007_importedbundle_settled"),
    ]

    operations = [
        migrations.AddField(
            model_name="conflictingtransaction",
            name="sender",
            field=models.CharField(blank=True, default="", max_length=128),
        ),
        migrations.AddField(
            model_name="incomingtransaction",
            name="sender",
            field=models.CharField(
                blank=True, default="", max_length=128,
                help_text="fingerprint of the key that signed the bundle ('' when copied without one)",
            ),
        ),
        migrations.AlterField(
            model_name="incomingtransaction",
            name="tx_id",
            field=models.UUIDField(),
        ),
        migrations.AddConstraint(
            model_name="incomingtransaction",
            constraint=models.UniqueConstraint(fields=("sender", "tx_id"), name="bk_incoming_sender_tx"),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
