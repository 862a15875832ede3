"""Models that exercise the adapter: every built-in concrete field type, natural
keys over autoincrement pks, UUID pks, chains of foreign keys, m2m, a proxy,
multi-table inheritance."""

import uuid

from django.db import models

from django_adapter.models import SyncManager, SyncModelMixin


class CodeManager(SyncManager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class Household(SyncModelMixin):
    code = models.CharField(max_length=50, unique=True)
    village = models.CharField(max_length=100, blank=True)
    #: Added by migration 0002: the schema tests run with and without it.
    note = models.CharField(max_length=200, blank=True, default="")

    objects = CodeManager()

    def natural_key(self):
        return (self.code,)


class Tag(SyncModelMixin):
    code = models.CharField(max_length=50, unique=True)

    objects = CodeManager()

    def natural_key(self):
        return (self.code,)


class Panel(SyncModelMixin):
    """UUID pk: references to it travel as the pk itself."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=50, unique=True)

    objects = CodeManager()

    def natural_key(self):
        return (self.code,)


class Subject(SyncModelMixin):
    code = models.CharField(max_length=50, unique=True)
    household = models.ForeignKey(Household, on_delete=models.PROTECT, null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True)

    objects = CodeManager()

    def natural_key(self):
        return (self.code,)


class SubjectProxy(Subject):
    class Meta:
        proxy = True


class VisitManager(SyncManager):
    def get_by_natural_key(self, visit_code, subject_key):
        return self.get(visit_code=visit_code, subject__code=subject_key[0])


class Visit(SyncModelMixin):
    """Natural key nests the subject's natural key (as edc CRFs do)."""

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE)
    visit_code = models.CharField(max_length=10)
    report_datetime = models.DateTimeField()

    objects = VisitManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "visit_code"], name="test_visit_unique")
        ]

    def natural_key(self):
        return (self.visit_code, self.subject.natural_key())

    natural_key.dependencies = ["test_app.subject"]


class CrfManager(SyncManager):
    def get_by_natural_key(self, visit_key):
        return self.get(visit__visit_code=visit_key[0], visit__subject__code=visit_key[1][0])


class Crf(SyncModelMixin):
    """UUID pk, one-to-one to a model with an autoincrement pk, m2m to UUID pks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    visit = models.OneToOneField(Visit, on_delete=models.CASCADE)
    weight = models.DecimalField(max_digits=6, decimal_places=2, null=True)
    panels = models.ManyToManyField(Panel, blank=True)

    objects = CrfManager()

    def natural_key(self):
        return (self.visit.natural_key(),)


class RequisitionManager(SyncManager):
    def get_by_natural_key(self, requisition_identifier):
        return self.get(requisition_identifier=requisition_identifier)


class Requisition(SyncModelMixin):
    """FK to a UUID-pk model (travels as the pk) and to an autoincrement one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requisition_identifier = models.CharField(max_length=36, unique=True)
    crf = models.ForeignKey(Crf, on_delete=models.CASCADE)
    panel = models.ForeignKey(Panel, on_delete=models.PROTECT)
    drawn_datetime = models.DateTimeField()

    objects = RequisitionManager()

    def natural_key(self):
        return (self.requisition_identifier,)


class PlaceManager(SyncManager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class Place(SyncModelMixin):
    name = models.CharField(max_length=100, unique=True)
    district = models.CharField(max_length=100, blank=True)

    objects = PlaceManager()

    def natural_key(self):
        return (self.name,)


class Clinic(Place):
    """Multi-table inheritance: one record carries parent and child fields."""

    beds = models.IntegerField(default=0)
    household = models.ForeignKey(Household, null=True, blank=True, on_delete=models.SET_NULL)


class AllFields(SyncModelMixin):
    """One column of every built-in concrete field type (ImageField is a FileField
    needing Pillow, not installed here; it travels the same way)."""

    code = models.CharField(max_length=50, unique=True)
    big = models.BigIntegerField(null=True)
    small = models.SmallIntegerField(null=True)
    integer = models.IntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    positive_small = models.PositiveSmallIntegerField(null=True)
    positive_big = models.PositiveBigIntegerField(null=True)
    boolean = models.BooleanField(default=False)
    null_boolean = models.BooleanField(null=True)
    char = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    slug = models.SlugField(blank=True)
    email = models.EmailField(blank=True)
    url = models.URLField(blank=True)
    date = models.DateField(null=True)
    datetime = models.DateTimeField(null=True)
    time = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    decimal = models.DecimalField(max_digits=30, decimal_places=10, null=True)
    float = models.FloatField(null=True)
    uuid = models.UUIDField(null=True)
    json = models.JSONField(null=True)
    binary = models.BinaryField(null=True)
    ip = models.GenericIPAddressField(null=True)
    file = models.FileField(upload_to="files", blank=True)
    file_path = models.FilePathField(blank=True)
    modified = models.DateTimeField(auto_now=True)

    objects = CodeManager()

    def natural_key(self):
        return (self.code,)

