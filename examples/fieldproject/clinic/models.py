"""What research assistants enter in the field: participants, visits, specimen
requisitions.

Every model uses ``SyncModelMixin`` (each insert, update and delete becomes an
``OutgoingTransaction``) with a natural key and a manager that finds rows by it:
the server never trusts a laptop's autoincrement numbers, only keys that mean the
same thing everywhere. ``Participant`` and ``SpecimenRequisition`` have UUID
primary keys (they travel as they are); ``Visit`` has an autoincrement key, so
references to a visit travel as its natural key.
"""

import uuid

from django.db import models

from django_adapter.models import SyncManager, SyncModelMixin


class ParticipantManager(SyncManager):
    def get_by_natural_key(self, subject_identifier):
        return self.get(subject_identifier=subject_identifier)


class Participant(SyncModelMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_identifier = models.CharField(max_length=50, unique=True)
    initials = models.CharField(max_length=3)
    dob = models.DateField("date of birth")
    gender = models.CharField(max_length=1, choices=[("F", "female"), ("M", "male")])
    consent_datetime = models.DateTimeField()

    objects = ParticipantManager()

    class Meta:
        ordering = ["subject_identifier"]

    def __str__(self):
        return f"{self.subject_identifier} ({self.initials})"

    def natural_key(self):
        return (self.subject_identifier,)


class VisitManager(SyncManager):
    def get_by_natural_key(self, visit_code, participant_key):
        return self.get(visit_code=visit_code, participant__subject_identifier=participant_key[0])


class Visit(SyncModelMixin):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT)
    visit_code = models.CharField(max_length=10)
    report_datetime = models.DateTimeField()
    reason = models.CharField(
        max_length=15,
        choices=[("scheduled", "scheduled"), ("unscheduled", "unscheduled")],
        default="scheduled",
    )

    objects = VisitManager()

    class Meta:
        ordering = ["participant__subject_identifier", "visit_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "visit_code"], name="clinic_visit_unique"
            )
        ]

    def __str__(self):
        return f"{self.participant.subject_identifier} visit {self.visit_code}"

    def natural_key(self):
        return (self.visit_code, self.participant.natural_key())

    natural_key.dependencies = ["clinic.participant"]


class LabelPhotoField(models.ImageField):
    """An ImageField that does not ask for Pillow at ``manage.py check``: with no
    width/height fields Django never opens the image, and a photo travels like any
    file (django_adapter/attachments.py). Install Pillow and use ImageField itself
    to have uploads validated as images."""

    def _check_image_library_installed(self):
        return []


class RequisitionManager(SyncManager):
    def get_by_natural_key(self, requisition_identifier):
        return self.get(requisition_identifier=requisition_identifier)


class SpecimenRequisition(SyncModelMixin):
    SPECIMEN_TYPES = [
        ("WB", "whole blood"),
        ("PL", "plasma"),
        ("SR", "serum"),
        ("DBS", "dried blood spot"),
    ]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT)
    requisition_identifier = models.CharField(max_length=36, unique=True)
    specimen_type = models.CharField(max_length=3, choices=SPECIMEN_TYPES)
    volume = models.DecimalField("volume (mL)", max_digits=5, decimal_places=2)
    drawn_datetime = models.DateTimeField()
    comments = models.TextField(blank=True, default="")
    # A photo of the tube's label, taken in the field: it travels inside the bundle.
    label_photo = LabelPhotoField(upload_to="labels", blank=True)

    objects = RequisitionManager()

    class Meta:
        ordering = ["requisition_identifier"]

    def __str__(self):
        return f"{self.requisition_identifier} {self.specimen_type} {self.volume} mL"

    def natural_key(self):
        return (self.requisition_identifier,)
