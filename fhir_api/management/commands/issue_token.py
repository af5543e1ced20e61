"""``manage.py issue_token <username>``: make a bearer token for the FHIR API.

Creates the user if needed and prints the token on the last line (it is shown only once: the
database keeps its hash).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from fhir_api.models import ApiToken


class Command(BaseCommand):
    help = "Issue a FHIR API bearer token for a user (created if it does not exist)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (shown in the admin)")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"Created user {username}")
        _token, key = ApiToken.issue(user, name=name or "issued by manage.py issue_token")
        self.stdout.write(key)
