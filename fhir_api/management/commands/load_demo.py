"""``manage.py load_demo``: a small, realistic data set for the local demo (``make demo``).

Six elderly patients with their general practitioner and practice, their long-term conditions
(SNOMED CT) and one set of vital signs each (LOINC codes, UCUM units, category vital-signs; see
shared/docs/clinical-reference.md). Everything goes through the FHIR write path
(``fhir_api.services.create``) with ``If-None-Exist`` on a business identifier, so the resources
are validated, versioned and indexed like any client's, and running the command again creates
nothing twice.

Then the newer parts of the demo, each through its own app's write path: two patients' five
days of hourly wearable readings and their forecasts, run in process
(``forecasting.demo``: one of them warns early), and DICOM studies from pydicom's test files on
two patients with one left in the quarantine (``imaging.demo``). These too store nothing twice;
``--records-only`` leaves them out.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from fhir_api import services
from fhir_api.models import Resource
from fhir_api.search.dates import format_instant
from forecasting import demo as forecasting_demo
from imaging import demo as imaging_demo

SYSTEM = "https://clouddth.example"
PATIENT_ID_SYSTEM = f"{SYSTEM}/patient-id"
PRACTITIONER_ID_SYSTEM = f"{SYSTEM}/practitioner-id"
ORGANIZATION_ID_SYSTEM = f"{SYSTEM}/organization-id"
CONDITION_ID_SYSTEM = f"{SYSTEM}/condition-id"
OBSERVATION_ID_SYSTEM = f"{SYSTEM}/observation-id"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ],
    "text": "Vital Signs",
}

ORGANIZATION = {
    "key": "ORG-0001",
    "name": "Riverside Family Practice",
    "phone": "+44 20 7946 0000",
    "address": ("1 Riverside Walk", "London", "SE1 9AA"),
}
PRACTITIONER = {
    "key": "PR-0001",
    "family": "Okonkwo",
    "given": ["Adaeze"],
    "prefix": ["Dr"],
    "gender": "female",
}

# (key, family, given, gender, birth date, street, city, postcode, conditions)
PATIENTS: list[tuple[str, str, list[str], str, str, str, str, str, list[str]]] = [
    (
        "DTH-0001",
        "Whitfield",
        ["Margaret", "Rose"],
        "female",
        "1938-04-12",
        "14 Elm Grove",
        "London",
        "SE5 8QT",
        ["hypertension", "osteoarthritis"],
    ),
    (
        "DTH-0002",
        "Bennett",
        ["Harold", "James"],
        "male",
        "1942-11-03",
        "7 Station Road",
        "London",
        "SE15 4RS",
        ["copd", "hypertension"],
    ),
    (
        "DTH-0003",
        "Nakamura",
        ["Dorothy"],
        "female",
        "1935-07-21",
        "Flat 3, 22 Park Crescent",
        "London",
        "SE22 9LU",
        ["heart-failure", "atrial-fibrillation"],
    ),
    (
        "DTH-0004",
        "Adeyemi",
        ["Samuel", "Olu"],
        "male",
        "1947-02-09",
        "58 Camberwell Grove",
        "London",
        "SE5 8RE",
        ["type-2-diabetes", "hypertension", "ckd"],
    ),
    (
        "DTH-0005",
        "Fitzgerald",
        ["Eileen"],
        "female",
        "1951-09-30",
        "3 Church Lane",
        "London",
        "SE19 2AF",
        ["type-2-diabetes"],
    ),
    (
        "DTH-0006",
        "Kowalski",
        ["Stanley"],
        "male",
        "1930-12-17",
        "Rosemary House, 110 Lordship Lane",
        "London",
        "SE22 8HB",
        ["copd", "atrial-fibrillation"],
    ),
]

# SNOMED CT concepts of the long-term conditions: key -> (code, display, onset year).
CONDITIONS = {
    "hypertension": ("59621000", "Essential hypertension", 2004),
    "type-2-diabetes": ("44054006", "Diabetes mellitus type 2", 2009),
    "copd": ("13645005", "Chronic obstructive lung disease", 2012),
    "heart-failure": ("84114007", "Heart failure", 2018),
    "atrial-fibrillation": ("49436004", "Atrial fibrillation", 2016),
    "osteoarthritis": ("396275006", "Osteoarthritis", 2001),
    "ckd": ("709044004", "Chronic kidney disease", 2020),
}

# One set of vital signs per patient, in the order of PATIENTS:
# heart rate /min, respiratory rate /min, SpO2 %, temperature Cel, systolic, diastolic mm[Hg],
# body weight kg.
VITALS = {
    "DTH-0001": (72, 16, 96, "36.7", 148, 86, "61.4"),
    "DTH-0002": (84, 20, 93, "36.9", 138, 82, "74.0"),
    "DTH-0003": (96, 18, 95, "36.5", 118, 70, "55.2"),
    "DTH-0004": (68, 15, 97, "36.8", 152, 90, "88.7"),
    "DTH-0005": (76, 14, 98, "37.1", 128, 78, "70.3"),
    "DTH-0006": (88, 22, 92, "37.4", 132, 76, "66.9"),
}


def identifier(system: str, value: str) -> list[dict[str, str]]:
    return [{"system": system, "value": value}]


def reference(row) -> dict[str, str]:
    return {"reference": f"{row.resource_type}/{row.logical_id}"}


def quantity(value: Any, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def loinc(code: str, display: str, *more: tuple[str, str]) -> dict[str, Any]:
    codings = [{"system": LOINC, "code": code, "display": display}]
    codings += [{"system": LOINC, "code": c, "display": d} for c, d in more]
    return {"coding": codings, "text": display}


def vital_signs(patient_key: str) -> list[tuple[str, dict[str, Any]]]:
    """(measure key, Observation fields) of one patient's set of vital signs."""
    hr, rr, spo2, temp, systolic, diastolic, weight = VITALS[patient_key]
    return [
        ("heart-rate", {"code": loinc("8867-4", "Heart rate"), **_value(hr, "/min", "/min")}),
        (
            "respiratory-rate",
            {"code": loinc("9279-1", "Respiratory rate"), **_value(rr, "/min", "/min")},
        ),
        (
            "oxygen-saturation",
            {
                "code": loinc(
                    "2708-6",
                    "Oxygen saturation in Arterial blood",
                    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
                ),
                **_value(spo2, "%", "%"),
            },
        ),
        (
            "body-temperature",
            {"code": loinc("8310-5", "Body temperature"), **_value(Decimal(temp), "Cel", "Cel")},
        ),
        (
            "blood-pressure",
            {
                "code": loinc("85354-9", "Blood pressure panel with all children optional"),
                "component": [
                    {
                        "code": loinc("8480-6", "Systolic blood pressure"),
                        "valueQuantity": quantity(systolic, "mmHg", "mm[Hg]"),
                    },
                    {
                        "code": loinc("8462-4", "Diastolic blood pressure"),
                        "valueQuantity": quantity(diastolic, "mmHg", "mm[Hg]"),
                    },
                ],
            },
        ),
        (
            "body-weight",
            {"code": loinc("29463-7", "Body weight"), **_value(Decimal(weight), "kg", "kg")},
        ),
    ]


