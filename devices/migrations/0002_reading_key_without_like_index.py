"""Drop the ``varchar_pattern_ops`` index Django makes beside a CharField primary key on
PostgreSQL: reading keys are only ever matched whole (``INSERT … ON CONFLICT``), never with
LIKE, and the second index cost a B-tree insertion at a random place for every reading."""

from django.db import migrations

LIKE_INDEX = "devices_reading_key_key_a6a6d32e_like"


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX}"
            " ON devices_reading_key (key varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("devices", "0001_initial")]

    operations = [migrations.RunPython(drop, create)]
