"""Tables of the FHIR store (hl7.org/fhir/R4B/http.html#versioning).

- ``Resource`` (table ``fhir_resource``): the current version of each (type, id), its JSON
  exactly as it will be served, so a read returns stored text without parsing it.
- ``ResourceVersion`` (``fhir_resource_version``): append-only; every version including delete
  tombstones. History and vread read here.
- ``TokenIndex`` (``fhir_token_index``): the first of the typed search-index tables, written in
  the same transaction as the version it indexes.
- ``ApiToken``: bearer tokens for the FHIR API, stored as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


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

    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="versions", db_index=False
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


class TokenIndex(models.Model):
    """Token search values (hl7.org/fhir/R4B/search.html#token), one row per value."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, db_index=False)
    resource_type = models.CharField(max_length=64)
    param = models.CharField(max_length=64)
    system = models.CharField(max_length=255, blank=True, default="")
    code = models.CharField(max_length=255)

    class Meta:
        db_table = "fhir_token_index"
        indexes = [
            models.Index(
                fields=["resource_type", "param", "code", "system"], name="fhir_tok_lookup"
            ),
            models.Index(fields=["resource"], name="fhir_tok_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.param}={self.system}|{self.code}"


class ApiToken(models.Model):
    """A bearer token for the FHIR API. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=100, blank=True, default="")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

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
