"""System checks and the project's migrations."""

import io

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps

from django_adapter import capture
from django_adapter.checks import check_models
from django_adapter.exceptions import SyncError
from django_adapter.models import SyncManager, SyncModelMixin


def ids(model):
    return sorted(e.id for e in check_models([model]))


@isolate_apps("tests.test_app")
def test_model_without_natural_key_is_an_error_and_cannot_be_captured():
    class NoKey(SyncModelMixin):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "test_app"

    assert ids(NoKey) == ["django_adapter.E001", "django_adapter.E002"]
    with pytest.raises(SyncError):
        capture.check_model(NoKey)


@isolate_apps("tests.test_app")
def test_plain_manager_is_warned_about_and_bad_reference_is_an_error():
    class Target(models.Model):
        class Meta:
            app_label = "test_app"

    class PlainManager(models.Manager):
        def get_by_natural_key(self, name):
            return self.get(name=name)

    class Plain(SyncModelMixin):
        name = models.CharField(max_length=10)
        target = models.ForeignKey(Target, on_delete=models.CASCADE)
        objects = PlainManager()

        class Meta:
            app_label = "test_app"

        def natural_key(self):
            return (self.name,)

    found = check_models([Plain])
    assert sorted(e.id for e in found) == ["django_adapter.E003", "django_adapter.W001"]
    assert any(e.level == checks.WARNING for e in found)


@isolate_apps("tests.test_app")
def test_well_formed_model_passes():
    class Good(SyncModelMixin):
        name = models.CharField(max_length=10, unique=True)

        class NaturalManager(SyncManager):
            def get_by_natural_key(self, name):
                return self.get(name=name)

        objects = NaturalManager()

        class Meta:
            app_label = "test_app"

        def natural_key(self):
            return (self.name,)

    assert ids(Good) == []


@pytest.mark.django_db(databases=["default", "server"])
def test_project_passes_its_checks():
    """Django 6 runs the database checks too (it did only with --database before)."""
    call_command("check", stdout=io.StringIO())


@pytest.mark.django_db(databases=["default", "server"])
def test_migrations_are_complete():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits non-zero on changes
