from django.apps import AppConfig


class DjangoAdapterConfig(AppConfig):
    name = "django_adapter"
    verbose_name = "bundlekit sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_adapter import capture, checks, conf  # noqa: F401  (checks register on import)

        capture.register_all()
