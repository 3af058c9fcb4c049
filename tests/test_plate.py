"""HCS plates: NGFF plate reading and montage, the plate writer (mappings, Harmony folders), resume, validation."""

from __future__ import annotations

import builtins
import json
import os
import warnings

import numpy as np
import pytest
import tifffile
from killing import run_until_killed

from ome_arrow_dask import OMEArrow, open_plate, write_plate
from ome_arrow_dask.cli import main
from ome_arrow_dask.errors import (
    CorruptInputError,
    IncompleteOutputError,
    InconsistentInputError,
    InputChangedError,
    UnsafePathError,
    UnsupportedSourceError,
)
from ome_arrow_dask.sources.patterns import PatternError
from ome_arrow_dask.writers import plate as plate_writer
from ome_arrow_dask.writers import zarr as zarr_writer

HARMONY = "r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff"
Y, X = 6, 10


def code(r: int, c: int, f: int, ch: int, z: int) -> int:
    """Pixel value of a Harmony file: its own 1-based row, column, field, channel and plane."""
    return r * 10000 + c * 1000 + f * 100 + ch * 10 + z


def make_harmony(folder, rows=(1, 2), cols=(1, 2, 3), fields=None, n_ch=2, n_z=3, skip=()):
    """Write a Harmony-named folder; ``fields`` maps (r, c) to a field count (default 2)."""
    os.makedirs(folder, exist_ok=True)
    for r in rows:
        for c in cols:
            for f in range(1, (fields or {}).get((r, c), 2) + 1):
                for ch in range(1, n_ch + 1):
                    for z in range(1, n_z + 1):
                        name = f"r{r:02d}c{c:02d}f{f:02d}p{z:02d}-ch{ch}sk1fk1fl1.tiff"
                        if name in skip:
                            continue
                        plane = np.full((Y, X), code(r, c, f, ch, z), dtype="u2")
                        tifffile.imwrite(os.path.join(folder, name), plane)
    return str(folder)


def expected_field(r: int, c: int, f: int, n_ch=2, n_z=3) -> np.ndarray:
    out = np.zeros((1, n_ch, n_z, Y, X), "u2")
    for ch in range(n_ch):
        for z in range(n_z):
            out[0, ch, z] = code(r, c, f, ch + 1, z + 1)
    return out