def _value(value: Any, unit: str, code: str) -> dict[str, Any]:
    return {"valueQuantity": quantity(value, unit, code)}


class Command(BaseCommand):
    help = (
        "Load demo patients, a practitioner, an organization, conditions and vital signs "
        "through the FHIR write path, then two patients' wearable history with their "
        "forecasts and DICOM studies. Safe to run again: nothing is created twice."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--records-only",
            action="store_true",
            help="only the FHIR records above: no wearable history, forecasts or DICOM studies"
            " (seconds instead of half a minute)",
        )
        parser.add_argument(
            "--now",
            type=_instant,
            default=None,
            help="the instant the wearable history runs up to (ISO 8601 with a zone; default:"
            " the clock), so two loads give the same readings (tests, reproducible demos)",
        )

    def handle(self, *args, **options) -> None:
        self.counts: dict[str, list[int]] = {}  # type -> [created, already there]
        patients: dict[str, tuple[str, str]] = {}  # key -> (Patient id, DICOM PatientName)
        # Readings are timed on the morning of the first load; a later run finds them by their
        # identifier and leaves them as they are.
        taken = timezone.now().replace(hour=8, minute=30, second=0, microsecond=0)
        if taken > timezone.now():
            taken -= timedelta(days=1)
        with transaction.atomic():
            org, org_new = self._load(
                "Organization",
                ORGANIZATION_ID_SYSTEM,
                ORGANIZATION["key"],
                {
                    "active": True,
                    "name": ORGANIZATION["name"],
                    "telecom": [{"system": "phone", "value": ORGANIZATION["phone"]}],
                    "address": [_address(*ORGANIZATION["address"])],
                },
            )
            self._say(org, org_new, ORGANIZATION["key"], ORGANIZATION["name"])
            gp, gp_new = self._load(
                "Practitioner",
                PRACTITIONER_ID_SYSTEM,
                PRACTITIONER["key"],
                {
                    "active": True,
                    "name": [
                        {
                            "use": "official",
                            "family": PRACTITIONER["family"],
                            "given": PRACTITIONER["given"],
                            "prefix": PRACTITIONER["prefix"],
                        }
                    ],
                    "gender": PRACTITIONER["gender"],
                },
            )
            self._say(
                gp,
                gp_new,
                PRACTITIONER["key"],
                "Dr " + " ".join([*PRACTITIONER["given"], PRACTITIONER["family"]]),
            )
            for key, family, given, gender, born, street, city, postcode, conds in PATIENTS:
                patient, patient_new = self._load(
                    "Patient",
                    PATIENT_ID_SYSTEM,
                    key,
                    {
                        "active": True,
                        "name": [{"use": "official", "family": family, "given": given}],
                        "gender": gender,
                        "birthDate": born,
                        "address": [_address(street, city, postcode, use="home")],
                        "generalPractitioner": [reference(gp)],
                        "managingOrganization": reference(org),
                    },
                )
                patients[key] = (patient.logical_id, f"{family}^{' '.join(given)}")
                displays = []
                for cond in conds:
                    code, display, onset = CONDITIONS[cond]
                    self._load(
                        "Condition",
                        CONDITION_ID_SYSTEM,
                        f"{key}-{cond}",
                        _condition(patient, gp, code, display, onset),
                    )
                    displays.append(display.lower())
                vitals = vital_signs(key)
                for measure, fields in vitals:
                    self._load(
                        "Observation",
                        OBSERVATION_ID_SYSTEM,
                        f"{key}-{measure}-1",
                        {
                            "status": "final",
                            "category": [VITAL_SIGNS],
                            **fields,
                            "subject": reference(patient),
                            "effectiveDateTime": format_instant(taken),
                            "performer": [reference(gp)],
                        },
                    )
                self._say(
                    patient,
                    patient_new,
                    key,
                    f"{' '.join(given)} {family}, born {born}: {', '.join(displays)};"
                    f" {len(vitals)} vital signs",
                )
        created = sum(c for c, _ in self.counts.values())
        found = sum(f for _, f in self.counts.values())
        per_type = ", ".join(f"{sum(n)} {t}" for t, n in self.counts.items())
        self.stdout.write(
            f"Demo data ({per_type}): {created} resource(s) created, {found} already there."
        )
        self.stdout.write(f"Patients are identified under {PATIENT_ID_SYSTEM} (DTH-0001…DTH-0006).")
        if options["records_only"]:
            return
        self._history_and_forecasts(patients, options["now"])
        imaging_demo.load_studies(patients, self.stdout.write)

    def _history_and_forecasts(
        self, patients: dict[str, tuple[str, str]], now: datetime | None
    ) -> None:
        """Hourly history for the patients ``forecasting.demo`` names, then every forecast."""
        for key in forecasting_demo.HISTORIES:
            stored = forecasting_demo.load_history(key, patients[key][0], now=now)
            self.stdout.write(
                f"  history: {stored} hourly wearable reading(s) stored for {key}"
                f" ({forecasting_demo.HOURS} h to the last full hour)"
            )
        ids = [patients[key][0] for key in forecasting_demo.HISTORIES]
        forecasting_demo.forecast(ids, self.stdout.write)

    def _load(
        self, resource_type: str, system: str, value: str, fields: dict[str, Any]
    ) -> tuple[Resource, bool]:
        """Create the resource unless one with this identifier exists: (its row, created)."""
        data = {"resourceType": resource_type, "identifier": identifier(system, value), **fields}
        outcome = services.create(resource_type, data, if_none_exist=f"identifier={system}|{value}")
        counts = self.counts.setdefault(resource_type, [0, 0])
        counts[0 if outcome.created else 1] += 1
        return outcome.resource, outcome.created

    def _say(self, row: Resource, created: bool, key: str, label: str) -> None:
        what = "created" if created else "exists "
        self.stdout.write(f"  {what} {row.resource_type}/{row.logical_id}  {key}  {label}")


def _instant(text: str) -> datetime:
    """``--now``: an ISO 8601 instant with its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the instant's zone (e.g. Z): {text!r}")
    return moment


def _address(line: str, city: str, postcode: str, *, use: str = "work") -> dict[str, Any]:
    return {
        "use": use,
        "line": [line],
        "city": city,
        "postalCode": postcode,
        "country": "GB",
    }


def _condition(patient, gp, code: str, display: str, onset: int) -> dict[str, Any]:
    return {
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                        "display": "Problem List Item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
        "subject": reference(patient),
        "onsetDateTime": str(onset),
        "recorder": reference(gp),
    }
