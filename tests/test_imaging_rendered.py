"""WADO-RS rendered resources: a stored instance as a PNG, and every way asking for one can fail.

``GET /dicomweb/studies/{s}/series/{se}/instances/{i}/rendered`` (and ``…/frames/{n}/rendered``)
answers image/png drawn by ``imaging.preview`` (the same pixels as rendering the file directly),
kept in the preview cache; errors are OperationOutcomes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from imaging import services
from imaging.models import DicomInstance
from imaging.preview import render_png
from imaging.preview_cache import preview_name, preview_storage

# Fixtures are imported from the support module (pytest finds them here).
# ruff: noqa: F401, F811
from .imaging_intake_support import data_of, dataset_of, dicom_storage, rewrite

CT_WINDOWED = "dicomdirtests/98892001/CT5N/2062"  # CT, window 40/400
MR = "MR_small.dcm"
ECG = "waveform_ecg.dcm"
NO_DECODER = "SC_rgb_jpeg_gdcm.dcm"  # JPEG Lossless SV1: no decoder installed here
TWO_FRAMES = "SC_rgb_rle_2frame.dcm"


def url(instance: DicomInstance, *, frame: int | None = None) -> str:
    base = (
        f"/dicomweb/studies/{instance.study.study_uid}/series/{instance.series_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    return f"{base}/frames/{frame}/rendered" if frame else f"{base}/rendered"


def store(name: str, data: bytes | None = None) -> DicomInstance:
    result = services.store_files([(name, data or data_of(name))], by="tests")
    assert not result.failed, result.failed
    return result.stored[0]


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.fixture
def instances(db, dicom_storage) -> dict[str, DicomInstance]:
    return {
        "ct": store(CT_WINDOWED),
        "mr": store(MR),
        "ecg": store(ECG),
        # Both files share a SOPInstanceUID in pydicom's set: this one gets its own.
        "no_decoder": store(NO_DECODER, rewrite(NO_DECODER, SOPInstanceUID=generate_uid())),
        "two_frames": store(TWO_FRAMES),
    }


def test_rendered_answers_the_png_of_the_stored_file(api, instances):
    ct = instances["ct"]
    response = api.get(url(ct))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    # The same pixels as the stored file rendered directly: the CT with its window applied.
    assert np.array_equal(pixels(response.content), pixels(render_png(dataset_of(CT_WINDOWED))))


def test_rendered_is_drawn_once_then_served_from_the_cache_with_an_etag(api, instances):
    mr = instances["mr"]
    name = preview_name(mr.sha256)
    assert not preview_storage().exists(name)

    first = api.get(url(mr))

    assert first.status_code == 200 and preview_storage().exists(name)
    with preview_storage().open(name, "rb") as cached:
        assert cached.read() == first.content
    again = api.get(url(mr), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert api.get(url(mr)).content == first.content


def test_viewport_shrinks_the_image(api, instances):
    mr = instances["mr"]
    response = api.get(url(mr) + "?viewport=32,32")
    assert response.status_code == 200
    assert pixels(response.content).shape == (32, 32)
    assert pixels(api.get(url(mr)).content).shape == (64, 64)
    # Only the sizes the pages use are kept: a client's own viewports cannot fill the storage.
    assert not preview_storage().exists(preview_name(mr.sha256, size=32))
    assert api.get(url(mr) + "?viewport=160,160").status_code == 200
    assert preview_storage().exists(preview_name(mr.sha256, size=160))


def test_a_frame_of_a_multi_frame_instance(api, instances):
    two = instances["two_frames"]
    frames = dataset_of(TWO_FRAMES).pixel_array
    assert np.array_equal(pixels(api.get(url(two, frame=1)).content), frames[0])
    assert np.array_equal(pixels(api.get(url(two, frame=2)).content), frames[1])
    missing = api.get(url(two, frame=3))
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_unknown_instance_is_a_404_operation_outcome(api, instances):
    ct = instances["ct"]
    for path in (
        f"/dicomweb/studies/1.2.3/series/{ct.series_uid}/instances/{ct.sop_instance_uid}/rendered",
        f"/dicomweb/studies/{ct.study.study_uid}/series/1.2.3/instances/{ct.sop_instance_uid}/rendered",
        f"/dicomweb/studies/{ct.study.study_uid}/series/{ct.series_uid}/instances/1.2.3/rendered",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-found"


def test_no_pixel_data_and_no_decoder_are_422_preview_unavailable_with_the_reason(api, instances):
    ecg = api.get(url(instances["ecg"]))
    assert ecg.status_code == 422
    assert ecg.json()["issue"][0]["diagnostics"] == (
        "preview unavailable: no pixel data: 12-lead ECG Waveform Storage"
    )

    compressed = api.get(url(instances["no_decoder"]))
    assert compressed.status_code == 422
    diagnostics = compressed.json()["issue"][0]["diagnostics"]
    assert diagnostics.startswith("preview unavailable: no installed decoder")
    assert "1.2.840.10008.1.2.4.70" in diagnostics  # the transfer syntax is named
    # The file itself is stored and described all the same.
    assert instances["no_decoder"].preview == "unavailable"


def test_bad_viewport_is_400_and_an_unacceptable_type_406(api, instances):
    mr = instances["mr"]
    for viewport in ("abc", "0,0", "99999,10", "-4"):
        response = api.get(url(mr) + f"?viewport={viewport}")
        assert response.status_code == 400, viewport
        assert "viewport" in response.json()["issue"][0]["diagnostics"]
    refused = api.get(url(mr), HTTP_ACCEPT="image/jpeg")
    assert refused.status_code == 406
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert api.get(url(mr), HTTP_ACCEPT="image/png").status_code == 200
    assert api.get(url(mr), HTTP_ACCEPT="image/*;q=0.8, */*;q=0.1").status_code == 200


def test_who_may_see_it(anon, client, django_user_model, instances):
    target = url(instances["mr"])
    assert anon.get(target).status_code == 401
    visitor = django_user_model.objects.create_user("visitor", password="x")
    client.force_login(visitor)
    assert client.get(target).status_code == 403
    staff = django_user_model.objects.create_user("radiographer", password="x", is_staff=True)
    client.force_login(staff)
    response = client.get(target)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_a_file_that_fails_to_decode_is_marked_unavailable_and_not_decoded_again(api, instances):
    # preview_state cannot know without decoding: its syntax (JPEG 2000) has a decoder here.
    name = "JPEG2000-embedded-sequence-delimiter.dcm"
    broken = store(name)
    assert broken.preview == "ok"

    first = api.get(url(broken))

    assert first.status_code == 422
    reason = first.json()["issue"][0]["diagnostics"]
    assert reason.startswith("preview unavailable: the pixel data could not be decoded")
    broken.refresh_from_db()
    assert broken.preview == "unavailable"
    assert broken.preview_note == reason.removeprefix("preview unavailable: ")[:200]
    again = api.get(url(broken))
    # Answered from the recorded state (its note holds 200 characters of the reason).
    assert again.status_code == 422
    assert again.json()["issue"][0]["diagnostics"] == f"preview unavailable: {broken.preview_note}"
    # The file itself is kept whole all the same.
    assert api.get(url(broken).removesuffix("/rendered")).status_code == 200


def test_a_lost_stored_file_is_a_422_not_a_server_error(api, instances, dicom_storage):
    mr = instances["mr"]
    (dicom_storage / mr.storage_name).unlink()
    response = api.get(url(mr))
    assert response.status_code == 422
    assert "the stored file could not be opened" in response.json()["issue"][0]["diagnostics"]
    mr.refresh_from_db()
    assert mr.preview == "ok"  # the file is not to blame: nothing recorded against it
