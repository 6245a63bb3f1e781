"""Decoding real files with data/image.c, against PIL's Image.open(...).convert("RGB") (what
torchvision's ImageFolder loader returns). Fixtures are made at test time in a temp folder
with PIL and ImageMagick from the shipped photos.

Tolerance: JPEG pixels must be identical to PIL's (both run libjpeg-turbo with the default
accurate integer IDCT and fancy upsampling, so any difference means a wrong colour path);
PNG is lossless and must be identical.
"""
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from data_tools import mini_images, run

PHOTO = mini_images()[5]


def c_decode(tmp_path, path):
    out = os.path.join(tmp_path, "dec.bin")
    p = run("augment_tool", "decode", path, out, check=False)
    if p.returncode != 0:
        return None, p.stderr
    h, w = map(int, p.stdout.split())
    return np.fromfile(out, dtype=np.uint8).reshape(h, w, 3), ""


def pil_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def assert_same_as_pil(tmp_path, path):
    got, err = c_decode(tmp_path, path)
    assert got is not None, err
    want = pil_rgb(path)
    assert got.shape == want.shape
    assert np.array_equal(got, want), int(np.abs(got.astype(int) - want).max())
    return got


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTO).convert("RGB")


def test_shipped_jpegs_match_pil(tmp_path):
    paths = mini_images(every=7)
    gray = [p for p in mini_images() if Image.open(p).mode == "L"][:2]
    assert gray, "the mini set ships grayscale JPEGs"
    for p in paths + gray:
        assert_same_as_pil(tmp_path, p)


def test_grayscale_jpeg(tmp_path, photo):
    path = str(tmp_path / "gray.jpg")
    photo.convert("L").save(path, quality=90)
    got = assert_same_as_pil(tmp_path, path)
    assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])


def test_cmyk_jpeg(tmp_path, photo):
    path = str(tmp_path / "cmyk.jpg")
    photo.convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    got = assert_same_as_pil(tmp_path, path)
    # and it is still the photo (not inverted): close to the original RGB
    assert np.abs(got.astype(int) - np.asarray(photo)).mean() < 8


def test_cmyk_jpeg_from_imagemagick(tmp_path):
    path = str(tmp_path / "im_cmyk.jpg")
    subprocess.run(["convert", PHOTO, "-colorspace", "CMYK", path], check=True)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    assert_same_as_pil(tmp_path, path)


def test_progressive_jpeg(tmp_path, photo):
    path = str(tmp_path / "prog.jpg")
    photo.save(path, quality=85, progressive=True)
    with open(path, "rb") as f:
        assert b"\xff\xc2" in f.read()  # SOF2: progressive
    assert_same_as_pil(tmp_path, path)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "L", "1", "RGB"])
def test_png_modes(tmp_path, photo, mode):
    path = str(tmp_path / f"{mode}.png")
    im = photo
    if mode == "P":
        im = photo.convert("P", palette=Image.ADAPTIVE, colors=50)
        im.info["transparency"] = 3  # a transparent palette entry is ignored, as by PIL
        im.save(path, transparency=3)
    elif mode in ("RGBA", "LA"):
        im = photo.convert(mode)
        alpha = Image.linear_gradient("L").resize(photo.size)
        im.putalpha(alpha)  # varying alpha: it must be dropped, not composited
        im.save(path)
    else:
        photo.convert(mode).save(path)
    assert_same_as_pil(tmp_path, path)


def test_png_16bit_rgb_and_interlaced(tmp_path):
    path16 = str(tmp_path / "rgb16.png")
    subprocess.run(["convert", PHOTO, "-depth", "16", "-define", "png:bit-depth=16", path16],
                   check=True)
    with open(path16, "rb") as f:
        assert f.read()[24] == 16  # IHDR bit depth
    assert_same_as_pil(tmp_path, path16)
    path_i = str(tmp_path / "interlaced.png")
    subprocess.run(["convert", PHOTO, "-interlace", "PNG", path_i], check=True)
    with open(path_i, "rb") as f:
        assert f.read()[28] == 1  # IHDR interlace method: Adam7
    assert_same_as_pil(tmp_path, path_i)


def test_png_16bit_gray(tmp_path):
    # PIL opens 16-bit gray as mode "I" and its convert("RGB") clips at 255 instead of
    # scaling, so the reference here is the high byte of each sample (what 16 -> 8 means).
    values = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 12 + 7).astype(np.uint16)
    path = str(tmp_path / "gray16.png")
    Image.fromarray(values, mode="I;16").save(path)
    got, err = c_decode(tmp_path, path)
    assert got is not None, err
    want = (values >> 8).astype(np.uint8)
    for c in range(3):
        assert np.array_equal(got[..., c], want)


def expect_error(tmp_path, path, text):
    got, err = c_decode(tmp_path, path)
    assert got is None
    assert text in err, err
    assert os.path.basename(path) in err  # the file is named


def test_truncated_jpeg(tmp_path):
    data = open(PHOTO, "rb").read()
    for frac in (0.5, 0.9):
        path = str(tmp_path / f"trunc{frac}.jpg")
        with open(path, "wb") as f:
            f.write(data[: int(len(data) * frac)])
        expect_error(tmp_path, path, "truncated or corrupt JPEG")


def test_truncated_png(tmp_path, photo):
    path = str(tmp_path / "full.png")
    photo.save(path)
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.png")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    expect_error(tmp_path, cut, "PNG")


def test_zero_byte_file(tmp_path):
    path = str(tmp_path / "empty.jpg")
    open(path, "wb").close()
    expect_error(tmp_path, path, "empty file")


def test_text_file_named_jpg(tmp_path):
    path = str(tmp_path / "notes.jpg")
    with open(path, "w") as f:
        f.write("this is not an image\n")
    expect_error(tmp_path, path, "not a JPEG or PNG")


def test_format_by_magic_not_extension(tmp_path):
    path = str(tmp_path / "really_a_jpeg.png")
    shutil.copy(PHOTO, path)
    assert_same_as_pil(tmp_path, path)


@pytest.mark.parametrize("kind", ["gray_trns", "rgb_trns", "palette_4bit"])
def test_png_transparency_chunks_and_low_bit_palettes(tmp_path, photo, kind):
    path = str(tmp_path / f"{kind}.png")
    if kind == "gray_trns":
        photo.convert("L").save(path, transparency=5)
    elif kind == "rgb_trns":
        photo.save(path, transparency=(1, 2, 3))
    else:
        photo.convert("P", palette=Image.ADAPTIVE, colors=16).save(path, bits=4)
    assert_same_as_pil(tmp_path, path)
