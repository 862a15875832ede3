from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_adapter', '0006_outcomes'),
    ]

    operations = [
        migrations.AddField(
            model_name='importedbundle',
            name='settled',
            field=models.DateTimeField(blank=True, help_text='when a person set this quarantined fork aside (a Decision says who and why)', null=True),
        ),
    ]
