"""``Authorization: Bearer <token>`` for the FHIR API (RFC 6750).

Tokens are made by ``manage.py issue_token``; SMART on FHIR OAuth2 will use the same header.
Only a token's SHA-256 is stored, so a database leak does not leak working tokens.

A valid token is remembered in process for ``TOKEN_CACHE_SECONDS`` (5 s), which saves a query on
nearly every request. Any ORM write to tokens (save, delete, ``update()``, as the admin's
revoke does) or to a user clears the cache of the process that made it at once (signals below);
the other server processes notice within those seconds, as they do a change made in SQL. An
unknown or revoked token is never cached: it is looked up every time.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework import authentication, exceptions

from .models import ApiToken, api_tokens_changed

TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 1024
# key hash -> (monotonic expiry, user, token)
_valid: dict[str, tuple[float, object, ApiToken]] = {}


def forget_tokens(**_kwargs) -> None:
    _valid.clear()


api_tokens_changed.connect(forget_tokens, dispatch_uid="fhir_api.forget_tokens.bulk")
post_save.connect(forget_tokens, sender=ApiToken, dispatch_uid="fhir_api.forget_tokens.save")
post_delete.connect(forget_tokens, sender=ApiToken, dispatch_uid="fhir_api.forget_tokens.delete")
post_save.connect(
    forget_tokens, sender=settings.AUTH_USER_MODEL, dispatch_uid="fhir_api.forget_users.save"
)
post_delete.connect(
    forget_tokens, sender=settings.AUTH_USER_MODEL, dispatch_uid="fhir_api.forget_users.delete"
)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("The Bearer token is empty")
        key_hash = ApiToken.hash_key(key)
        now = time.monotonic()
        hit = _valid.get(key_hash)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        token = (
            ApiToken.objects.select_related("user").filter(key_hash=key_hash, revoked=False).first()
        )
        if token is None or not token.user.is_active:
            _valid.pop(key_hash, None)
            raise exceptions.AuthenticationFailed("The Bearer token is not valid or was revoked")
        if len(_valid) >= TOKEN_CACHE_SIZE:
            _valid.clear()
        _valid[key_hash] = (now + TOKEN_CACHE_SECONDS, token.user, token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="fhir"'
