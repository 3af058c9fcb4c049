"""A 96-well HCS plate of per-field TIFFs to an OME-NGFF plate: ours against the recipe users write today.

Input: a generated Opera Phenix / Operetta "Harmony" export, 8 rows x 12 columns x 4 fields
x 4 channels, one uint16 TIFF per plane named ``r{row}c{col}f{field}p01-ch{c}sk1fk1fl1.tiff``
(full: 1080 x 1080 planes, 1536 files, 3.3 GiB; ``--quick``: 160 x 160, 75 MiB). Both
writers produce an NGFF 0.5 plate on zarr v3 with the same chunks (half a plane per side),
the same codec (Blosc zstd level 3, bitshuffle) and 3 pyramid levels:

- ours: :func:`ome_arrow_dask.plate_folder.scan_plate_folder` + :func:`write_plate`, what
  ``ome-arrow-dask convert FOLDER OUT --plate --pattern ... --levels 3`` runs (crash-safe,
  resumable, crc32c on chunks), on the threaded dask scheduler;
- recipe: the ome-zarr-py documentation's plate example made real: per field
  ``np.stack`` of ``tifffile.imread`` of its channel files, then ``write_image`` into the
  well group, after ``write_plate_metadata`` and one ``write_well_metadata`` per well
  (one field after another, as the example does).

Per writer: wall seconds, CPU seconds and peak RSS growth (psutil sampling thread). Then
the time to open the plate and read one field (well E/6, field 2, level 0) from the same
store (ours' output) three ways: our ``open_plate(...)["E/6"][2]``, ome-zarr-py's
``Reader`` (the plate node, then the field node's level 0) and plain zarr (plate
attributes, then the array). Cases run round robin in one process; the figures are
side by side on the same machine, so ratios matter more than absolute times.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import tifffile
import zarr
from _measure import peak_rss_delta_mib
from zarr.codecs import BloscCodec

from ome_arrow_dask import open_plate, write_plate
from ome_arrow_dask.plate_folder import scan_plate_folder

PATTERN = "r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff"
ROWS, COLS, FIELDS, CHANNELS = 8, 12, 4, 4
LEVELS = 3
THREADS = os.cpu_count() or 2
READ_WELL, READ_FIELD = "E/6", 2


def _file(r: int, c: int, f: int, ch: int) -> str:
    return f"r{r:02d}c{c:02d}f{f:02d}p01-ch{ch}sk1fk1fl1.tiff"


def _write_input(folder: Path, size: int) -> int:
    """Cell-like blobs plus noise, a different shift per file; returns the input bytes."""
    rng = np.random.default_rng(0)
    y, x = np.ogrid[:size, :size]
    base = (300 + 200 * np.sin(x / 17.0) * np.cos(y / 13.0)).astype(np.float32)
    noise = rng.normal(0, 10, size=(size, size)).astype(np.float32)
    k = 0
    for r in range(1, ROWS + 1):
        for c in range(1, COLS + 1):
            for f in range(1, FIELDS + 1):
                for ch in range(1, CHANNELS + 1):
                    plane = np.clip(np.roll(base + noise, k % size, axis=1) + 40 * ch, 0, 65535).astype(np.uint16)
                    tifffile.imwrite(folder / _file(r, c, f, ch), plane)
                    k += 7
    return ROWS * COLS * FIELDS * CHANNELS * size * size * 2


def _ours(folder: Path, out: Path, chunk: int) -> None:
    wells = scan_plate_folder(str(folder), PATTERN)
    write_plate(
        wells,
        str(out),
        name=folder.name,
        levels=LEVELS,
        chunks=(1, 1, 1, chunk, chunk),
        compressor="zstd",
        clevel=3,
    )


def _recipe(folder: Path, out: Path, chunk: int) -> None:
    """tifffile + ome-zarr-py's plate helpers, one field after another (the ome-zarr-py docs' example)."""
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    rows = [chr(ord("A") + r) for r in range(ROWS)]
    cols = [str(c + 1) for c in range(COLS)]
    root = zarr.open_group(str(out), mode="w")
    write_plate_metadata(root, rows, cols, [f"{r}/{c}" for r in rows for c in cols], field_count=FIELDS)
    codec = [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]
    for r, row in enumerate(rows):
        row_group = root.require_group(row)
        for c, col in enumerate(cols):
            well = row_group.require_group(col)
            write_well_metadata(well, [{"path": str(f)} for f in range(FIELDS)])
            for f in range(FIELDS):
                planes = [tifffile.imread(folder / _file(r + 1, c + 1, f + 1, ch)) for ch in range(1, CHANNELS + 1)]
                image = np.stack(planes)[:, None]  # CZYX with one plane
                write_image(
                    image,
                    well.require_group(str(f)),
                    scale_factors=tuple(2**k for k in range(1, LEVELS)),
                    axes="czyx",
                    storage_options={"chunks": (1, 1, chunk, chunk), "compressors": codec},
                )


def _read_ours(out: Path) -> np.ndarray:
    return open_plate(str(out))[READ_WELL][READ_FIELD].to_numpy()


def _read_ome_zarr_py(out: Path) -> np.ndarray:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    plate = next(iter(Reader(parse_url(str(out)))()))  # the plate node: rows, columns, wells
    assert "Plate" in [type(s).__name__ for s in plate.specs]
    field = next(iter(Reader(parse_url(str(out / READ_WELL / str(READ_FIELD))))()))
    return np.asarray(field.data[0])


def _read_zarr(out: Path) -> np.ndarray:
    root = zarr.open_group(str(out), mode="r")
    wells = [w["path"] for w in root.attrs["ome"]["plate"]["wells"]]
    assert READ_WELL in wells
    field = root[f"{READ_WELL}/{READ_FIELD}"]
    return np.asarray(field[field.attrs["ome"]["multiscales"][0]["datasets"][0]["path"]][:])


def _measure(func, out: Path, input_bytes: int, **kwargs: object) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}.progress", ignore_errors=True)
    cpu = time.process_time()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        _, rss = peak_rss_delta_mib(lambda: func(out=out, **kwargs))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "mb_per_s": input_bytes / 1e6 / seconds,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_delta_mib": rss,
    }


def _time_read(func, out: Path) -> tuple[dict[str, float], np.ndarray]:
    start = time.perf_counter()
    pixels, rss = peak_rss_delta_mib(lambda: func(out))
    return {"seconds": time.perf_counter() - start, "peak_rss_delta_mib": rss}, pixels


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["all_seconds"] = [round(run["seconds"], 4) for run in runs]
    return out


def run(quick: bool) -> list[dict]:
    size = 160 if quick else 1080
    chunk = size // 2
    repeats = 2 if quick else 1
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_plate_") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "harmony"
        folder.mkdir()
        input_bytes = _write_input(folder, size)
        n_files = ROWS * COLS * FIELDS * CHANNELS
        label = (
            f"{ROWS * COLS}-well x {FIELDS}-field x {CHANNELS}-channel plate, {n_files} TIFFs {size}x{size} uint16 "
            f"({input_bytes / 2**20:.0f} MiB) to an NGFF 0.5 plate, {LEVELS} levels"
        )
        ours_out, recipe_out = tmp / "ours.ome.zarr", tmp / "recipe.ome.zarr"
        write_plate({"A/1": np.zeros((1, 1, 1, 8, 8), "u2")}, str(tmp / "warm.ome.zarr"))  # imports, first calls
        cases = {
            "ours (convert --plate)": lambda: _measure(_ours, ours_out, input_bytes, folder=folder, chunk=chunk),
            "tifffile + ome-zarr-py plate helpers": lambda: _measure(
                _recipe, recipe_out, input_bytes, folder=folder, chunk=chunk
            ),
        }
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(repeats):  # round robin: a noisy shared machine slows every case alike
            for name, case in cases.items():
                runs[name].append(case())
        measured = {name: _median(values) for name, values in runs.items()}
        ours, recipe = measured["ours (convert --plate)"], measured["tifffile + ome-zarr-py plate helpers"]

        # same pixels: our reader on both plates, level 0 of every channel of the read field
        expected = np.stack(
            [tifffile.imread(folder / _file(5, 6, READ_FIELD + 1, ch)) for ch in range(1, CHANNELS + 1)]
        )[None, :, None]
        from_recipe = open_plate(str(recipe_out))[READ_WELL][READ_FIELD].to_numpy()
        outputs_equal = bool(np.array_equal(_read_ours(ours_out), expected)) and bool(
            np.array_equal(from_recipe.reshape(expected.shape), expected)
        )
        results.append(
            {
                "case": f"{label}: ours vs tifffile + ome-zarr-py plate helpers",
                "ours": ours,
                "baseline": recipe,
                "ratio": recipe["seconds"] / ours["seconds"],
                "cpu_ratio": recipe["cpu_s"] / ours["cpu_s"],
                "rss_ratio": ours["peak_rss_delta_mib"] / max(recipe["peak_rss_delta_mib"], 1e-9),
                "ratio_meaning": "baseline seconds / ours seconds (above 1: ours faster); rss_ratio: ours peak RSS "
                "growth / baseline's",
                "outputs_equal": outputs_equal,
            }
        )

        readers = {
            "ours open_plate + field": _read_ours,
            "ome-zarr-py Reader (plate node, then field node)": _read_ome_zarr_py,
            "zarr direct (plate attrs, then array)": _read_zarr,
        }
        read_runs: dict[str, list[dict]] = {name: [] for name in readers}
        same = True
        for _ in range(5):
            for name, func in readers.items():
                timing, pixels = _time_read(func, ours_out)
                read_runs[name].append(timing)
                same = same and bool(np.array_equal(np.asarray(pixels).reshape(expected.shape), expected))
        reads = {name: _median(values) for name, values in read_runs.items()}
        for baseline in list(readers)[1:]:
            results.append(
                {
                    "case": f"open the plate and read one field ({READ_WELL} field {READ_FIELD}, level 0, "
                    f"{CHANNELS}x{size}x{size}): ours vs {baseline}",
                    "ours": reads["ours open_plate + field"],
                    "baseline": reads[baseline],
                    "ratio": reads[baseline]["seconds"] / reads["ours open_plate + field"]["seconds"],
                    "ratio_meaning": "baseline seconds / ours seconds (above 1: ours faster); median of 5",
                    "outputs_equal": same,
                }
            )
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak RSS of the process {peak:.0f} MiB", file=sys.stderr)
