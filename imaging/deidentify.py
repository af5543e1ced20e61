"""De-identified copies of DICOM files: the Basic Application Level Confidentiality Profile.

DICOM PS3.15 Annex E (https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html),
Table E.1-1, the Basic Profile column, applied to the data set and every nested sequence item:

- **X** (remove): the attributes in ``REMOVE`` (other patient ids and names, address, telephone,
  age, size, weight, institution and department, referring/performing/reading physicians,
  operators, station, device serial number, descriptions and comments, admission and request
  attributes, the series/acquisition/instance dates and times, …);
- **Z** (empty): the Type 2 attributes in ``EMPTY`` (PatientName, PatientID, PatientBirthDate,
  PatientSex, ReferringPhysicianName, StudyID, AccessionNumber, StudyDate, StudyTime,
  ContentDate, ContentTime), kept present with no value so the IOD stays valid;
- private attributes removed (Basic Profile: "private attributes … shall be removed");
- PatientIdentityRemoved (0012,0062) ``YES``, DeidentificationMethod (0012,0063) and its code
  sequence (0012,0064): DCM 113100 "Basic Application Confidentiality Profile" and 113110
  "Retain UIDs Option".

Dates: without the Retain Longitudinal Temporal Information option the profile removes or empties
them, and so does this. UIDs are **kept** (the Retain UIDs Option, PS3.15 E.3.9): the copy names the
same study, series and instance as the stored file and the FHIR ImagingStudy, so a researcher can
be told which image is which without a mapping table; this is said in the file itself. The pixel
data are not changed: text burned into the image (BurnedInAnnotation YES) is outside the Basic
Profile (it is the Clean Pixel Data option) and stays.
"""

from __future__ import annotations

import io
import warnings

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from fhir_api.exceptions import UnprocessableEntity

# Table E.1-1 "X" (and X/Z, X/D … taken as X) attributes of the Basic Profile.
REMOVE = (
    "AcquisitionComments",
    "AcquisitionDate",
    "AcquisitionDateTime",
    "AcquisitionTime",
    "ActualHumanPerformersSequence",
    "AdditionalPatientHistory",
    "AdmissionID",
    "AdmittingDate",
    "AdmittingDiagnosesCodeSequence",
    "AdmittingDiagnosesDescription",
    "AdmittingTime",
    "Allergies",
    "BranchOfService",
    "ConsultingPhysicianName",
    "ContentSequence",
    "CountryOfResidence",
    "CurrentPatientLocation",
    "CurveDate",
    "CurveTime",
    "DerivationDescription",
    "DeviceSerialNumber",
    "EthnicGroup",
    "FrameComments",
    "HumanPerformerName",
    "HumanPerformerOrganization",
    "IdentifyingComments",
    "ImageComments",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "InstitutionAddress",
    "InstitutionCodeSequence",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "InsurancePlanIdentification",
    "IssuerOfAdmissionID",
    "IssuerOfPatientID",
    "LastMenstrualDate",
    "MedicalAlerts",
    "MedicalRecordLocator",
    "MilitaryRank",
    "NameOfPhysiciansReadingStudy",
    "OperatorIdentificationSequence",
    "OperatorsName",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "OverlayDate",
    "OverlayTime",
    "PatientAddress",
    "PatientAge",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientComments",
    "PatientInsurancePlanCodeSequence",
    "PatientMotherBirthName",
    "PatientReligiousPreference",
    "PatientSize",
    "PatientState",
    "PatientTelephoneNumbers",
    "PatientWeight",
    "PerformedLocation",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformingPhysicianIdentificationSequence",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence",
    "ProtocolName",
    "ReasonForStudy",
    "ReferencedPatientAliasSequence",
    "ReferencedPatientSequence",
    "ReferencedPerformedProcedureStepSequence",
    "ReferencedStudySequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence",
    "RequestAttributesSequence",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "RequestingPhysician",
    "RequestingService",
    "ResponsibleOrganization",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepID",
    "SeriesDate",
    "SeriesDescription",
    "SeriesTime",
    "ServiceEpisodeDescription",
    "ServiceEpisodeID",
    "SmokingStatus",
    "SpecialNeeds",
    "StationName",
    "StudyComments",
    "StudyDescription",
    "TextComments",
    "TextString",
    "Occupation",
)

# Table E.1-1 "Z" attributes: present, emptied.
EMPTY = (
    "AccessionNumber",
    "ContentCreatorName",
    "ContentDate",
    "ContentTime",
    "PatientBirthDate",
    "PatientID",
    "PatientName",
    "PatientSex",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyID",
    "StudyTime",
)

# DeidentificationMethod is LO (64 characters at most a value): one value per part of the method.
METHOD = ["DICOM PS3.15 Annex E Basic Profile (CloudDTH)", "Retain UIDs Option"]
DCM = "DCM"


def _method_codes() -> Sequence:
    codes = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113110", "Retain UIDs Option"),
    ):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = DCM
        item.CodeMeaning = meaning
        codes.append(item)
    return Sequence(codes)


def _clean(dataset: Dataset) -> None:
    dataset.remove_private_tags()
    for keyword in REMOVE:
        if keyword in dataset:
            delattr(dataset, keyword)
    for keyword in EMPTY:
        if keyword in dataset:
            dataset[keyword].value = None
    for element in list(dataset):
        if element.VR == "SQ" and element.value is not None:
            for item in element.value:
                _clean(item)


def deidentify_dataset(dataset: Dataset) -> Dataset:
    """Apply the Basic Profile to ``dataset`` in place and return it."""
    _clean(dataset)
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = METHOD
    dataset.DeidentificationMethodCodeSequence = _method_codes()
    return dataset


def deidentified_copy(data: bytes) -> bytes:
    """A de-identified DICOM Part 10 file made from the stored file ``data``.

    Raises ``UnprocessableEntity`` (422) when the file cannot be written again once cleaned (a
    value pydicom read but cannot encode): the stored file is never sent in its place.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data))
            deidentify_dataset(dataset)
            out = io.BytesIO()
            dataset.save_as(out, enforce_file_format=True)
    except Exception as exc:  # pydicom raises many types for values it cannot encode
        raise UnprocessableEntity(
            f"This instance cannot be de-identified: {type(exc).__name__}: {exc}"
        ) from None
    return out.getvalue()
