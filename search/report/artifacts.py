"""Read stored artifacts (grids, latent codes, prior samples) for the report, without TensorFlow."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from search.paths import OutsideFolder, artifact_file
from search.records.artifacts import GRID_LAYOUT, LATENT_LABELS, LATENT_Z_MEAN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ArtifactReader:
    """Reads artifacts by id from a filesystem artifact folder; a missing one reads as None.

    Reading never raises for a missing store or artifact: the report says what it could not
    find (`missing`) instead of failing, because a study may have been moved without them.
    An id that leads outside the folder (a path, or a symbolic link out of it) is never read:
    it is listed in `outside` and the report says so.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.available = directory is not None and directory.is_dir()
        self.missing: list[str] = []
        self.outside: list[str] = []

    def read(self, artifact_id: object) -> bytes | None:
        if not self.available or not isinstance(artifact_id, str) or not artifact_id:
            return None
        assert self.directory is not None
        try:
            path = artifact_file(self.directory, artifact_id)
            if path is not None:
                return path.read_bytes()
        except OutsideFolder:
            self.outside.append(artifact_id)
            return None
        except (ValueError, OSError):
            pass
        self.missing.append(artifact_id)
        return None

    def read_png(self, artifact_id: object) -> bytes | None:
        """The PNG's bytes when the whole image decodes; a truncated file (a full disk, a
        kill mid-copy) reads as missing, never as half a picture."""
        data = self.read(artifact_id)
        if data is None:
            return None
        try:
            if not data.startswith(PNG_SIGNATURE):
                raise ValueError("not a PNG")
            # WeasyPrint, once imported, sets PIL's process-wide LOAD_TRUNCATED_IMAGES, under
            # which half a PNG loads without a word: insist on the whole image here.
            tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            self.damaged(artifact_id)
            return None
        return data

    def damaged(self, artifact_id: object) -> None:
        """An artifact that is there but cannot be read whole (truncated, of another kind)."""
        self.missing.append(str(artifact_id))

    def read_latent(self, artifact_id: object) -> tuple[np.ndarray, np.ndarray] | None:
        """`(z_mean (n, k) float, labels (n,) int)` from a `latent` npz artifact, or None."""
        data = self.read(artifact_id)
        if data is None:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                z_mean = np.asarray(npz[LATENT_Z_MEAN], dtype=np.float64)
                labels = np.asarray(npz[LATENT_LABELS]).astype(np.int64)
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error):
            self.damaged(artifact_id)  # a truncated latent.npz: the section says it is missing
            return None
        if z_mean.ndim == 1:
            z_mean = z_mean[:, None]
        if z_mean.ndim != 2 or len(z_mean) != len(labels) or len(labels) == 0:
            return None
        finite = np.all(np.isfinite(z_mean), axis=1)
        return z_mean[finite], labels[finite]


def split_grid(png: bytes) -> tuple[bytes, bytes] | None:
    """Split a `grid` artifact (originals left, reconstructions right) into two PNGs.

    Returns None when the image is not the layout the grid is written in (`GRID_LAYOUT`: two
    mosaics and a gap between), in which case the caller shows the whole grid.
    """
    with Image.open(io.BytesIO(png)) as image:
        boxes = GRID_LAYOUT.halves(*image.size)
        if boxes is None:
            return None
        originals, reconstructions = boxes
        return _png(image.crop(originals)), _png(image.crop(reconstructions))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
