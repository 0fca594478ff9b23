"""The ``napari-sgi`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_image_file(path: str | Path):
    """Read a 2D image (TIFF, PNG/JPEG or NPY) as numpy, with a clear error for anything else."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image)
    raise ValueError(f"unsupported image file {path.name!r}: use .tif, .png, .jpg or .npy")


class _ProgressBar:
    """A tqdm bar on a terminal; silent when stderr is not a terminal or JSON is asked for."""

    def __init__(self, enabled: bool):
        self.bar = None
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, report) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=report.total, unit="step", file=sys.stderr, leave=False)
        self.bar.update(report.step - self.bar.n)
        self.bar.set_postfix(level=report.level, psnr=f"{report.psnr:.2f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="paper, default or fast")
    parser.add_argument("--iterations", type=int, help="Adam steps over all levels")
    parser.add_argument("--lmbda", type=float, help="rate weight: larger is smaller and worse")
    parser.add_argument("--k", type=int, dest="gaussians_per_seed", help="Gaussians per seed")
    parser.add_argument("--levels", type=int, help="pyramid levels")
    parser.add_argument("--density", type=float, help="Gaussians per pixel")
    parser.add_argument("--seeds", type=int, help="number of seeds (overrides --density)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fit_overrides(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in
            ("iterations", "lmbda", "gaussians_per_seed", "levels", "density", "seeds")}


def _cmd_fit(args: argparse.Namespace) -> int:
    from .api import fit_image

    image = read_image_file(args.image)
    bar = _ProgressBar(enabled=not args.json)
    try:
        result = fit_image(image, preset=args.preset, device=args.device, progress=bar,
                           **_fit_overrides(args))
    finally:
        bar.close()
    summary = result.summary()
    if args.output:
        from .io.simple import write_image_file

        write_image_file(args.output, result.decoded)
        summary["output"] = str(args.output)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{Path(args.image).name}: {image.shape} {image.dtype}, preset {args.preset}")
        print(f"  {result.seeds} seeds, {result.gaussians} Gaussians, {result.iterations} steps "
              f"in {result.seconds:.1f} s on {result.device}")
        print(f"  PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f}")
        if args.output:
            print(f"  decoded image written to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-sgi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="fit SGI to a 2D image and report its quality")
    fit.add_argument("image", help="a .tif, .png or .npy image")
    fit.add_argument("-o", "--output", help="write the decoded image here (.tif, .png, .npy)")
    _add_fit_options(fit)
    fit.set_defaults(handler=_cmd_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("napari-sgi: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"napari-sgi: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
