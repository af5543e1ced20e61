"""The clinical roles: groups clinician, nurse and admin with their permissions (twins.roles)."""

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


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["clinician", "nurse", "admin"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("twins", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("sessions", "0001_initial"),
        ("fhir_api", "0003_import_progress"),
        ("devices", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
