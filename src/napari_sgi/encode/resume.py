"""The finished slices of a compression, kept in ``<output>.parts/`` until the file is assembled.

An interrupted run (Ctrl-C, kill -9, a dead worker) leaves its finished slices there, and the same
job run again fits only the missing ones. The folder is plain data, never code: anyone who can
write beside the output could plant files in it, so nothing in it is unpickled or executed, and
every part is verified before use. A part that fails (damaged, truncated, foreign, from another
job or another format) is ignored with a :class:`ResumePartWarning` and its slice fitted again.

Layout of the folder:

- ``job.json``: ``{"format": 1, "job": <fingerprint>}``, the job the parts belong to
  (:func:`job_fingerprint`); a folder of another job is cleared (only the names below).
- ``slice-<7-digit index>.part``, one per finished slice, written atomically::

      b"napari-sgi part\\n"                    16 bytes
      JSON length, CRC-32 of the JSON        2 x uint32, little-endian
      JSON (UTF-8)                           the slice, below
      section bytes                          in the order the JSON lists them

  The JSON: ``format`` (1), ``job`` (the fingerprint), ``slice`` (its index), ``blend`` (ramp
  width), ``mse`` and ``ssim`` (finite, in [0, 1] and [-1, 1]), and ``regions``: per region its
  ``core`` and ``box`` (as planned for this job), ``model`` (checked by
  :func:`napari_sgi.file.header.model_config_from_header`, its size that of the box) and
  ``sections``: ``name`` (the model sections, in file order), ``length`` and ``crc32``. The
  section bytes are the very bytes the `.sgi` file will hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_sgi import __version__
from napari_sgi.core.regions import Region
from napari_sgi.encode.slices import RegionResult, SliceResult
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.atomic import AtomicFile
from napari_sgi.file.header import MODEL_SECTIONS, model_config_from_header

if TYPE_CHECKING:
    from napari_sgi.core.image import ValueRange
    from napari_sgi.core.presets import FitConfig
    from napari_sgi.inputs import ImageSource

PART_FORMAT = 1
MAGIC = b"napari-sgi part\n"
_FRAME = struct.Struct("<II")  # JSON length, CRC-32 of the JSON
MAX_PART_JSON = 1 << 20
MAX_JOB_JSON = 1 << 16
_PART_NAME = re.compile(r"slice-(\d{7})\.part")
# Ours to delete: the job file, the parts, and the temporary files of interrupted writes.
_OWN_NAME = re.compile(r"job\.json|slice-\d{7}\.part|\.(job\.json|slice-\d{7}\.part)\..+\.tmp")


class ResumePartWarning(UserWarning):
    """A file in the resume folder was ignored (its slice is fitted again)."""


class PartError(ValueError):
    """A resume part that cannot be used; the message says why."""


def job_fingerprint(
    source: ImageSource,
    config: FitConfig,
    value_range: ValueRange,
    regions: tuple[int, int],
    warm_fraction: float | None,
) -> str:
    """SHA-256 of all that decides a job's slices: layout, fit, regions, range, encoder."""
    description = json.dumps(
        {
            "layout": source.to_header(),
            "fit": config.to_dict(),
            "regions": [*regions, warm_fraction],
            "range": [value_range.low, value_range.high],
            "encoder": __version__,
            "parts": PART_FORMAT,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(description.encode()).hexdigest()


def encode_part(result: SliceResult, index: int, job: str) -> bytes:
    """The bytes of slice ``index``'s part file (module docstring)."""
    regions, payload = [], []
    for region in result.regions:
        sections = [region.sections[name] for name in MODEL_SECTIONS]
        payload += sections
        regions.append(
            {
                **region.region.to_dict(),
                "model": region.model.to_dict(),
                "sections": [
                    {"name": name, "length": len(data), "crc32": zlib.crc32(data)}
                    for name, data in zip(MODEL_SECTIONS, sections, strict=True)
                ],
            }
        )
    text = json.dumps(
        {
            "format": PART_FORMAT,
            "job": job,
            "slice": index,
            "blend": result.blend,
            "mse": float(result.mse),
            "ssim": float(result.ssim),
            "regions": regions,
        },
        allow_nan=False,
        separators=(",", ":"),
    ).encode()
    return b"".join([MAGIC, _FRAME.pack(len(text), zlib.crc32(text)), text, *payload])


def decode_part(
    raw: bytes, *, index: int, job: str, regions: list[Region], blend: int, channels: int
) -> SliceResult:
    """Slice ``index`` from its part, checked against what this job expects; :class:`PartError`
    if anything differs (the part is then of no use, never harmful)."""
    start = len(MAGIC) + _FRAME.size
    _require(raw[: len(MAGIC)] == MAGIC and len(raw) >= start, "not a napari-sgi resume part")
    length, crc = _FRAME.unpack_from(raw, len(MAGIC))
    _require(length <= min(MAX_PART_JSON, len(raw) - start), "truncated or oversized description")
    text = raw[start : start + length]
    _require(zlib.crc32(text) == crc, "the description's checksum differs")
    try:
        data = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PartError(f"unreadable description: {error}") from None
    keys = {"format", "job", "slice", "blend", "mse", "ssim", "regions"}
    _require(isinstance(data, dict) and set(data) == keys, "not a part description")
    _require(_is_int(data["format"]) and data["format"] == PART_FORMAT, "another part format")
    _require(data["job"] == job, "a part of another job")
    _require(_is_int(data["slice"]) and data["slice"] == index, "a part of another slice")
    _require(_is_int(data["blend"]) and data["blend"] == blend, "another blend width")
    _require(_is_number(data["mse"]) and 0 <= data["mse"] <= 1, "mse out of range")
    _require(_is_number(data["ssim"]) and -1 <= data["ssim"] <= 1, "ssim out of range")
    entries = data["regions"]
    _require(isinstance(entries, list) and len(entries) == len(regions), "other regions")
    offset, out = start + length, []
    for entry, region in zip(entries, regions, strict=True):
        _require(
            isinstance(entry, dict) and set(entry) == {"core", "box", "model", "sections"},
            "not a region description",
        )
        _require(entry["core"] == list(region.core), "another region core")
        _require(entry["box"] == list(region.box), "another region box")
        try:
            model = model_config_from_header(entry["model"])
        except SGIFormatError as error:
            raise PartError(str(error)) from None
        shape = (model.height, model.width, model.channels)
        _require(shape == (*region.box_shape, channels), "a model of another size")
        sections = entry["sections"]
        _require(isinstance(sections, list) and len(sections) == len(MODEL_SECTIONS), "sections")
        found = {}
        for section, name in zip(sections, MODEL_SECTIONS, strict=True):
            _require(
                isinstance(section, dict)
                and set(section) == {"name", "length", "crc32"}
                and section["name"] == name
                and _is_int(section["length"])
                and 0 <= section["length"] <= len(raw) - offset,
                f"section {name!r} missing or truncated",
            )
            found[name] = raw[offset : offset + section["length"]]
            offset += section["length"]
            _require(zlib.crc32(found[name]) == section["crc32"], f"section {name!r} is damaged")
        out.append(RegionResult(region, model, found))
    _require(offset == len(raw), "unexpected bytes after the sections")
    return SliceResult(out, blend, float(data["mse"]), float(data["ssim"]))


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise PartError(reason)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ResumeStore:
    """The finished slices of one job in ``<output>.parts/``, each in its own file.

    Parameters
    ----------
    output
        The `.sgi` file being written.
    job
        The job's fingerprint (:func:`job_fingerprint`).
    regions, blend, channels
        What every slice of the job holds: its planned regions, the blend width, the channels.
    """

    def __init__(
        self, output: Path, job: str, regions: list[Region], blend: int, channels: int
    ) -> None:
        self.folder = output.with_name(output.name + ".parts")
        self.job = job
        self.expected = {"regions": regions, "blend": blend, "channels": channels}

    def path(self, index: int) -> Path:
        return self.folder / f"slice-{index:07d}.part"

    def open(self, n_slices: int) -> set[int]:
        """Create the folder (or keep it, for the same job) and return the usable slices.

        Parts that fail their checks are ignored with a :class:`ResumePartWarning` and removed.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise FileExistsError(f"{self.folder} exists and is not a resume folder")
        if self.folder.is_dir() and not self._same_job():
            self.remove()  # another job's leftovers: start afresh
        self.folder.mkdir(exist_ok=True)
        for entry in self.folder.iterdir():
            if entry.name.endswith(".tmp") and _OWN_NAME.fullmatch(entry.name):
                entry.unlink(missing_ok=True)  # a write that was interrupted
        job = AtomicFile(self.folder / "job.json")
        job.file.write(json.dumps({"format": PART_FORMAT, "job": self.job}).encode())
        job.commit()
        finished = set()
        for entry in sorted(self.folder.iterdir()):
            match = _PART_NAME.fullmatch(entry.name)
            if match is None:
                continue
            try:
                if int(match[1]) >= n_slices:
                    raise PartError("a slice this job does not have")
                self.load(int(match[1]))
            except PartError as error:
                warnings.warn(
                    f"ignoring {entry} ({error}); its slice is fitted again",
                    ResumePartWarning,
                    stacklevel=3,
                )
                with contextlib.suppress(OSError):
                    entry.unlink()
            else:
                finished.add(int(match[1]))
        return finished

    def _same_job(self) -> bool:
        job = self.folder / "job.json"
        try:
            if job.is_symlink() or not job.is_file() or job.stat().st_size > MAX_JOB_JSON:
                return False
            data = json.loads(job.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return False
        return data == {"format": PART_FORMAT, "job": self.job}

    def save(self, index: int, result: SliceResult) -> None:
        part = AtomicFile(self.path(index))
        try:
            part.file.write(encode_part(result, index, self.job))
        except BaseException:
            part.abort()
            raise
        part.commit()

    def load(self, index: int) -> SliceResult:
        """Slice ``index``, verified; :class:`PartError` if its part is missing or unusable."""
        path = self.path(index)
        if path.is_symlink() or not path.is_file():  # no links, devices or FIFOs
            raise PartError("not a regular file")
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise PartError(f"unreadable: {error}") from None
        return decode_part(raw, index=index, job=self.job, **self.expected)

    def has_parts(self) -> bool:
        """Whether any finished slice is stored."""
        return self.folder.is_dir() and any(
            _PART_NAME.fullmatch(p.name) for p in self.folder.iterdir()
        )

    def remove(self) -> None:
        """Delete the job file, the parts and interrupted writes, then the folder if empty.

        Nothing else is touched: a folder of that name that holds other files keeps them.
        """
        if not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            if _OWN_NAME.fullmatch(entry.name) and not entry.is_dir():
                with contextlib.suppress(OSError):
                    entry.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()
