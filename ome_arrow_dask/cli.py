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
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import OmeArrowDaskError

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


def _chunks(text: str) -> tuple[int, ...]:
    return _ints(text, 5, "--chunks (t,c,z,y,x)")


def _roi(text: str) -> tuple[int, ...]:
    return _ints(text, 4, "--roi (x,y,w,h)")


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pattern", help="filename pattern for a folder of files, e.g. 'img_t<0-9>_z<0-4>.tif'")
    parser.add_argument("--level", type=int, help="pyramid level to open (0 = full resolution)")
    parser.add_argument("--scene", type=int, help="scene / series index of a multi-scene file")


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
        help="convert to OME-Zarr (.zarr) or OME-Arrow Parquet (.parquet)",
        epilog=_EPILOG["convert"],
        formatter_class=fmt,
    )
    convert.add_argument("src", help="input image file, folder or pattern")
    convert.add_argument("dst", help="output path ending in .zarr (OME-Zarr) or .parquet")
    _add_source_options(convert)
    convert.add_argument("--chunks", type=_chunks, help="output chunk shape t,c,z,y,x (default 1,1,16,512,512)")
    convert.add_argument("--shards", type=_chunks, help="shard shape t,c,z,y,x, multiples of --chunks (NGFF 0.5)")
    convert.add_argument("--levels", type=int, default=1, help="pyramid levels, each 2x smaller in Y/X (default 1)")
    convert.add_argument("--ngff", choices=("0.4", "0.5"), default="0.5", help="NGFF version (0.4 = zarr v2)")
    convert.add_argument(
        "--compressor",
        default="zstd",
        choices=("zstd", "lz4", "lz4hc", "zlib", "blosclz", "none"),
        help="Blosc codec with bitshuffle (default zstd); none stores raw bytes",
    )
    convert.add_argument("--clevel", type=int, default=3, help="compression level 0-9 (default 3)")
    convert.add_argument("--resume", action="store_true", help="finish an interrupted conversion of the same input")
    convert.add_argument(
        "--verify", action="store_true", help="with --resume: re-read finished units and redo any that differ"
    )
    convert.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    convert.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    convert.add_argument("--scheduler", default="threads", help="threads, processes, synchronous or tcp://host:port")
    convert.add_argument("--workers", type=int, help="number of local threads / processes")
    return parser


def _open(path: str, args: argparse.Namespace) -> Any:
    from .core import OMEArrow

    options = {k: getattr(args, k) for k in ("pattern", "level", "scene") if getattr(args, k, None) is not None}
    return OMEArrow.scan(path, **options)


def _physical(meta: Any) -> str:
    ps = meta.physical_size
    parts = [f"{axis}={getattr(ps, axis)} {getattr(ps, axis + '_unit') or ''}".strip() for axis in "zyx"]
    return ", ".join(parts)


def cmd_info(args: argparse.Namespace) -> int:
    """Print a summary of one image."""
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
    print("\n".join(lines))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the plan of a selection."""
    image = _open(args.path, args)
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
    raise OmeArrowDaskError(f"cannot tell the output format of {dst!r}: use a name ending in .zarr or .parquet")


def _writer_options(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    if kind == "parquet":
        if args.verify or args.shards or args.levels != 1 or args.compressor != "zstd" or args.clevel != 3:
            raise OmeArrowDaskError(
                "--verify, --shards, --levels, --compressor and --clevel apply to .zarr outputs only"
            )
        if args.resume and args.overwrite:
            raise OmeArrowDaskError("pass either --resume or --overwrite, not both")
        if os.path.exists(args.dst) and not (args.overwrite or args.resume):
            raise OmeArrowDaskError(f"{args.dst} exists: pass --overwrite to replace it (or --resume to finish it)")
        return {"chunk_shape": args.chunks, "resume": args.resume}
    return {
        "chunks": args.chunks,
        "shards": args.shards,
        "levels": args.levels,
        "version": args.ngff,
        "compressor": args.compressor,
        "clevel": args.clevel,
        "resume": args.resume,
        "verify": args.verify,
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
    return 0


@contextlib.contextmanager
def _scheduler(name: str, workers: int | None, progress: bool) -> Iterator[bool]:
    """Configure dask for the run; yield whether a local progress bar applies."""
    import dask

    if name.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        from distributed import Client

        with Client(name):
            yield progress
        return
    if name not in ("threads", "processes", "synchronous", "sync"):
        raise OmeArrowDaskError(f"--scheduler must be threads, processes, synchronous or tcp://..., got {name!r}")
    config: dict[str, Any] = {"scheduler": name}
    if workers:
        config["num_workers"] = workers
    with dask.config.set(config):
        yield progress


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``src`` to ``dst`` (OME-Zarr or Parquet)."""
    kind = _output_format(args.dst)
    image = _open(args.src, args)
    options = _writer_options(args, kind)
    if args.dry_run:
        return _dry_run(image, args, kind, options)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    with _scheduler(args.scheduler, args.workers, progress=show) as progress:
        options["progress"] = progress
        image.export(kind, out=args.dst, **options)
    print(f"wrote {args.dst}")
    return 0


_COMMANDS = {"info": cmd_info, "explain": cmd_explain, "convert": cmd_convert}


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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: name the failure instead of a traceback
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("OME_ARROW_DASK_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
