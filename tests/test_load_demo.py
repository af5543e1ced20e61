"""``manage.py load_demo``: the demo data set loads through the FHIR write path, once; with
its wearable history, forecasts (one warning early) and DICOM studies (one in quarantine)."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from devices.models import ReadingKey
from fhir_api import json_io
from fhir_api.management.commands.load_demo import PATIENT_ID_SYSTEM, PATIENTS
from fhir_api.models import Resource, ResourceVersion
from forecasting.models import ForecastRun
from imaging.models import DicomInstance, DicomStudy
from imaging.twin import patient_studies
from twins.models import Alert

# Fixtures are imported from the support modules (pytest finds them here).
from .imaging_intake_support import dicom_storage  # noqa: F401


def load(*args: str) -> str:
    """The FHIR records only (fast): the tests of the full demo call ``load_full``."""
    out = StringIO()
    call_command("load_demo", *(args or ("--records-only",)), stdout=out)
    return out.getvalue()


def load_full(now: str) -> str:
    out = StringIO()
    call_command("load_demo", "--now", now, stdout=out)
    return out.getvalue()


DEMO_TYPES = ("Organization", "Practitioner", "Patient", "Condition", "Observation")


def counts() -> dict[str, int]:
    return {t: Resource.objects.filter(resource_type=t).count() for t in DEMO_TYPES}


def test_load_demo_is_idempotent(db):
    first = load()
    after_first = counts()
    assert after_first["Organization"] == 1
    assert after_first["Practitioner"] == 1
    assert after_first["Patient"] == len(PATIENTS) >= 6
    assert after_first["Condition"] >= 3
    assert after_first["Observation"] >= 6
    assert "0 already there" in first

    second = load()
    assert counts() == after_first
    assert " 0 resource(s) created" in second
    # Nothing was written the second time: every resource is still at its first version.
    versions = ResourceVersion.objects.filter(resource_type__in=DEMO_TYPES)
    assert versions.count() == sum(after_first.values())
    demo_rows = Resource.objects.filter(resource_type__in=DEMO_TYPES)
    assert set(demo_rows.values_list("version_id", flat=True)) == {1}


def test_demo_patients_are_searchable_by_identifier(api):
    load()
    for key, family, _given, _gender, born, *_rest in PATIENTS:
        r = api.fhir("GET", f"/fhir/Patient?identifier={PATIENT_ID_SYSTEM}|{key}")
        assert r.status_code == 200, r.content
        entries = r.json_body.get("entry", [])
        assert len(entries) == 1, f"{key}: {len(entries)} matches"
        patient = entries[0]["resource"]
        assert patient["name"][0]["family"] == family
        assert "1930" <= patient["birthDate"][:4] <= "1955"
        assert patient["birthDate"] == born


def test_demo_vital_signs_are_coded(api):
    """Vital signs carry the vital-signs category, a LOINC code and UCUM units, per patient."""
    load()
    patient_id = api.fhir(
        "GET", f"/fhir/Patient?identifier={PATIENT_ID_SYSTEM}|{PATIENTS[0][0]}"
    ).json_body["entry"][0]["resource"]["id"]
    observations = [
        api.fhir("GET", f"/fhir/Observation/{row.logical_id}").json_body
        for row in Resource.objects.filter(resource_type="Observation")
    ]
    mine = [o for o in observations if o["subject"]["reference"] == f"Patient/{patient_id}"]
    assert len(mine) >= 5
    for obs in mine:
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
        quantities = [obs["valueQuantity"]] if "valueQuantity" in obs else []
        quantities += [c["valueQuantity"] for c in obs.get("component", [])]
        assert quantities
        for q in quantities:
            assert q["system"] == "http://unitsofmeasure.org"
            assert q["code"]
    codes = {o["code"]["coding"][0]["code"] for o in mine}
    assert {"8867-4", "9279-1", "2708-6", "8310-5", "85354-9"} <= codes


def _ids_by_key() -> dict[str, str]:
    ids = {}
    for row in Resource.objects.filter(resource_type="Patient", deleted=False):
        patient = json_io.loads(row.content)
        for ident in patient.get("identifier", []):
            if ident.get("system") == PATIENT_ID_SYSTEM:
                ids[ident["value"]] = row.logical_id
    return ids


def _state() -> dict[str, object]:
    return {
        "resources": sorted(
            Resource.objects.values_list("resource_type", "logical_id", "version_id")
        ),
        "versions": ResourceVersion.objects.count(),
        "readings": ReadingKey.objects.count(),
        "instances": DicomInstance.objects.count(),
        "studies": sorted(DicomStudy.objects.values_list("study_uid", "patient_id")),
        "runs": ForecastRun.objects.count(),
        "alerts": Alert.objects.count(),
    }


def test_the_demo_has_linked_studies_one_in_quarantine_and_forecasts_once(db, dicom_storage):  # noqa: F811
    # Both loads run the history up to the same instant, as two loads within one hour would.
    now = timezone.now().isoformat()
    first = load_full(now)
    ids = _ids_by_key()

    # Imaging: a CT and an ECG on Margaret Whitfield, a 30-frame ultrasound on Dorothy
    # Nakamura, each described by an ImagingStudy of that patient; the MR waits in quarantine.
    modalities = {
        key: sorted(i.modality for i in DicomInstance.objects.filter(study__patient_id=ids[key]))
        for key in ("DTH-0001", "DTH-0003")
    }
    assert modalities == {"DTH-0001": ["CT", "ECG"], "DTH-0003": ["US"]}
    for study in DicomStudy.objects.exclude(patient_id=""):
        body = json_io.loads(
            Resource.objects.get(
                resource_type="ImagingStudy", logical_id=study.imaging_study_id
            ).content
        )
        assert body["subject"]["reference"] == f"Patient/{study.patient_id}"
    quarantined = DicomStudy.objects.filter(patient_id="")
    assert [s.dicom_patient_id for s in quarantined] == ["4MR1"]
    assert not quarantined[0].imaging_study_id
    cards = patient_studies(ids["DTH-0001"])
    assert len(cards) == 2 and any(c["preview"] for c in cards), cards
    assert DicomInstance.objects.get(modality="CT").preview == DicomInstance.PREVIEW_OK

    # Forecasts: five days of hourly history for two patients; Dorothy's rising heart rate
    # is forecast to cross 130 /min, by a forecast that beats its baseline, so the twin has
    # a predicted alert; her single weight value is a skipped run that says why.
    for key in ("DTH-0002", "DTH-0003"):
        done = ForecastRun.objects.filter(patient_id=ids[key], status=ForecastRun.DONE)
        assert done.count() >= 6, key
        assert all(r.risk_assessment_id for r in done)
    heart = ForecastRun.objects.get(patient_id=ids["DTH-0003"], vital="heart_rate")
    assert heart.beats_baseline, heart.backtest
    assert (heart.threshold, heart.direction) == (130, "above")
    assert heart.probability >= 0.7
    assert Alert.objects.filter(
        patient_id=ids["DTH-0003"], predicted=True, status=Alert.ACTIVE
    ).exists()
    weight = ForecastRun.objects.get(patient_id=ids["DTH-0003"], vital="body_weight")
    assert weight.status == ForecastRun.SKIPPED and "at least 14" in weight.reason
    assert "1 with an early warning" in first

    # Again: nothing is stored twice, nothing written again.
    before = _state()
    second = load_full(now)
    assert _state() == before
    assert "0 DICOM instance(s) stored, 4 already held" in second
    assert "0 hourly wearable reading(s) stored for DTH-0003" in second


def test_a_load_on_a_later_day_tells_the_same_story_and_still_warns_early(db):
    """Restarting the demo days later: the wristband's five days end at the new last hour, one
    continuous history (not the earlier load's five days with a shifted copy joined on), so
    Dorothy's heart rate still climbs towards 130 /min and her forecast still warns early."""
    from datetime import UTC, timedelta

    from devices.models import Device
    from forecasting import demo

    load()
    dorothy = _ids_by_key()["DTH-0003"]
    now = timezone.now()
    demo.load_history("DTH-0003", dorothy, now=now - timedelta(days=3))

    assert demo.load_history("DTH-0003", dorothy, now=now) == 600
    wristband = Device.objects.get(identifier=demo.device_identifier("DTH-0003")).fhir_id
    rates = sorted(
        (body["effectiveDateTime"], body["valueQuantity"]["value"])
        for body in map(
            json_io.loads,
            Resource.objects.filter(resource_type="Observation", deleted=False)
            .filter(content__contains=f'"Device/{wristband}"')
            .filter(content__contains='"8867-4"')
            .values_list("content", flat=True),
        )
    )
    # One reading an hour for the five days to the new last hour: the climb, 79 -> 121 /min.
    assert len(rates) == demo.HOURS
    last = (now.replace(minute=20, second=0, microsecond=0) - timedelta(hours=1)).astimezone(UTC)
    assert rates[-1][0].startswith(last.strftime("%Y-%m-%dT%H:20:00"))
    assert rates[0][1] < 90 < 110 < rates[-1][1]
    runs = demo.forecast([dorothy], lambda _line: None)
    heart = next(r for r in runs if r.vital == "heart_rate")
    assert heart.beats_baseline and heart.probability >= 0.7
    # Still only one reading key per stored reading: the earlier load's were released.
    assert ReadingKey.objects.count() == 600
