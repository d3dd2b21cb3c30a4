"""Load face images for the VAE (``latent.vae``): a folder or a zip of JPEG/PNG files -> uint8 (N, 64, 64, 3).

An ``.npz`` holding a uint8 array ``images`` (N, H, W[, 3]) is accepted too (the Olivetti fixture).
Every image is centre-cropped to a square and resized to 64×64 with PIL (bicubic), so the official
CelebA ``img_align_celeba`` folder (178×218) works as well as the project's pre-cropped 64×64 zip.
Greyscale / palette / RGBA images become 3-channel RGB. Unreadable files are skipped and counted;
a source with no readable image is a ``ValueError``. Files are read in sorted name order, so the
result (and a ``max_images`` prefix of it) is deterministic.

Bounds: at most ``MAX_IMAGES`` images (17,476 CelebA crops are 215 MB as uint8), each file at most
``MAX_FILE_BYTES`` bytes and ``Image.MAX_IMAGE_PIXELS`` pixels (PIL's decompression-bomb guard).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from opmerge_core.basics.validation import check_int

SIZE = 64                       # side of the square images the VAE works on
EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_IMAGES = 250_000            # ≥ full CelebA (202,599); 250k × 12 KB = 3 GB as uint8
MAX_FILE_BYTES = 20_000_000     # one image file larger than this is skipped as unreadable
LABEL_PX = 14                   # label text height in the labelled face grids
LABEL_PAD = 4                   # pixels of white before and after a label


@dataclass(frozen=True)
class ImageSet:
    """Decoded images and how many files were skipped."""

    images: np.ndarray          # uint8 (N, 64, 64, 3)
    names: list[str]            # file name of each image (same order)
    skipped: int                # files with an image extension that could not be decoded


def to_square_rgb(img: Image.Image, size: int = SIZE) -> np.ndarray:
    """Centre-crop to a square, convert to RGB and resize to ``size``×``size`` -> uint8 (size, size, 3)."""
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(EXTENSIONS)


def _iter_sources(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """(name, raw bytes or None if too large/unreadable) for each image file, sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_image_name(p.name))
        for p in files:
            try:
                data = p.read_bytes() if p.stat().st_size <= MAX_FILE_BYTES else None
            except OSError:
                data = None
            yield str(p.relative_to(path)), data
        return
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"cannot open {path} as a zip of images ({exc})") from None
    with zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir() and _is_image_name(i.filename)),
                       key=lambda i: i.filename)
        for info in infos:
            try:
                data = zf.read(info) if info.file_size <= MAX_FILE_BYTES else None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError):
                data = None
            yield info.filename, data


def load_images(path: str | Path, max_images: int | None = None) -> ImageSet:
    """Read up to ``max_images`` images from a folder (recursively) or a ``.zip`` file.

    Raises ``ValueError`` if the path does not exist, is not a folder/zip, or holds no readable image.
    """
    path = Path(path)
    limit = MAX_IMAGES if max_images is None else check_int(max_images, "max_images", hi=MAX_IMAGES)
    if not path.exists():
        raise ValueError(f"image path {path} does not exist")
    if path.is_file() and path.suffix.lower() == ".npz":
        arr = load_npz_faces(path)[:limit]
        return ImageSet(arr, [f"{path.name}[{i}]" for i in range(len(arr))], 0)
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise ValueError(f"image path {path} must be a folder or a .zip of jpg/png images")
    arrays: list[np.ndarray] = []
    names: list[str] = []
    skipped = 0
    for name, data in _iter_sources(path):
        if len(arrays) >= limit:
            break
        if data is None:
            skipped += 1
            continue
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                arrays.append(to_square_rgb(img))
            names.append(name)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped += 1
    if not arrays:
        raise ValueError(f"no readable jpg/png images in {path} ({skipped} unreadable files skipped)")
    return ImageSet(np.stack(arrays), names, skipped)


def load_npz_faces(path: str | Path, key: str = "images") -> np.ndarray:
    """Greyscale/RGB uint8 faces in an ``.npz`` (e.g. the Olivetti fixture) -> (N, 64, 64, 3)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arr = np.asarray(f[key])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read array {key!r} from {path} ({exc})") from None
    if arr.size == 0:
        raise ValueError(f"{path}: no images in array {key!r}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{path}: expected images of shape (N,H,W) or (N,H,W,3), got {arr.shape}")
    if arr.shape[1:3] != (SIZE, SIZE):
        arr = np.stack([to_square_rgb(Image.fromarray(a.astype(np.uint8))) for a in arr])
    return arr.astype(np.uint8)


def enlarge(image: Image.Image, scale: int) -> Image.Image:
    """``image`` scaled by an integer factor, nearest neighbour (no smoothing invented)."""
    if scale == 1:
        return image
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def labelled_grid(rows: Sequence[tuple[str, np.ndarray]], label_width: int) -> Image.Image:
    """One row of uint8 tiles (n, h, w, 3) per ``(label, tiles)``, the label written in a white
    margin on the left (the face grids of the CelebA, SFD and Theory vs practice pages): at least
    ``label_width`` pixels, wider when a label needs it (a label never runs into the faces)."""
    n, h, w = rows[0][1].shape[:3]
    font = ImageFont.load_default(size=LABEL_PX)       # Pillow's scalable font: readable spaces
    widest = max(font.getlength(label) for label, _ in rows)
    label_width = max(label_width, int(widest) + 2 * LABEL_PAD)
    grid = Image.new("RGB", (label_width + n * w, len(rows) * h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, (label, tiles) in enumerate(rows):
        draw.text((LABEL_PAD, r * h + h // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        for c in range(min(n, len(tiles))):
            grid.paste(Image.fromarray(tiles[c]), (label_width + c * w, r * h))
    return grid
