"""Synced models whose rows carry files (django_adapter/attachments.py)."""

from django.db import models

from django_adapter.models import SyncManager, SyncModelMixin


class LabelPhotoField(models.ImageField):
    """An ImageField that does not ask for Pillow (not installed here): without
    width/height fields Django reads no image, and it travels like any file."""

    def _check_image_library_installed(self):
        return []


class DocumentManager(SyncManager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Document(SyncModelMixin):
    """A scanned form and a label photo: files that travel inside the bundles."""

    code = models.CharField(max_length=50, unique=True)
    scan = models.FileField(upload_to="scans", blank=True)
    photo = LabelPhotoField(upload_to="photos", blank=True)

    objects = DocumentManager()

    def natural_key(self):
        return (self.code,)
