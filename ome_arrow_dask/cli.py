"""Command line: ``ome-arrow-dask info | explain | convert``.

Examples
--------
::

    ome-arrow-dask info raw/stack.ome.tif
    ome-arrow-dask explain raw/stack.ome.tif --c 1 --roi 0,0,256,256
    ome-arrow-dask convert raw/stack.ome.tif out/stack.ome.zarr --levels 3 --resume
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import OmeArrowDaskError

SCHEDULER_CONNECT_TIMEOUT_S = 5
"""Seconds to wait for a ``tcp://`` scheduler before reporting it unreachable."""

_EPILOG = {
    "info": "example:\n  ome-arrow-dask info raw/cells.ome.tif --scene 0\n"
    "  ome-arrow-dask info 'raw/img_t<0-9>_z<0-4>.tif'",
    "explain": "example:\n  ome-arrow-dask explain raw/cells.ome.tif --t 0 --c 1 --roi 100,200,512,512",
    "convert": "examples:\n  ome-arrow-dask convert raw/cells.ome.tif out/cells.ome.zarr --levels 4\n"
    "  ome-arrow-dask convert raw/ out/run1.ome.zarr --pattern 'img_ch{c}_stack{t}_{z}z.tif' --chunks 1,1,32,512,512\n"
    "  ome-arrow-dask convert out/run1.ome.zarr out/run1.parquet          # any source to any writer\n"
    "  ome-arrow-dask convert raw/cells.ome.tif out/cells.ome.zarr --dry-run  # print the plan, write nothing\n"
    "  ome-arrow-dask convert raw/cells.ome.tif out/cells.ome.zarr --scheduler tcp://head:8786\n"
    "\n"
    "crash safety:\n"
    "  OME-Zarr: the output is marked in_progress until every chunk (or shard) is written and\n"
    "  recorded in <out>.progress/; readers refuse it meanwhile. Parquet: chunks are committed as\n"
    "  part files in <out>.progress/parts/ and compacted into the dataset at the end; the manifest\n"
    "  is written last. After a crash or preemption run the same command with --resume: only the\n"
    "  missing units are redone, leftover temp files are removed, and a changed input or changed\n"
    "  options are refused. --verify (OME-Zarr) also re-reads the recorded units and redoes any\n"
    "  whose data is missing or differs.\n"
    "  An input is recognised as changed by its size, modification and inode change time\n"
    "  (--verify-inputs content: by a hash of its bytes). The output may not be the input or\n"
    "  lie inside it; a second conversion to the same output is refused while the first runs\n"
    "  (<out>.lock names it) and takes over after a crash.\n"
    "\n"
    "exit codes: 0 done, 2 bad input or options (message names the file), 1 unexpected error.",
}


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated integers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _chunks(text: str) -> tuple[int, ...]:
    return _ints(text, 5, "--chunks (t,c,z,y,x)")


def _roi(text: str) -> tuple[int, ...]:
    return _ints(text, 4, "--roi (x,y,w,h)")


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pattern", help="filename pattern for a folder of files, e.g. 'img_t<0-9>_z<0-4>.tif'")
    parser.add_argument("--level", type=int, help="pyramid level to open (0 = full resolution)")
    parser.add_argument("--scene", type=int, help="scene / series index of a multi-scene file")
    parser.add_argument(
        "--missing",
        choices=("error", "zeros", "fill"),
        help="missing files of a pattern, tiles of a TIFF or chunks of a zarr: error, zeros (fills and warns) "
        "or fill (zarr: the array's fill value, as zarr reads it)",
    )
    parser.add_argument("--validate", action="store_true", help="pattern folders: check every file's header at scan")
    parser.add_argument("--dims", help="axis letters of the input when its own metadata cannot say, e.g. ZYX")
    parser.add_argument(
        "--follow-symlinks", action="store_true", help="zarr: read symbolic links that point out of the store"
    )
    parser.add_argument(
        "--ome-xml",
        choices=("ignore",),
        help="OME-TIFF: read the pages as a plain TIFF when the OME-XML is damaged or contradicts them (warns)",
    )
    parser.add_argument(
        "--anon", action="store_true", help="remote URLs: read without credentials (public buckets)"
    )
    parser.add_argument(
        "--storage-option",
        action="append",
        type=_storage_option,
        metavar="KEY=VALUE",
        help="remote URLs: a storage option, e.g. endpoint_url=http://host:9000 or profile=lab "
        "(VALUE is read as JSON when it parses: true, 3, {...}); repeatable",
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="remote URLs: an S3-compatible endpoint (MinIO, Ceph, ...); short for --storage-option endpoint_url=URL",
    )


