"""The project's own seeded mutation fuzzer, as a bounded run in the default suite (issues 13 and 21).

Thousands of damaged inputs (real sample files and files our writers, ome-arrow 0.1.0 and tifffile
produce, for every format) are read in capped worker processes; only clear errors naming the file may
escape, and no read may silently return another shape. ``OME_ARROW_DASK_FUZZ_SEED`` and
``OME_ARROW_DASK_FUZZ_CASES`` override the seed and the count; ``python -m tests.fuzzing`` runs longer
campaigns. The harness itself is checked first: an injected raw error, hang, crash or silent shape
change must be reported.
"""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np
import pytest
from fuzzing.classify import FAILURES, classify, names_for
from fuzzing.mutators import MUTATORS, json_edit, ome_xml_variant, zero_entry_ifd
from fuzzing.runner import DEFAULT_SEED, RunConfig, failure_report, findings_markdown, format_table, run
from fuzzing.worker import describe_exception, read_case

DEFAULT_CASES = 3000
"""Measured: 2,034 reads (with the mutations and the seed files) took 84 s of CPU in all, about 40 ms
per case, so 3,000 cases take about 60-70 s on 2 free cores (longer on a busy machine)."""


# ---------------------------------------------------------------------- the classifier
def _error(exc: BaseException) -> dict:
    return describe_exception(exc)


NAMES = {"img.ome.tiff", "/data/run/img.ome.tiff"}


def test_an_injected_raw_error_is_reported():
    raw = _error(KeyError("image_id"))
    outcome, reason = classify(raw, kind="bitflip", baseline_shape=[1, 1, 1, 4, 4], names=NAMES)
    assert outcome == "raw_error" and outcome in FAILURES
    assert "KeyError" in reason


def test_our_error_without_the_file_name_is_raw():
    from ome_arrow_dask.errors import CorruptInputError

    exc = CorruptInputError("chunk is truncated")
    assert classify(_error(exc), kind="truncate", baseline_shape=None, names=NAMES)[0] == "raw_error"
    exc = CorruptInputError("/data/run/img.ome.tiff: chunk is truncated")
    assert classify(_error(exc), kind="truncate", baseline_shape=None, names=NAMES)[0] == "clear_error"


def test_file_not_found_naming_the_file_is_clear():
    exc = FileNotFoundError(2, "No such file", "/data/run/img.ome.tiff")
    assert classify(_error(exc), kind="truncate", baseline_shape=None, names=NAMES)[0] == "clear_error"


def test_memory_error_is_memory():
    assert classify(_error(MemoryError()), kind="bitflip", baseline_shape=None, names=NAMES)[0] == "memory"


def test_silent_shape_change_and_allow_list():
    ok = {"status": "ok", "shape": [1, 1, 35, 8, 8], "warnings": []}
    base = [7, 1, 5, 8, 8]
    assert classify(ok, kind="ome_xml_edit", baseline_shape=base, names=NAMES)[0] == "ok_changed_shape"
    assert classify(ok, kind="ngff_swap_axes", baseline_shape=base, names=NAMES)[0] == "ok_changed_allowed"
    warned = {**ok, "warnings": [{"category": "UserWarning", "user": True, "message": "img.ome.tiff: OME-XML"}]}
    assert classify(warned, kind="ome_xml_edit", baseline_shape=base, names=NAMES)[0] == "ok_warned"
    same = {**ok, "shape": base}
    assert classify(same, kind="bitflip", baseline_shape=base, names=NAMES)[0] == "ok_same"
    assert classify(same, kind="zarr_chunk_dir", baseline_shape=base, names=NAMES)[0] == "ok_undetected"
    elsewhere = {"chunk": "1/c/0/0", "in_read_level": False}
    assert classify(same, kind="zarr_chunk_dir", baseline_shape=base, names=NAMES, params=elsewhere)[0] == "ok_same"


def test_hang_crash_and_inconsistent_are_failures():
    pairs = [("timeout", "hang"), ("hang", "hang"), ("crash", "crash"), ("inconsistent", "inconsistent")]
    for status, outcome in pairs:
        got = classify({"status": status, "message": "x"}, kind="bitflip", baseline_shape=None, names=NAMES)[0]
        assert got == outcome and got in FAILURES


def test_names_for_a_folder_lists_files_inside(tmp_path):
    store = tmp_path / "img.ome.zarr"
    (store / "0" / "c").mkdir(parents=True)
    (store / "zarr.json").write_text("{}")
    (store / "0" / "c" / "0").write_bytes(b"")
    names = names_for(store)
    assert "img.ome.zarr" in names and "0/c/0" in names
    assert "zarr.json" not in names and "0" not in names


