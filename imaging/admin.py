"""The imaging admin: upload DICOM files, the quarantine of unmatched studies, linking, previews.

- **Upload** (``DICOM studies › Upload DICOM files``): several files at once, stored through
  ``imaging.services.store_files``; the page lists what was stored, what was already held and
  what failed, with the reason of each failure.
- **Quarantine**: studies whose DICOM PatientID matched no Patient (no FHIR ImagingStudy is
  written for them, https://hl7.org/fhir/R4B/imagingstudy.html requires a subject). The filter
  "Patient: quarantined" lists them; ``quarantine/`` goes straight there.
- **Link to patient** (an action, and a button on each study): the clinician names one Patient
  (id or identifier); the admin says who that is and asks to confirm; then
  ``imaging.services.link_study`` writes the ImagingStudy. An ambiguous or unknown Patient is
  refused, never guessed.
- **Instances** with their preview (``/dicomweb/…/rendered``), preview state and the link to the
  ImagingStudy.

Rows are read-only here: studies and instances change only through ``imaging.services``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from fhir_api.exceptions import FHIRError
from fhir_api.models import Resource
from twins.admin import ReadOnlyAdmin

from . import services
from .forms import ConfirmLinkForm, LinkForm, UploadForm
from .models import DicomInstance, DicomStudy
from .patients import describe_patient
from .rendered import preview_url

UPLOAD_PERMISSION = "imaging.add_dicominstance"
LINK_PERMISSION = "imaging.change_dicomstudy"
THUMBNAIL = 64
LARGE = 512


def imaging_study_admin_url(imaging_study_id: str) -> str:
    """The admin page of the stored ImagingStudy (its JSON and versions), or "" if none."""
    if not imaging_study_id:
        return ""
    pk = (
        Resource.objects.filter(resource_type="ImagingStudy", logical_id=imaging_study_id)
        .values_list("pk", flat=True)
        .first()
    )
    return reverse("admin:fhir_api_resource_change", args=[pk]) if pk else ""


def _thumbnail(instance: DicomInstance | None, size: int = THUMBNAIL) -> str:
    if instance is None:
        return "—"
    if instance.preview != DicomInstance.PREVIEW_OK:
        return format_html(
            '<span title="{}">{}</span>',
            instance.preview_note,
            instance.get_preview_display(),
        )
    return format_html(
        '<img src="{}" alt="Preview of {} instance {}" loading="lazy"'
        ' style="max-width:{}px;max-height:{}px;background:#000">',
        preview_url(instance, size),
        instance.modality or "DICOM",
        instance.sop_instance_uid,
        size,
        size,
    )


class QuarantineFilter(admin.SimpleListFilter):
    title = "patient"
    parameter_name = "quarantined"

    def lookups(self, request, model_admin):
        return [("yes", "Quarantined (no patient)"), ("no", "Linked to a patient")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(patient_id="")
        if self.value() == "no":
            return queryset.exclude(patient_id="")
        return queryset


def _instances_prefetch() -> Prefetch:
    return Prefetch(
        "instances",
        queryset=DicomInstance.objects.order_by("series_number", "instance_number", "pk").only(
            "id",
            "study_id",
            "sop_instance_uid",
            "series_uid",
            "series_number",
            "instance_number",
            "modality",
            "sha256",
            "preview",
            "preview_note",
            "number_of_frames",
        ),
        to_attr="ordered_instances",
    )


def first_previewable(study: DicomStudy) -> DicomInstance | None:
    """The instance shown for a study: its first one that can be drawn, else its first one."""
    instances = getattr(study, "ordered_instances", None)
    if instances is None:
        instances = list(study.instances.order_by("series_number", "instance_number", "pk"))
    drawable = [i for i in instances if i.preview == DicomInstance.PREVIEW_OK]
    return (drawable or instances or [None])[0]


@admin.register(DicomStudy)
class DicomStudyAdmin(ReadOnlyAdmin):
    change_list_template = "imaging/admin/study_change_list.html"
    change_form_template = "imaging/admin/study_change_form.html"
    list_display = (
        "study_uid",
        "patient",
        "dicom_patient_id",
        "dicom_patient_name",
        "started",
        "description",
        "modalities",
        "instance_count",
        "thumbnail",
    )
    list_filter = (QuarantineFilter, "started")
    search_fields = ("=study_uid", "dicom_patient_id", "dicom_patient_name", "=patient_id")
    ordering = ("-received",)
    list_per_page = 50
    actions = ["link_to_patient"]
    fields = (
        "study_uid",
        "patient",
        "dicom_patient_id",
        "dicom_patient_name",
        "started",
        "description",
        "imaging_study",
        "linked_by",
        "received",
        "updated",
        "series_table",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(instance_total=Count("instances"))
            .prefetch_related(_instances_prefetch())
        )

    @admin.display(description="Patient", ordering="patient_id")
    def patient(self, study: DicomStudy) -> str:
        if study.quarantined:
            return format_html('<strong style="color:#ba2121">{}</strong>', "quarantined")
        return format_html(
            '<a href="{}">Patient/{}</a>',
            reverse("twins:patient", args=[study.patient_id]),
            study.patient_id,
        )

    @admin.display(description="Modalities")
    def modalities(self, study: DicomStudy) -> str:
        seen = dict.fromkeys(i.modality or "?" for i in study.ordered_instances)
        return ", ".join(seen)

    @admin.display(description="Instances", ordering="instance_total")
    def instance_count(self, study: DicomStudy) -> int:
        return study.instance_total

    @admin.display(description="Preview")
    def thumbnail(self, study: DicomStudy) -> str:
        return _thumbnail(first_previewable(study))

    @admin.display(description="FHIR ImagingStudy")
    def imaging_study(self, study: DicomStudy) -> str:
        url = imaging_study_admin_url(study.imaging_study_id)
        if not url:
            return "none yet (quarantined: written when the study is linked to a Patient)"
        return format_html('<a href="{}">ImagingStudy/{}</a>', url, study.imaging_study_id)

    @admin.display(description="Series and instances")
    def series_table(self, study: DicomStudy) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    i.series_number if i.series_number is not None else "",
                    i.modality,
                    format_html(
                        '<a href="{}">{}</a>',
                        reverse("admin:imaging_dicominstance_change", args=[i.pk]),
                        i.sop_instance_uid,
                    ),
                    i.instance_number if i.instance_number is not None else "",
                    _thumbnail(i),
                )
                for i in study.ordered_instances
            ),
        )
        return format_html(
            "<table><thead><tr><th>Series</th><th>Modality</th><th>SOPInstanceUID</th>"
            "<th>Number</th><th>Preview</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- actions and views -----------------------------------------------------------------

    def has_link_permission(self, request) -> bool:
        return request.user.has_perm(LINK_PERMISSION)

    @admin.action(description="Link to a patient…", permissions=["link"])
    def link_to_patient(self, request, queryset) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return redirect(f"{reverse('admin:imaging_dicomstudy_link')}?ids={ids}")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="imaging_dicomstudy_upload"),
            path("quarantine/", view(self.quarantine_view), name="imaging_dicomstudy_quarantine"),
            path("link/", view(self.link_view), name="imaging_dicomstudy_link"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    def changelist_view(self, request, extra_context=None):
        extra = {
            "quarantined_count": DicomStudy.objects.filter(patient_id="").count(),
            "can_upload": request.user.has_perm(UPLOAD_PERMISSION),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_link": self.has_link_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def quarantine_view(self, request: HttpRequest) -> HttpResponse:
        return redirect(f"{reverse('admin:imaging_dicomstudy_changelist')}?quarantined=yes")

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(UPLOAD_PERMISSION):
            raise PermissionDenied
        result = None
        form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
        if form.is_bound and form.is_valid():
            files = form.cleaned_data["files"]
            result = services.store_files(
                [(f.name, f) for f in files], by=request.user.get_username()
            )
            form = UploadForm()
        return TemplateResponse(
            request,
            "imaging/admin/upload.html",
            self._context(request, "Upload DICOM files", form=form, result=result),
        )

    def link_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_link_permission(request):
            raise PermissionDenied
        raw_ids = request.POST.get("ids") or request.GET.get("ids") or ""
        # isdecimal: "²" is a digit int() cannot read; 18 digits: what a bigint key holds.
        ids = [int(i) for i in raw_ids.split(",") if i.strip().isdecimal() and len(i.strip()) < 19]
        studies = list(
            DicomStudy.objects.filter(pk__in=ids)
            .order_by("pk")
            .prefetch_related(_instances_prefetch())
        )
        if not studies:
            messages.error(request, "Choose one or more studies to link")
            return redirect("admin:imaging_dicomstudy_changelist")
        context: dict[str, Any] = {"studies": studies, "ids": ",".join(str(s.pk) for s in studies)}
        for study in studies:
            study.thumbnail = _thumbnail(first_previewable(study))
        form = LinkForm(request.POST if "patient" in request.POST else None)
        confirm = ConfirmLinkForm(request.POST if "patient_id" in request.POST else None)
        if request.method == "POST" and "patient_id" in request.POST and confirm.is_valid():
            return self._link(request, studies, confirm.cleaned_data["patient_id"])
        if request.method == "POST" and "patient_id" in request.POST:
            form = LinkForm()
            context["errors"] = [e for errors in confirm.errors.values() for e in errors]
        elif request.method == "POST" and form.is_valid():
            patient_id = form.cleaned_data["patient"]
            context["confirm"] = ConfirmLinkForm(initial={"patient_id": patient_id})
            context["patient"] = describe_patient(patient_id)
        context["form"] = form
        title = "Link to a patient" if len(studies) == 1 else f"Link {len(studies)} studies"
        return TemplateResponse(
            request, "imaging/admin/link.html", self._context(request, title, **context)
        )

    def _link(
        self, request: HttpRequest, studies: list[DicomStudy], patient_id: str
    ) -> HttpResponseRedirect:
        who = describe_patient(patient_id)
        for study in studies:
            try:
                services.link_study(study, patient_id, by=request.user.get_username())
            except FHIRError as exc:
                messages.error(request, f"Study {study.study_uid} not linked: {exc.diagnostics}")
            else:
                messages.success(request, f"Study {study.study_uid} linked to {who}")
        if len(studies) == 1:
            return redirect("admin:imaging_dicomstudy_change", studies[0].pk)
        return redirect("admin:imaging_dicomstudy_changelist")


@admin.register(DicomInstance)
class DicomInstanceAdmin(ReadOnlyAdmin):
    list_display = (
        "sop_instance_uid",
        "study_link",
        "series_number",
        "instance_number",
        "modality",
        "body_part",
        "thumbnail",
        "preview",
        "preview_note",
        "size",
    )
    list_filter = ("modality", "preview")
    search_fields = ("=sop_instance_uid", "=series_uid", "=study__study_uid", "=sha256")
    list_select_related = ("study",)
    ordering = ("-received",)
    list_per_page = 50
    fields = (
        "large_preview",
        "preview",
        "preview_note",
        "study_link",
        "imaging_study",
        "download",
        "sop_instance_uid",
        "sop_class_uid",
        "series_uid",
        "series_number",
        "series_description",
        "instance_number",
        "modality",
        "body_part",
        "transfer_syntax",
        "number_of_frames",
        "sha256",
        "size",
        "received",
    )
    readonly_fields = fields

    @admin.display(description="Study", ordering="study__study_uid")
    def study_link(self, instance: DicomInstance) -> str:
        study = instance.study
        return format_html(
            '<a href="{}">{}</a>{}',
            reverse("admin:imaging_dicomstudy_change", args=[study.pk]),
            study.study_uid,
            " (quarantined)" if study.quarantined else "",
        )

    @admin.display(description="Preview")
    def thumbnail(self, instance: DicomInstance) -> str:
        return _thumbnail(instance)

    @admin.display(description="Preview")
    def large_preview(self, instance: DicomInstance) -> str:
        return _thumbnail(instance, LARGE)

    @admin.display(description="File")
    def download(self, instance: DicomInstance) -> str:
        url = reverse(
            "imaging:instance",
            kwargs={
                "study": instance.study.study_uid,
                "series": instance.series_uid,
                "instance": instance.sop_instance_uid,
            },
        )
        return format_html(
            '<a href="{}">the stored DICOM file</a> ({} bytes) · '
            '<a href="{}?deidentify=true">a de-identified copy</a>',
            url,
            instance.size,
            url,
        )

    @admin.display(description="FHIR ImagingStudy")
    def imaging_study(self, instance: DicomInstance) -> str:
        url = imaging_study_admin_url(instance.study.imaging_study_id)
        if not url:
            return "none yet (the study is quarantined)"
        return format_html('<a href="{}">ImagingStudy/{}</a>', url, instance.study.imaging_study_id)
