"""WADO-RS rendered resources: an instance (or one of its frames) as a PNG.

DICOM PS3.18 10.4 (Retrieve Transaction), rendered resources (10.4.1.1.3):

- ``GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered``: the first
  frame;
- ``GET …/instances/{instance}/frames/{frame}/rendered``: frame ``frame`` (1-based, PS3.18);
- query parameter ``viewport=rows,columns`` (PS3.18 8.3.5.1.3): the image is shrunk (never
  enlarged) to fit it.

The answer is ``image/png`` (a clinician's preview: CT windowing from the file's window
centre/width, see ``imaging.preview``), drawn once per file and size, then served from the
preview cache with the file's sha256 as ETag. Errors are FHIR OperationOutcomes
(https://hl7.org/fhir/R4B/operationoutcome.html): 404 for an unknown study/series/instance or
frame, 422 "preview unavailable: <reason>" for an instance that has no pixel data or whose pixel
data cannot be decoded here, 400 for a malformed viewport, 406 when the client accepts neither
PNG nor any image.

Who may ask: an API client with a Bearer token (as for the FHIR API), or a staff member logged in
to the admin (the admin pages and the twin page show these images in ``<img>`` tags).
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse

from fhir_api.exceptions import BadRequest, NotAcceptable, NotFound, UnprocessableEntity

from .models import DicomInstance
from .preview import PreviewUnavailable, render_png
from .views import DicomWebView

PNG = "image/png"
ACCEPTED = {PNG, "image/*", "*/*"}
MAX_VIEWPORT = 4096


def _accepts_png(header: str) -> bool:
    if not header.strip():
        return True
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() in ACCEPTED and not any(p.replace(" ", "") == "q=0" for p in params):
            return True
    return False


def _viewport(text: str | None) -> int | None:
    """``viewport=rows,columns`` (or one number) → the longest side the PNG may have."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    try:
        sides = [int(p) for p in parts[:2] if p.strip()]
    except ValueError:
        sides = []
    if not sides or len(parts) > 4 or any(not 1 <= s <= MAX_VIEWPORT for s in sides):
        raise BadRequest(
            f"viewport '{text}' is not understood: give rows,columns in pixels, each 1 to {MAX_VIEWPORT}",
            code="value",
        )
    return min(sides)


def preview_url(instance: DicomInstance, size: int | None = None) -> str:
    """The rendered resource of an instance (its first frame), ``size`` px at most if given."""
    url = reverse(
        "imaging:rendered",
        kwargs={
            "study": instance.study.study_uid,
            "series": instance.series_uid,
            "instance": instance.sop_instance_uid,
        },
    )
    return f"{url}?viewport={size},{size}" if size else url


def find_instance(study: str, series: str, instance: str) -> DicomInstance:
    found = (
        DicomInstance.objects.filter(
            sop_instance_uid=instance, series_uid=series, study__study_uid=study
        )
        .only("sha256", "storage_name", "preview", "preview_note", "number_of_frames")
        .first()
    )
    if found is None:
        raise NotFound(
            f"No instance {instance} in series {series} of study {study}", code="not-found"
        )
    return found


class RenderedView(DicomWebView):
    """GET …/instances/{instance}[/frames/{frame}]/rendered → image/png (errors: FHIR JSON)."""

    def get(self, request, study: str, series: str, instance: str, frame: int = 1):
        if not _accepts_png(request.META.get("HTTP_ACCEPT", "")):
            raise NotAcceptable(f"The rendered resource is served as {PNG} only")
        size = _viewport(request.query_params.get("viewport"))
        found = find_instance(study, series, instance)
        if not 1 <= frame <= max(found.number_of_frames, 1):
            raise NotFound(
                f"Frame {frame} does not exist: the instance has {found.number_of_frames}"
            )
        etag = f'"{found.sha256}-{frame}-{size or "full"}"'
        if etag in request.META.get("HTTP_IF_NONE_MATCH", ""):
            return HttpResponseNotModified(headers={"ETag": etag})
        try:
            png = render_png(found, frame=frame - 1, size=size)
        except PreviewUnavailable as exc:
            raise UnprocessableEntity(
                f"preview unavailable: {exc.reason}", code="not-supported"
            ) from None
        response = HttpResponse(png, content_type=PNG)
        response["ETag"] = etag
        # The PNG of a file never changes (the file is content-addressed); private: patient data.
        response["Cache-Control"] = "private, max-age=86400"
        return response
