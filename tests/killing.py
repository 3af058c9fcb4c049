"""Run a real conversion process and SIGKILL it once it has written enough (crash tests)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def run_until_killed(cmd: list[str], written: Callable[[], int], target: int, timeout: float = 120.0) -> str:
    """Run ``cmd``; SIGKILL it once ``written()`` reaches ``target``. Return ``"killed"`` or ``"finished"``.

    Kill points are counts of what is on disk (done-markers, part files, chunk files), not
    delays, so each kill lands mid-write however busy the machine is.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if written() >= target:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "killed"
            if time.monotonic() > deadline:
                raise AssertionError(f"{cmd[3:5]} did not reach {target} written units in {timeout} s")
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()
    return "finished"