def _storage_option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE as JSON when it parses, else the string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``ome-arrow-dask`` (three subcommands)."""
    parser = argparse.ArgumentParser(
        prog="ome-arrow-dask",
        description="Inspect and convert microscopy images lazily (TCZYX plans over dask).",
        epilog="example:\n  ome-arrow-dask convert raw/cells.ome.tif out/cells.ome.zarr --levels 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,explain,convert}")
    fmt = argparse.RawDescriptionHelpFormatter

    info = sub.add_parser(
        "info",
        help="print shape, dtype, chunks, channels, physical size, format",
        epilog=_EPILOG["info"],
        formatter_class=fmt,
    )
    info.add_argument("path", help="image file, folder or pattern")
    _add_source_options(info)

    explain = sub.add_parser(
        "explain", help="print what a selection would read", epilog=_EPILOG["explain"], formatter_class=fmt
    )
    explain.add_argument("path", help="image file, folder or pattern")
    _add_source_options(explain)
    for axis in "tcz":
        explain.add_argument(f"--{axis}", type=int, action="append", help=f"{axis.upper()} index (repeatable)")
    explain.add_argument("--roi", type=_roi, help="x,y,width,height crop in pixels")

    convert = sub.add_parser(
        "convert",
        help="convert to OME-Zarr (.zarr), OME-Arrow Parquet (.parquet) or OME-TIFF (.ome.tiff)",
        epilog=_EPILOG["convert"],
        formatter_class=fmt,
    )
    convert.add_argument("src", help="input image file, folder or pattern")
    convert.add_argument("dst", help="output path ending in .zarr (OME-Zarr), .parquet or .ome.tiff / .ome.tif")
    _add_source_options(convert)
    convert.add_argument(
        "--chunks",
        type=_chunks,
        help="output chunk shape t,c,z,y,x (default 1,1,16,512,512); OME-TIFF: tiles 1,1,1,y,x (default 512x512)",
    )
    convert.add_argument("--shards", type=_chunks, help="shard shape t,c,z,y,x, multiples of --chunks (NGFF 0.5)")
    convert.add_argument(
        "--levels",
        type=_positive_int,
        default=1,
        help="pyramid levels, each 2x smaller in Y/X (default 1); OME-TIFF: stored as SubIFDs",
    )
    convert.add_argument("--ngff", choices=("0.4", "0.5"), default="0.5", help="NGFF version (0.4 = zarr v2)")
    convert.add_argument(
        "--compressor",
        default=None,
        choices=("zstd", "lz4", "lz4hc", "zlib", "blosclz", "lzw", "lzma", "none"),
        help="zarr: Blosc codec with bitshuffle (default zstd); OME-TIFF: zlib (default), zstd, lzw, lzma; "
        "none stores raw bytes",
    )
    convert.add_argument(
        "--clevel", type=int, default=None, help="compression level (zarr 0-9, default 3; OME-TIFF: the codec's)"
    )
    convert.add_argument("--resume", action="store_true", help="finish an interrupted conversion of the same input")
    convert.add_argument(
        "--verify", action="store_true", help="with --resume: re-read finished units and redo any that differ"
    )
    convert.add_argument(
        "--verify-inputs",
        choices=("stat", "content"),
        default="stat",
        help="how --resume checks the input did not change: stat (size, mtime and change time of every input "
        "file; default) or content (a hash of every input byte, read at the start and on resume)",
    )
    convert.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    convert.add_argument(
        "--plate",
        action="store_true",
        help="src is a folder of per-field TIFFs: write an NGFF plate; --pattern names {row} {col} {field} "
        "and {t} {c} {z}, e.g. 'r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff'",
    )
    convert.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    convert.add_argument("--scheduler", default="threads", help="threads, processes, synchronous or tcp://host:port")
    convert.add_argument("--workers", type=_positive_int, help="number of local threads / processes (1 or more)")
    return parser


def _open(path: str, args: argparse.Namespace) -> Any:
    from .core import OMEArrow

    options = _open_options(args)
    try:
        return OMEArrow.scan(path, **options)
    except TypeError as exc:
        if not options or "option" not in str(exc):
            raise
        flags = " ".join("--" + name.replace("_", "-") for name in options)
        raise OmeArrowDaskError(f"{path}: cannot be opened with {flags}: {exc}") from exc


def _open_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``OMEArrow.scan`` options the source flags ask for."""
    names = ("pattern", "level", "scene", "missing", "dims", "ome_xml")
    options: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    options.update({k: True for k in ("validate", "follow_symlinks") if getattr(args, k, False)})
    storage = dict(getattr(args, "storage_option", None) or [])
    if getattr(args, "anon", False):
        storage["anon"] = True
    if getattr(args, "endpoint_url", None):
        storage["endpoint_url"] = args.endpoint_url
    if storage:
        options["storage_options"] = storage
    return options


