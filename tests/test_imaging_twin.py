"""Imaging on the patient's twin: the linked studies with their previews on the twin page and on
its lifecycle timeline, and a quarantined study on no patient at all."""

from __future__ import annotations

import re

from imaging import services
from imaging.models import DicomStudy
from twins.timeline import timeline

# Fixtures are imported from the support modules (pytest finds them here).
# ruff: noqa: F401, F811
from .imaging_intake_support import data_of, dicom_storage, make_patient
from .twin_views_support import clinician, clinician_user, roles

CT = "dicomdirtests/98892001/CT5N/2062"  # PatientID 98890234, study date 2001-01-01
MR = "MR_small.dcm"  # PatientID 4MR1: no Patient carries it
ECG = "waveform_ecg.dcm"  # PatientID 642341


def rendered_url(study: DicomStudy, size: int) -> str:
    instance = study.instances.get()
    return (
        f"/dicomweb/studies/{study.study_uid}/series/{instance.series_uid}"
        f"/instances/{instance.sop_instance_uid}/rendered?viewport={size},{size}"
    )


def imaging_card(html: str) -> str:
    match = re.search(r'<section class="twins-card" id="imaging".*?</section>', html, re.S)
    assert match, "the twin page has no imaging card"
    return match.group(0)


def test_linked_study_shows_on_its_patients_page_and_timeline_with_its_preview(
    clinician, dicom_storage
):
    ada = make_patient("98890234")
    services.store_files([("ct", data_of(CT))], by="tests")
    study = DicomStudy.objects.get()
    assert study.patient_id == ada

    page = clinician.get(f"/twins/patient/{ada}/")

    assert page.status_code == 200
    card = imaging_card(page.content.decode())
    assert "Imaging studies (1)" in card
    thumbnail = rendered_url(study, 160)
    assert f'src="{thumbnail}"' in card
    assert "CT · 1 series, 1 instance" in re.sub(r"\s+", " ", card)
    # The thumbnail is a real PNG the clinician's browser can load.
    image = clinician.get(thumbnail)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    entries = [e for e in timeline(ada) if e.kind == "imaging"]
    assert len(entries) == 1
    assert entries[0].reference == f"ImagingStudy/{study.imaging_study_id}"
    assert entries[0].image == rendered_url(study, 96)
    assert entries[0].at.year == 2001
    assert f'src="{rendered_url(study, 96)}"' in page.content.decode()


def test_a_study_without_a_drawable_image_says_why(clinician, dicom_storage):
    grace = make_patient("642341")
    services.store_files([("ecg", data_of(ECG))], by="tests")

    card = imaging_card(clinician.get(f"/twins/patient/{grace}/").content.decode())

    assert "Imaging studies (1)" in card and "<img" not in card
    assert "No preview: no pixel data: 12-lead ECG Waveform Storage" in re.sub(r"\s+", " ", card)


def test_a_quarantined_study_shows_on_no_patient_until_it_is_linked(clinician, dicom_storage):
    ada = make_patient("98890234")
    bob = make_patient("someone-else")
    services.store_files([("ct", data_of(CT)), ("mr", data_of(MR))], by="tests")
    quarantined = DicomStudy.objects.get(dicom_patient_id="4MR1")
    assert quarantined.quarantined

    for patient in (ada, bob):
        html = clinician.get(f"/twins/patient/{patient}/").content.decode()
        assert quarantined.study_uid not in html
        assert rendered_url(quarantined, 160) not in html
        assert rendered_url(quarantined, 96) not in html
    assert "Imaging studies (0)" in clinician.get(f"/twins/patient/{bob}/").content.decode()
    assert not [e for e in timeline(bob) if e.kind == "imaging"]
    assert len([e for e in timeline(ada) if e.kind == "imaging"]) == 1  # Ada's CT only

    services.link_study(quarantined, bob, by="dr.grey")

    bob_page = clinician.get(f"/twins/patient/{bob}/").content.decode()
    assert "Imaging studies (1)" in bob_page
    assert rendered_url(quarantined, 160) in bob_page
    assert [e.image for e in timeline(bob) if e.kind == "imaging"] == [
        rendered_url(quarantined, 96)
    ]
    ada_page = clinician.get(f"/twins/patient/{ada}/").content.decode()
    assert "Imaging studies (1)" in ada_page and rendered_url(quarantined, 160) not in ada_page
