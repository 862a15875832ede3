"""Benchmark models: what a research assistant enters in the field.

``Participant`` and ``Requisition`` have UUID primary keys (they travel as they
are); ``Visit`` has an autoincrement key, so references to a visit travel as its
natural key, which nests the participant's (as edc CRFs do).  The ``Plain*``
twins have the same columns without ``SyncModelMixin``: the capture-overhead
comparison saves one family, then the other.
"""

import uuid

from django.db import models

from django_adapter.models import SyncManager, SyncModelMixin


def _participant_fields():
    return dict(
        id=models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False),
        subject_identifier=models.CharField(max_length=50, unique=True),
        first_name=models.CharField(max_length=50),
        last_name=models.CharField(max_length=50),
        initials=models.CharField(max_length=3),
        dob=models.DateField(),
        gender=models.CharField(max_length=1),
        identity=models.CharField(max_length=36),
        consent_datetime=models.DateTimeField(),
        address=models.TextField(blank=True, default=""),
        phone=models.CharField(max_length=20, blank=True, default=""),
    )


def _visit_fields(participant):
    return dict(
        participant=models.ForeignKey(participant, on_delete=models.PROTECT),
        visit_code=models.CharField(max_length=10),
        visit_code_sequence=models.IntegerField(default=0),
        report_datetime=models.DateTimeField(),
        reason=models.CharField(max_length=25),
        info_source=models.CharField(max_length=25),
        comments=models.TextField(blank=True, default=""),
    )


def _requisition_fields(visit):
    return dict(
        id=models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False),
        visit=models.ForeignKey(visit, on_delete=models.PROTECT),
        requisition_identifier=models.CharField(max_length=36, unique=True),
        panel_name=models.CharField(max_length=50),
        specimen_type=models.CharField(max_length=3),
        volume=models.DecimalField(max_digits=5, decimal_places=2),
        estimated_volume=models.DecimalField(max_digits=5, decimal_places=2, null=True),
        drawn_datetime=models.DateTimeField(),
        is_drawn=models.BooleanField(default=True),
        item_count=models.IntegerField(default=1),
        comments=models.TextField(blank=True, default=""),
    )


def _model(name, base, fields, meta=None, extra=None):
    attrs = {"__module__": __name__, **fields, **(extra or {})}
    if meta:
        attrs["Meta"] = type("Meta", (), meta)
    return type(name, (base,), attrs)


class ParticipantManager(SyncManager):
    def get_by_natural_key(self, subject_identifier):
        return self.get(subject_identifier=subject_identifier)


class VisitManager(SyncManager):
    def get_by_natural_key(self, visit_code, participant_key):
        return self.get(visit_code=visit_code, participant__subject_identifier=participant_key[0])


class RequisitionManager(SyncManager):
    def get_by_natural_key(self, requisition_identifier):
        return self.get(requisition_identifier=requisition_identifier)


def _participant_nk(self):
    return (self.subject_identifier,)


def _visit_nk(self):
    return (self.visit_code, self.participant.natural_key())


_visit_nk.dependencies = ["benchapp.participant"]


def _requisition_nk(self):
    return (self.requisition_identifier,)


Participant = _model(
    "Participant", SyncModelMixin, _participant_fields(),
    extra={"objects": ParticipantManager(), "natural_key": _participant_nk},
)
Visit = _model(
    "Visit", SyncModelMixin, _visit_fields(Participant),
    meta={"constraints": [models.UniqueConstraint(fields=["participant", "visit_code"],
                                                  name="bench_visit_unique")]},
    extra={"objects": VisitManager(), "natural_key": _visit_nk},
)
Requisition = _model(
    "Requisition", SyncModelMixin, _requisition_fields(Visit),
    extra={"objects": RequisitionManager(), "natural_key": _requisition_nk},
)

PlainParticipant = _model("PlainParticipant", models.Model, _participant_fields())
PlainVisit = _model(
    "PlainVisit", models.Model, _visit_fields(PlainParticipant),
    meta={"constraints": [models.UniqueConstraint(fields=["participant", "visit_code"],
                                                  name="bench_plainvisit_unique")]},
)
PlainRequisition = _model("PlainRequisition", models.Model, _requisition_fields(PlainVisit))

SYNCED = (Participant, Visit, Requisition)
PLAIN = (PlainParticipant, PlainVisit, PlainRequisition)
