"""An edc-style clinic schema: what the entry-order benchmark captures.

Shaped like an edc trial app rather than like our example project:

* ``Panel``: a lookup list (autoincrement key, natural key its name); the
  requisition's ``panels`` M2M points at it, so each M2M set travels as natural keys.
* ``SubjectConsent``: UUID key, natural key the subject identifier.
* ``SubjectVisit``: autoincrement key (so references to a visit travel by natural
  key); natural key (subject_identifier, visit_code, visit_code_sequence) as edc's.
* ``VitalSigns``: a CRF with an autoincrement key and a one-to-one to its visit;
  its manager's ``get_by_natural_key`` looks across the foreign key, as edc's
  ``CrfModelManager`` does (``subject_visit__subject_identifier=...``).
* ``SubjectRequisition``: UUID key, a foreign key to the visit, an M2M to panels.

The ``Plain*`` twins have the same columns without ``SyncModelMixin`` (no capture):
the capture-overhead measurement runs the same entry workload on each.
"""

import uuid

from django.db import models

from django_adapter.models import SyncManager, SyncModelMixin

# --------------------------------------------------------------- managers


class PanelManager(SyncManager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class SubjectConsentManager(SyncManager):
    def get_by_natural_key(self, subject_identifier):
        return self.get(subject_identifier=subject_identifier)


class SubjectVisitManager(SyncManager):
    def get_by_natural_key(self, subject_identifier, visit_code, visit_code_sequence):
        return self.get(subject_identifier=subject_identifier, visit_code=visit_code,
                        visit_code_sequence=visit_code_sequence)


class CrfModelManager(SyncManager):
    """edc's CRF manager: a CRF is found through its visit."""

    def get_by_natural_key(self, subject_identifier, visit_code, visit_code_sequence):
        return self.get(subject_visit__subject_identifier=subject_identifier,
                        subject_visit__visit_code=visit_code,
                        subject_visit__visit_code_sequence=visit_code_sequence)


class RequisitionManager(SyncManager):
    def get_by_natural_key(self, requisition_identifier):
        return self.get(requisition_identifier=requisition_identifier)


# --------------------------------------------------------------- columns
# One function per model so the synced model and its plain twin share them.


def _panel_fields():
    return dict(
        name=models.CharField(max_length=50, unique=True),
        display_name=models.CharField(max_length=100),
    )


def _consent_fields():
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


def _visit_fields(consent):
    return dict(
        subject_consent=models.ForeignKey(consent, on_delete=models.PROTECT),
        subject_identifier=models.CharField(max_length=50),
        visit_code=models.CharField(max_length=10),
        visit_code_sequence=models.IntegerField(default=0),
        report_datetime=models.DateTimeField(),
        reason=models.CharField(max_length=25),
        info_source=models.CharField(max_length=25),
        comments=models.TextField(blank=True, default=""),
    )


def _vitals_fields(visit):
    return dict(
        subject_visit=models.OneToOneField(visit, on_delete=models.PROTECT),
        report_datetime=models.DateTimeField(),
        weight=models.DecimalField(max_digits=5, decimal_places=1),
        height=models.DecimalField(max_digits=5, decimal_places=1, null=True),
        sys_blood_pressure=models.IntegerField(),
        dia_blood_pressure=models.IntegerField(),
        heart_rate=models.IntegerField(),
        temperature=models.DecimalField(max_digits=4, decimal_places=1, null=True),
        comments=models.TextField(blank=True, default=""),
    )


def _requisition_fields(visit, panel):
    return dict(
        id=models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False),
        subject_visit=models.ForeignKey(visit, on_delete=models.PROTECT),
        requisition_identifier=models.CharField(max_length=36, unique=True),
        panels=models.ManyToManyField(panel),
        specimen_type=models.CharField(max_length=3),
        volume=models.DecimalField(max_digits=5, decimal_places=2),
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


def _visit_unique(prefix):
    return {"constraints": [models.UniqueConstraint(
        fields=["subject_identifier", "visit_code", "visit_code_sequence"],
        name=f"clinic_{prefix}visit_unique")]}


# --------------------------------------------------------------- natural keys


def _panel_nk(self):
    return (self.name,)


def _consent_nk(self):
    return (self.subject_identifier,)


def _visit_nk(self):
    return (self.subject_identifier, self.visit_code, self.visit_code_sequence)


def _crf_nk(self):
    return self.subject_visit.natural_key()


_crf_nk.dependencies = ["clinic.subjectvisit"]


def _requisition_nk(self):
    return (self.requisition_identifier,)


# --------------------------------------------------------------- models

Panel = _model("Panel", SyncModelMixin, _panel_fields(),
               extra={"objects": PanelManager(), "natural_key": _panel_nk})
SubjectConsent = _model("SubjectConsent", SyncModelMixin, _consent_fields(),
                        extra={"objects": SubjectConsentManager(), "natural_key": _consent_nk})
SubjectVisit = _model("SubjectVisit", SyncModelMixin, _visit_fields(SubjectConsent),
                      meta=_visit_unique(""),
                      extra={"objects": SubjectVisitManager(), "natural_key": _visit_nk})
VitalSigns = _model("VitalSigns", SyncModelMixin, _vitals_fields(SubjectVisit),
                    extra={"objects": CrfModelManager(), "natural_key": _crf_nk})
SubjectRequisition = _model("SubjectRequisition", SyncModelMixin,
                            _requisition_fields(SubjectVisit, Panel),
                            extra={"objects": RequisitionManager(),
                                   "natural_key": _requisition_nk})

PlainPanel = _model("PlainPanel", models.Model, _panel_fields())
PlainSubjectConsent = _model("PlainSubjectConsent", models.Model, _consent_fields())
PlainSubjectVisit = _model("PlainSubjectVisit", models.Model, _visit_fields(PlainSubjectConsent),
                           meta=_visit_unique("plain"))
PlainVitalSigns = _model("PlainVitalSigns", models.Model, _vitals_fields(PlainSubjectVisit))
PlainSubjectRequisition = _model("PlainSubjectRequisition", models.Model,
                                 _requisition_fields(PlainSubjectVisit, PlainPanel))

#: (Panel, SubjectConsent, SubjectVisit, VitalSigns, SubjectRequisition)
SYNCED = (Panel, SubjectConsent, SubjectVisit, VitalSigns, SubjectRequisition)
PLAIN = (PlainPanel, PlainSubjectConsent, PlainSubjectVisit, PlainVitalSigns,
         PlainSubjectRequisition)
LABELS = [m._meta.label_lower for m in SYNCED]
