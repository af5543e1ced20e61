"""The twin's feed: a partial index on the store's reference rows, so that a refresh finds the
Observations about a patient past its watermark (``twins.services._new_observations``) by a
range scan over the new rows alone. The store's own lookup index (resource type, param, target)
has no resource id, so the watermark was a filter over every Observation the patient ever had:
a refresh read the patient's whole history of index rows, growing by ~3,000 a day per wearer.
"""

from django.db import migrations

INDEX = "twins_new_observations"


class Migration(migrations.Migration):
    dependencies = [
        ("twins", "0003_imaging_roles"),
        ("fhir_api", "0004_index_rows_without_db_foreign_key"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON fhir_reference_index (target_id, resource_id)"
            " WHERE resource_type = 'Observation' AND param = 'subject'"
            " AND target_type = 'Patient'",
            reverse_sql=f"DROP INDEX IF EXISTS {INDEX}",
        )
    ]
