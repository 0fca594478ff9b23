"""Version 3 of the ``.sgi`` container: version 2 with a preset dictionary for the footer.

Version 2's deflated header and index still took about 600 bytes of a one-slice file: deflate
must spell out every JSON key once before it can refer back to it. Version 3 deflates the same
version-1 footer with a fixed **preset dictionary** (zlib's ``zdict``, RFC 1950 ``FDICT``): a
typical footer whose keys and section names the stream refers back to from its first byte. On a
one-slice file the footer drops to about 200 bytes, 0.05 bits per pixel of a 256x256 image.

Layout, as version 2 with the version field 3::

    preamble  32 B   as version 1, with version 3
    sections         as version 1
    footer           b"SGIZ", u32 R (length of the version-1 footer), zlib stream of those R
                     bytes, compressed with the preset dictionary ``FOOTER_DICTIONARY``

The dictionary is part of the format: it never changes within version 3 (a test pins its
CRC32), and an independent reader needs these exact bytes (``docs/format.md`` §1c).

Examples
--------
>>> from napari_sgi.file.format_v1 import SectionEntry
>>> fmt = FormatV3()
>>> footer = fmt.encode_footer(b'{"axes": "YX"}', [SectionEntry("a", 32, 2, 0)])
>>> fmt.decode_footer(footer, 34, 1 << 20)
(b'{"axes": "YX"}', [SectionEntry(name='a', offset=32, length=2, crc32=0)])
"""

from __future__ import annotations

import zlib

from napari_sgi.file.format_v2 import FormatV2

__all__ = ["FOOTER_DICTIONARY", "FormatV3"]


def _section_names(parts: tuple[str, ...]) -> bytes:
    """Index-entry prefixes (u16 length, name) of one region's sections, as in a footer."""
    return b"".join(len(n).to_bytes(2, "little") + n.encode() for n in parts)


# Later bytes are cheaper to refer to (shorter distances): rarer fragments first, then a whole
# one-slice header, then the section names of region 0 of slice 0.
FOOTER_DICTIONARY = (
    b'"axes":"TCZYX","CYX","TYX","ZYXS","YXS","uint8","<f4","<i2","|u1","micrometer","nm",'
    b'"channel_names":["red","green","blue"],"grid_levels":null,"distortion":"l1",'
    b'"grid_levels":6,"grid_features":4,"grid_log2_table":13,"feature_dim":50,'
    b'{"kind":"napari-sgi image","encoder_version":"0.1.0","layout":{"version":1,"axes":"YX",'
    b'"source_axes":"YX","shape":[512,512],"dtype":"<u2","scale":[null,null],'
    b'"units":[null,null],"channel_names":null,"contrast_limits":null,"slice_axes":"",'
    b'"slice_shape":[512,512],"n_slices":1},"value_range":[0.0,255.0],'
    b'"contrast_limits":[0.0,255.0],"fit":{"iterations":4000,"levels":3,"feature_dim":4,'
    b'"gaussians_per_seed":10,"lmbda":2e-05,"density":0.01,"seeds":null,"rng_seed":0,'
    b'"rate_subset":0.05,"grid_levels":0,"attribute_lr_scale":8.0,"distortion":"mse"},'
    b'"n_slices":1,"slices":[{"key":[],"regions":[{"core":[0,512,0,512],"box":[0,512,0,512],'
    b'"model":{"height":512,"width":512,"channels":1,"feature_dim":4,"gaussians_per_seed":10,'
    b'"seed_count":262,"rng_seed":0,"levels":3,"grid_levels":0,"grid_features":4,'
    b'"grid_log2_table":13}}],"blend":32,"psnr":33.0,"ssim":0.75}],'
    b'"quality":{"psnr":33.0,"ssim":0.75}}\x05\x00\x00\x00'
    + _section_names(
        tuple(
            f"slice/0/r0/{name}"
            for name in ("weights", "hash_grid", "features", "log_scaling", "offsets")
        )
    )
)


class FormatV3(FormatV2):
    """Version 3: version 2's deflated footer with a preset dictionary (module docstring)."""

    version = 3
    DICTIONARY = FOOTER_DICTIONARY

    def _deflate(self, plain: bytes) -> bytes:
        compressor = zlib.compressobj(9, zdict=self.DICTIONARY)
        return compressor.compress(plain) + compressor.flush()

    def _inflater(self):
        return zlib.decompressobj(zdict=self.DICTIONARY)
