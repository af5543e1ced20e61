"""The imaging admin's forms: several DICOM files at once, and the Patient to link a study to."""

from __future__ import annotations

from django import forms
from django.core.files.uploadedfile import UploadedFile

from .patients import PatientNotChosen, choose_patient


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files, each taken as it is: an empty or broken file is for
    ``store_files`` to reject with its reason, not for the form to refuse the whole upload."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list[UploadedFile]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files and self.required:
            raise forms.ValidationError("Choose one or more DICOM files", code="required")
        return files


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="DICOM files",
        help_text="Several at once (Part 10 files, .dcm or no extension). Bad files are listed"
        " with the reason; the good ones are stored all the same.",
    )


class LinkForm(forms.Form):
    patient = forms.CharField(
        label="Patient",
        max_length=300,
        help_text="The Patient's id (or Patient/id), or an identifier: system|value, or the"
        " value alone when it is unique. Exactly one Patient must match.",
    )

    def clean_patient(self) -> str:
        try:
            return choose_patient(self.cleaned_data["patient"])
        except PatientNotChosen as exc:
            raise forms.ValidationError(exc.reason, code="not-chosen") from None


class ConfirmLinkForm(forms.Form):
    """The second step: the Patient id resolved in the first, checked again on confirmation."""

    patient_id = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_patient_id(self) -> str:
        try:
            return choose_patient(f"Patient/{self.cleaned_data['patient_id']}")
        except PatientNotChosen as exc:
            raise forms.ValidationError(exc.reason, code="not-chosen") from None
