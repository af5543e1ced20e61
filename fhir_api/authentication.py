"""``Authorization: Bearer <token>`` for the FHIR API (RFC 6750).

Tokens are made by ``manage.py issue_token``; SMART on FHIR OAuth2 will use the same header.
Only a token's SHA-256 is stored, so a database leak does not leak working tokens.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .models import ApiToken


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
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash_key(key), revoked=False)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("The Bearer token is not valid or was revoked")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="fhir"'