def tree_bytes(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


# ---------------------------------------------------------------------- folder -> plate
def test_harmony_folder_opens_as_plate_with_every_file_in_place(tmp_path):
    folder = make_harmony(tmp_path / "harmony")
    plate = open_plate(folder, pattern=HARMONY)
    assert plate.rows == ("A", "B") and plate.columns == ("1", "2", "3")
    assert plate.wells == ("A/1", "A/2", "A/3", "B/1", "B/2", "B/3")
    assert plate.field_count == 2
    for name in plate.wells:
        r, c = "AB".index(name[0]) + 1, int(name[2:])
        for f in range(2):
            np.testing.assert_array_equal(plate[name][f].to_numpy(), expected_field(r, c, f + 1))


def test_cli_convert_plate_validates_and_reads_back(tmp_path, capsys):
    folder = make_harmony(tmp_path / "harmony")
    out = str(tmp_path / "screen1.ome.zarr")
    argv = ["convert", folder, out, "--plate", "--pattern", HARMONY, "--levels", "2", "--chunks", "1,1,1,4,4"]
    assert main(argv) == 0, capsys.readouterr().err
    plate = open_plate(out)
    assert plate.version == "0.5" and plate.wells == ("A/1", "A/2", "A/3", "B/1", "B/2", "B/3")
    for name in plate.wells:
        r, c = "AB".index(name[0]) + 1, int(name[2:])
        for f in range(2):
            field = plate[name][f]
            np.testing.assert_array_equal(field.to_numpy(), expected_field(r, c, f + 1))
            # constant planes: the 2x mean pyramid keeps every value
            assert plate[name].field(f, level=1).to_numpy()[0, 1, 2, 0, 0] == code(r, c, f + 1, 2, 3)
    capsys.readouterr()
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert "rows:          2 (A, B)" in text and "columns:       3 (1, 2, 3)" in text
    assert "fields:        up to 2 per well, 12 in all" in text and "(1, 2, 3, 6, 10) uint16" in text


def test_missing_plane_file_is_reported_with_well_field_and_values(tmp_path):
    folder = make_harmony(tmp_path / "h", skip={"r02c03f02p03-ch2sk1fk1fl1.tiff"})
    with pytest.raises(InconsistentInputError, match=r"well B/3 field 02 .*p\{z\}=03, ch\{c\}=2"):
        open_plate(folder, pattern=HARMONY)
    assert main(["convert", folder, str(tmp_path / "o.zarr"), "--plate", "--pattern", HARMONY]) == 2
    assert not os.path.exists(tmp_path / "o.zarr")  # refused before anything is written


def test_folder_named_like_a_field_file_is_refused(tmp_path):
    folder = make_harmony(tmp_path / "h", rows=(1,), cols=(1,), n_ch=1, n_z=2)
    last = os.path.join(folder, "r01c01f02p02-ch1sk1fk1fl1.tiff")
    os.remove(last)
    os.mkdir(last)  # skipping it would silently drop plane 2 of field 2 and make the field one plane shorter
    with pytest.raises(InconsistentInputError, match=r"r01c01f02p02-ch1sk1fk1fl1\.tiff.*not a regular file"):
        open_plate(folder, pattern=HARMONY)


def test_missing_field_in_the_middle_is_refused(tmp_path):
    folder = make_harmony(tmp_path / "h", rows=(1,), cols=(1, 2), fields={(1, 1): 3, (1, 2): 3}, n_ch=1, n_z=1)
    os.remove(os.path.join(folder, "r01c02f02p01-ch1sk1fk1fl1.tiff"))
    with pytest.raises(InconsistentInputError, match=r"well A/2 has fields \[1, 3\] but not field 2"):
        open_plate(folder, pattern=HARMONY)


def test_wells_with_different_field_counts(tmp_path):
    folder = make_harmony(tmp_path / "h", fields={(1, 1): 1, (2, 3): 3}, n_ch=1, n_z=2)
    out = str(tmp_path / "p.ome.zarr")
    assert main(["convert", folder, out, "--plate", "--pattern", HARMONY]) == 0
    plate = open_plate(out)
    assert [len(plate[w]) for w in plate.wells] == [1, 2, 2, 2, 2, 3]
    assert plate.field_count == 3
    np.testing.assert_array_equal(plate["B/3"][2].to_numpy(), expected_field(2, 3, 3, n_ch=1, n_z=2))
    montage = plate.montage(level=0, field=2).compute()
    assert montage.shape == (1, 1, 2, 2 * Y, 3 * X)
    assert (montage[..., :, : 2 * X] == 0).all() and (montage[..., :Y, 2 * X :] == 0).all()  # wells without field 2
    np.testing.assert_array_equal(montage[..., Y:, 2 * X :], expected_field(2, 3, 3, n_ch=1, n_z=2))


def test_row_numbers_and_letters_and_two_spellings(tmp_path):
    folder = tmp_path / "ix"
    folder.mkdir()
    for well in ("B03", "C05"):
        for site in (1, 2):
            tifffile.imwrite(folder / f"plate_{well}_s{site}_w1.tif", np.full((4, 4), site, "u1"))
    plate = open_plate(str(folder), pattern="plate_{row}{col}_s{field}_w{c}.tif")
    assert plate.wells == ("B/3", "C/5") and plate.rows == ("A", "B", "C") and len(plate.columns) == 5
    assert plate["C5"][1].to_numpy().max() == 2
    tifffile.imwrite(folder / "plate_B3_s1_w1.tif", np.zeros((4, 4), "u1"))
    with pytest.raises(PatternError, match="differently"):
        open_plate(str(folder), pattern="plate_{row}{col}_s{field}_w{c}.tif")


def test_plate_template_needs_row_and_column(tmp_path):
    make_harmony(tmp_path / "h", rows=(1,), cols=(1,), n_ch=1, n_z=1)
    with pytest.raises(PatternError, match=r"needs \{row\}"):
        open_plate(str(tmp_path / "h"), pattern="r01c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff")
    with pytest.raises(PatternError, match="unknown field"):
        open_plate(str(tmp_path / "h"), pattern="r{row}c{col}f{well}p{z}-ch{c}sk{t}fk1fl1.tiff")


# ---------------------------------------------------------------------- mapping -> plate -> open_plate
def _mapping():
    rng = np.random.default_rng(0)
    return {
        "A/1": rng.integers(0, 200, (2, 3, 9, 11), dtype="u1"),  # 4-D: TCYX
        "B/3": [rng.integers(0, 200, (2, 3, 9, 11), dtype="u1"), rng.integers(0, 200, (2, 3, 9, 11), dtype="u1")],
        "C2": OMEArrow(rng.integers(0, 200, (2, 3, 5, 7), dtype="u1")),
    }


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_mapping_round_trip_and_montage(tmp_path, version):
    wells = _mapping()
    out = str(tmp_path / "p.ome.zarr")
    write_plate(wells, out, levels=2, version=version, chunks=(1, 1, 1, 4, 4), name="screen")
    plate = open_plate(out)
    assert plate.version == version and plate.name == "screen"
    assert plate.rows == ("A", "B", "C") and plate.columns == ("1", "2", "3")
    assert plate.wells == ("A/1", "B/3", "C/2") and plate.acquisitions[0]["id"] == 0
    np.testing.assert_array_equal(plate["A/1"][0].to_numpy(), OMEArrow(wells["A/1"]).to_numpy())
    np.testing.assert_array_equal(plate["B/3"][1].to_numpy(), OMEArrow(wells["B/3"][1]).to_numpy())
    np.testing.assert_array_equal(plate[(2, 1)][0].to_numpy(), wells["C2"].to_numpy())
    # montage at the lowest level, field 0: cells as large as the largest field, gaps filled
    low = [plate[w].field(0, level=1).to_numpy() for w in plate.wells]
    cell = tuple(max(a.shape[k] for a in low) for k in range(5))
    expected = np.full((*cell[:3], 3 * cell[3], 3 * cell[4]), 7, "u1")
    for (r, c), a in zip([(0, 0), (1, 2), (2, 1)], low, strict=True):
        expected[:, :, :, r * cell[3] : r * cell[3] + a.shape[3], c * cell[4] : c * cell[4] + a.shape[4]] = a
    montage = plate.montage(level=-1, field=0, fill=7)
    assert montage.shape == expected.shape
    np.testing.assert_array_equal(montage.compute(), expected)


def test_open_reads_only_plate_and_well_metadata(tmp_path, monkeypatch):
    wells = {f"{r}/{c}": [np.zeros((4, 4), "u1")] * 3 for r in "AB" for c in (1, 2, 3)}
    out = str(tmp_path / "p.ome.zarr")
    write_plate(wells, out)
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def counting_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def counting_os_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(os, "open", counting_os_open)
    plate = open_plate(out)
    monkeypatch.undo()
    assert len(plate.wells) == 6 and plate.field_count == 3 and plate.metadata_files_read == 7
    rel = sorted(os.path.relpath(p, out) for p in opened)
    assert rel == sorted(["zarr.json"] + [f"{w}/zarr.json" for w in plate.wells])  # 1 + wells, no field touched


def test_opening_a_384_well_9_field_plate_reads_385_files(tmp_path, monkeypatch):
    """Metadata only (field groups are not even created): 1 plate + 384 well documents, well under a second."""
    import time

    from ome_arrow_dask.plate import column_name, row_name
    from ome_arrow_dask.writers.plate import _well_attrs, plate_metadata

    root = tmp_path / "p384.zarr"
    root.mkdir()
    wells = [(r, c) for r in range(16) for c in range(24)]
    group = {"zarr_format": 3, "node_type": "group"}
    plate_attrs = {"ome": {"version": "0.5", "plate": plate_metadata(wells, [9] * 384, "0.5")}}
    (root / "zarr.json").write_text(json.dumps({**group, "attributes": plate_attrs}))
    for r, c in wells:
        folder = root / row_name(r) / column_name(c)
        folder.mkdir(parents=True)
        (folder / "zarr.json").write_text(json.dumps({**group, "attributes": _well_attrs(9, "0.5")}))
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    start = time.perf_counter()
    plate = open_plate(root)
    elapsed = time.perf_counter() - start
    monkeypatch.undo()
    assert len(plate) == 384 and plate.field_count == 9 and plate.rows[-1] == "P" and plate.columns[-1] == "24"
    assert len(opened) == 385 == plate.metadata_files_read
    assert elapsed < 2.0  # ~0.15 s on a loaded 2-core machine; generous bound for CI
    assert len(plate["P/24"]) == 9


def test_plate_is_valid_ngff_and_ome_zarr_py_reads_it(tmp_path):
    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for version in ("0.5", "0.4"):
        out = str(tmp_path / f"p{version}.ome.zarr")
        wells = {"A/1": np.full((1, 8, 8), 3, "u2"), "B/2": [np.full((1, 8, 8), 5, "u2")] * 2}
        write_plate(wells, out, levels=2, version=version)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "version not specified" or other validation warning
            assert type(ome_zarr_models.open_ome_zarr(out)).__name__ == "HCS"
            assert type(ome_zarr_models.open_ome_zarr(os.path.join(out, "B", "2"))).__name__ == "Well"
            assert type(ome_zarr_models.open_ome_zarr(os.path.join(out, "B", "2", "1"))).__name__ == "Image"
        nodes = list(Reader(parse_url(out))())
        assert "Plate" in [type(s).__name__ for s in nodes[0].specs]
        stitched = np.asarray(nodes[0].data[0])  # ome-zarr-py stitches field 0 of each well
        assert stitched.shape[-2:] == (16, 16)
        assert stitched[..., 0, 0].max() == 3 and stitched[..., 8, 8].max() == 5 and stitched[..., 0, 8].max() == 0


# ---------------------------------------------------------------------- crash safety and resume
def test_resume_after_injected_failure_gives_identical_output(tmp_path, monkeypatch):
    folder = make_harmony(tmp_path / "h", n_z=2)
    clean, out = str(tmp_path / "clean.ome.zarr"), str(tmp_path / "out.ome.zarr")
    argv = ["--plate", "--pattern", HARMONY, "--levels", "2", "--chunks", "1,1,1,4,4"]
    assert main(["convert", folder, clean, *argv]) == 0

    real_write, calls = zarr_writer.write, []

    def failing_write(image, field_out, **options):
        calls.append(os.path.relpath(field_out, out))
        if len(calls) == 5:  # the 5th field started dies half way: after 3 more units
            real_store, stored = zarr_writer._store_unit, []

            def dying_store(*args, **kwargs):
                if len(stored) == 3:
                    raise OSError("injected crash")
                stored.append(1)
                return real_store(*args, **kwargs)

            monkeypatch.setattr(zarr_writer, "_store_unit", dying_store)
        return real_write(image, field_out, **options)

    monkeypatch.setattr(plate_writer.zarr_writer, "write", failing_write)
    assert main(["convert", folder, out, *argv]) != 0
    monkeypatch.undo()
    with pytest.raises(IncompleteOutputError, match="resume"):
        open_plate(out)
    assert main(["convert", folder, out, *argv]) == 2  # without --resume: refused, names the flag

    fields = [os.path.join(w, str(f)) for w in ("A/1", "A/2", "A/3", "B/1", "B/2", "B/3") for f in range(2)]
    finished = {f for f in fields if plate_writer._field_complete(os.path.join(out, f))}
    assert 1 <= len(finished) < 12  # fields run 4 at a time: some finished before the crash, not all

    calls.clear()
    monkeypatch.setattr(plate_writer.zarr_writer, "write", _recording(calls))
    assert main(["convert", folder, out, *argv, "--resume"]) == 0
    assert sorted(calls) == sorted(set(fields) - finished)  # finished fields are skipped, the rest (re)done
    assert tree_bytes(out) == tree_bytes(clean)


def _recording(calls):
    real_write = zarr_writer.write

    def write(image, field_out, **options):
        calls.append(os.path.join(*field_out.split(os.sep)[-3:]))
        return real_write(image, field_out, **options)

    return write


def test_resume_refuses_other_input(tmp_path):
    out = str(tmp_path / "p.ome.zarr")
    write_plate({"A/1": np.zeros((4, 4), "u1")}, out)
    with pytest.raises(InputChangedError):
        write_plate({"A/1": np.ones((4, 4), "u1")}, out, resume=True)
    write_plate({"A/1": np.zeros((4, 4), "u1")}, out, resume=True)  # same input: done, nothing rewritten
    write_plate({"A/1": np.ones((4, 4), "u1")}, out, overwrite=True)
    assert open_plate(out)["A/1"][0].to_numpy().max() == 1


def test_well_metadata_is_written_once(tmp_path, monkeypatch):
    import zarr

    created: list[str] = []
    real = zarr.Group.create_group

    def recording(self, name, **kwargs):
        created.append(name)
        return real(self, name, **kwargs)

    monkeypatch.setattr(zarr.Group, "create_group", recording)
    write_plate({"A/1": [np.zeros((4, 4), "u1")] * 3, "A/2": np.zeros((4, 4), "u1")}, str(tmp_path / "p.zarr"))
    assert created.count("A/1") == 1 and created.count("A/2") == 1


# ---------------------------------------------------------------------- untrusted metadata
def _edit_attrs(path, edit):
    with open(path) as fh:
        doc = json.load(fh)
    edit(doc["attributes"]["ome"])
    with open(path, "w") as fh:
        json.dump(doc, fh)


def test_bad_plate_metadata_is_refused(tmp_path):
    out = str(tmp_path / "p.ome.zarr")
    write_plate({"A/1": np.zeros((4, 4), "u1"), "A/2": np.zeros((4, 4), "u1")}, out)
    meta = os.path.join(out, "zarr.json")
    _edit_attrs(meta, lambda ome: ome["plate"]["wells"].append({"path": "../A/1", "rowIndex": 0, "columnIndex": 0}))
    with pytest.raises(UnsafePathError):
        open_plate(out)
    write_plate({"A/1": np.zeros((4, 4), "u1"), "A/2": np.zeros((4, 4), "u1")}, out, overwrite=True)
    _edit_attrs(meta, lambda ome: ome["plate"]["wells"][1].update(columnIndex=0))
    with pytest.raises(CorruptInputError, match="name another well"):
        open_plate(out)
    write_plate({"A/1": np.zeros((4, 4), "u1"), "A/2": np.zeros((4, 4), "u1")}, out, overwrite=True)
    _edit_attrs(os.path.join(out, "A", "2", "zarr.json"), lambda ome: ome["well"]["images"][0].update(path="/etc"))
    with pytest.raises(UnsafePathError):
        open_plate(out)
    _edit_attrs(os.path.join(out, "A", "2", "zarr.json"), lambda ome: ome["well"].update(images="0"))
    with pytest.raises(CorruptInputError, match=r"well\.images must be a list"):
        open_plate(out)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_plate_or_well_opened_as_one_image_names_a_field(tmp_path, capsys, version):
    """A plate (or well) group opened as an image says what it is and which path opens a field.

    Before: "zarr group without OME-NGFF 'multiscales'; open one of its arrays (['A', 'B'])",
    but the rows of a plate are groups, not arrays, and the plate reader went unmentioned.
    """
    out = str(tmp_path / "p.ome.zarr")
    write_plate({"B/3": np.zeros((1, 1, 4, 4), "u1")}, out, version=version)
    plate_message = r"an OME-NGFF plate, not one image: .*p\.ome\.zarr/B/3/0.*open_plate"
    with pytest.raises(UnsupportedSourceError, match=plate_message):
        OMEArrow.scan(out)
    with pytest.raises(UnsupportedSourceError, match=r"an OME-NGFF well, not one image: .*p\.ome\.zarr/B/3/0"):
        OMEArrow.scan(os.path.join(out, "B", "3"))
    assert main(["explain", out]) == 2
    assert "ome-arrow-dask info" in capsys.readouterr().err
    assert OMEArrow.scan(os.path.join(out, "B", "3", "0")).shape == (1, 1, 1, 4, 4)


# ---------------------------------------------------------------------- real SIGKILLs, then --resume
def _chunk_files(out: str) -> int:
    """Chunk files written so far (metadata, temp files ``*.partial`` / ``*.tmp`` and resume records not counted)."""
    count = 0
    for _folder, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not d.endswith(".progress")]
        count += sum(
            1
            for f in files
            if f not in ("zarr.json", ".zattrs", ".zgroup", ".zarray") and not f.endswith((".partial", ".tmp"))
        )
    return count