def test_read_case_reports_a_raw_error_injected_into_the_reader(tmp_path, monkeypatch):
    """End to end through the worker's read: a reader raising a bare error must come out as raw_error."""
    import tifffile

    from ome_arrow_dask.sources import tiff

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((8, 8), "u1"))

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tiff, "open", broken)
    result = read_case(str(path), {})
    assert result["status"] == "error" and result["exc_type"] == "ZeroDivisionError"
    assert classify(result, kind="bitflip", baseline_shape=None, names=names_for(path))[0] == "raw_error"
    monkeypatch.undo()
    result = read_case(str(path), {})
    assert result["status"] == "ok" and result["shape"] == [1, 1, 1, 8, 8]


# ---------------------------------------------------------------------- the mutators
def test_mutators_are_seeded_and_named():
    doc = {"multiscales": [{"axes": [{"name": "z"}, {"name": "y"}], "datasets": [{"path": "0"}]}]}
    first = json_edit(json.loads(json.dumps(doc)), np.random.default_rng([1, 2]))
    again = json_edit(json.loads(json.dumps(doc)), np.random.default_rng([1, 2]))
    assert first == again
    xml = '<OME><Image ID="Image:0"><Pixels SizeX="4" SizeY="4" Type="uint8"/></Image></OME>'
    assert ome_xml_variant(xml, np.random.default_rng(3)) == ome_xml_variant(xml, np.random.default_rng(3))
    assert {"bitflip", "truncate", "tiff_tag_edit", "ome_xml_edit", "zarr_chunk_dir", "parquet_footer_flip"} <= set(
        MUTATORS
    )


def test_zero_entry_ifd_is_what_it_says():
    data = zero_entry_ifd()
    assert data[:4] == b"II*\x00" and struct.unpack("<I", data[4:8])[0] == 8
    assert struct.unpack("<H", data[8:10])[0] == 0


# ---------------------------------------------------------------------- a whole (tiny) run checks the pool
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and the worker pool are Linux-only")
def test_pool_reports_a_hang_and_a_crash(tmp_path, samples_dir, monkeypatch):
    """A worker that hangs or dies mid-case is killed, restarted and the case classified."""
    from fuzzing import runner

    config = RunConfig(
        cases=0,
        seed=1,
        workers=1,
        timeout=1.0,
        watchdog_slack=1.0,
        samples=samples_dir,
        work_dir=tmp_path / "w",
        formats=["tiff/written"],
    )
    monkeypatch.setattr(runner, "WORKER", tmp_path / "fake_worker.py")
    (tmp_path / "fake_worker.py").write_text(
        "import json, os, sys, time\n"
        "out = os.fdopen(int(sys.argv[1]), 'w', buffering=1)\n"
        "out.write(json.dumps({'ready': 1}) + '\\n')\n"
        "for line in sys.stdin:\n"
        "    req = json.loads(line)\n"
        "    if req['id'] % 3 == 0: time.sleep(60)\n"
        "    if req['id'] % 3 == 1: os._exit(3)\n"
        "    out.write(json.dumps({'id': req['id'], 'status': 'ok', 'shape': [9], 'warnings': []}) + '\\n')\n"
    )
    summary = run(config)
    outcomes = [f["outcome"] for f in summary["failures"]]
    assert "hang" in outcomes and "crash" in outcomes
    assert all(f["kind"] == "identity" for f in summary["failures"])
    assert os.path.isdir(summary["failures"][0]["repro"])


# ---------------------------------------------------------------------- the bounded campaign
@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and the worker pool are Linux-only")
def test_fuzz(tmp_path, samples_dir):
    seed = int(os.environ.get("OME_ARROW_DASK_FUZZ_SEED", DEFAULT_SEED))
    cases = int(os.environ.get("OME_ARROW_DASK_FUZZ_CASES", DEFAULT_CASES))
    repros = tmp_path / "fuzz_repros"
    config = RunConfig(cases=cases, seed=seed, samples=samples_dir, work_dir=tmp_path / "work", repro_dir=repros)
    summary = run(config)
    out = tmp_path / "fuzz_summary.json"
    out.write_text(json.dumps(summary, indent=1, default=str))
    (tmp_path / "fuzz_findings.md").write_text(findings_markdown(summary))
    print(f"\nfuzz: {summary['cases']} cases, seed {seed}, {summary['elapsed_s']} s; summary in {out}")
    print(format_table(summary))
    assert not summary["mutator_errors"], f"harness bug: mutators failed: {summary['mutator_errors']}"
    assert summary["cases"] >= cases
    assert not summary["failures"], failure_report(summary)
