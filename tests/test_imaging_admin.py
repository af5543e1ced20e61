"""The imaging admin as staff use it: upload several files at once, the quarantine of studies no
Patient matched, linking one to the right Patient (never a guessed one), the instances' previews."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from pydicom.uid import generate_uid

from fhir_api import services as store
from fhir_api.models import Resource
from imaging import services
from imaging.models import DicomInstance, DicomStudy
from twins.roles import CLINICIAN, NURSE, ensure_roles

# Fixtures are imported from the support module (pytest finds them here).
# ruff: noqa: F401, F811
from .imaging_intake_support import data_of, dicom_storage, make_patient, rewrite, stored_files

CT = "dicomdirtests/98892001/CT5N/2062"  # PatientID 98890234
MR = "MR_small.dcm"  # PatientID 4MR1
ECG = "waveform_ecg.dcm"
UPLOAD = "/admin/imaging/dicomstudy/upload/"
LINK = "/admin/imaging/dicomstudy/link/"
STUDIES = "/admin/imaging/dicomstudy/"


@pytest.fixture
def staff(client, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_superuser("radiology", password="x")
    client.force_login(user)
    return client


def upload(client, *files: tuple[str, bytes]):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        UPLOAD,
        {"files": [SimpleUploadedFile(name, data, "application/dicom") for name, data in files]},
    )


def text(response) -> str:
    """The page's text without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_upload_of_several_files_stores_the_good_and_lists_the_bad_with_reasons(
    staff, dicom_storage
):
    response = upload(
        staff,
        ("ct.dcm", data_of(CT)),
        ("ecg.dcm", data_of(ECG)),
        ("notes.txt", b"this is a discharge letter, not an image"),
        ("cut.dcm", rewrite(MR, SOPInstanceUID=generate_uid())[:-3000]),
        ("empty.dcm", b""),
    )

    assert response.status_code == 200
    page = text(response)
    assert "Stored: 2 · already held: 0 · failed: 3" in page
    assert "notes.txt not a DICOM file" in page
    assert re.search(r"cut\.dcm truncated", page)
    assert "empty.dcm not a DICOM file" in page
    assert DicomInstance.objects.count() == 2
    # Only the two good files are kept; nothing of the bad ones.
    assert len([p for p in stored_files(dicom_storage) if p.suffix == ".dcm"]) == 2
    # The ECG is stored with its preview state: not an image.
    assert "not an image — no pixel data: 12-lead ECG Waveform Storage" in page


def test_uploading_the_same_file_again_says_it_is_already_held(staff, dicom_storage):
    upload(staff, ("ct.dcm", data_of(CT)))
    again = text(upload(staff, ("ct-again.dcm", data_of(CT))))
    assert "Stored: 0 · already held: 1 · failed: 0" in again
    assert DicomInstance.objects.count() == 1


def test_upload_needs_a_file_and_the_permission(client, staff, django_user_model, dicom_storage):
    empty = staff.post(UPLOAD, {})
    assert empty.status_code == 200 and "Choose one or more DICOM files" in text(empty)
    assert DicomInstance.objects.count() == 0

    reader = django_user_model.objects.create_user("reader", password="x", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_dicomstudy"))
    client.force_login(reader)
    assert client.get(UPLOAD).status_code == 403
    assert upload(client, ("ct.dcm", data_of(CT))).status_code == 403
    assert DicomInstance.objects.count() == 0


def test_quarantine_lists_only_the_studies_no_patient_matched(staff, dicom_storage):
    patient = make_patient("98890234")
    services.store_files([("ct", data_of(CT)), ("mr", data_of(MR))], by="tests")
    linked = DicomStudy.objects.get(dicom_patient_id="98890234")
    waiting = DicomStudy.objects.get(dicom_patient_id="4MR1")
    assert linked.patient_id == patient and waiting.patient_id == ""

    listing = staff.get(STUDIES)
    assert "Quarantine (1)" in text(listing)
    redirect = staff.get(STUDIES + "quarantine/")
    assert redirect.status_code == 302 and redirect["Location"].endswith("?quarantined=yes")

    quarantine = staff.get(redirect["Location"])
    assert waiting.study_uid in quarantine.content.decode()
    assert linked.study_uid not in quarantine.content.decode()
    assert "quarantined" in text(quarantine)
    linked_list = staff.get(STUDIES + "?quarantined=no").content.decode()
    assert linked.study_uid in linked_list and waiting.study_uid not in linked_list


def link_page(client, study: DicomStudy, patient: str):
    return client.post(LINK, {"ids": str(study.pk), "patient": patient})


def test_linking_asks_who_then_writes_the_imaging_study_for_that_patient(staff, dicom_storage):
    services.store_files([("mr", data_of(MR))], by="tests")
    study = DicomStudy.objects.get()
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://hospital.example/mrn", "value": "MRN-77"}],
        "name": [{"family": "Okafor", "given": ["Grace"]}],
        "birthDate": "1938-02-11",
    }
    patient = store.create("Patient", body).resource.logical_id

    # Step 1: the clinician names the patient by identifier; the admin says who that is.
    confirm = link_page(staff, study, "https://hospital.example/mrn|MRN-77")
    assert confirm.status_code == 200
    assert f"Grace Okafor, born 1938-02-11, MRN-77 (Patient/{patient})" in text(confirm)
    study.refresh_from_db()
    assert study.quarantined  # nothing changes before the confirmation

    # Step 2: confirmed, the study is linked and its ImagingStudy names the patient.
    done = staff.post(LINK, {"ids": str(study.pk), "patient_id": patient})
    assert done.status_code == 302
    study.refresh_from_db()
    assert study.patient_id == patient and study.linked_by == "radiology"
    imaging_study = Resource.objects.get(
        resource_type="ImagingStudy", logical_id=study.imaging_study_id
    )
    assert f'"Patient/{patient}"' in imaging_study.content
    assert "Quarantine (0)" in text(staff.get(STUDIES))


