"""Generate a lattice light-sheet style folder of TIFF stacks and convert it to OME-Zarr.

One command does it all::

    python examples/llsm_to_zarr.py --gib 2          # about 2 GiB of stacks -> out/llsm/run1.ome.zarr

Files are named as the microscope names them, with channel, time point and tile
position in the name (``ex6-2_CamA_ch{c}_CAM1_stack{t}_..._{x}x_{y}y_{z}z_...``). The
conversion is the same call the CLI makes::

    ome-arrow-dask convert out/llsm/raw out/llsm/run1.ome.zarr --pattern "<template>" \\
        --chunks 1,1,32,512,512 --levels 3 --progress

It is crash safe: kill it (or press Ctrl-C), run it again with ``--resume`` and only
the missing chunks are written. An existing output is kept: pass ``--overwrite`` to
convert again from scratch. Afterwards a few random planes are compared with the TIFFs::

    python examples/llsm_to_zarr.py --gib 2 --resume      # finish an interrupted run
    python examples/llsm_to_zarr.py --gib 2 --overwrite   # replace the output

``--quick`` makes small stacks (3 time points of 4 MiB in ``out/llsm_quick``) and
converts them in seconds; CI runs it that way.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from ome_arrow_dask import OMEArrow
from ome_arrow_dask.cli import main as cli

NAME = (
    "ex6-2_CamA_ch{c}_CAM1_stack{t:04d}_{wl}nm_{ms:07d}msec_{abs:010d}msecAbs_{x:03d}x_{y:03d}y_{z:03d}z_{t:04d}t.tif"
)
TEMPLATE = "ex6-2_CamA_ch{c}_CAM1_stack{t}_{}nm_{}msec_{}msecAbs_{x}x_{y}y_{z}z_{}t.tif"
STACK = (64, 512, 512)  # Z, Y, X of one file (32 MiB of uint16)
QUICK_STACK = (16, 128, 128)  # --quick: 512 KiB per file
QUICK_TIME_POINTS = 3
TILES = (2, 2)  # Y, X tile grid


def time_point_bytes(stack: tuple[int, int, int]) -> int:
    """Bytes of one time point: 2 channels x the tiles x one uint16 stack each."""
    return 2 * TILES[0] * TILES[1] * int(np.prod(stack)) * 2


def generate(folder: Path, gib: float, stack: tuple[int, int, int] = STACK) -> tuple[int, int]:
    """Write time points of ``stack``-shaped files until about ``gib`` GiB; return (time points, channels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: stack[0], : stack[1], : stack[2]]
    cells = (300 + 250 * np.sin(x / 17.0) * np.cos(y / 23.0) * np.cos(z / 5.0)).astype(np.float32)
    n_t = max(1, round(gib * 2**30 / time_point_bytes(stack)))
    for t in range(n_t):
        for c, wl in enumerate((488, 560)):
            for ty in range(TILES[0]):
                for tx in range(TILES[1]):
                    noise = rng.normal(0, 10, size=stack).astype(np.float32)
                    volume = np.clip(cells + noise + 40 * c + 5 * t + 3 * (ty * TILES[1] + tx), 0, 65535)
                    ms = 1000 * t + 17 * c
                    name = NAME.format(c=c, t=t, wl=wl, ms=ms, abs=ms + 1234567, x=tx, y=ty, z=0)
                    tifffile.imwrite(folder / name, volume.astype(np.uint16), metadata={"axes": "ZYX"})
    return n_t, 2


def check(raw: Path, out: Path, stack: tuple[int, int, int] = STACK, samples: int = 5) -> None:
    """Compare random planes of the output with the TIFF they came from."""
    img = OMEArrow.scan(out)
    rng = np.random.default_rng(1)
    for _ in range(samples):
        t, c = int(rng.integers(img.shape[0])), int(rng.integers(img.shape[1]))
        z, ty, tx = int(rng.integers(stack[0])), int(rng.integers(TILES[0])), int(rng.integers(TILES[1]))
        name = next(raw.glob(f"*_ch{c}_CAM1_stack{t:04d}_*_{tx:03d}x_{ty:03d}y_000z_*"))
        expected = tifffile.imread(name, key=z)
        y0, x0 = ty * stack[1], tx * stack[2]
        got = img.slice_lazy(x0, x0 + stack[2], y0, y0 + stack[1], t_indices=[t], c_indices=[c], z_indices=[z])
        np.testing.assert_array_equal(got.to_numpy()[0, 0, 0], expected)
    print(f"checked {samples} random planes against the TIFFs: equal")


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--gib",
        type=float,
        default=None,
        help="approximate input size in GiB (default 1, or 3 time points with --quick; at least one time point)",
    )
    parser.add_argument("--out", type=Path, default=None, help="working folder (default out/llsm)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_TIME_POINTS} time points of small stacks (default out/llsm_quick)"
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="finish an interrupted conversion (only missing chunks)")
    again.add_argument("--overwrite", action="store_true", help="replace an existing output instead of keeping it")
    args = parser.parse_args(argv)
    stack = QUICK_STACK if args.quick else STACK
    gib = args.gib
    if gib is None:
        gib = QUICK_TIME_POINTS * time_point_bytes(stack) / 2**30 if args.quick else 1.0
    folder = args.out if args.out is not None else Path("out/llsm_quick" if args.quick else "out/llsm")
    raw, out = folder / "raw", folder / "run1.ome.zarr"
    if not raw.exists():
        n_t, n_c = generate(raw, gib, stack)
        print(f"generated {n_t} time points x {n_c} channels x {TILES[0] * TILES[1]} tiles in {raw}")
    nbytes = sum(p.stat().st_size for p in raw.glob("*.tif"))
    chunks = f"1,1,{min(32, stack[0])},{stack[1]},{stack[2]}"
    argv_convert = ["convert", str(raw), str(out), "--pattern", TEMPLATE, "--chunks", chunks]
    argv_convert += ["--levels", "3", "--progress", *(["--resume"] if args.resume else [])]
    argv_convert += ["--overwrite"] if args.overwrite else []
    print("$ " + shlex.join(["ome-arrow-dask", *argv_convert]))
    start = time.perf_counter()
    code = cli(argv_convert)
    seconds = time.perf_counter() - start
    if code:
        if code == 130:  # Ctrl-C: the CLI printed its --resume command; this script resumes too
            again = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--overwrite", "--resume")]
            print("or: " + shlex.join(["python", "examples/llsm_to_zarr.py", *again, "--resume"]), file=sys.stderr)
        return code
    if args.resume:
        print(f"resumed in {seconds:.1f} s (only the chunks the interrupted run had not written)")
    else:
        print(f"{nbytes / 2**30:.2f} GiB in {seconds:.1f} s: {nbytes / 1e6 / seconds:.0f} MB/s (3 pyramid levels)")
    check(raw, out, stack)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
