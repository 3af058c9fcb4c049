"""Arrow interop: tensors and images in pyarrow, polars and DuckDB tables.

Builds a small feature table with one image per row under ``out/arrow_tables/``, then
reads it back lazily row by row, queries it with DuckDB and polars, and moves pixels
between Pillow, Arrow tensors and OMEArrow without copying::

    python examples/arrow_tables.py

Needs polars, duckdb and Pillow (>= 11.2) besides the package.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.arrow_interop import record_array

OUT = Path(__file__).resolve().parents[1] / "out" / "arrow_tables"


def make_profiles(path: Path) -> list[np.ndarray]:
    """Write a 4-row feature table whose ``Image_OMEArrow_DNA`` column holds one image per row."""
    rng = np.random.default_rng(0)
    cells = [rng.integers(0, 4000, size=(3, 64, 64)).astype(np.uint16) for _ in range(4)]
    images = record_array([OMEArrow(c, dim_order="ZYX") for c in cells])
    table = pa.table(
        {
            "Metadata_Well": ["A01", "A02", "B01", "B02"],
            "Cells_AreaShape_Area": [410.0, 388.5, 502.0, 451.25],
            "Image_OMEArrow_DNA": images,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=1)  # one row group per row: rows are read alone
    return cells


def main() -> None:
    path = OUT / "profiles.parquet"
    cells = make_profiles(path)

    # Images as table rows: each row opens lazily and reads only its own row group.
    for row, img in enumerate(OMEArrow.scan_table(path, column_name="Image_OMEArrow_DNA")):
        mip = img.to_numpy().max(axis=2)[0, 0]
        assert np.array_equal(mip, cells[row].max(axis=0))
        print(f"row {row}: {img.shape} {img.dtype}, max projection mean {mip.mean():.1f}")

    # DuckDB and polars read the struct records; image metadata is plain SQL.
    profiles = pq.read_table(path)
    print(duckdb.sql("select Metadata_Well, Image_OMEArrow_DNA.pixels_meta.size_z as z from profiles").fetchall())
    print(pl.from_arrow(profiles).select("Metadata_Well", "Cells_AreaShape_Area"))

    # A chunk stream: DuckDB queries the chunk grid without reading a pixel.
    img = OMEArrow(cells[0], dim_order="ZYX", chunks=(1, 1, 1, 32, 32))
    chunks = img.arrow_chunks()  # noqa: F841 - DuckDB finds it by its name
    query = "select z, count(*) as n, sum(shape_y * shape_x) as px from chunks group by z order by z"
    print(duckdb.sql(query).fetchall())

    # Pixels: an OMEArrow / TensorView is an Arrow array, and Pillow images are OMEArrows.
    one_row = pa.table({"image": img})  # a one-row OME-Arrow struct record
    tensor = pa.array(img.tensor_view(z=1))  # arrow.fixed_shape_tensor, zero-copy
    print(one_row.schema.field("image").type.field("pixels_meta").type.field("type"), tensor.type)
    rgb = Image.fromarray(np.dstack([(cells[0][z] // 16).astype(np.uint8) for z in range(3)]))
    as_image = OMEArrow(rgb)  # YXC, channels named R, G, B
    print(as_image.shape, as_image.meta.channel_names)


if __name__ == "__main__":
    main()
