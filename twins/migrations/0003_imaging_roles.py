"""The roles again, now with imaging: both roles see the imaging admin; clinicians upload DICOM
files and link quarantined studies; admin gets the imaging permissions too (twins.roles)."""

from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations


def forwards(apps, schema_editor):
    from twins.roles import ensure_roles

    # Permissions are normally made after all migrations (post_migrate): make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_contenttypes(app_config, apps=apps, verbosity=0)
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("twins", "0002_clinician_roles"),
        ("imaging", "0002_instance_received_by"),
    ]

    # Backwards: the groups keep the permissions of the roles as they were (harmless).
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