def _levels_line(path: str, image: Any, args: argparse.Namespace) -> str | None:
    """``levels: 3 (1024x1024, 512x512, 256x256)`` for a pyramid (metadata only), else None."""
    from .preview import pyramid_path_levels

    try:
        levels = pyramid_path_levels(path, first=image, **_open_options(args))
    except (OmeArrowDaskError, OSError, TypeError):
        return None
    if len(levels) < 2:
        return None
    sizes = ", ".join(f"{lv.shape[3]}x{lv.shape[4]}" for lv in levels)
    return f"levels:        {len(levels)} ({sizes}; open one with --level K)"


_CLI_WORDING: list[tuple[re.Pattern[str], str]] = [
    # "pattern='...' (Python), --pattern '...' (CLI)": keep the CLI spelling
    (re.compile(r"\S+ \(Python\),?\s*(?:or\s+)?(.+?) \(CLI\)"), r"\1"),
    # "resume=True (CLI --resume)", "tile=(Y, X) (CLI --chunks 1,1,1,Y,X)": keep the CLI spelling
    (re.compile(r"\b\w+=(?:\([^)]*\)|\[[^]]*\]|\S+) \(CLI ([^)]*)\)"), r"\1"),
    (re.compile(r"\b(overwrite|resume|verify|validate)=True\b"), r"--\1"),
    (re.compile(r"\bfollow_symlinks=True\b"), "--follow-symlinks"),
    (re.compile(r"\bmissing=(['\"]?)(\w+)\1"), r"--missing \2"),
    (re.compile(r"\bversion=(['\"]?)([\d.]+)\1"), r"--ngff \2"),
    (re.compile(r"\bverify_inputs=(['\"]?)(\w+)\1"), r"--verify-inputs \2"),
    (re.compile(r"\bome_xml=(['\"]?)(\w+)\1"), r"--ome-xml \2"),
    (re.compile(r"\b(pattern|dims|level|scene)=(?=['\"\d])"), r"--\1 "),
    (re.compile(r"\b(pattern|dims|level|scene|missing|validate)=(?![\w{'\"])"), r"--\1"),
    (re.compile(r"\bfollow_symlinks=(?![\w{'\"])"), "--follow-symlinks"),
    (re.compile(r"\b(levels|clevel|chunks|shards|compressor) must be\b"), r"--\1 must be"),
    (re.compile(r"\bchunk_shape\b(?!=)"), "--chunks"),
]
"""(Python wording, CLI wording) rewrites applied to library messages the CLI prints.

The library speaks Python (``overwrite=True``, ``missing="zeros"``, ``version='0.5'``);
the command line user needs the flag (``--overwrite``, ``--missing zeros``, ``--ngff 0.5``).
"""


