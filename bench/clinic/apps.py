from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "bench.clinic"
    label = "clinic"
    default_auto_field = "django.db.models.BigAutoField"
