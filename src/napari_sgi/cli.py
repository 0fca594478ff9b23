"""The ``napari-sgi`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def read_2d_image(path: str | Path, axes: str | None = None):
    """The one 2D image (``(Y, X)`` or ``(Y, X, S)``) of an image file, as numpy.

    Read through :func:`napari_sgi.inputs.open_input`, like every input; a file of several slices
    (a stack, a time series, channels) is an error that names its axes and shape.
    """
    from napari_sgi.inputs import open_input

    with open_input(path, axes=axes) as source:
        if source.n_slices != 1:
            raise ValueError(
                f"{Path(path).name} holds {source.n_slices} 2D slices (axes {source.axes}, shape "
                f"{source.shape}); fit takes one 2D image: use compress for a stack, or --axes "
                "where the axes were guessed wrong"
            )
        return source.read_slice(source.slice_keys()[0])


class _ProgressBar:
    """A tqdm bar on a terminal; silent when stderr is not a terminal or JSON is asked for."""

    def __init__(self, enabled: bool):
        self.bar = None
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, report) -> None:
        if not self.enabled:
            return
        done, total, postfix = self.describe(report)
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix(**postfix)

    @staticmethod
    def describe(report) -> tuple[int, int, dict]:
        """Steps done, steps in all, and what to show beside the bar, of a fit report."""
        return report.step, report.total, {"level": report.level, "psnr": f"{report.psnr:.2f}"}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _checked(kind: type, test: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    """An argparse ``type``: ``kind(text)``, refused unless ``test`` holds (one-line message)."""

    def parse(text: str):
        value = kind(text)  # a ValueError here reads "invalid int value: 'x'"
        if (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


_POSITIVE_INT = _checked(int, lambda value: value > 0, "a positive integer")
_POSITIVE = _checked(float, lambda value: value > 0, "a positive number")
_NON_NEGATIVE = _checked(float, lambda value: value >= 0, "a number >= 0")
_FRACTION = _checked(float, lambda value: 0 <= value < 1, "a number in [0, 1)")


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        default="default",
        help="default (our best rate-distortion mode, settings chosen from the image), fast (the "
        "same, quicker), compact (fixed settings) or paper (the paper's, to reproduce it)",
    )
    parser.add_argument("--iterations", type=_POSITIVE_INT, help="Adam steps over all levels")
    parser.add_argument(
        "--lmbda", type=_NON_NEGATIVE, help="rate weight: larger is smaller and worse"
    )
    parser.add_argument(
        "--k", type=_POSITIVE_INT, dest="gaussians_per_seed", help="Gaussians per seed"
    )
    parser.add_argument("--levels", type=_POSITIVE_INT, help="pyramid levels")
    parser.add_argument("--density", type=_POSITIVE, help="Gaussians per pixel")
    parser.add_argument("--seeds", type=_POSITIVE_INT, help="number of seeds (overrides --density)")
    parser.add_argument(
        "--settle",
        type=_FRACTION,
        help="early stop: a stretch of the fit ends once its loss falls by less than this "
        "fraction a window (0: run every step)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fit_overrides(args: argparse.Namespace) -> dict:
    return {
        name: getattr(args, name)
        for name in (
            "iterations",
            "lmbda",
            "gaussians_per_seed",
            "levels",
            "density",
            "seeds",
            "settle",
        )
    }


def _cmd_fit(args: argparse.Namespace) -> int:
    from napari_sgi.api import fit_image

    image = read_2d_image(args.image, args.axes)
    bar = _ProgressBar(enabled=not args.json)
    try:
        result = fit_image(
            image, preset=args.preset, device=args.device, progress=bar, **_fit_overrides(args)
        )
    finally:
        bar.close()
    summary = result.summary()
    if args.output:
        from napari_sgi.export.image_file import write_image_file

        write_image_file(args.output, result.decoded)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{Path(args.image).name}: {image.shape} {image.dtype}, preset {args.preset}")
        steps = f"{result.iterations} steps"
        if result.steps_run < result.iterations:
            steps = f"{result.steps_run} of {steps} (the rest settled)"
        print(
            f"  {result.seeds} seeds, {result.gaussians} Gaussians, {steps} "
            f"in {result.seconds:.1f} s on {result.device}"
        )
        print(f"  PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f}")
        if args.output:
            print(f"  decoded image written to {args.output}")
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from napari_sgi.encode.pipeline import compress
    from napari_sgi.encode.targeting import TargetWarning

    if args.scheduler and args.workers:
        raise ValueError("give either --scheduler or --workers, not both")
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler:
            from distributed import Client

            client = stack.enter_context(Client(args.scheduler))
        elif args.workers:
            from napari_sgi.encode.cluster import local_client

            client = stack.enter_context(local_client(args.workers))
        bar = stack.enter_context(contextlib.closing(_CompressBar(enabled=not args.json)))
        # A target out of reach is a one-line warning here, not a Python warning with its source.
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always", TargetWarning)
        result = compress(
            args.input,
            args.output,
            preset=args.preset,
            device=args.device,
            axes=args.axes,
            progress=bar,
            client=client,
            bpp=args.bpp,
            ratio=args.ratio,
            psnr=args.psnr,
            region_workers=args.region_workers,
            **_fit_overrides(args),
        )
    for warning in caught:
        if issubclass(warning.category, TargetWarning):
            print(f"napari-sgi: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print(
            f"{args.input} -> {args.output}: {result.n_slices} slice(s), "
            f"{result.gaussians} Gaussians"
        )
        print(
            f"  {result.bytes:,} bytes, {result.bpp:.4f} bpp, "
            f"ratio {result.compression_ratio:.1f}:1"
        )
        print(f"  PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f}, {result.seconds:.1f} s")
    return 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    import time

    from napari_sgi.reader import open_sgi

    started = time.perf_counter()
    image = open_sgi(args.input)
    data = image.levels[0]
    _check_output_size(data, args.force)
    output = Path(args.output)
    name = output.name.lower()
    if name.endswith((".ome.zarr", ".zarr")):
        from napari_sgi.export.volumes import write_ome_zarr

        write_ome_zarr(
            output,
            data,
            axes=image.axes,
            scale=image.scale,
            units=image.units,
            contrast_limits=image.contrast_limits,
        )
    elif name.endswith((".tif", ".tiff")) and data.ndim > 2 + image.rgb:
        from napari_sgi.export.volumes import write_tiff

        write_tiff(output, data, axes=image.axes, scale=image.scale, units=image.units)
    else:
        from napari_sgi.export.image_file import write_image_file

        write_image_file(output, data.compute())
    seconds = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(output),
                    "shape": list(data.shape),
                    "dtype": str(data.dtype),
                    "seconds": round(seconds, 3),
                }
            )
        )
    else:
        print(f"{args.input} -> {output}: {data.shape} {data.dtype} in {seconds:.2f} s")
    return 0


DECOMPRESS_LIMIT = 4 << 30  # bytes of the full-resolution image decompress writes unless --force


def _check_output_size(data, force: bool) -> None:
    """Refuse, before anything is rendered, an image larger than ``DECOMPRESS_LIMIT``: a tiny
    file may describe a huge one."""
    size = math.prod(data.shape) * data.dtype.itemsize
    if size > DECOMPRESS_LIMIT and not force:
        raise ValueError(
            f"the decompressed image would be {size / 2**30:.1f} GiB (shape {tuple(data.shape)}, "
            f"{data.dtype}), more than the {DECOMPRESS_LIMIT >> 30} GiB decompress writes "
            "without --force: pass --force to write it anyway"
        )


def _reached(header: dict, layout: dict, file_size: int) -> str:
    """What a file reached, beside its target: its bpp, and its worst slice's PSNR."""
    pixels = math.prod(layout.get("slice_shape", [0, 0])[:2]) * (header.get("n_slices") or 0)
    reached = f"{8 * file_size / pixels:.4f} bpp" if pixels else "?"
    if (header.get("fit") or {}).get("target_psnr") is not None:
        slices = header.get("slices") or []
        worst = min((s.get("psnr") or math.inf for s in slices), default=math.nan)
        reached = f"PSNR {worst:.2f} dB (worst slice), {reached}"
    return reached