def test_linking_never_guesses(staff, dicom_storage):
    services.store_files([("mr", data_of(MR))], by="tests")
    study = DicomStudy.objects.get()
    for system in ("https://hospital-a.example/mrn", "https://hospital-b.example/mrn"):
        store.create(
            "Patient",
            {"resourceType": "Patient", "identifier": [{"system": system, "value": "4MR1"}]},
        )

    ambiguous = text(link_page(staff, study, "4MR1"))
    assert "Several Patients have the id or identifier 4MR1" in ambiguous
    unknown = text(link_page(staff, study, "Patient/nobody"))
    assert "No Patient has the id nobody" in unknown
    nothing = text(link_page(staff, study, "https://hospital-a.example/mrn|NOPE"))
    assert "No Patient has the identifier https://hospital-a.example/mrn|NOPE" in nothing
    # A forged confirmation of a patient that does not exist is refused too.
    forged = staff.post(LINK, {"ids": str(study.pk), "patient_id": "nobody"})
    assert forged.status_code == 200 and "No Patient has the id nobody" in text(forged)

    study.refresh_from_db()
    assert study.quarantined and not study.imaging_study_id
    assert not Resource.objects.filter(resource_type="ImagingStudy").exists()


def test_link_action_on_the_changelist_leads_to_the_link_page(staff, dicom_storage):
    services.store_files([("mr", data_of(MR))], by="tests")
    study = DicomStudy.objects.get()
    response = staff.post(
        STUDIES, {"action": "link_to_patient", "_selected_action": [str(study.pk)]}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{LINK}?ids={study.pk}"
    page = staff.get(response["Location"])
    assert study.study_uid in page.content.decode() and "4MR1" in text(page)


def test_linking_needs_the_permission(client, django_user_model, dicom_storage):
    services.store_files([("mr", data_of(MR))], by="tests")
    study = DicomStudy.objects.get()
    patient = make_patient("someone-else")
    reader = django_user_model.objects.create_user("reader", password="x", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_dicomstudy"))
    client.force_login(reader)
    assert client.post(LINK, {"ids": str(study.pk), "patient_id": patient}).status_code == 403
    study.refresh_from_db()
    assert study.quarantined


def test_instance_page_shows_its_preview_state_and_the_imaging_study(staff, dicom_storage):
    patient = make_patient("98890234")
    result = services.store_files([("ct", data_of(CT)), ("ecg", data_of(ECG))], by="tests")
    ct = next(i for i in result.stored if i.modality == "CT")
    ecg = next(i for i in result.stored if i.modality == "ECG")

    page = staff.get(f"/admin/imaging/dicominstance/{ct.pk}/change/").content.decode()
    rendered = (
        f"/dicomweb/studies/{ct.study.study_uid}/series/{ct.series_uid}"
        f"/instances/{ct.sop_instance_uid}/rendered?viewport=512,512"
    )
    assert f'src="{rendered}"' in page
    assert staff.get(rendered).status_code == 200  # the image the page shows
    imaging_study = Resource.objects.get(resource_type="ImagingStudy")
    assert f"ImagingStudy/{imaging_study.logical_id}" in page
    assert f"/admin/fhir_api/resource/{imaging_study.pk}/change/" in page
    assert patient in imaging_study.content

    stored_file = rendered.removesuffix("/rendered?viewport=512,512")
    assert f'href="{stored_file}"' in page and f'href="{stored_file}?deidentify=true"' in page
    download = staff.get(stored_file)
    assert download.status_code == 200
    assert b"".join(download.streaming_content if download.streaming else [download.content]) == (
        data_of(CT)
    )

    listing = text(staff.get("/admin/imaging/dicominstance/"))
    assert "rendered" in listing and "not an image" in listing
    ecg_page = text(staff.get(f"/admin/imaging/dicominstance/{ecg.pk}/change/"))
    assert "no pixel data: 12-lead ECG Waveform Storage" in ecg_page


def test_clinicians_upload_and_link_nurses_see_the_quarantine(db, client, dicom_storage):
    from .twin_views_support import _member

    ensure_roles()  # the groups as the migrations make them (a flush elsewhere empties them)
    services.store_files([("mr", data_of(MR))], by="tests")
    study = DicomStudy.objects.get()
    patient = make_patient("someone-else")
    User = get_user_model()

    client.force_login(_member(User, "nurse.joy", NURSE))
    assert "Quarantine (1)" in text(client.get(STUDIES))
    assert client.get(UPLOAD).status_code == 403
    assert client.post(LINK, {"ids": str(study.pk), "patient_id": patient}).status_code == 403

    client.force_login(_member(User, "dr.grey", CLINICIAN))
    assert client.get(UPLOAD).status_code == 200
    assert client.post(LINK, {"ids": str(study.pk), "patient_id": patient}).status_code == 302
    study.refresh_from_db()
    assert study.patient_id == patient and study.linked_by == "dr.grey"
