"""Item images: opening an :class:`~specbench.types.ImageRef` for an engine, and naming it for caches.

Adapters only *point* at images (a slice's file, or the bytes a hub record carried); they are
decoded here, when an engine runs the item, so a missing, truncated or non-image file fails that
one item with a one-line reason (:class:`ImageError`) instead of the whole load.  PIL only:
torchvision is not used (it breaks vLLM's install here), and PIL is imported on first use so
importing the data layer stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from specbench.types import ImageRef

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["ImageError", "hub_image", "image_digest", "open_image", "slice_image"]


class ImageError(ValueError):
    """An item's image cannot be used; the message is one line naming the image and the reason."""


def _fail(ref: ImageRef, reason: str) -> ImageError:
    where = f" ({ref.path})" if ref.path and ref.path != ref.name else ""
    return ImageError(f"image {ref.name}{where}: {' '.join(reason.split())}")


def _encoded(ref: ImageRef) -> bytes:
    """The image's encoded bytes (the record's, or the file's)."""
    if ref.data is not None:
        return ref.data
    if not ref.path:
        raise _fail(ref, "neither a file path nor image bytes")
    try:
        with open(ref.path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise _fail(ref, "file not found") from None
    except OSError as exc:
        raise _fail(ref, f"cannot read the file ({exc.strerror or exc})") from None


_STRICT = threading.Lock()


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """PIL's module-wide ``ImageFile.LOAD_TRUNCATED_IMAGES`` off while we decode: libraries set it
    on at import (lmms-eval's api/task.py does), and PIL then pads a truncated file with grey, so a
    broken image would be scored silently instead of failing its item."""
    from PIL import ImageFile

    with _STRICT:
        saved, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved


def open_image(ref: ImageRef) -> Image.Image:
    """The image, fully decoded, as RGB (what VLM processors take).

    ``load()`` decodes every pixel now, so a truncated file fails here rather than inside the
    engine's processor; any failure is an :class:`ImageError` saying which image and why.
    """
    from PIL import Image, UnidentifiedImageError

    data = _encoded(ref)
    if not data:
        raise _fail(ref, "empty file (0 bytes)")
    try:
        with _strict_decoding(), Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except UnidentifiedImageError:
        raise _fail(ref, f"not an image (PIL cannot identify {len(data)} bytes starting {data[:8]!r})") from None
    except Image.DecompressionBombError as exc:
        raise _fail(ref, f"too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's ways of saying "corrupt"
        raise _fail(ref, f"truncated or corrupt image ({exc})") from None


def image_digest(ref: ImageRef) -> str:
    """First 16 hex digits of the sha256 of the encoded bytes: the image's part of a cache key."""
    return hashlib.sha256(_encoded(ref)).hexdigest()[:16]


# -- what adapters build -------------------------------------------------------------------------
def slice_image(rel: str) -> ImageRef:
    """An offline slice's image: ``rel`` is relative to the slices folder (what the table shows)."""
    from specbench.data.loading import SLICES_DIR  # lazily: loading imports the adapters that call this

    return ImageRef(name=rel, path=str(SLICES_DIR / rel))


_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"RIFF", ".webp"))


def hub_image(value: Any, default_stem: str) -> ImageRef | None:
    """A hub record's image cell as an ImageRef (None when the record has no image).

    ``value`` is what ``datasets.Image(decode=False)`` gives, ``{"bytes", "path"}`` (the loader
    casts image columns so), or a path string; a decoded PIL image (someone else's
    ``load_dataset``) is re-encoded as PNG, lossless.  The name is the record's file name, else
    ``default_stem`` plus the extension the bytes' signature says.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return ImageRef(name=os.path.basename(value) or default_stem, path=value)
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
    elif hasattr(value, "save"):  # PIL.Image.Image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        data, path = buf.getvalue(), None
    else:
        raise TypeError(f"image field of {default_stem}: expected {{'bytes', 'path'}}, a path or a PIL image, "
                        f"got {type(value).__name__}")
    if data is None and not path:
        return None
    ext = next((e for magic, e in _MAGIC if data and data.startswith(magic)), ".png")
    name = os.path.basename(path) if path else f"{default_stem}{ext}"
    return ImageRef(name=name, data=data) if data is not None else ImageRef(name=name, path=path)
