import datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_adapter', '0004_importedbundle_schema'),
    ]

    operations = [
        migrations.CreateModel(
            name='SiteClock',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('offset', models.DurationField(default=datetime.timedelta(0))),
                ('server_time', models.DateTimeField(blank=True, help_text="the receipt's time", null=True)),
                ('observed', models.DateTimeField(blank=True, help_text='this clock, then', null=True)),
            ],
        ),
    ]
