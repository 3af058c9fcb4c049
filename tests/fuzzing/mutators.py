"""Named, seeded mutation strategies.

Each mutator takes the copied input (``root``: a file or a folder inside the case directory), the
:class:`~.seeds.SeedInput` it came from and a ``numpy.random.Generator``, damages the copy in place
and returns a small JSON-able dict saying exactly what it did (for the repro notes). A mutator that
finds nothing to damage raises :class:`NotApplicable`.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .seeds import SeedInput

Params = dict[str, Any]
Mutator = Callable[[Path, SeedInput, np.random.Generator], Params]

ZARR_META_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})


class NotApplicable(Exception):
    """The mutation has nothing to act on in this input."""


def _pick(rng: np.random.Generator, items: list[Any] | tuple[Any, ...]) -> Any:
    if not items:
        raise NotApplicable("nothing to pick from")
    return items[int(rng.integers(len(items)))]


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _rel(path: Path, root: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


# ---------------------------------------------------------------------- byte-level
def flip_bits(path: Path, rng: np.random.Generator, *, start: int = 0) -> list[int]:
    """Flip 1-8 random bits at or after byte ``start``; return the bit positions."""
    data = bytearray(path.read_bytes())
    if len(data) <= start:
        raise NotApplicable(f"{path.name} is empty")
    bits = sorted(int(b) for b in rng.integers(start * 8, len(data) * 8, int(rng.integers(1, 9))))
    for bit in bits:
        data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))
    return bits


def overwrite_bytes(path: Path, rng: np.random.Generator) -> Params:
    """Overwrite a run of 1-16 bytes with random bytes, zeros or 0xFF."""
    data = bytearray(path.read_bytes())
    if not data:
        raise NotApplicable(f"{path.name} is empty")
    offset = int(rng.integers(len(data)))
    length = min(int(rng.integers(1, 17)), len(data) - offset)
    mode = _pick(rng, ("random", "zeros", "ones"))
    fill = {"zeros": b"\0" * length, "ones": b"\xff" * length}.get(mode) or rng.bytes(length)
    data[offset : offset + length] = fill
    path.write_bytes(bytes(data))
    return {"offset": offset, "length": length, "mode": mode}


def truncate_file(path: Path, rng: np.random.Generator) -> int:
    """Cut the file at a random point (sometimes to nothing, sometimes just before the end)."""
    size = path.stat().st_size
    if size == 0:
        raise NotApplicable(f"{path.name} is empty")
    mode = _pick(rng, ("random", "random", "zero", "tail"))
    cut = {"zero": 0, "tail": max(0, size - int(rng.integers(1, 17)))}.get(mode)
    if cut is None:
        cut = int(rng.integers(size))
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    return cut


def _generic_file(root: Path, rng: np.random.Generator) -> Path:
    return _pick(rng, _files(root))


def m_bitflip(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _generic_file(root, rng)
    return {"file": _rel(path, root), "bits": flip_bits(path, rng)}


def m_byte_overwrite(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _generic_file(root, rng)
    return {"file": _rel(path, root), **overwrite_bytes(path, rng)}


def m_truncate(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _generic_file(root, rng)
    return {"file": _rel(path, root), "cut": truncate_file(path, rng)}


# ---------------------------------------------------------------------- TIFF header fields
TIFF_TAGS = (
    "ImageWidth",
    "ImageLength",
    "TileWidth",
    "TileLength",
    "StripByteCounts",
    "StripOffsets",
    "TileByteCounts",
    "TileOffsets",
    "SamplesPerPixel",
    "RowsPerStrip",
    "BitsPerSample",
)
_TAG_FORMATS = {1: "B", 3: "H", 4: "I", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}


def _tag_value(rng: np.random.Generator, old: int, fmt: str) -> int:
    top = 2 ** (8 * struct.calcsize(fmt)) - 1
    choices = [0, 1, old // 10, old - 1, old + 1, 2 * old, old + 4096, top, top // 2, 2**16 - 1, 2**31 - 1]
    value = int(_pick(rng, choices))
    return min(max(value, 0), top)


def tiff_tag_edit(path: Path, rng: np.random.Generator) -> Params:
    """Overwrite one value of a geometry / segment tag (found via tifffile's ``valueoffset``)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        byteorder = tif.byteorder
        pages = list(tif.pages)
        page_index = 0 if rng.random() < 0.6 else int(rng.integers(len(pages)))
        tags = [tag for tag in pages[page_index].tags if tag.name in TIFF_TAGS and int(tag.dtype) in _TAG_FORMATS]
        tag = _pick(rng, tags)
        fmt = _TAG_FORMATS[int(tag.dtype)]
        index = int(rng.integers(tag.count))
        value = tag.value[index] if isinstance(tag.value, tuple) else tag.value
        name, offset = tag.name, tag.valueoffset + index * struct.calcsize(fmt)
    new = _tag_value(rng, int(value), fmt)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack(byteorder + fmt, new))
    return {"page": page_index, "tag": name, "index": index, "old": int(value), "new": new, "offset": offset}


