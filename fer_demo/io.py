"""Reading user images: any common format in, one upright 8-bit RGB ``PIL.Image`` out.

Everything that comes from a user passes through ``load_image``. It refuses what it cannot
serve with an ``InvalidImageError`` whose message says what was wrong and what is accepted,
and normalises what it can: EXIF orientation, transparency, CMYK, 16-bit and palette images.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_demo.limits import MAX_PIXELS, MAX_UPLOAD_BYTES, MIN_SIDE, megabytes

# Let PIL refuse decompression bombs from the header as well (it raises past 2x this and
# warns past 1x; ``load_image`` refuses anything past 1x itself with a clear message).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageSource = Union[str, Path, bytes, bytearray, memoryview, Image.Image, np.ndarray]

# Background that transparent pixels are composited on.
BACKGROUND = (255, 255, 255)

# Errors PIL raises on corrupt or truncated data, depending on the format and where the data
# ends: "image file is truncated" (OSError), "broken PNG file" (SyntaxError/OSError),
# premature EOF (EOFError), bad header fields (ValueError, struct.error), short buffers.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, IndexError, Image.DecompressionBombError)

ACCEPTED = "JPEG, PNG, GIF, BMP, WebP or TIFF"


class InvalidImageError(ValueError):
    """The input is not an image this package can use (message says why and what is accepted)."""


def checked_size(path: Path, max_bytes: int, error: type[ValueError], name: str | None = None) -> int:
    """The size of the file at ``path``; ``error`` (saying which file, as ``name``) if it is missing,
    unreadable, not a file or larger than ``max_bytes``."""
    name = str(path) if name is None else name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except OSError as e:
        raise error(f"{name}: cannot be read ({e.strerror or e})") from None
    if not path.is_file():
        raise error(f"{name}: not a file")
    if size > max_bytes:
        raise error(f"{name}: file too large ({megabytes(size)}); at most {megabytes(max_bytes)} is accepted")
    return size


def too_large_message(width: int, height: int) -> str:
    """The one message for an image with more than ``MAX_PIXELS`` pixels, however it was found out."""
    return (f"image too large: {width}x{height} = {width * height / 1e6:.1f} megapixels; "
            f"at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted")


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(too_large_message(width, height))
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"image too small: {width}x{height} px; both sides must be at least {MIN_SIDE} px"
        )


def read_bytes(src: str | Path) -> bytes:
    """A file's bytes, refused with ``InvalidImageError`` if missing, unreadable or over ``MAX_UPLOAD_BYTES``."""
    path = Path(src)
    checked_size(path, MAX_UPLOAD_BYTES, InvalidImageError)
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidImageError(f"{path}: cannot be read ({e.strerror or e})") from None


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) an image's header declares, read by PIL's format plugins without the
    decompression-bomb check that ``Image.open`` adds (and without decoding a pixel); None if no
    plugin reads it."""
    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None and not accept(prefix):
                continue
            return tuple(factory(io.BytesIO(data), "").size)
        except (*_DECODE_ERRORS, TypeError):
            continue
    return None


def _decode(data: bytes) -> Image.Image:
    if len(data) == 0:
        raise InvalidImageError(f"empty file (0 bytes); expected a {ACCEPTED} image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidImageError(
            f"file too large ({megabytes(len(data))}); at most {megabytes(MAX_UPLOAD_BYTES)} is accepted"
        )
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x MAX_IMAGE_PIXELS PIL only warns; _check_dimensions refuses.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImageError(f"not an image (or an unsupported format); expected {ACCEPTED}") from None
    except Image.DecompressionBombError:
        # Past 2x MAX_IMAGE_PIXELS PIL refuses from the header with its own words ("could be
        # decompression bomb DOS attack"): say it as for any other image that is too large.
        size = _declared_size(data)
        raise InvalidImageError(too_large_message(*size) if size else
                                f"image too large; at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted") from None
    except _DECODE_ERRORS as e:
        raise InvalidImageError(f"corrupt image header ({e}); expected a valid {ACCEPTED} file") from None
    _check_dimensions(*image.size)
    try:
        image.load()  # decode now: truncated or corrupt pixel data fails here, not later
    except _DECODE_ERRORS as e:
        raise InvalidImageError(
            f"truncated or corrupt {image.format or 'image'} data ({e}); upload the complete file"
        ) from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise InvalidImageError(
            f"image array has dtype {array.dtype}; expected uint8 (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        mode = "L"
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        mode = "RGB" if array.shape[2] == 3 else "RGBA"
    else:
        raise InvalidImageError(
            f"image array has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    _check_dimensions(array.shape[1], array.shape[0])
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit ("I;16*"), 32-bit integer ("I") or float ("F") grayscale -> 8-bit "L"."""
    arr = np.asarray(image)
    if image.mode == "F":
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if top <= 1.0 else 1.0  # float images are [0, 1] or [0, 255]
        arr = np.nan_to_num(arr) * scale
    elif image.mode.startswith("I;16") or int(arr.max(initial=0)) > 255:
        # 16-bit data (PNG, TIFF) spans 0..65535: 65535 / 257 = 255 exactly.
        arr = arr.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _high_bit_depth_to_l(image).convert("RGB")
    # "L", "1", "P" (opaque), "CMYK", "YCbCr", "LAB", "HSV": PIL's conversions.
    try:
        return image.convert("RGB")
    except ValueError as e:
        raise InvalidImageError(f"unsupported image mode {mode!r} ({e}); expected an RGB, grayscale, "
                                "palette, CMYK or 16-bit image") from None


def load_image(src: ImageSource) -> Image.Image:
    """Load an image from a path, encoded bytes, a ``PIL.Image`` or a uint8 array.

    Args:
        src: a file path (``str``/``Path``), the file's bytes, a ``PIL.Image`` (any mode), or
            a uint8 ``np.ndarray`` of shape (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA.

    Returns:
        A new, fully decoded ``PIL.Image`` in mode "RGB" (8 bits per channel), rotated upright
        according to its EXIF orientation tag. Transparent pixels are composited on white,
        CMYK/16-bit/grayscale/palette images converted, and only the first frame of an
        animated image is kept. The size is the upright size, at least ``MIN_SIDE`` px per
        side and at most ``MAX_PIXELS`` pixels.

    Raises:
        InvalidImageError: not an image, empty, truncated or corrupt, too large (bytes or
            pixels, see ``fer_demo.limits``) or too small, or an unsupported array/mode.
        TypeError: ``src`` is none of the accepted types.
    """
    if isinstance(src, (str, Path)):
        image = _decode(read_bytes(src))
    elif isinstance(src, (bytes, bytearray, memoryview)):
        image = _decode(bytes(src))
    elif isinstance(src, Image.Image):
        _check_dimensions(*src.size)
        try:
            src.load()
        except _DECODE_ERRORS as e:
            raise InvalidImageError(f"truncated or corrupt image data ({e}); upload the complete file") from None
        image = src
    elif isinstance(src, np.ndarray):
        image = _from_array(src)
    else:
        raise TypeError(
            f"load_image accepts a path, bytes, a PIL.Image or a uint8 numpy array, not {type(src).__name__}"
        )
    if getattr(image, "n_frames", 1) > 1 and image.tell() != 0:
        image.seek(0)
        image.load()
    try:
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        upright = image  # unreadable EXIF block: keep the pixels as stored
    rgb = _to_rgb(upright)
    if rgb is src:
        rgb = rgb.copy()  # never hand back (and let callers mutate) the caller's object
    _check_dimensions(*rgb.size)
    return rgb
