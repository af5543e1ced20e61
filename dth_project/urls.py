"""Top-level URL map: the FHIR API under /fhir, the admin under /admin, the clinicians' views
(ward overview, patient twin pages) under /twins, the forecast pages under /forecasting,
DICOMweb (imaging) under /dicomweb."""

from __future__ import annotations

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path

import fhir_api.urls

# admin.site is dth_project.admin_site.CloudDTHAdminSite (settings.INSTALLED_APPS): its branding
# and the check of action selections are there.
urlpatterns = [
    # First: most requests are FHIR's, and each pattern tried before costs them a match. Its
    # patterns are in this list itself, not under an include(): each level of includes costs
    # every request another resolver and ResolverMatch (bench/README.md, session 8).
    *fhir_api.urls.urlpatterns,
    path("", lambda request: redirect("admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("twins/", include("twins.urls")),
    path("forecasting/", include("forecasting.urls")),
    path("dicomweb/", include("imaging.urls")),
    path("", include("devices.urls")),
]

# Errors raised outside the FHIR views (e.g. a Host not allowed) answer an OperationOutcome
# under /fhir, Django's pages elsewhere.
handler400 = "fhir_api.error_pages.bad_request"
handler500 = "fhir_api.error_pages.server_error"
