from django.apps import AppConfig


class TestFilesConfig(AppConfig):
    name = "tests.test_files"
    label = "test_files"
    default_auto_field = "django.db.models.BigAutoField"