def m_tiff_tag_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    return tiff_tag_edit(root, rng)


# ---------------------------------------------------------------------- OME-XML and ImageJ descriptions
def _description(path: Path) -> str:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].description


def _set_description(path: Path, text: str | bytes) -> None:
    import tifffile

    tifffile.tiffcomment(path, comment=text.encode() if isinstance(text, str) else text)


def _edit_attr(xml: str, attr: str, value: str) -> str:
    import re

    return re.sub(rf'\b{attr}="[^"]*"', f'{attr}="{value}"', xml, count=1)


def ome_xml_variant(xml: str, rng: np.random.Generator) -> tuple[str | bytes, Params]:
    """Return a damaged copy of ``xml`` and what was done."""
    import re

    kind = _pick(
        rng,
        ("size", "size", "type", "dimension_order", "remove_image", "truncate", "trailing", "samples_per_pixel",
         "remove_tiffdata", "huge_size"),
    )
    if kind in ("size", "huge_size"):
        attr = _pick(rng, ("SizeX", "SizeY", "SizeZ", "SizeC", "SizeT"))
        found = re.search(rf'\b{attr}="(\d+)"', xml)
        old = int(found.group(1)) if found else 1
        value = "1000000000" if kind == "huge_size" else str(_pick(rng, (0, 1, old - 1, old + 1, 2 * old, -1, "abc")))
        return _edit_attr(xml, attr, value), {"edit": kind, "attr": attr, "value": value}
    if kind == "type":
        value = _pick(rng, ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float", "double", "bit", "bogus"))
        return _edit_attr(xml, "Type", value), {"edit": kind, "value": value}
    if kind == "dimension_order":
        value = _pick(rng, ("XYCZT", "XYZTC", "XYTCZ", "XYCTZ", "XYTZC", "ZCTXY", "XYZ", "bogus"))
        return _edit_attr(xml, "DimensionOrder", value), {"edit": kind, "value": value}
    if kind == "remove_image":
        return re.sub(r"<Image\b.*?</Image>", "", xml, count=1, flags=re.S), {"edit": kind}
    if kind == "truncate":  # keep "<OME": cut before it, the file is just a TIFF with an XML-ish description
        start = xml.find("<OME") + 5 if "<OME" in xml else 1
        cut = int(rng.integers(start, max(start + 1, len(xml))))
        return xml[:cut], {"edit": kind, "cut": cut}
    if kind == "trailing":
        extra = _pick(rng, ("<junk/>", "\x00\x01garbage", "</OME>", "  more text"))
        return xml + extra, {"edit": kind, "extra": extra}
    if kind == "samples_per_pixel":
        if "SamplesPerPixel" in xml:
            return _edit_attr(xml, "SamplesPerPixel", "3"), {"edit": kind}
        return xml.replace("<Channel ", '<Channel SamplesPerPixel="3" ', 1), {"edit": kind}
    return re.sub(r"<TiffData\b[^>]*?/>", "", xml), {"edit": kind}


def m_ome_xml_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    xml = _description(root)
    if "<OME" not in xml:
        raise NotApplicable(f"{root.name} has no OME-XML")
    new, params = ome_xml_variant(xml, rng)
    _set_description(root, new)
    return params


def m_imagej_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    text = _description(root)
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if line.split("=")[0] in ("images", "channels", "slices", "frames")]
    index = _pick(rng, keys)
    key, _, old = lines[index].partition("=")
    if rng.random() < 0.15:
        del lines[index]
        value = None
    else:
        value = str(_pick(rng, (-1, 0, 1, int(old) + 1, 2 * int(old), 10**9, "abc")))
        lines[index] = f"{key}={value}"
    _set_description(root, "\n".join(lines) + "\n")
    return {"key": key, "old": old, "new": value}


