"""``Authorization: Device <key>``: how a wearable or its gateway authenticates its readings."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .services import authenticate


class DeviceKeyAuthentication(authentication.BaseAuthentication):
    keyword = "device"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != self.keyword or not key.strip():
            raise exceptions.NotAuthenticated("Send Authorization: Device <key>")
        device = authenticate(key.strip())
        if device is None:
            raise exceptions.AuthenticationFailed("The device key is unknown or was revoked")
        return None, device

    def authenticate_header(self, request) -> str:
        return "Device"
