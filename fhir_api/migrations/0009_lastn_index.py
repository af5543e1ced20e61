"""``fhir_lastn_index``: each code of an Observation with its effective time, for ``$lastn``.

The table is set up as the other index tables are (migrations 0007 and 0008): no primary-key
constraint on PostgreSQL, replica identity FULL. Its rows are filled from the token and date
rows already stored, as ``extract.add_lastn_rows`` makes them for a write (each code of an
Observation once; ``label`` the text of a text-only code; ``low`` the latest start of
``effective[x]``, or 0001-01-01 when there is none), so ``$lastn`` answers at once without a
reindex.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "fhir_lastn_index"
NO_TIME = "0001-01-01 00:00:00"


INSERT = f"""
    INSERT INTO {TABLE} (resource_id, resource_type, param, patient, system, code, label, low)
    SELECT t.resource_id, t.resource_type, t.param, MIN(t.patient), t.system, t.code,
           CASE WHEN t.code = '' THEN COALESCE(t.text, '') ELSE '' END,
           COALESCE(MAX(d.low), %s)
    FROM fhir_token_index t
    LEFT JOIN fhir_date_index d ON d.resource_id = t.resource_id
         AND d.resource_type = 'Observation' AND d.param = 'date'
    WHERE t.resource_type = 'Observation' AND t.param = 'code'
    GROUP BY t.resource_id, t.resource_type, t.param, t.system, t.code,
             CASE WHEN t.code = '' THEN COALESCE(t.text, '') ELSE '' END
"""


def insert_rows(execute, vendor: str) -> None:
    """The rows of every stored Observation, from its token and date rows (``execute``: a
    cursor's or a schema editor's; tests/test_lastn_index.py compares them with a write's)."""
    execute(INSERT, [NO_TIME + "+00" if vendor == "postgresql" else NO_TIME])


def fill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {TABLE}_pkey")
        schema_editor.execute(f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL")
    insert_rows(schema_editor.execute, schema_editor.connection.vendor)


class Migration(migrations.Migration):
    dependencies = [
        ("fhir_api", "0008_index_tables_replica_identity_full"),
    ]

    operations = [
        migrations.CreateModel(
            name="LastnIndex",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("resource_type", models.CharField(max_length=64)),
                ("param", models.CharField(max_length=64)),
                ("patient", models.CharField(blank=True, max_length=64, null=True)),
                ("system", models.CharField(blank=True, default="", max_length=255)),
                ("code", models.CharField(blank=True, default="", max_length=255)),
                ("label", models.CharField(blank=True, default="", max_length=255)),
                ("low", models.DateTimeField()),
                (
                    "resource",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="fhir_api.resource",
                    ),
                ),
            ],
            options={
                "db_table": "fhir_lastn_index",
                "indexes": [
                    models.Index(
                        fields=["patient", "code", "system", "label", "low"],
                        name="fhir_lastn_patient",
                    ),
                    models.Index(fields=["resource"], name="fhir_lastn_resource"),
                ],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