def cli_message(message: str) -> str:
    """Rewrite the option names of a library message into command line flags.

    >>> cli_message("out.zarr already exists: pass overwrite=True (CLI --overwrite) to replace it")
    'out.zarr already exists: pass --overwrite to replace it'
    >>> cli_message("3 files are missing; pass missing='zeros' to fill them")
    '3 files are missing; pass --missing zeros to fill them'
    >>> cli_message("shards need zarr v3: use version='0.5'")
    'shards need zarr v3: use --ngff 0.5'
    """
    for pattern, replacement in _CLI_WORDING:
        message = pattern.sub(replacement, message)
    return message


def _physical(meta: Any) -> str:
    ps = meta.physical_size
    parts = [f"{axis}={getattr(ps, axis)} {getattr(ps, axis + '_unit') or ''}".strip() for axis in "zyx"]
    return ", ".join(parts)


def cmd_info(args: argparse.Namespace) -> int:
    """Print a summary of one image (or of an NGFF plate: rows, columns, wells, fields, image shape)."""
    if os.path.isdir(args.path):  # a plate is a zarr folder: files never pay for the plate modules
        from .plate import is_plate, open_plate

        if is_plate(args.path):
            print(open_plate(args.path).summary())
            return 0
    image = _open(args.path, args)
    meta = image.meta
    chunk_shape = tuple(max(c) if c else 0 for c in meta.chunks)
    lines = [
        f"path:          {args.path}",
        f"format:        {image.source.describe()}",
        f"shape (TCZYX): {meta.shape}",
        f"dtype:         {meta.dtype}",
        f"chunks:        {chunk_shape} ({'x'.join(map(str, meta.numblocks))} blocks)",
        f"size:          {meta.nbytes:,} bytes",
        f"channels:      {', '.join(meta.channel_names)}",
        f"physical size: {_physical(meta)}",
    ]
    if meta.name:
        lines.insert(1, f"name:          {meta.name}")
    levels = _levels_line(args.path, image, args)
    if levels:
        lines.append(levels)
    print("\n".join(lines))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the plan of a selection."""
    image = _open(args.path, args)
    if not (args.roi or args.t or args.c or args.z):  # no selection: the whole image, without a made-up step
        print(image.explain())
        return 0
    _, _, _, ny, nx = image.shape
    x, y, w, h = args.roi if args.roi else (0, 0, nx, ny)
    selected = image.slice_lazy(x, x + w, y, y + h, t_indices=args.t, c_indices=args.c, z_indices=args.z)
    print(selected.explain())
    return 0


def _output_format(dst: str) -> str:
    stripped = dst.rstrip("/\\").lower()
    if stripped.endswith(".zarr"):
        return "ome-zarr"
    if stripped.endswith(".parquet"):
        return "parquet"
    if stripped.endswith((".tiff", ".tif")):
        return "ome-tiff"
    raise OmeArrowDaskError(
        f"cannot tell the output format of {dst!r}: use a name ending in .zarr, .parquet or .ome.tiff (.ome.tif)"
    )


def _tiff_options(args: argparse.Namespace) -> dict[str, Any]:
    """Writer options of an OME-TIFF output (``--chunks`` gives the tile, ``--compressor`` the TIFF codec)."""
    if args.resume or args.verify:
        raise OmeArrowDaskError(
            "--resume and --verify apply to .zarr and .parquet outputs: an OME-TIFF is written to a temp file and "
            "renamed when complete, so an interrupted conversion leaves nothing to finish; run it again"
        )
    if args.shards or args.ngff != "0.5":
        raise OmeArrowDaskError("--shards and --ngff apply to .zarr outputs only")
    tile = None
    if args.chunks is not None:
        if tuple(args.chunks[:3]) != (1, 1, 1) or args.chunks[3] % 16 or args.chunks[4] % 16:
            raise OmeArrowDaskError(
                f"--chunks {','.join(map(str, args.chunks))}: an OME-TIFF tile is one Y/X plane; "
                "pass --chunks 1,1,1,Y,X with Y and X multiples of 16"
            )
        tile = tuple(args.chunks[3:])
    compression = {None: "zlib", "none": None}.get(args.compressor, args.compressor)
    if compression not in ("zlib", "zstd", "lzw", "lzma", None):
        raise OmeArrowDaskError(
            f"--compressor {args.compressor} is a Blosc codec for .zarr; OME-TIFF takes zlib, zstd, lzw, lzma or none"
        )
    return {
        "tile": tile,
        "levels": args.levels,
        "compression": compression,
        "compression_level": args.clevel,
        "overwrite": args.overwrite,
    }


def _writer_options(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    if kind == "parquet":
        if args.verify or args.shards or args.levels != 1 or args.compressor is not None or args.clevel is not None:
            raise OmeArrowDaskError(
                "--verify, --shards, --levels, --compressor and --clevel apply to .zarr outputs only"
            )
        if args.resume and args.overwrite:
            raise OmeArrowDaskError("pass either --resume or --overwrite, not both")
        if os.path.exists(args.dst) and not (args.overwrite or args.resume):
            raise OmeArrowDaskError(f"{args.dst} exists: pass --overwrite to replace it (or --resume to finish it)")
        return {
            "chunk_shape": args.chunks,
            "resume": args.resume,
            "verify_inputs": args.verify_inputs,
            "overwrite": args.overwrite,
        }
    if kind == "ome-tiff":
        return _tiff_options(args)
    return {
        "chunks": args.chunks,
        "shards": args.shards,
        "levels": args.levels,
        "version": args.ngff,
        "compressor": args.compressor or "zstd",
        "clevel": 3 if args.clevel is None else args.clevel,
        "resume": args.resume,
        "verify": args.verify,
        "verify_inputs": args.verify_inputs,
        "overwrite": args.overwrite,
    }


def _dry_run(image: Any, args: argparse.Namespace, kind: str, options: dict[str, Any]) -> int:
    print(f"would write {kind} to {args.dst}")
    print(image.explain())
    if kind == "ome-zarr":
        from .writers.zarr import ZarrWriteOptions, level_layouts

        opts = ZarrWriteOptions(**options)
        print(f"NGFF {opts.version}, compressor blosc-{opts.compressor} level {opts.clevel} (bitshuffle)")
        for layout in level_layouts(image.shape, opts):
            units = 1
            for n in layout.grid:
                units *= n
            print(
                f"  level {layout.path}: shape {layout.shape} chunks {layout.chunks} "
                f"shards {layout.shards} -> {units} write task(s)"
            )
    elif kind == "ome-tiff":
        from .writers.tiff import plan

        print(plan(image, **options).describe())
    return 0


@contextlib.contextmanager
def _scheduler(name: str, workers: int | None, progress: bool) -> Iterator[bool]:
    """Configure dask for the run; yield whether a local progress bar applies."""
    import dask

    if name.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        from distributed import Client

        try:
            client = Client(name, timeout=f"{SCHEDULER_CONNECT_TIMEOUT_S}s")
        except OSError as exc:
            raise OmeArrowDaskError(
                f"could not reach the dask scheduler at {name} within {SCHEDULER_CONNECT_TIMEOUT_S} s ({exc}); "
                "check the address and port, that `dask scheduler` is running there, and that this machine "
                "can connect to it"
            ) from exc
        with client:
            yield progress
        return
    if name not in ("threads", "processes", "synchronous", "sync"):
        raise OmeArrowDaskError(f"--scheduler must be threads, processes, synchronous or tcp://..., got {name!r}")
    config: dict[str, Any] = {"scheduler": name}
    if workers:
        config["num_workers"] = workers
    with dask.config.set(config):
        yield progress


def _convert_plate_folder(args: argparse.Namespace, kind: str) -> int:
    """``convert FOLDER OUT.zarr --plate --pattern TEMPLATE ...``: a folder of per-field TIFFs to an NGFF plate."""
    from .plate_folder import scan_plate_folder
    from .writers.plate import write_plate

    if kind != "ome-zarr":
        raise OmeArrowDaskError(f"--plate writes an NGFF plate: name the output with .zarr, got {args.dst!r}")
    if not args.pattern:
        raise OmeArrowDaskError(
            "--plate needs --pattern naming {row}, {col} and {field}, "
            "e.g. 'r{row}c{col}f{field}p{z}-ch{c}sk{t}fk1fl1.tiff'"
        )
    for flag in ("level", "scene", "dims"):
        if getattr(args, flag, None) is not None:
            raise OmeArrowDaskError(f"--{flag} does not apply to --plate conversions")
    options = _writer_options(args, "ome-zarr")
    scan = {"missing": args.missing} if getattr(args, "missing", None) else {}
    wells = scan_plate_folder(args.src, args.pattern, validate=bool(getattr(args, "validate", False)), **scan)
    n_fields = sum(len(v) for v in wells.values())
    if args.dry_run:
        print(f"would write an NGFF {options['version']} plate to {args.dst}: {len(wells)} wells, {n_fields} fields")
        first = next(iter(wells.values()))[0]
        print(first.explain())
        return 0
    show = sys.stderr.isatty() if args.progress is None else args.progress
    with _scheduler(args.scheduler, args.workers, progress=show) as progress:
        options["progress"] = progress
        write_plate(wells, args.dst, name=os.path.basename(os.path.abspath(args.src)), **options)
    print(f"wrote {args.dst} ({len(wells)} wells, {n_fields} fields)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``src`` to ``dst`` (OME-Zarr, OME-Arrow Parquet or OME-TIFF; an NGFF plate with ``--plate``)."""
    kind = _output_format(args.dst)
    if getattr(args, "plate", False):
        return _convert_plate_folder(args, kind)
    try:
        image = _open(args.src, args)
    except OmeArrowDaskError as exc:
        if args.level and re.search(r"\blevel \d+ out of range", str(exc)):  # --level meant as --levels?
            raise type(exc)(
                f"{exc}. --level {args.level} picks which pyramid level of the input to read; "
                f"to write a pyramid of {args.level} levels use --levels {args.level}"
            ) from exc
        raise
    options = _writer_options(args, kind)
    if args.dry_run:
        return _dry_run(image, args, kind, options)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    from .jobs.paths import is_url

    storage = _open_options(args).get("storage_options")
    if storage and is_url(args.dst):  # the same credentials and endpoint write a remote output
        options["storage_options"] = storage
    with _scheduler(args.scheduler, args.workers, progress=show) as progress:
        options["progress"] = progress
        image.export(kind, out=args.dst, **options)
    print(f"wrote {args.dst}")
    return 0


