"""Seed inputs for the fuzzer: real sample files and small files our writers (and ome-arrow) produce.

Each :class:`SeedInput` is one valid input (a file or a folder) under a seed directory, with the
string to pass to ``OMEArrow.scan``, the options, the summary-table format it belongs to and the
mutation kinds that apply to it. Generated files are a few KB so thousands of reads stay fast.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GENERIC = ("bitflip", "byte_overwrite", "truncate")
TIFF_KINDS = (*GENERIC, "tiff_tag_edit")
OME_TIFF_KINDS = (*TIFF_KINDS, "ome_xml_edit")
PATTERN_KINDS = (
    "pattern_bitflip",
    "pattern_truncate",
    "pattern_tag_edit",
    "pattern_remove_file",
    "pattern_replace_shape",
    "pattern_replace_dtype",
    "pattern_replace_axes",
    "pattern_zero_ifd",
    "pattern_dir_for_file",
)
ZARR_KINDS = (
    *GENERIC,
    "zarr_meta_edit",
    "ngff_shape_chunk_edit",
    "ngff_swap_axes",
    "ngff_remove_level",
    "zarr_chunk_dir",
    "zarr_chunk_truncate",
    "zarr_chunk_remove",
    "zarr_symlink_out",
)
PARQUET_KINDS = (
    *GENERIC,
    "parquet_field_retype",
    "parquet_value_edit",
    "parquet_drop_column",
    "parquet_footer_flip",
    "parquet_schema_meta_edit",
    "parquet_dtype_disagree",
)
DATASET_KINDS = (*PARQUET_KINDS, "dataset_manifest_edit", "dataset_remove_file")


@dataclass(frozen=True)
class SeedInput:
    """One valid input the fuzzer mutates.

    Attributes
    ----------
    name
        Unique, human-readable name (``"sample/z-series.ome.tiff"``).
    fmt
        The row of the summary table (``"ome-tiff/sample"``, ``"zarr-v3/ours"``, ...).
    root
        The file or folder to copy into each case, relative to the seed directory.
    target
        What ``OMEArrow.scan`` opens, relative to the case directory (may carry a pattern).
    kinds
        Mutation kinds that apply to this input.
    options
        Keyword options for ``OMEArrow.scan``.
    info
        Facts the mutators use (``{"pattern_files": [...], "zarr_version": 3, ...}``).
    """

    name: str
    fmt: str
    root: str
    target: str
    kinds: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- real sample files
SAMPLE_OME_TIFFS = (
    "single-channel.ome.tiff",
    "multi-channel.ome.tiff",
    "z-series.ome.tiff",
    "time-series.ome.tif",
    "multi-channel-z-series.ome.tiff",
    "multi-channel-time-series.ome.tiff",
    "4D-series.ome.tiff",
)


def sample_seeds(samples: Path, out: Path) -> list[SeedInput]:
    """Copy the real samples into ``out`` (the nviz stack cut to 4 z-slices to keep reads fast)."""
    seeds = []
    five_d = samples / "ome-artificial-5d-datasets"
    (out / "sample").mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_OME_TIFFS:
        shutil.copyfile(five_d / name, out / "sample" / name)
        rel = f"sample/{name}"
        seeds.append(SeedInput(rel, "ome-tiff/sample", rel, rel, OME_TIFF_KINDS))
    nviz = out / "sample" / "nviz"
    nviz.mkdir()
    files = []
    for c in ("111", "222"):
        for z in range(4):
            name = f"E99_C{c}_ZS{z:03d}.tif"
            shutil.copyfile(samples / "nviz-artificial-4d-dataset" / name, nviz / name)
            files.append(name)
    seeds.append(
        SeedInput(
            "sample/nviz",
            "pattern/sample",
            "sample/nviz",
            "sample/nviz/E99_C<111,222>_ZS<000-003>.tif",
            PATTERN_KINDS,
            info={"pattern_files": files, "closed": True},
        )
    )
    human = out / "sample" / "examplehuman"
    shutil.copytree(samples / "examplehuman", human)
    for path in human.iterdir():
        path.chmod(0o644)
    files = sorted(p.name for p in human.glob("*.tif"))
    seeds.append(
        SeedInput(
            "sample/examplehuman",
            "pattern/sample",
            "sample/examplehuman",
            "sample/examplehuman",
            PATTERN_KINDS,
            options={"pattern": "AS_09125_050116030001_D03f00d<0-2>.tif"},
            info={"pattern_files": files, "closed": True},
        )
    )
    for path in (out / "sample").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return seeds


# ---------------------------------------------------------------------- TIFFs written by tifffile
def _pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(max(info.min, -100), min(info.max, 4000), shape).astype(dtype)


def tiff_seeds(out: Path) -> list[SeedInput]:
    """OME-TIFFs and plain TIFFs: tiled and stripped, compressed and not, ImageJ, RGB."""
    import tifffile

    folder = out / "tiff"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    five = _pixels((2, 2, 3, 24, 40), "uint16", 1)
    specs = {
        "tiled-zlib.ome.tif": {"tile": (16, 16), "compression": "zlib"},
        "stripped-raw.ome.tif": {"rowsperstrip": 5},
    }
    for name, kwargs in specs.items():
        tifffile.imwrite(folder / name, five, ome=True, metadata={"axes": "TCZYX"}, **kwargs)
        seeds.append(SeedInput(f"tiff/{name}", "ome-tiff/written", f"tiff/{name}", f"tiff/{name}", OME_TIFF_KINDS))
    plain = {
        "tiled-raw.tif": (_pixels((3, 40, 48), "uint8", 2), {"tile": (16, 16), "photometric": "minisblack"}),
        "tiled-deflate.tif": (_pixels((40, 48), "int16", 3), {"tile": (16, 16), "compression": "deflate"}),
        "stripped-raw.tif": (_pixels((40, 80), "uint16", 4), {"rowsperstrip": 8}),
        "stripped-lzw.tif": (_pixels((2, 30, 20), "float32", 5), {"rowsperstrip": 7, "compression": "lzw"}),
        "rgb.tif": (_pixels((24, 32, 3), "uint8", 6), {"photometric": "rgb"}),
    }
    for name, (data, kwargs) in plain.items():
        tifffile.imwrite(folder / name, data, **kwargs)
        seeds.append(SeedInput(f"tiff/{name}", "tiff/written", f"tiff/{name}", f"tiff/{name}", TIFF_KINDS))
    hyper = _pixels((3, 2, 2, 20, 24), "uint16", 7)  # TZCYX
    tifffile.imwrite(folder / "imagej.tif", hyper, imagej=True, metadata={"axes": "TZCYX"})
    seeds.append(
        SeedInput("tiff/imagej.tif", "tiff/written", "tiff/imagej.tif", "tiff/imagej.tif", (*TIFF_KINDS, "imagej_edit"))
    )
    return seeds


def pattern_seeds(out: Path) -> list[SeedInput]:
    """A folder of ZYX stacks named ``img_c{c}_t{t}.tif`` (C=2, T=2) and one of 2-D planes."""
    import tifffile

    folder = out / "pattern" / "stacks"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for c in range(2):
        for t in range(2):
            name = f"img_c{c}_t{t}.tif"
            data = _pixels((3, 16, 20), "uint16", 10 + 2 * c + t)
            tifffile.imwrite(folder / name, data, photometric="minisblack", metadata={"axes": "ZYX"})
            files.append(name)
    seeds = [
        SeedInput(
            "pattern/stacks",
            "pattern/written",
            "pattern/stacks",
            "pattern/stacks",
            PATTERN_KINDS,
            options={"pattern": "img_c{c}_t{t}.tif"},
            info={"pattern_files": files},
        )
    ]
    folder = out / "pattern" / "planes"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for z in range(5):
        name = f"plane_z{z:02d}.tif"
        tifffile.imwrite(folder / name, _pixels((18, 22), "uint8", 20 + z), tile=(16, 16), compression="zlib")
        files.append(name)
    seeds.append(
        SeedInput(
            "pattern/planes",
            "pattern/written",
            "pattern/planes",
            "pattern/planes",
            PATTERN_KINDS,
            options={"pattern": "plane_z{z}.tif"},
            info={"pattern_files": files},
        )
    )
    return seeds


# ---------------------------------------------------------------------- our OME-Zarr writer
def zarr_seeds(out: Path) -> list[SeedInput]:
    """NGFF 0.5 (zarr v3: zstd, uncompressed, sharded) and NGFF 0.4 (zarr v2: zstd, uncompressed)."""
    from ome_arrow_dask import OMEArrow

    folder = out / "zarr"
    folder.mkdir(parents=True, exist_ok=True)
    img = OMEArrow(_pixels((1, 2, 3, 24, 32), "uint16", 30), dim_order="TCZYX")
    specs = {
        "v3-zstd.ome.zarr": ("zarr-v3/ngff-0.5", {"version": "0.5", "levels": 2, "chunks": (1, 1, 2, 16, 16)}),
        "v3-raw.ome.zarr": ("zarr-v3/ngff-0.5", {"version": "0.5", "compressor": "none", "chunks": (1, 1, 3, 16, 16)}),
        "v3-sharded.ome.zarr": (
            "zarr-v3/ngff-0.5",
            {"version": "0.5", "levels": 2, "chunks": (1, 1, 1, 8, 8), "shards": (1, 1, 3, 16, 16)},
        ),
        "v2-zstd.ome.zarr": ("zarr-v2/ngff-0.4", {"version": "0.4", "levels": 2, "chunks": (1, 1, 2, 16, 16)}),
        "v2-raw.ome.zarr": ("zarr-v2/ngff-0.4", {"version": "0.4", "compressor": "none", "chunks": (1, 1, 3, 16, 16)}),
    }
    seeds = []
    for name, (fmt, opts) in specs.items():
        img.export(how="ome-zarr", out=folder / name, **opts)
        version = 2 if name.startswith("v2") else 3
        rel = f"zarr/{name}"
        seeds.append(SeedInput(rel, fmt, rel, rel, ZARR_KINDS, info={"zarr_version": version}))
    return seeds


# ---------------------------------------------------------------------- Parquet: ours and ome-arrow 0.1.0
def parquet_seeds(out: Path) -> list[SeedInput]:
    """Struct files and chunk datasets written by our Parquet writer and by ome-arrow 0.1.0."""
    from ome_arrow_dask import OMEArrow
    from ome_arrow_dask.meta import Channel

    folder = out / "parquet"
    folder.mkdir(parents=True, exist_ok=True)
    arr = _pixels((1, 2, 3, 20, 24), "uint16", 40)
    img = OMEArrow(arr, dim_order="TCZYX")
    from ome_arrow_dask.sources.base import MetaOverride

    meta = img.meta.replace(channels=(Channel(name="dna"), Channel(name="actin")))
    img = OMEArrow(MetaOverride(img.source, meta))
    seeds = []
    struct_specs = {
        "ours-bytes.parquet": {"payload": "bytes", "chunk_shape": (2, 8, 8)},
        "ours-zstd.parquet": {"payload": "bytes", "chunk_compression": "zstd", "chunk_shape": (2, 8, 8)},
        "ours-list.parquet": {"payload": "list"},
        "ours-planes.parquet": {"payload": "planes"},
    }
    for name, opts in struct_specs.items():
        img.export(how="parquet", out=folder / name, layout="struct", **opts)
        rel = f"parquet/{name}"
        seeds.append(SeedInput(rel, "parquet-struct/ours", rel, rel, PARQUET_KINDS))
    # float32 byte chunks: no ome-arrow layout stores them under another declared type, so every
    # parquet_dtype_disagree edit of this file must be refused (the uint16 seeds may read, value-checked)
    floats = OMEArrow(MetaOverride(OMEArrow(_pixels((1, 2, 3, 20, 24), "float32", 41), dim_order="TCZYX").source,
                                   meta.replace(dtype=np.dtype("float32"))))
    floats.export(how="parquet", out=folder / "ours-bytes-f32.parquet", layout="struct", payload="bytes",
                  chunk_shape=(2, 8, 8))
    seeds.append(SeedInput("parquet/ours-bytes-f32.parquet", "parquet-struct/ours", "parquet/ours-bytes-f32.parquet",
                           "parquet/ours-bytes-f32.parquet", PARQUET_KINDS))
    img.export(how="parquet", out=folder / "ours-dataset", chunk_shape=(1, 1, 2, 16, 16))
    seeds.append(
        SeedInput("parquet/ours-dataset", "parquet-dataset/ours", "parquet/ours-dataset", "parquet/ours-dataset",
                  DATASET_KINDS)
    )
    seeds.extend(_ome_arrow_parquet(folder, arr))
    return seeds


def _ome_arrow_parquet(folder: Path, arr: np.ndarray) -> list[SeedInput]:
    import ome_arrow
    from ome_arrow.dataset import write_ome_arrow_dataset
    from ome_arrow.export import to_ome_parquet
    from ome_arrow.ingest import from_numpy

    seeds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def record(**kwargs: Any) -> Any:
            return from_numpy(arr, dim_order="TCZYX", clamp_to_uint16=False, channel_names=["dna", "actin"], **kwargs)

        files = {
            "oa-bytes.parquet": record(chunk_shape=(2, 8, 8), chunk_encoding="bytes"),
            "oa-list.parquet": record(chunk_shape=(2, 8, 8), chunk_encoding="list"),
            "oa-planes.parquet": record(build_chunks=False),
        }
        for name, rec in files.items():
            to_ome_parquet(rec, str(folder / name))
            rel = f"parquet/{name}"
            # ome-arrow names the column "image"; without column_name the read warns (ome-arrow's own
            # auto-detect warning, kept on purpose), and a warning would mask every other outcome
            seeds.append(SeedInput(rel, "parquet-struct/ome-arrow", rel, rel, PARQUET_KINDS, {"column_name": "image"}))
        rec = record(chunk_shape=(2, 8, 8), chunk_encoding="bytes")
        write_ome_arrow_dataset([rec], folder / "oa-dataset", chunk_shape=(1, 1, 2, 8, 8))
        ome_arrow.OMEArrow(rec).export(how="parquet", out=str(folder / "oa-export"), dtype=np.dtype("uint16"))
    for name in ("oa-dataset", "oa-export"):
        rel = f"parquet/{name}"
        seeds.append(SeedInput(rel, "parquet-dataset/ome-arrow", rel, rel, DATASET_KINDS))
    return seeds


def build_seeds(samples: Path, out: Path) -> list[SeedInput]:
    """Write every seed input under ``out`` and return their descriptions."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        *sample_seeds(samples, out),
        *tiff_seeds(out),
        *pattern_seeds(out),
        *zarr_seeds(out),
        *parquet_seeds(out),
    ]