# ---------------------------------------------------------------------- pattern folders
def _pattern_file(root: Path, seed: SeedInput, rng: np.random.Generator, *, first_bias: float = 0.0) -> Path:
    files = seed.info["pattern_files"]
    name = files[0] if rng.random() < first_bias else _pick(rng, files)
    return root / name


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.asarray(), series.axes


def _write_tiff(path: Path, data: np.ndarray, axes: str | None) -> None:
    import tifffile

    path.unlink()
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": axes} if axes else None)


def m_pattern_bitflip(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    return {"file": path.name, "bits": flip_bits(path, rng)}


def m_pattern_truncate(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    return {"file": path.name, "cut": truncate_file(path, rng)}


def m_pattern_tag_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    return {"file": path.name, **tiff_tag_edit(path, rng)}


def m_pattern_remove_file(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    """Remove a file: any file of a pattern with declared ranges, an inner one of an open template."""
    files = seed.info["pattern_files"]
    path = root / _pick(rng, files if seed.info.get("closed") else files[1:-1])
    path.unlink()
    return {"file": path.name}


def m_pattern_replace_shape(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    data, axes = _read_tiff(path)
    dim = int(rng.integers(data.ndim))
    shape = list(data.shape)
    shape[dim] = max(1, shape[dim] + int(_pick(rng, (-1, 1, 3))))
    _write_tiff(path, np.resize(data, shape), axes)
    return {"file": path.name, "shape": shape, "was": list(data.shape)}


def m_pattern_replace_dtype(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    data, axes = _read_tiff(path)
    dtype = _pick(rng, [d for d in ("uint8", "uint16", "int16", "float32") if d != data.dtype.name])
    _write_tiff(path, data.astype(dtype), axes)
    return {"file": path.name, "dtype": dtype, "was": data.dtype.name}


def m_pattern_replace_axes(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    data, axes = _read_tiff(path)
    if data.ndim >= 3:
        lead = _pick(rng, [a for a in ("C", "T", "Z") if a != axes[0]])
        new_axes = lead + axes[1:]
    else:
        data, new_axes = data[np.newaxis], _pick(rng, ("CYX", "TYX"))
    _write_tiff(path, data, new_axes)
    # a real axis renamed (ZYX -> CYX) must be refused; a singleton axis added to a plane may be read
    return {"file": path.name, "axes": new_axes, "was": axes, "must_refuse": len(axes) >= 3}


def zero_entry_ifd() -> bytes:
    """A classic little-endian TIFF whose only IFD has no entries."""
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", 0)


def m_pattern_zero_ifd(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.5)
    path.write_bytes(zero_entry_ifd())
    return {"file": path.name}


def m_pattern_dir_for_file(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pattern_file(root, seed, rng, first_bias=0.3)
    path.unlink()
    path.mkdir()
    if rng.random() < 0.5:
        (path / "inner.tif").write_bytes(zero_entry_ifd())
    return {"file": path.name}


# ---------------------------------------------------------------------- zarr / NGFF metadata
def _meta_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.name in ZARR_META_NAMES]


def _array_meta_files(root: Path) -> list[Path]:
    out = []
    for path in _meta_files(root):
        if path.name == ".zarray":
            out.append(path)
        elif path.name == "zarr.json" and json.loads(path.read_text()).get("node_type") == "array":
            out.append(path)
    return out


def _chunk_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.name not in ZARR_META_NAMES and p.parent != root]


def _pick_chunk(root: Path, rng: np.random.Generator) -> tuple[Path, Params]:
    """A chunk (or shard) file, of level ``0`` (the one a read touches) four times in five."""
    chunks = _chunk_files(root)
    top = [p for p in chunks if _rel(p, root).split("/")[0] == "0"]
    path = _pick(rng, top if top and rng.random() < 0.8 else chunks)
    rel = _rel(path, root)
    return path, {"chunk": rel, "in_read_level": rel.split("/")[0] == "0"}


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every JSON node's path (the root is ``()``)."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_nodes(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_nodes(item, (*path, index)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


WRONG_TYPES: tuple[Any, ...] = ("abc", "1e3", 7, -1, 1.5, None, True, [], {}, [1, "x"], {"a": 1})


def json_edit(doc: Any, rng: np.random.Generator) -> tuple[Any, Params]:
    """Replace a node by a wrong type, remove a key, or turn a dict into a list (and back)."""
    path = _pick(rng, _nodes(doc))
    old = _get(doc, path)
    ops = ["wrong_type", "wrong_type"]
    if path and isinstance(_get(doc, path[:-1]), dict):
        ops.append("remove_key")
    if isinstance(old, dict):
        ops.append("dict_to_list")
    if isinstance(old, list):
        ops.append("list_to_dict")
    op = _pick(rng, ops)
    if op == "remove_key":
        del _get(doc, path[:-1])[path[-1]]
        return doc, {"op": op, "path": list(path)}
    if op == "dict_to_list":
        new: Any = list(old.values()) if rng.random() < 0.5 else []
    elif op == "list_to_dict":
        new = {str(i): v for i, v in enumerate(old)}
    else:
        new = _pick(rng, [v for v in WRONG_TYPES if type(v) is not type(old)])
    return _set(doc, path, new), {"op": op, "path": list(path), "new": new}


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc))


def m_zarr_meta_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _meta_files(root))
    doc, params = json_edit(json.loads(path.read_text()), rng)
    _write_json(path, doc)
    return {"file": _rel(path, root), **params}


def _shape_paths(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    if "zarr_format" in doc and doc.get("zarr_format") == 2:
        return [("shape",), ("chunks",)]
    paths: list[tuple[Any, ...]] = [("shape",), ("chunk_grid", "configuration", "chunk_shape")]
    for i, codec in enumerate(doc.get("codecs", [])):
        if codec.get("name") == "sharding_indexed":
            paths.append(("codecs", i, "configuration", "chunk_shape"))
    return paths


def m_ngff_shape_chunk_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _array_meta_files(root))
    doc = json.loads(path.read_text())
    where = _pick(rng, _shape_paths(doc))
    values = _get(doc, where)
    dim = int(rng.integers(len(values)))
    new = int(_pick(rng, (0, -1, -7, 2**31, 2**40, 10**15)))
    values[dim] = new
    _write_json(path, doc)
    return {"file": _rel(path, root), "path": list(where), "dim": dim, "new": new}


def _multiscales(root: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    for name in ("zarr.json", ".zattrs"):
        path = root / name
        if path.exists():
            doc = json.loads(path.read_text())
            attrs = doc.get("attributes", doc)
            attrs = attrs.get("ome", attrs)
            if "multiscales" in attrs:
                return path, doc, attrs["multiscales"]
    raise NotApplicable("no multiscales metadata")


def _swap(items: list[Any], i: int, j: int) -> None:
    items[i], items[j] = items[j], items[i]


def m_ngff_swap_axes(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    """Swap two axes consistently (NGFF axes, every scale/translation, zarr v3 dimension_names)."""
    path, doc, multiscales = _multiscales(root)
    scale = multiscales[0]
    i, j = (int(v) for v in rng.choice(len(scale["axes"]), 2, replace=False))
    _swap(scale["axes"], i, j)
    for dataset in scale["datasets"]:
        for transform in dataset.get("coordinateTransformations", []):
            for key in ("scale", "translation"):
                if key in transform:
                    _swap(transform[key], i, j)
    _write_json(path, doc)
    for meta in _array_meta_files(root):
        array = json.loads(meta.read_text())
        if array.get("dimension_names"):
            _swap(array["dimension_names"], i, j)
            _write_json(meta, array)
    return {"axes": [i, j]}


def m_ngff_remove_level(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path, doc, multiscales = _multiscales(root)
    datasets = multiscales[0]["datasets"]
    index = int(rng.integers(len(datasets)))
    removed = datasets.pop(index)
    _write_json(path, doc)
    return {"level": index, "path": removed.get("path")}


def m_zarr_chunk_dir(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path, params = _pick_chunk(root, rng)
    path.unlink()
    path.mkdir()
    if rng.random() < 0.5:
        (path / "0").write_bytes(b"\0" * 16)
    return params


def m_zarr_chunk_truncate(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path, params = _pick_chunk(root, rng)
    size = path.stat().st_size
    cut = int(_pick(rng, (0, size // 2, max(0, size - 1), int(rng.integers(size)))))
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    return {**params, "cut": cut, "size": size}


def m_zarr_chunk_remove(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path, params = _pick_chunk(root, rng)
    path.unlink()
    return params


def m_zarr_symlink_out(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    """Move a chunk (or a whole level folder) out of the store and leave a symlink to it."""
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    if rng.random() < 0.75:
        path, params = _pick_chunk(root, rng)
    else:
        path = _pick(rng, sorted(p.parent for p in _array_meta_files(root)))
        params = {"level_folder": _rel(path, root), "in_read_level": _rel(path, root) == "0"}
    target = outside / path.name
    shutil.move(path, target)
    os.symlink(target if rng.random() < 0.5 else os.path.relpath(target, path.parent), path)
    return params


# ---------------------------------------------------------------------- Parquet
def _parquet_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.suffix == ".parquet"]


def _leaves(typ: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, type) of every leaf field; ``"*"`` stands for list elements."""
    import pyarrow as pa

    if pa.types.is_struct(typ):
        return [leaf for f in typ for leaf in _leaves(f.type, (*path, f.name))]
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _leaves(typ.value_type, (*path, "*"))
    return [(path, typ)]


def _retype(typ: Any, path: tuple[str, ...], leaf: Any) -> Any:
    import pyarrow as pa

    if not path:
        return leaf
    if path[0] == "*":
        inner = _retype(typ.value_type, path[1:], leaf)
        return pa.large_list(inner) if pa.types.is_large_list(typ) else pa.list_(inner)
    fields = [f.with_type(_retype(f.type, path[1:], leaf)) if f.name == path[0] else f for f in typ]
    return pa.struct(fields)


def _revalue(value: Any, path: tuple[str, ...], fn: Callable[[Any, bool], Any], target: list[int], hit: bool) -> Any:
    """Apply ``fn(leaf, is_target)`` at ``path``; ``target`` picks one element per list level."""
    if value is None:
        return None
    if not path:
        return fn(value, hit)
    if path[0] == "*":
        pick = target[0] % len(value) if value else -1
        return [_revalue(v, path[1:], fn, target[1:], hit and i == pick) for i, v in enumerate(value)]
    out = dict(value)
    out[path[0]] = _revalue(value.get(path[0]), path[1:], fn, target, hit)
    return out


def _rewrite(path: Path, rng: np.random.Generator, edit: Callable[[Any, np.random.Generator], Params]) -> Params:
    """Read a Parquet file as one struct per row, let ``edit`` change it, write it back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata
    typ = pa.struct(list(table.schema))
    rows = table.to_pylist()
    state: dict[str, Any] = {"type": typ, "rows": rows}
    params = edit(state, rng)
    arr = pa.array(state["rows"], type=state["type"])
    if len(arr):
        out = pa.Table.from_struct_array(arr)
    else:
        out = pa.table({f.name: pa.array([], f.type) for f in state["type"]})
    pq.write_table(out.replace_schema_metadata(metadata), path)
    return params


BAD_STRINGS = ("abc", "1e3", "Infinity", "-1", "", "NaN", "1.5", "99999999999999999999", "x")


def _edit_retype(state: dict[str, Any], rng: np.random.Generator) -> Params:
    import pyarrow as pa

    leaves = [(p, t) for p, t in _leaves(state["type"]) if not pa.types.is_string(t) and not pa.types.is_null(t)]
    leaf, old_type = _pick(rng, leaves)
    bad = _pick(rng, BAD_STRINGS)
    target = [int(v) for v in rng.integers(0, 1000, 4)]
    row = int(rng.integers(len(state["rows"]))) if state["rows"] else 0

    def fn(value: Any, hit: bool) -> Any:
        return bad if hit else (None if value is None else str(value)[:64])

    state["type"] = _retype(state["type"], leaf, pa.string())
    state["rows"] = [_revalue(r, leaf, fn, target, i == row) for i, r in enumerate(state["rows"])]
    return {"field": ".".join(leaf), "was": str(old_type), "bad": bad, "row": row}


def _bad_number(rng: np.random.Generator, typ: Any, old: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_floating(typ):
        return float(_pick(rng, (0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e30)))
    info = np.iinfo(typ.to_pandas_dtype())
    old = int(old) if isinstance(old, int | np.integer) else 1
    choices = [0, 1, old + 1, 2 * old, old - 1, info.max, info.min, -1, 2**31 - 1]
    return int(_pick(rng, [c for c in choices if info.min <= c <= info.max]))


def _edit_value(state: dict[str, Any], rng: np.random.Generator) -> Params:
    import pyarrow as pa

    leaves = [
        (p, t)
        for p, t in _leaves(state["type"])
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
    ]
    leaf, typ = _pick(rng, leaves)
    target = [int(v) for v in rng.integers(0, 1000, 4)]
    row = int(rng.integers(len(state["rows"]))) if state["rows"] else 0
    chosen: dict[str, Any] = {}

    def fn(value: Any, hit: bool) -> Any:
        if not hit:
            return value
        if pa.types.is_string(typ):
            chosen["new"] = _pick(rng, ("", "bogus", "uint8", "int64", "XYZCT", "TCZYX", "../../etc/passwd", "0"))
        else:
            chosen["new"] = _bad_number(rng, typ, value)
        return chosen["new"]

    state["rows"] = [_revalue(r, leaf, fn, target, i == row) for i, r in enumerate(state["rows"])]
    return {"field": ".".join(leaf), "row": row, **chosen}


def _edit_drop(state: dict[str, Any], rng: np.random.Generator) -> Params:
    import pyarrow as pa

    paths = [p for p, _ in _leaves(state["type"])]
    prefixes = sorted({p[: i + 1] for p in paths for i in range(len(p)) if p[i] != "*"})
    prefixes = [p for p in prefixes if len(p) > 1 or len(list(state["type"])) > 1]
    drop = _pick(rng, prefixes)

    def without(typ: Any, path: tuple[str, ...]) -> Any:
        if path[0] == "*":
            inner = without(typ.value_type, path[1:])
            return pa.large_list(inner) if pa.types.is_large_list(typ) else pa.list_(inner)
        if len(path) == 1:
            return pa.struct([f for f in typ if f.name != path[0]])
        return pa.struct([f.with_type(without(f.type, path[1:])) if f.name == path[0] else f for f in typ])

    def strip(value: Any, path: tuple[str, ...]) -> Any:
        if value is None:
            return None
        if path[0] == "*":
            return [strip(v, path[1:]) for v in value]
        out = dict(value)
        if len(path) == 1:
            out.pop(path[0], None)
        else:
            out[path[0]] = strip(value.get(path[0]), path[1:])
        return out

    state["type"] = without(state["type"], drop)
    state["rows"] = [strip(r, drop) for r in state["rows"]]
    return {"dropped": ".".join(drop)}


def m_parquet_field_retype(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _parquet_files(root))
    return {"file": _rel(path, root), **_rewrite(path, rng, _edit_retype)}


def m_parquet_value_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _parquet_files(root))
    return {"file": _rel(path, root), **_rewrite(path, rng, _edit_value)}


def m_parquet_drop_column(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _parquet_files(root))
    return {"file": _rel(path, root), **_rewrite(path, rng, _edit_drop)}


def m_parquet_footer_flip(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _parquet_files(root))
    data = path.read_bytes()
    footer_len = struct.unpack("<I", data[-8:-4])[0] if len(data) >= 8 else 0
    start = max(0, len(data) - 8 - min(footer_len, len(data)))
    return {"file": _rel(path, root), "bits": flip_bits(path, rng, start=start), "footer_start": start}


def m_parquet_schema_meta_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    import pyarrow.parquet as pq

    path = _pick(rng, _parquet_files(root))
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    keys = sorted(k for k in meta if not k.startswith(b"ARROW:"))
    op = _pick(rng, ("remove_all", "remove_key", "garbage", "garbage"))
    key = _pick(rng, keys) if keys and op != "remove_all" else None
    if op == "remove_all":
        meta = {}
    elif op == "remove_key" and key is not None:
        del meta[key]
    elif key is not None:
        meta[key] = _pick(rng, (b"", b"bogus", b"9.9.9", b"{", b"[1,2]", b"\xff\xfe"))
    pq.write_table(table.replace_schema_metadata(meta or None), path)
    return {"file": _rel(path, root), "op": op, "key": key.decode() if key else None}


DTYPE_NAMES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def m_parquet_dtype_disagree(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    """Declare another pixel type than the chunks carry: pixels_meta.type or images.parquet dtype."""
    if root.is_dir():
        path = root / "images.parquet"
        leaf: tuple[str, ...] = ("dtype",)
    else:
        path = root
        leaf = ()
    import pyarrow.parquet as pq

    if not leaf:
        column = pq.read_schema(path).names[0]
        leaf = (column, "pixels_meta", "type")
    chosen: dict[str, Any] = {}

    def edit(state: dict[str, Any], rng: np.random.Generator) -> Params:
        def fn(value: Any, hit: bool) -> Any:
            chosen["new"] = _pick(rng, [d for d in DTYPE_NAMES if d != value])
            chosen["old"] = value
            return chosen["new"]

        if root.is_file():
            chosen.update(_payload_params(state["rows"][0][leaf[0]] if state["rows"] else None))
        else:
            chosen["payload"] = "dataset"  # chunks.parquet has a dtype column: the chunks carry their own type
        state["rows"] = [_revalue(r, leaf, fn, [0], True) for r in state["rows"]]
        return {}

    _rewrite(path, rng, edit)
    return {"file": _rel(path, root), "field": ".".join(leaf), **chosen}


def _payload_params(record: dict[str, Any] | None) -> Params:
    """What the record's pixels are stored as: ``payload`` (bytes / list / planes) and, for byte
    chunks, ``stored_dtypes`` (their own dtype fields); the classifier's :func:`recast_reason` reads them."""
    chunks = (record or {}).get("chunks") or []
    if not chunks:
        return {"payload": "planes"}
    if "pixel_bytes" in chunks[0]:
        return {"payload": "bytes", "stored_dtypes": sorted({str(c.get("dtype")) for c in chunks})}
    return {"payload": "list"}


def m_dataset_manifest_edit(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = root / "_ome_arrow_dataset.json"
    doc, params = json_edit(json.loads(path.read_text()), rng)
    _write_json(path, doc)
    return params


def m_dataset_remove_file(root: Path, seed: SeedInput, rng: np.random.Generator) -> Params:
    path = _pick(rng, _files(root))
    path.unlink()
    return {"file": _rel(path, root)}


MUTATORS: dict[str, Mutator] = {
    "bitflip": m_bitflip,
    "byte_overwrite": m_byte_overwrite,
    "truncate": m_truncate,
    "tiff_tag_edit": m_tiff_tag_edit,
    "ome_xml_edit": m_ome_xml_edit,
    "imagej_edit": m_imagej_edit,
    "pattern_bitflip": m_pattern_bitflip,
    "pattern_truncate": m_pattern_truncate,
    "pattern_tag_edit": m_pattern_tag_edit,
    "pattern_remove_file": m_pattern_remove_file,
    "pattern_replace_shape": m_pattern_replace_shape,
    "pattern_replace_dtype": m_pattern_replace_dtype,
    "pattern_replace_axes": m_pattern_replace_axes,
    "pattern_zero_ifd": m_pattern_zero_ifd,
    "pattern_dir_for_file": m_pattern_dir_for_file,
    "zarr_meta_edit": m_zarr_meta_edit,
    "ngff_shape_chunk_edit": m_ngff_shape_chunk_edit,
    "ngff_swap_axes": m_ngff_swap_axes,
    "ngff_remove_level": m_ngff_remove_level,
    "zarr_chunk_dir": m_zarr_chunk_dir,
    "zarr_chunk_truncate": m_zarr_chunk_truncate,
    "zarr_chunk_remove": m_zarr_chunk_remove,
    "zarr_symlink_out": m_zarr_symlink_out,
    "parquet_field_retype": m_parquet_field_retype,
    "parquet_value_edit": m_parquet_value_edit,
    "parquet_drop_column": m_parquet_drop_column,
    "parquet_footer_flip": m_parquet_footer_flip,
    "parquet_schema_meta_edit": m_parquet_schema_meta_edit,
    "parquet_dtype_disagree": m_parquet_dtype_disagree,
    "dataset_manifest_edit": m_dataset_manifest_edit,
    "dataset_remove_file": m_dataset_remove_file,
}
"""Mutation kind -> strategy. ``"identity"`` (no damage) is the control the runner adds per seed input."""
