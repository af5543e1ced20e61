"""Search-index tables that a logical-replication publication can carry (PostgreSQL).

Migration 0007 dropped the index tables' primary keys (a write cost, and no query reads an
index row by ``id``). A table without a primary key has no replica identity, and PostgreSQL
refuses every UPDATE and DELETE on such a table once a publication that publishes them
includes it (``CREATE PUBLICATION … FOR ALL TABLES``, as change-data-capture tools such as
Debezium and read replicas set up): every update or delete of a resource, which rewrites its
index rows, then failed ("cannot delete from table … because it does not have a replica
identity and publishes deletes").

``REPLICA IDENTITY FULL`` makes the whole old row the identity
(postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-REPLICA-IDENTITY). It costs
nothing unless ``wal_level`` is ``logical``; then a deleted index row's old values are logged
in full (a few short columns). The write cost that 0007 removed stays removed.
"""

from django.db import migrations


def index_tables(apps) -> list[str]:
    """The search-index tables (``fhir_*_index``), from the models as of this migration."""
    return sorted(
        model._meta.db_table
        for model in apps.get_app_config("fhir_api").get_models()
        if model._meta.db_table.startswith("fhir_") and model._meta.db_table.endswith("_index")
    )


def replica_identity(value: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in index_tables(apps):
            schema_editor.execute(f"ALTER TABLE {table} REPLICA IDENTITY {value}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("fhir_api", "0007_fewer_checks_per_written_row"),
    ]

    operations = [
        migrations.RunPython(replica_identity("FULL"), replica_identity("DEFAULT")),
    ]