def _cmd_info(args: argparse.Namespace) -> int:
    from napari_sgi.core.targets import describe_target
    from napari_sgi.file.container import SGIReader

    with SGIReader(args.input) as reader:
        header, breakdown = reader.header, reader.info()
    grouped = breakdown.grouped()
    if args.json:
        print(
            json.dumps(
                {
                    "header": header,
                    "bytes": breakdown.file_size,
                    "sections": breakdown.sections,
                    "by_part": grouped,
                    "overhead": breakdown.overhead,
                }
            )
        )
        return 0
    # Shown as written, but only what has the expected shape: info must work on any container.
    layout = header.get("layout") if isinstance(header.get("layout"), dict) else {}
    quality = header.get("quality") if isinstance(header.get("quality"), dict) else {}
    print(
        f"{args.input}: {breakdown.file_size:,} bytes, napari-sgi {header.get('encoder_version')}"
    )
    print(
        f"  {layout.get('axes')} {layout.get('shape')} {layout.get('dtype')}, "
        f"{header.get('n_slices')} slice(s)"
    )
    if quality:
        print(f"  PSNR {quality.get('psnr')} dB, SSIM {quality.get('ssim')} (measured at encode)")
    fit = header.get("fit") if isinstance(header.get("fit"), dict) else {}
    if isinstance(fit.get("preset"), str):
        print(f"  preset {fit['preset']}")
    try:
        target = describe_target(fit.get("target_bpp"), fit.get("target_psnr"))
        if target:
            print(f"  target {target}; reached {_reached(header, layout, breakdown.file_size)}")
    except (TypeError, ValueError, AttributeError):  # a header napari-sgi did not write
        print("  target: unreadable in this header")
    print("  bytes by part:")
    for part, size in sorted(grouped.items(), key=lambda item: -item[1]):
        print(f"    {part:<12} {size:>12,d}")
    for part, size in breakdown.overhead.items():
        print(f"    ({part}){'':<{max(0, 10 - len(part))}} {size:>12,d}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from napari_sgi.compare.codecs import parse_codecs
    from napari_sgi.compare.report import compare_files, format_table

    codecs = parse_codecs(args.codecs)
    show = not args.json and sys.stderr.isatty()

    def progress(index: int, n_slices: int, codec: str) -> None:
        if show:
            print(f"\rslice {index + 1}/{n_slices}: {codec:<10}", end="", file=sys.stderr)

    comparison = compare_files(args.original, args.input, codecs, axes=args.axes, progress=progress)
    if show:
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    print(json.dumps(comparison.to_dict()) if args.json else format_table(comparison))
    return 0


class _CompressBar(_ProgressBar):
    @staticmethod
    def describe(report) -> tuple[int, int, dict]:
        return report.done, report.total, {"slice": f"{report.slice_index + 1}/{report.n_slices}"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-sgi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="fit SGI to a 2D image and report its quality")
    fit.add_argument("image", help="a 2D image: .tif, .ome.tif, .zarr, .png, .jpg or .npy")
    fit.add_argument("--axes", help="axis letters when the file does not say (e.g. YX)")
    fit.add_argument("-o", "--output", help="write the decoded image here (.tif, .png, .npy)")
    _add_fit_options(fit)
    fit.set_defaults(handler=_cmd_fit)

    compress = commands.add_parser("compress", help="compress an image or stack into a .sgi file")
    compress.add_argument("input", help="a .tif, .ome.tif, .zarr, .ome.zarr, .png or .npy image")
    compress.add_argument("-o", "--output", required=True, help="the .sgi file to write")
    compress.add_argument("--axes", help="axis letters when the file does not say (e.g. ZYX)")
    compress.add_argument("--scheduler", help="address of a dask.distributed scheduler")
    compress.add_argument(
        "--workers",
        type=_POSITIVE_INT,
        help="fit slices on a local dask cluster of this many worker processes",
    )
    compress.add_argument(
        "--region-workers",
        type=_POSITIVE_INT,
        help="processes that fit the regions of one large slice at once (default: one per core "
        "for slices of a megapixel or more; 1: one after the other)",
    )
    _add_fit_options(compress)
    targets = compress.add_mutually_exclusive_group()
    targets.add_argument(
        "--bpp", type=_POSITIVE, help="target size: bits per pixel of the file (all channels)"
    )
    targets.add_argument(
        "--ratio", type=_POSITIVE, help="target size: original bytes / file bytes (e.g. 20)"
    )
    targets.add_argument(
        "--psnr", type=_POSITIVE, help="target quality: PSNR in dB of every decoded slice"
    )
    compress.set_defaults(handler=_cmd_compress)

    decompress = commands.add_parser("decompress", help="decode a .sgi file to an image file")
    decompress.add_argument("input", help="a .sgi file")
    decompress.add_argument(
        "-o", "--output", required=True, help="a .tif, .png, .npy or .ome.zarr output"
    )
    decompress.add_argument("--json", action="store_true", help="print one JSON object")
    decompress.add_argument(
        "--force",
        action="store_true",
        help=f"write the image even if it is larger than {DECOMPRESS_LIMIT >> 30} GiB "
        "(full resolution, uncompressed); without it, a larger image is refused before any "
        "rendering",
    )
    decompress.set_defaults(handler=_cmd_decompress)

    compare = commands.add_parser(
        "compare",
        help="compare a .sgi file with JPEG 2000, JPEG XL (JPEG, AVIF) at the same size",
        description="Code each slice of ORIGINAL with classic codecs at the largest size not "
        "above that slice's share of FILE.sgi, and print bytes, bits per pixel, PSNR and SSIM "
        "of each (and of the .sgi slice), the best marked.",
    )
    compare.add_argument("original", help="the image the .sgi file was compressed from")
    compare.add_argument("input", metavar="FILE.sgi", help="a .sgi file")
    compare.add_argument(
        "--codecs",
        default="j2k,jxl",
        help="comma-separated, from jpeg, j2k, jxl, avif (default: j2k,jxl)",
    )
    compare.add_argument("--axes", help="axis letters of ORIGINAL when the file does not say")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.set_defaults(handler=_cmd_compare)

    info = commands.add_parser("info", help="describe a .sgi file and where its bytes go")
    info.add_argument("input", help="a .sgi file")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_cmd_info)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line of stderr (exit status 2); the usage is in --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(error: BaseException) -> str:
    """An exception as one line: its message, after its type unless it is an expected kind."""
    if isinstance(error, MemoryError):
        return "out of memory" + (f": {_one_line(error)}" if str(error) else "")
    message = _one_line(error)
    expected = isinstance(error, ValueError | OSError)  # SGIFormatError is a ValueError
    if expected and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors are one line on stderr, never a traceback: exit status 1 (2 for
    a usage error, from argparse; 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("napari-sgi: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a command line shows every failure as a message
        print(f"napari-sgi: error: {_describe(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
