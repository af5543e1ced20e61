"""Previews of DICOM files: what a clinician sees of each kind of instance pydicom ships.

CT with its window (PS3.3 C.11.2.1.2.1), CT without one (min–max), MR, MONOCHROME1 (inverted), a
multi-frame file (first frame), RGB, YBR and palette colour, compressed files with and without an
installed decoder, and instances with no pixel data (ECG waveform, structured report).
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import apply_modality_lut

from imaging.preview import PreviewUnavailable, preview_state, render_png


def read(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file(name, download=False))


def png_pixels(png: bytes) -> tuple[str, np.ndarray]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    return image.mode, np.asarray(image)


def test_ct_window_maps_the_window_edges_to_black_and_white():
    ds = read("dicomdirtests/98892001/CT5N/2062")
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    hounsfield = apply_modality_lut(ds.pixel_array, ds)

    mode, grey = png_pixels(render_png(ds))

    assert mode == "L" and grey.shape == hounsfield.shape
    # Window 40/400: at or below -160.5 HU is black, above 239.5 HU white (linear VOI function).
    assert (grey[hounsfield <= -160.5] == 0).all()
    assert (grey[hounsfield > 239.5] == 255).all()
    # Inside it, linear: y = ((x - 39.5) / 399 + 0.5) * 255, so 0 HU (water) is grey 102.
    inside = (hounsfield > -160) & (hounsfield < 239)
    assert inside.sum() > 100
    expected = np.rint(np.clip((hounsfield - 39.5) / 399 + 0.5, 0, 1) * 255)
    assert np.abs(grey.astype(int) - expected.astype(int)).max() <= 1
    water = hounsfield == 0
    assert water.any() and (grey[water] == 102).all()


def test_ct_window_narrower_than_the_data_differs_from_min_max_scaling():
    ds = read("dicomdirtests/98892001/CT5N/2062")
    hounsfield = apply_modality_lut(ds.pixel_array, ds).astype(float)
    min_max = np.rint((hounsfield - hounsfield.min()) / np.ptp(hounsfield) * 255)

    _, windowed = png_pixels(render_png(ds))

    assert np.ptp(hounsfield) > float(ds.WindowWidth)
    assert not np.array_equal(windowed, min_max.astype(np.uint8))
    # A window narrower than the data saturates more pixels at both ends than min-max does.
    assert (windowed == 0).sum() + (windowed == 255).sum() > (min_max == 0).sum() + (
        min_max == 255
    ).sum()


def test_ct_without_a_window_is_scaled_from_its_minimum_to_its_maximum():
    ds = read("CT_small.dcm")
    assert "WindowCenter" not in ds
    hounsfield = apply_modality_lut(ds.pixel_array, ds)

    _, grey = png_pixels(render_png(ds))

    assert grey[hounsfield == hounsfield.min()].max() == 0
    assert grey[hounsfield == hounsfield.max()].min() == 255


def test_mr_is_drawn_through_its_window_and_compressed_copies_look_the_same():
    plain = render_png(read("MR_small.dcm"))
    mode, grey = png_pixels(plain)
    assert mode == "L" and grey.shape == (64, 64)
    # MR_small window 600/1600: everything above 1399.5 is white; the brightest pixels exceed it.
    stored = read("MR_small.dcm").pixel_array
    assert (grey[stored > 1399.5] == 255).all() and (stored > 1399.5).any()
    for copy in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm"):
        assert np.array_equal(png_pixels(render_png(read(copy)))[1], grey), copy


def test_monochrome1_is_inverted():
    ds = read("dicomdirtests/77654033/CR1/6154")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    values = apply_modality_lut(ds.pixel_array, ds)

    _, grey = png_pixels(render_png(ds))

    # Minimum is white in MONOCHROME1: the lowest values are drawn brightest.
    assert grey[values == values.min()].min() > grey[values == values.max()].max()


def test_multi_frame_shows_its_first_frame_and_another_on_request():
    ds = read("SC_rgb_rle_2frame.dcm")
    assert int(ds.NumberOfFrames) == 2
    frames = ds.pixel_array

    _, first = png_pixels(render_png(ds))
    _, second = png_pixels(render_png(ds, frame=1))

    assert np.array_equal(first, frames[0])
    assert np.array_equal(second, frames[1])
    with pytest.raises(PreviewUnavailable, match="frame 2 does not exist"):
        render_png(ds, frame=2)


def test_rgb_ybr_and_palette_colour_keep_their_colours():
    rgb = read("examples_rgb_color.dcm")
    mode, pixels = png_pixels(render_png(rgb))
    assert mode == "RGB" and np.array_equal(pixels, rgb.pixel_array)

    # YBR_FULL_422 JPEG, 30 frames: the first frame, converted to RGB.
    ybr = read("examples_ybr_color.dcm")
    mode, pixels = png_pixels(render_png(ybr))
    assert mode == "RGB" and pixels.shape == (240, 320, 3)
    assert np.array_equal(pixels, pydicom.pixels.pixel_array(ybr, index=0))

    palette = read("examples_palette.dcm")
    mode, pixels = png_pixels(render_png(palette))
    assert mode == "RGB" and pixels.shape == (*palette.pixel_array.shape, 3)
    # Each index is drawn as its red, green and blue table entries (16-bit entries, top 8 bits).
    index = palette.pixel_array
    assert palette.RedPaletteColorLookupTableDescriptor[2] == 16
    red_table = np.frombuffer(palette.RedPaletteColorLookupTableData, dtype="<u2") >> 8
    assert np.array_equal(pixels[..., 0], red_table[index].astype(np.uint8))


def test_thumbnail_size_bounds_the_longest_side():
    _, pixels = png_pixels(render_png(read("examples_palette.dcm"), size=128))
    assert max(pixels.shape[:2]) == 128 and pixels.shape[:2] == (56, 128)


def test_compressed_file_that_an_installed_decoder_handles_is_ok():
    ds = read("693_J2KI.dcm")  # CT, JPEG 2000, decoded by Pillow's OpenJPEG
    assert preview_state(ds) == ("ok", "")
    mode, grey = png_pixels(render_png(ds))
    assert mode == "L" and grey.shape == (512, 512)


def test_compressed_file_without_a_decoder_is_unavailable_with_the_syntax_named():
    ds = read("MR_small_jpeg_ls_lossless.dcm")
    syntax = ds.file_meta.TransferSyntaxUID
    # No JPEG-LS decoder (pylibjpeg, pyjpegls, gdcm) is installed in this project.
    assert not get_decoder(syntax).is_available

    state, note = preview_state(ds)

    assert state == "unavailable"
    assert "JPEG-LS Lossless" in note and str(syntax) in note
    with pytest.raises(PreviewUnavailable) as raised:
        render_png(ds)
    assert raised.value.reason == note


def test_12_bit_jpeg_extended_is_unavailable_because_pillow_decodes_only_8_bits():
    ds = read("JPEG-lossy.dcm")
    assert int(ds.BitsStored) == 12
    state, note = preview_state(ds)
    assert state == "unavailable"
    assert "12-bit" in note and "JPEG Extended" in note


def test_ecg_waveform_and_structured_report_have_no_preview():
    ecg = read("waveform_ecg.dcm")
    assert preview_state(ecg) == ("none", "no pixel data: 12-lead ECG Waveform Storage")
    with pytest.raises(PreviewUnavailable, match="ECG Waveform"):
        render_png(ecg)
    assert preview_state(read("test-SR.dcm")) == (
        "none",
        "no pixel data: Comprehensive SR Storage",
    )


def test_truncated_pixel_data_raises_preview_unavailable_not_an_error():
    ds = read("MR_truncated.dcm")
    with pytest.raises(PreviewUnavailable, match="could not be decoded"):
        render_png(ds)


def test_preview_state_does_not_decode_the_pixels():
    # Without its pixel data being decoded a huge multi-frame file is judged in no time:
    # preview_state must not touch .pixel_array (which would fill _pixel_array).
    ds = read("examples_ybr_color.dcm")
    assert preview_state(ds) == ("ok", "")
    assert getattr(ds, "_pixel_array", None) is None


def test_voi_lut_sequence_is_used_when_there_is_no_window():
    from pydicom.dataset import Dataset

    ds = read("MR_small.dcm")
    del ds.WindowCenter, ds.WindowWidth
    stored = ds.pixel_array.astype(int)
    first, entries = int(stored.min()), 1000  # the brightest values lie past the LUT's end
    assert stored.max() - first > entries
    # A square-root curve: not what min-max scaling of the stored values would give.
    lut = Dataset()
    lut.LUTDescriptor = [entries, first, 16]
    lut.LUTData = [int(np.sqrt(i) * 100) for i in range(entries)]
    ds.VOILUTSequence = [lut]

    _, grey = png_pixels(render_png(ds))

    looked_up = np.asarray(lut.LUTData)[np.clip(stored - first, 0, entries - 1)]
    expected = np.rint((looked_up - looked_up.min()) / np.ptp(looked_up) * 255).astype(np.uint8)
    assert np.ptp(looked_up) > 0
    assert np.array_equal(grey, expected)
    assert (grey[stored >= first + entries - 1] == 255).all()


def test_sigmoid_and_linear_exact_voi_functions_put_the_centre_at_mid_grey():
    ds = read("MR_small.dcm")
    stored = ds.pixel_array
    centre = int(np.median(stored))
    for function in ("SIGMOID", "LINEAR_EXACT"):
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = centre, 400, function
        _, grey = png_pixels(render_png(ds))
        assert (grey[stored == centre] == 128).all(), function
    # LINEAR_EXACT: exactly centre ± width/2 are black and white.
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = centre, 400, "LINEAR_EXACT"
    _, grey = png_pixels(render_png(ds))
    assert (grey[stored <= centre - 200] == 0).all() and (grey[stored >= centre + 200] == 255).all()
