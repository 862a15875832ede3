from django.apps import AppConfig


class DjangoAdapterConfig(AppConfig):
    name = "django_adapter"
    verbose_name = "bundlekit sync"
    default_auto_field = "django.db.models.BigAutoField"
