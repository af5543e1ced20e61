"""Fewer checks per written row: no database foreign key from a version to its resource, and
no primary-key index on the search-index tables (PostgreSQL).

Measured with COPY of the rows of 20,000 device readings (a resource, a version and ~20 index
rows each) into the real tables: the deferred foreign-key check of each version row was ~4 %
of PostgreSQL's CPU and the five primary-key btrees the index rows of a reading touch ~7 %.

No query reads an index row by its ``id``: search, the twins and reindex select them by
resource, type, parameter, patient and value (each through its own index), and delete them by
``resource_id`` (``indexing.delete_indexes``, the ORM's cascade). The ``id`` column and its
sequence stay, so the models and ``bulk_create`` are unchanged. Only the database's
constraint goes: Django's state still calls ``id`` the primary key, so a later migration that
alters an index table's ``id`` must add the constraint back first (``ADD PRIMARY KEY (id)``,
as this migration's reverse does). SQLite keeps its keys (its rowid is the table).
"""

from django.db import migrations, models

INDEX_TABLES = (
    "fhir_token_index",
    "fhir_string_index",
    "fhir_date_index",
    "fhir_quantity_index",
    "fhir_number_index",
    "fhir_reference_index",
    "fhir_uri_index",
    "fhir_composite_index",
)


def drop_index_primary_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in INDEX_TABLES:
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey")


def add_index_primary_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in INDEX_TABLES:
        schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)")


class Migration(migrations.Migration):
    dependencies = [
        ("fhir_api", "0006_token_patient_index_with_system"),
    ]

    operations = [
        migrations.AlterField(
            model_name="resourceversion",
            name="resource",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="versions",
                to="fhir_api.resource",
            ),
        ),
        migrations.RunPython(drop_index_primary_keys, add_index_primary_keys),
    ]
