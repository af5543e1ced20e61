"""The admin app with CloudDTH's own default site (``dth_project.admin_site``)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class CloudDTHAdminConfig(AdminConfig):
    default_site = "dth_project.admin_site.CloudDTHAdminSite"
