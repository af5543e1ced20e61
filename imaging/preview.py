"""Previews of DICOM instances: whether one can be drawn, and the first frame as a PNG.

What a preview shows follows the DICOM grayscale pipeline (PS3.4 N.2, "Grayscale Transformations";
https://dicom.nema.org/medical/dicom/current/output/chtml/part04/sect_N.2.html):

1. the Modality LUT (PS3.3 C.11.1): Rescale Slope/Intercept, or a Modality LUT Sequence, turns
   stored values into modality units (Hounsfield units for CT);
2. the VOI LUT (PS3.3 C.11.2): the file's first Window Center/Width with its VOI LUT Function
   (LINEAR, LINEAR_EXACT, SIGMOID; PS3.3 C.11.2.1.2), else its VOI LUT Sequence, else the image's
   own minimum and maximum, maps them to the 256 grey levels of the PNG;
3. MONOCHROME1 (PS3.3 C.7.6.3.1.2: minimum is white) is inverted for display.

Colour images (RGB, YBR_* converted to RGB by pydicom, PALETTE COLOR through its lookup tables,
PS3.3 C.7.6.3.1.5) keep their colours, scaled to 8 bits. A multi-frame instance shows one frame
(the first by default), decoded alone. The FHIR side (ImagingStudy,
https://hl7.org/fhir/R4B/imagingstudy.html) does not describe previews; the DICOMweb rendered
resource (PS3.18 9.5 / 10.4.1.1.3) serves them.

``preview_state`` says cheaply, without decoding the pixels, whether a preview can be drawn here:
``none`` for an instance without pixel data (an ECG waveform, a structured report), ``unavailable``
when its pixel data are compressed in a transfer syntax no installed decoder handles, else
``ok``. ``render_png`` draws it, or raises ``PreviewUnavailable`` with the reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut

from . import png

if TYPE_CHECKING:
    from .models import DicomInstance

log = logging.getLogger(__name__)

PREVIEW_OK = "ok"
PREVIEW_UNAVAILABLE = "unavailable"
PREVIEW_NONE = "none"

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
COLOUR_PHOTOMETRICS = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}
IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")

# The transfer syntax of a file that came without one in its meta information, from the encoding
# it was actually read in (pydicom records it).
_ENCODINGS = {
    (True, True): dicom_uid.ImplicitVRLittleEndian,
    (False, True): dicom_uid.ExplicitVRLittleEndian,
    (False, False): dicom_uid.ExplicitVRBigEndian,
}


class PreviewUnavailable(Exception):
    """No preview can be drawn of this instance; ``reason`` says why, in words for a clinician."""

    def __init__(self, reason: str, *, decoding: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # True: the file's pixel data failed to decode or display (not a frame out of range).
        self.decoding = decoding


def transfer_syntax_of(dataset: Dataset) -> dicom_uid.UID | None:
    """The transfer syntax the dataset's pixel data are encoded in, or None when unknown."""
    meta = getattr(dataset, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax:
        return dicom_uid.UID(str(syntax))
    implicit_vr, little_endian = getattr(dataset, "original_encoding", (None, None))
    return _ENCODINGS.get((implicit_vr, little_endian))


def _syntax_label(syntax: dicom_uid.UID) -> str:
    name = syntax.name
    return f"{name} ({syntax})" if name != str(syntax) else str(syntax)


def _what_it_is(dataset: Dataset) -> str:
    meta = getattr(dataset, "file_meta", None)
    sop_class = dataset.get("SOPClassUID") or (
        meta.get("MediaStorageSOPClassUID") if meta is not None else None
    )
    if sop_class:
        name = dicom_uid.UID(str(sop_class)).name
        if name != str(sop_class):
            return name
    modality = str(dataset.get("Modality", "") or "")
    return f"a {modality} instance" if modality else "this instance"


def undecodable_reason(dataset: Dataset) -> str:
    """Why the pixel data of ``dataset`` cannot be decoded here, or "" when they can.

    Looks only at the transfer syntax, the image pixel attributes and the decoders installed
    (pydicom's ``pydicom.pixels`` decoder plugins); the pixels themselves are not decoded.
    """
    missing = [keyword for keyword in IMAGE_ATTRIBUTES if keyword not in dataset]
    if "PixelData" in dataset and missing:
        return f"pixel data without {', '.join(missing)}"
    syntax = transfer_syntax_of(dataset)
    if syntax is None:
        return "the file does not say which transfer syntax its pixel data are encoded in"
    if not syntax.is_compressed:
        return ""
    label = _syntax_label(syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:  # pydicom's answer for a syntax it has no decoder class for
        return f"no decoder exists here for the transfer syntax {label}"
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies)
        return f"no installed decoder for the transfer syntax {label}" + (
            f" (needs {needs})" if needs else ""
        )
    plugins = set(decoder.available_plugins)
    if plugins == {"pillow"}:
        bits_stored = int(dataset.get("BitsStored", 8) or 8)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        if syntax == dicom_uid.JPEGExtended12Bit and bits_stored != 8:
            return (
                f"no installed decoder for {bits_stored}-bit pixel data in the transfer syntax "
                f"{label} (Pillow decodes only 8-bit; needs pylibjpeg-libjpeg or gdcm)"
            )
        if syntax in (dicom_uid.JPEG2000, dicom_uid.JPEG2000Lossless) and (
            samples > 1 and bits_stored > 8
        ):
            return (
                f"no installed decoder for {bits_stored}-bit colour pixel data in the transfer "
                f"syntax {label} (Pillow decodes only 8-bit colour; needs pylibjpeg-openjpeg or gdcm)"
            )
    return ""


def preview_state(dataset: Dataset) -> tuple[str, str]:
    """``(state, note)``: "none" without pixel data, "unavailable" when undecodable here, else "ok".

    Cheap: reads attributes only, never decodes the pixel data, so it can run on every stored
    instance (the dataset may have been read with ``stop_before_pixels=False`` or the pixel data
    deferred).
    """
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        return PREVIEW_NONE, f"no pixel data: {_what_it_is(dataset)}"
    reason = undecodable_reason(dataset)
    if reason:
        return PREVIEW_UNAVAILABLE, reason
    return PREVIEW_OK, ""


def _first(value: Any) -> float:
    """The first of a possibly multi-valued DS attribute (Window Center/Width), as a float."""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0]
    return float(value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2: values mapped to 0..1 by the window (then scaled to 0..255)."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    # LINEAR (C.11.2.1.2.1): below c - 0.5 - (w-1)/2 is 0, above c - 0.5 + (w-1)/2 is 1.
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _min_max(values: np.ndarray) -> np.ndarray:
    low = float(np.min(values))
    high = float(np.max(values))
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return (values - low) / (high - low)


def _grey_levels(pixels: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Stored values → 8-bit grey levels: Modality LUT, VOI (window or LUT or min–max), MONOCHROME1."""
    values = pixels
    if "PixelData" in dataset:
        values = apply_modality_lut(pixels, dataset)
    values = np.asarray(values, dtype=np.float32)
    unit: np.ndarray | None = None
    center = dataset.get("WindowCenter")
    width = dataset.get("WindowWidth")
    if center is not None and width is not None and center != "" and width != "":
        try:
            c, w = _first(center), _first(width)
        except (TypeError, ValueError, IndexError):
            c, w = 0.0, 0.0
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        minimum_width = 0.0 if function in ("SIGMOID", "LINEAR_EXACT") else 1.0
        if w > minimum_width and np.isfinite(c) and np.isfinite(w):
            unit = _window(values, c, w, function)
    if unit is None and "VOILUTSequence" in dataset:
        try:
            # The LUT is indexed by the Modality LUT's output, whole numbers (PS3.3 C.11.2.1.1).
            looked_up = apply_voi_lut(np.rint(values).astype(np.int64), dataset)
            unit = _min_max(np.asarray(looked_up, dtype=np.float32))
        except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            log.info("VOI LUT Sequence not applied (%s); min-max scaling instead", exc)
    if unit is None:
        unit = _min_max(values)
    if str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        unit = 1.0 - unit
    return np.rint(unit * 255.0).astype(np.uint8)


def _colour_levels(pixels: np.ndarray, dataset: Dataset) -> np.ndarray:
    """RGB (or palette colour through its LUTs) → 8 bits per channel."""
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    bits = int(dataset.get("BitsStored", 8) or 8)
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
        descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
        bits = int(descriptor[2]) if descriptor else 16
        if bits == 16 and int(np.max(pixels, initial=0)) < 256:
            bits = 8  # some writers declare 16-bit entries but store 8-bit values
    if pixels.dtype == np.uint8 and bits <= 8:
        return pixels
    if pixels.dtype.kind == "u" and bits > 8:
        return np.minimum(pixels >> (bits - 8), 255).astype(np.uint8)
    return np.rint(_min_max(np.asarray(pixels, dtype=np.float32)) * 255.0).astype(np.uint8)


def _decode_frame(source: Any, frame: int, dataset: Dataset | None) -> tuple[np.ndarray, Dataset]:
    """One frame's pixels (only that frame decoded) and the dataset describing them."""
    out = dataset if dataset is not None else Dataset()
    try:
        if dataset is None:
            pixels = pixel_array(source, ds_out=out, index=frame)
        else:
            pixels = pixel_array(dataset, index=frame)
    except Exception as exc:  # pydicom raises many kinds for data it cannot decode
        raise PreviewUnavailable(
            f"the pixel data could not be decoded: {exc}", decoding=True
        ) from exc
    return pixels, out


def _frame_count(dataset: Dataset) -> int:
    try:
        return max(1, int(dataset.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _png(levels: np.ndarray, size: int | None) -> bytes:
    if size and max(levels.shape[:2]) > size:
        image = Image.fromarray(levels, "RGB" if levels.ndim == 3 else "L")
        image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        levels = np.asarray(image)
    return png.encode(levels)


def render_dataset(dataset: Dataset, *, frame: int = 0, size: int | None = None) -> bytes:
    """The ``frame``-th frame of a read dataset as a PNG (``size``: longest side, shrunk only)."""
    state, note = preview_state(dataset)
    if state != PREVIEW_OK:
        raise PreviewUnavailable(note)
    frames = _frame_count(dataset)
    if not 0 <= frame < frames:
        raise PreviewUnavailable(f"frame {frame} does not exist: the instance has {frames}")
    pixels, described = _decode_frame(None, frame, dataset)
    return _encode(pixels, described, size)


def _encode(pixels: np.ndarray, dataset: Dataset, size: int | None) -> bytes:
    if pixels.ndim == 3 and pixels.shape[-1] != 3:
        # A multi-frame array came back whole (one-frame decoders); keep the first.
        pixels = pixels[0]
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    try:
        if pixels.ndim == 3 or photometric in COLOUR_PHOTOMETRICS | {"PALETTE COLOR"}:
            levels = _colour_levels(pixels, dataset)
        else:
            levels = _grey_levels(pixels, dataset)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise PreviewUnavailable(
            f"the pixel data could not be displayed: {exc}", decoding=True
        ) from exc
    return _png(levels, size)


def render_png(
    instance_or_dataset: DicomInstance | Dataset, *, frame: int = 0, size: int | None = None
) -> bytes:
    """The first frame (or ``frame``) of an instance as a PNG, shrunk to ``size`` px if given.

    A stored ``DicomInstance`` is rendered once per (file, frame, size): the PNG is kept in the
    preview cache under the file's sha256 and served from there afterwards. A ``Dataset`` is
    rendered each time. Raises ``PreviewUnavailable`` with the reason when it cannot be drawn.
    """
    if isinstance(instance_or_dataset, Dataset):
        return render_dataset(instance_or_dataset, frame=frame, size=size)
    from . import preview_cache

    return preview_cache.cached_png(instance_or_dataset, frame=frame, size=size)


def render_stored(instance: DicomInstance, *, frame: int = 0, size: int | None = None) -> bytes:
    """Read a stored instance's file and render it (no cache; ``render_png`` caches)."""
    from .storage import open_instance

    if instance.preview == PREVIEW_NONE:
        raise PreviewUnavailable(instance.preview_note or "the instance has no pixel data")
    if instance.preview == PREVIEW_UNAVAILABLE:
        raise PreviewUnavailable(instance.preview_note or "the pixel data cannot be decoded here")
    try:
        handle = open_instance(instance)
    except OSError as exc:  # the storage is unreachable or lost the file: not the file's fault
        raise PreviewUnavailable(f"the stored file could not be opened: {exc}") from exc
    with handle:
        try:
            dataset = pydicom.dcmread(handle)
        except Exception as exc:  # a stored file pydicom cannot read again
            raise PreviewUnavailable(
                f"the stored file could not be read: {exc}", decoding=True
            ) from exc
        return render_dataset(dataset, frame=frame, size=size)
