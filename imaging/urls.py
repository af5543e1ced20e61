"""DICOMweb-style routes under ``/dicomweb/`` (DICOM PS3.18: STOW-RS, WADO-RS)."""

from __future__ import annotations

app_name = "imaging"

urlpatterns: list = []