_COMMANDS = {"info": cmd_info, "explain": cmd_explain, "convert": cmd_convert}


def resume_command(argv: Sequence[str]) -> str:
    """Return the shell command that resumes the conversion ``argv`` describes.

    ``--overwrite`` (which would start over) becomes ``--resume``; ``--resume`` is added
    when missing.

    >>> resume_command(["convert", "raw/a b.tif", "out.zarr", "--overwrite", "--levels", "2"])
    "ome-arrow-dask convert 'raw/a b.tif' out.zarr --levels 2 --resume"
    """
    kept = [a for a in argv if a != "--overwrite"]
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(["ome-arrow-dask", *kept])


def _interrupted_message(args: argparse.Namespace, argv: Sequence[str]) -> str:
    if args.command != "convert" or args.dry_run:
        return "interrupted"
    out = args.dst.rstrip("/\\")
    if out.lower().endswith((".tiff", ".tif")):  # OME-TIFF: no partial output, no resume
        return (
            f"interrupted: the conversion to {args.dst} did not finish; nothing was written there (an OME-TIFF "
            "is renamed into place only when complete). Run the same command again"
        )
    if not os.path.lexists(out) and not os.path.lexists(out + ".progress"):  # stopped while opening or planning
        return f"interrupted before anything was written to {args.dst}; run the same command again"
    return (
        f"interrupted: the conversion to {args.dst} did not finish; the chunks already written are kept and "
        f"readers refuse the output until it is complete. Finish it with:\n  {resume_command(argv)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 usage/input error, 1 unexpected error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help or a usage error; argparse already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return _COMMANDS[args.command](args)
    except (OmeArrowDaskError, FileNotFoundError) as exc:
        print(f"error: {cli_message(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted_message(args, sys.argv[1:] if argv is None else list(argv)), file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: name the failure instead of a traceback
        print(f"error: unexpected {type(exc).__name__}: {cli_message(str(exc))}", file=sys.stderr)
        if os.environ.get("OME_ARROW_DASK_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
