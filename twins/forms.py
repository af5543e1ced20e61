"""Forms of the clinicians' pages: alert triage, settings, lifecycle stage, diagnosis.

Each form only parses and checks what was typed; ``kwargs()`` gives the arguments of the
write path it feeds (``twins.services``, ``twins.diagnosis``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from .diagnosis import SNOMED_ID, VERIFICATIONS
from .display import unit_label
from .models import STAGES, PatientTwin
from .roles import CLINICIAN, NURSE
from .rules import DEFAULT_THRESHOLDS, threshold_number
from .vitals import LABELS, UNITS

ACTIONS = [
    ("acknowledge", "Acknowledge"),
    ("assign", "Assign"),
    ("escalate", "Escalate"),
    ("resolve", "Resolve"),
    ("comment", "Comment"),
]
OXYGEN = [("", "unknown (scored as air, marked partial)"), ("air", "air"), ("oxygen", "oxygen")]
OXYGEN_VALUES = {"": None, "air": False, "oxygen": True}


def care_team() -> list[tuple[str, str]]:
    """Users an alert can be assigned to: active staff, clinicians and nurses first."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .prefetch_related("groups")
        .order_by("username")
    )
    choices = []
    for user in users:
        roles = sorted(g.name for g in user.groups.all() if g.name in (CLINICIAN, NURSE))
        label = user.get_full_name() or user.get_username()
        choices.append((user.get_username(), f"{label} ({', '.join(roles)})" if roles else label))
    return choices


class AlertActionForm(forms.Form):
    action = forms.ChoiceField(choices=ACTIONS)
    comment = forms.CharField(required=False, max_length=1000, widget=forms.Textarea)
    assignee = forms.ChoiceField(required=False, choices=[])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "me"), *care_team()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("action") == "resolve" and not (data.get("comment") or "").strip():
            self.add_error("comment", "Say why the alert is resolved.")
        if data.get("action") == "comment" and not (data.get("comment") or "").strip():
            self.add_error("comment", "Write the comment.")
        return data

    def kwargs(self) -> dict[str, str]:
        data = self.cleaned_data
        return {
            "action": data["action"],
            "comment": data.get("comment", "").strip(),
            "assignee": data.get("assignee", "") if data["action"] == "assign" else "",
        }


class SettingsForm(forms.Form):
    """NEWS2 scale, oxygen, consciousness (ACVPU) and per-vital threshold overrides."""

    scale = forms.TypedChoiceField(
        coerce=int,
        choices=[(1, "Scale 1"), (2, "Scale 2 (confirmed hypercapnic respiratory failure)")],
        label="NEWS2 SpO₂ scale",
    )
    oxygen = forms.ChoiceField(choices=OXYGEN, required=False, label="Air or oxygen")
    consciousness = forms.ChoiceField(
        choices=PatientTwin._meta.get_field("consciousness").choices,
        required=False,
        label="Consciousness (ACVPU)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for vital in DEFAULT_THRESHOLDS:
            for side in ("low", "high"):
                self.fields[f"{vital}_{side}"] = forms.FloatField(
                    required=False,
                    label=f"{LABELS[vital]} {side} ({unit_label(UNITS.get(vital, ''))})",
                    error_messages={
                        "invalid": f"{LABELS[vital]} {side}: the threshold must be a number."
                    },
                )

    @classmethod
    def initial_for(cls, twin: PatientTwin) -> dict[str, Any]:
        oxygen = {None: "", False: "air", True: "oxygen"}[twin.on_oxygen]
        initial: dict[str, Any] = {
            "scale": twin.news2_scale,
            "oxygen": oxygen,
            "consciousness": twin.consciousness,
        }
        overrides = twin.thresholds if isinstance(twin.thresholds, dict) else {}
        for vital in DEFAULT_THRESHOLDS:
            override = overrides.get(vital) if isinstance(overrides.get(vital), dict) else {}
            for side in ("low", "high"):
                value = threshold_number(override.get(side))
                if value is not None:
                    initial[f"{vital}_{side}"] = value
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for vital, (default_low, default_high) in DEFAULT_THRESHOLDS.items():
            low = data.get(f"{vital}_low")
            high = data.get(f"{vital}_high")
            low = default_low if low is None else low
            high = default_high if high is None else high
            if low is not None and high is not None and low >= high:
                self.add_error(
                    f"{vital}_low",
                    f"{LABELS[vital]}: the low threshold must be below the high one.",
                )
        return data

    def kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        thresholds: dict[str, dict[str, float]] = {}
        for vital in DEFAULT_THRESHOLDS:
            for side in ("low", "high"):
                value = data.get(f"{vital}_{side}")
                if value is not None:
                    thresholds.setdefault(vital, {})[side] = value
        return {
            "scale": data["scale"],
            "on_oxygen": OXYGEN_VALUES[data.get("oxygen") or ""],
            "consciousness": data.get("consciousness") or "",
            "thresholds": thresholds,
        }


class StageForm(forms.Form):
    stage = forms.ChoiceField(choices=STAGES, label="New stage")
    reason = forms.CharField(max_length=500, label="Reason")


class ImpressionForm(forms.Form):
    summary = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    finding = forms.CharField(required=False, max_length=300, label="Finding (text)")
    finding_code = forms.RegexField(
        SNOMED_ID, required=False, label="Finding (SNOMED CT code)", max_length=18
    )


class ConditionForm(forms.Form):
    text = forms.CharField(required=False, max_length=300, label="Condition (text)")
    code = forms.RegexField(SNOMED_ID, required=False, label="SNOMED CT code", max_length=18)
    verification = forms.ChoiceField(choices=list(VERIFICATIONS.items()))
    onset = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(required=False, max_length=1000, label="Note")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("text") or "").strip() and not data.get("code"):
            raise forms.ValidationError("Name the condition or give its SNOMED CT code.")
        return data
