from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_adapter', '0003_dashboard_permissions'),
    ]

    operations = [
        migrations.AddField(
            model_name='importedbundle',
            name='schema',
            field=models.JSONField(blank=True, help_text='migrations of the synced apps the site had applied (FORMAT.md 4.5); null for a bundle that states none', null=True),
        ),
        migrations.AddField(
            model_name='importedbundle',
            name='sealed',
            field=models.DateTimeField(blank=True, help_text="when the site sealed it, by the site's clock (manifest)", null=True),
        ),
    ]
