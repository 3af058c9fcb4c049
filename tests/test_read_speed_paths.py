"""Read paths chosen for speed (issue 19): how many calls, tasks and parsed pages a read takes.

No timings here: each test counts the work a read does (pyarrow calls, dask tasks, TIFF IFDs
parsed, chunk reads) so that a regression back to the slow path fails.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.sources import _parquet_common
from ome_arrow_dask.sources._parquet_common import coalesced_ranges

DATA = np.random.default_rng(19).integers(0, 60000, (1, 2, 3, 40, 36)).astype("u2")
CHUNK = (1, 1, 1, 16, 16)  # 2 x 3 x 3 x 3 = 54 chunks, one row group each


@pytest.fixture
def row_group_reads(monkeypatch):
    """Every ``ParquetFile.read_row_group(s)`` call: (method, row groups)."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    one, many = pq.ParquetFile.read_row_group, pq.ParquetFile.read_row_groups

    def read_row_group(self, i, *args, **kwargs):
        calls.append(("read_row_group", (int(i),)))
        return one(self, i, *args, **kwargs)

    def read_row_groups(self, row_groups, *args, **kwargs):
        calls.append(("read_row_groups", tuple(int(i) for i in row_groups)))
        return many(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", read_row_groups)
    return calls


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "img.ome.parquet"
    OMEArrow(DATA).export(how="parquet", out=out, chunk_shape=CHUNK)
    return out


def test_dataset_crop_reads_its_row_groups_in_one_call(dataset, row_group_reads):
    img = OMEArrow.scan(dataset)
    crop = img.slice_lazy(5, 30, 3, 20, c_indices=[1])  # 3 z x 2 y x 2 x = 12 chunks
    expected = tuple(sorted(int(rg) for rg in img.source.row_groups_for(crop.read_plan)[:, 1]))
    np.testing.assert_array_equal(crop.to_numpy(), DATA[:, 1:2, :, 3:20, 5:30])
    assert row_group_reads == [("read_row_groups", expected)] and len(expected) == 12


def test_dataset_chunk_aligned_crop_is_one_call_and_a_fresh_array(dataset, row_group_reads):
    img = OMEArrow.scan(dataset)
    first = img.slice_lazy(0, 16, 0, 16, c_indices=[0], z_indices=[0]).to_numpy()  # exactly one chunk
    assert len(row_group_reads) == 1
    np.testing.assert_array_equal(first, DATA[:, :1, :1, :16, :16])
    assert first.flags.writeable and first.flags.c_contiguous
    first[...] = 0  # the caller owns it: a second read is unaffected
    again = img.slice_lazy(0, 16, 0, 16, c_indices=[0], z_indices=[0]).to_numpy()
    np.testing.assert_array_equal(again, DATA[:, :1, :1, :16, :16])


def test_dataset_scattered_selection_still_reads_chunk_by_chunk(dataset, row_group_reads):
    img = OMEArrow.scan(dataset)
    got = img.slice_lazy(0, 16, 0, 16, z_indices=[0, 2]).to_numpy()  # z 0 and 2: not a box
    np.testing.assert_array_equal(got, DATA[:, :, [0, 2], :16, :16])
    assert len(row_group_reads) == 4 and all(len(groups) == 1 for _, groups in row_group_reads)


def test_coalesced_ranges_follow_pre_buffer_hole_limit(tmp_path):
    small = pa.table({"chunk_id": pa.array(range(6), pa.int64()), "pixel_bytes": [b"x" * 100] * 6})
    path = tmp_path / "t.parquet"
    pq.write_table(small, path, row_group_size=1)
    footer = pq.read_metadata(path)
    assert coalesced_ranges(footer, [0, 1, 2], ["chunk_id", "pixel_bytes"]) == 1  # neighbours: one range
    big = pa.table({"chunk_id": pa.array(range(3), pa.int64()), "pixel_bytes": [b"\x01" * 40_000] * 3})
    pq.write_table(big, path, row_group_size=1, compression="none")
    footer = pq.read_metadata(path)
    assert coalesced_ranges(footer, [0, 2], ["chunk_id", "pixel_bytes"]) == 2  # a 40 KB hole splits them
    assert coalesced_ranges(footer, [0, 1, 2], ["chunk_id"]) == 3  # the skipped payloads are holes too


def test_pinned_remote_file_opens_without_read_ahead():
    opened = []

    class Loc:
        def __init__(self, pinned):
            self.pinned = pinned

        def open(self, **kwargs):
            opened.append(kwargs)
            return object()

    class URL(str):
        pass

    pinned, unpinned = URL("s3://b/pinned.parquet"), URL("s3://b/other.parquet")
    pinned.loc, unpinned.loc = Loc(('"etag"', 10)), Loc(None)
    _parquet_common._source(pinned)
    _parquet_common._source(unpinned)
    assert opened[0].get("cache_type") == "none"
    assert opened[1].get("cache_type", "readahead") == "readahead"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    data = np.random.default_rng(5).integers(0, 4000, (6, 4, 24, 20), dtype=np.uint16)
    for t in range(len(data)):
        tifffile.imwrite(folder / f"img_t{t}.tif", data[t], photometric="minisblack")
    return folder, data


def test_stack_full_read_is_one_task_per_file(stack):
    folder, data = stack
    array = OMEArrow.scan(folder, pattern="img_t{t}.tif").to_dask()
    assert array.numblocks == (6, 1, 1, 1, 1)
    reads = [k for k in dict(array.__dask_graph__()) if isinstance(k, tuple) and k[0].startswith("ome-arrow-read")]
    assert len(reads) == 6
    assert int(array.sum().compute()) == int(data.sum())


def test_stack_whole_file_read_parses_no_other_ifd(stack, monkeypatch):
    folder, data = stack
    img = OMEArrow.scan(folder, pattern="img_t{t}.tif")
    parsed = []
    frame_init, page_init = tifffile.TiffFrame.__init__, tifffile.TiffPage.__init__

    def frame(self, *args, **kwargs):
        parsed.append("frame")
        frame_init(self, *args, **kwargs)

    def page(self, *args, **kwargs):
        parsed.append("page")
        page_init(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFrame, "__init__", frame)
    monkeypatch.setattr(tifffile.TiffPage, "__init__", page)
    block = img.source.read_chunk((2, 0, 0, 0, 0))  # contiguous data: one read at the series' offset
    np.testing.assert_array_equal(block[0, 0], data[2])
    assert parsed.count("page") == 1 and len(parsed) < 4  # not every IFD of the four (tifffile may peek at one)
    parsed.clear()
    got = img.slice_lazy(0, 20, 0, 24, t_indices=[2], z_indices=[1, 3]).to_numpy()  # two pages of four
    np.testing.assert_array_equal(got[0, 0], data[2, [1, 3]])
    assert parsed.count("page") == 1 and parsed.count("frame") >= 1  # other pages as light TiffFrames
