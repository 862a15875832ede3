from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('test_app', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='household',
            name='note',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
    ]
