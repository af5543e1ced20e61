"""Tables of the FHIR store (hl7.org/fhir/R4B/http.html#versioning).

- ``Resource`` (table ``fhir_resource``): the current version of each (type, id), its JSON
  exactly as it will be served, so a read returns stored text without parsing it.
- ``ResourceVersion`` (``fhir_resource_version``): append-only; every version including delete
  tombstones. History and vread read here.
- typed search-index tables, one per search-parameter type (``fhir_token_index``,
  ``fhir_string_index``, ``fhir_date_index``, …), written in the same transaction as the
  version they index.
- ``ApiToken``: bearer tokens for the FHIR API, stored as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.dispatch import Signal


class Resource(models.Model):
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField()
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    # JSON text with meta.versionId/lastUpdated already set; empty for a deleted resource.
    content = models.TextField()

    class Meta:
        db_table = "fhir_resource"
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "logical_id"], name="fhir_resource_uniq"
            )
        ]
        indexes = [models.Index(fields=["resource_type", "last_updated"], name="fhir_res_type_lu")]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


class PatientResource(Resource):
    """The Patient rows of the store, for an admin page of their own."""

    class Meta:
        proxy = True
        verbose_name = "patient"


class ResourceVersion(models.Model):
    """One version of a resource. Rows are only ever inserted."""

    # No database foreign key: a version is inserted only with its resource, in the same
    # transaction and by the same code, and resources are never removed (a delete is a new
    # version); the deferred check per row was ~4 % of PostgreSQL's CPU on a bulk write.
    resource = models.ForeignKey(
        Resource,
        on_delete=models.CASCADE,
        related_name="versions",
        db_index=False,
        db_constraint=False,
    )
    resource_type = models.CharField(max_length=64)
    logical_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField()
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    # The HTTP method that made this version (history Bundle entry.request.method).
    method = models.CharField(max_length=8)
    content = models.TextField()

    class Meta:
        db_table = "fhir_resource_version"
        constraints = [
            models.UniqueConstraint(fields=["resource", "version_id"], name="fhir_version_uniq")
        ]
        indexes = [
            models.Index(fields=["last_updated"], name="fhir_ver_lu"),
            models.Index(fields=["resource_type", "last_updated"], name="fhir_ver_type_lu"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.logical_id}/_history/{self.version_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Resource versions are append-only: a version is never changed")
        super().save(*args, **kwargs)


class IndexRow(models.Model):
    """Columns every search-index row has (hl7.org/fhir/R4B/search.html).

    ``patient`` is the id of the Patient whose compartment the resource is in
    (hl7.org/fhir/R4B/compartmentdefinition-patient.html), copied onto each row so that a
    patient-scoped search is one range scan of an index that leads with it, whatever the
    table's size.
    """

    # No database foreign key: index rows are derived data, written only with their resource in
    # the same transaction (or rebuilt by reindex), and a deferred key check per row was a third
    # of PostgreSQL's CPU on a bulk write (device ingest: ~20 rows a reading). The ORM still
    # deletes them with their resource (on_delete).
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    resource_type = models.CharField(max_length=64)
    param = models.CharField(max_length=64)
    patient = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.resource_type}.{self.param}"


class TokenIndex(IndexRow):
    """token: Coding, CodeableConcept, Identifier, ContactPoint, code, boolean (search.html#token).

    ``text`` holds Coding.display / CodeableConcept.text / Identifier.type.text, normalised,
    for ``:text``. Identifier types for ``:of-type`` are rows of param ``<param>:of-type``
    with code ``<type code>|<value>``.
    """

    system = models.CharField(max_length=255, blank=True, default="")
    code = models.CharField(max_length=255, blank=True, default="")
    text = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        db_table = "fhir_token_index"
        indexes = [
            # The resource id last makes a token search across patients an index-only scan:
            # counting code=8867-4 over 1M Observations (167,000 matches) took 2-4.6 s of heap
            # visits without it, 0.25 s with it (bench/search.py, query f).
            models.Index(
                fields=["resource_type", "param", "code", "system", "resource"],
                name="fhir_tok_lookup",
            ),
            # The system too, so that the codes of a patient's Observations ($lastn) are read
            # from the index alone, and a patient's system|code search narrows in it.
            models.Index(
                fields=["patient", "resource_type", "param", "code", "system"],
                name="fhir_tok_patient",
            ),
            models.Index(fields=["resource"], name="fhir_tok_resource"),
        ]


class StringIndex(IndexRow):
    """string (search.html#string): ``value`` normalised (case and accents folded), ``exact`` as is."""

    value = models.CharField(max_length=255)
    exact = models.CharField(max_length=255)

    class Meta:
        db_table = "fhir_string_index"
        indexes = [
            models.Index(
                fields=["resource_type", "param", "value"],
                name="fhir_str_lookup",
                opclasses=["varchar_pattern_ops", "varchar_pattern_ops", "varchar_pattern_ops"],
            ),
            models.Index(
                fields=["patient", "resource_type", "param", "value"], name="fhir_str_patient"
            ),
            models.Index(fields=["resource"], name="fhir_str_resource"),
        ]


class DateIndex(IndexRow):
    """date, dateTime, instant, Period, Timing as the [low, high) interval they cover (search.html#date)."""

    low = models.DateTimeField()
    high = models.DateTimeField()

    class Meta:
        db_table = "fhir_date_index"
        indexes = [
            models.Index(fields=["resource_type", "param", "low", "high"], name="fhir_date_lookup"),
            models.Index(
                fields=["patient", "resource_type", "param", "low"], name="fhir_date_patient"
            ),
            models.Index(fields=["resource"], name="fhir_date_resource"),
        ]


class QuantityIndex(IndexRow):
    """quantity (search.html#quantity): the value as given and converted to its UCUM canonical unit."""

    value = models.FloatField()
    system = models.CharField(max_length=255, blank=True, default="")
    code = models.CharField(max_length=64, blank=True, default="")
    unit = models.CharField(max_length=64, blank=True, default="")
    canonical_value = models.FloatField(null=True, blank=True)
    canonical_code = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        db_table = "fhir_quantity_index"
        indexes = [
            models.Index(fields=["resource_type", "param", "value"], name="fhir_qty_lookup"),
            models.Index(
                fields=["patient", "resource_type", "param", "value"], name="fhir_qty_patient"
            ),
            models.Index(fields=["resource"], name="fhir_qty_resource"),
        ]


class NumberIndex(IndexRow):
    """number (search.html#number)."""

    value = models.FloatField()

    class Meta:
        db_table = "fhir_number_index"
        indexes = [
            models.Index(fields=["resource_type", "param", "value"], name="fhir_num_lookup"),
            models.Index(fields=["resource"], name="fhir_num_resource"),
        ]


class ReferenceIndex(IndexRow):
    """reference (search.html#reference): local ``Type/id`` targets, absolute or canonical ``url``,
    and ``Reference.identifier`` for ``:identifier``."""

    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    url = models.CharField(max_length=500, blank=True, default="")
    identifier_system = models.CharField(max_length=255, blank=True, default="")
    identifier_value = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        db_table = "fhir_reference_index"
        indexes = [
            models.Index(
                fields=["resource_type", "param", "target_id", "target_type"],
                name="fhir_ref_lookup",
            ),
            models.Index(fields=["target_type", "target_id"], name="fhir_ref_target"),
            models.Index(fields=["resource"], name="fhir_ref_resource"),
        ]


class UriIndex(IndexRow):
    """uri, url, canonical (search.html#uri)."""

    value = models.CharField(max_length=500)

    class Meta:
        db_table = "fhir_uri_index"
        indexes = [
            models.Index(fields=["resource_type", "param", "value"], name="fhir_uri_lookup"),
            models.Index(fields=["resource"], name="fhir_uri_resource"),
        ]


class CompositeIndex(IndexRow):
    """composite (search.html#composite): one row per co-occurring pair of component values.

    The first component is a token (system, code) in every R4B composite this server indexes;
    the second is a token/string/uri (c2_system, c2_code), a quantity or number (c2_value with
    c2_system/c2_code as its unit), or a date interval (c2_low, c2_high).
    """

    c1_system = models.CharField(max_length=255, blank=True, default="")
    c1_code = models.CharField(max_length=255, blank=True, default="")
    c2_system = models.CharField(max_length=255, blank=True, default="")
    c2_code = models.CharField(max_length=255, blank=True, default="")
    c2_value = models.FloatField(null=True, blank=True)
    c2_canonical_value = models.FloatField(null=True, blank=True)
    c2_canonical_code = models.CharField(max_length=64, null=True, blank=True)
    c2_low = models.DateTimeField(null=True, blank=True)
    c2_high = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "fhir_composite_index"
        indexes = [
            models.Index(
                fields=["resource_type", "param", "c1_code", "c2_value"], name="fhir_comp_lookup"
            ),
            models.Index(
                fields=["patient", "resource_type", "param", "c1_code"], name="fhir_comp_patient"
            ),
            models.Index(fields=["resource"], name="fhir_comp_resource"),
        ]


class LastnIndex(IndexRow):
    """``Observation/$lastn``'s index: each code of an Observation with its effective time.

    One row per code (``code`` and ``system``; a text-only code is ``code`` "" and its text as
    ``label``) with ``low``, the start of ``effective[x]`` (the latest start, for a Timing) or
    ``extract.MIN_DATE`` when there is none. A patient's ``max`` most recent Observations of a
    code are then the first rows of one range of ``fhir_lastn_patient``, read backwards: the
    operation reads a few rows per code however long the patient's record is, where joining
    the token and date rows read them all (operations/lastn.py). Written with the other index
    rows, from them (``extract.add_lastn_rows``).
    """

    system = models.CharField(max_length=255, blank=True, default="")
    code = models.CharField(max_length=255, blank=True, default="")
    label = models.CharField(max_length=255, blank=True, default="")
    low = models.DateTimeField()

    class Meta:
        db_table = "fhir_lastn_index"
        indexes = [
            models.Index(
                fields=["patient", "code", "system", "label", "low"], name="fhir_lastn_patient"
            ),
            models.Index(fields=["resource"], name="fhir_lastn_resource"),
        ]


INDEX_MODELS = (
    TokenIndex,
    StringIndex,
    DateIndex,
    QuantityIndex,
    NumberIndex,
    ReferenceIndex,
    UriIndex,
    CompositeIndex,
    LastnIndex,
)


class ImportFile(models.Model):
    """Progress of ``manage.py import_fhir`` on one file, so that a rerun resumes where it stopped.

    A file is known by its path, size and modification time: a changed file starts over.
    """

    path = models.CharField(max_length=1000)
    size = models.BigIntegerField()
    mtime = models.FloatField()
    # NDJSON: lines done; a Bundle file: 0 or 1.
    done = models.BigIntegerField(default=0)
    complete = models.BooleanField(default=False)
    written = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "fhir_import_file"
        constraints = [
            models.UniqueConstraint(fields=["path", "size", "mtime"], name="fhir_import_file_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.path} ({'complete' if self.complete else f'{self.done} done'})"


class ImportRejection(models.Model):
    """An entry ``import_fhir`` could not store, kept with its reason and raw text."""

    file = models.ForeignKey(ImportFile, on_delete=models.CASCADE, related_name="rejections")
    position = models.CharField(max_length=100)  # "line 12", "bundle"
    reason = models.TextField()
    raw = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "fhir_import_rejection"

    def __str__(self) -> str:
        return f"{self.file.path} {self.position}: {self.reason[:80]}"


# Sent after a bulk write to API tokens (QuerySet.update, bulk_update), which sends no
# post_save: the authentication cache forgets what it knew (fhir_api.authentication).
api_tokens_changed = Signal()


class ApiTokenQuerySet(models.QuerySet):
    def update(self, **kwargs):
        count = super().update(**kwargs)
        api_tokens_changed.send(sender=ApiToken)
        return count

    def bulk_update(self, objs, fields, batch_size=None):
        count = super().bulk_update(objs, fields, batch_size=batch_size)
        api_tokens_changed.send(sender=ApiToken)
        return count


class ApiToken(models.Model):
    """A bearer token for the FHIR API. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100, blank=True, default="")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> tuple[ApiToken, str]:
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, key_hash=cls.hash_key(key), prefix=key[:8])
        return token, key