def _run_until(cmd: list[str], out: str, target: int, timeout: float = 180.0) -> str:
    """Run ``cmd`` as a process; SIGKILL it once ``target`` chunk files exist under ``out``."""
    return run_until_killed(cmd, lambda: _chunk_files(out), target, timeout)


@pytest.mark.slow
def test_plate_conversion_sigkilled_three_times_then_resumed_is_byte_identical(tmp_path):
    """A real ``convert --plate`` process SIGKILLed at three seeded points mid-write, then ``--resume``d.

    The kill points are counts of chunk files on disk (drawn from the early, middle and late
    thirds of the job), so each kill lands mid-write whatever the machine's speed. The resumed
    plate must equal an uninterrupted conversion file for file and byte for byte. Nothing is
    excluded from the comparison: the plate tree holds no timestamps or run ids (the lock file
    ``<out>.lock`` and the per-field ``*.progress`` records live outside the compared data or
    are removed when a field completes, which is asserted below).
    """
    import subprocess
    import sys

    ome_zarr_models = pytest.importorskip("ome_zarr_models")
    folder = make_harmony(tmp_path / "harmony")  # 2x3 wells x 2 fields x 2 channels x 3 planes
    options = ["--plate", "--pattern", HARMONY, "--levels", "2", "--chunks", "1,1,1,4,4", "--no-progress"]
    clean, out = str(tmp_path / "clean.ome.zarr"), str(tmp_path / "run.ome.zarr")
    cli = [sys.executable, "-m", "ome_arrow_dask.cli", "convert", folder]
    subprocess.run([*cli, clean, *options], check=True, capture_output=True)
    total = _chunk_files(clean)
    assert total == 12 * (6 * 6 + 6 * 2)  # 12 fields x 6 planes x (2x3 level-0 + 1x2 level-1 chunks)

    rng = np.random.default_rng(18)
    targets = [int(rng.integers(lo * total // 10, hi * total // 10)) for lo, hi in ((1, 3), (4, 6), (7, 9))]
    outcomes = []
    for k, target in enumerate(targets):
        outcomes.append(_run_until([*cli, out, *options, *(["--resume"] if k else [])], out, target))
        assert 0 < _chunk_files(out) < total
        with pytest.raises(IncompleteOutputError, match="resume"):
            open_plate(out)
    assert outcomes == ["killed"] * 3, outcomes
    assert _run_until([*cli, out, *options, "--resume"], out, 10**9) == "finished"

    got, want = tree_bytes(out), tree_bytes(clean)
    assert sorted(got) == sorted(want)
    assert got == want
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith("run.ome.zarr") and p != "run.ome.zarr"]
    assert leftovers == []  # no .lock, .progress or .creating-* beside the plate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(ome_zarr_models.open_ome_zarr(out)).__name__ == "HCS"
        assert type(ome_zarr_models.open_ome_zarr(os.path.join(out, "B", "3"))).__name__ == "Well"
        assert type(ome_zarr_models.open_ome_zarr(os.path.join(out, "B", "3", "1"))).__name__ == "Image"
    plate = open_plate(out)
    for name in plate.wells:
        r, c = "AB".index(name[0]) + 1, int(name[2:])
        for f in range(2):
            np.testing.assert_array_equal(plate[name][f].to_numpy(), expected_field(r, c, f + 1))
