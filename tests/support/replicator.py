"""``python -m replicator run`` as a child process the test can kill, stop, pause and measure.

Also: waiting helpers that read the destination with etcdctl only (``oracle.dump``), and
``cpu_seconds`` from ``/proc/<pid>/stat`` (user + system time of every thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import oracle

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Replicator:
    source: str
    dest: str
    rules: Path
    journal: str
    state_dir: Path
    log_path: Path
    extra: Sequence[str] = ()
    starts: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "replicator",
            "run",
            f"--source-endpoints={self.source}",
            f"--dest-endpoints={self.dest}",
            f"--mirror-rule={self.rules}",
            f"--journal={self.journal}",
            f"--state-dir={self.state_dir}",
            "--dial-timeout=1s",
            "--request-timeout=3s",
            *self.extra,
        ]

    def start(self) -> None:
        assert not self.running, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._proc = None

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``timeout``, then fails)."""
        assert self._proc is not None
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(
                f"replicator did not stop within {timeout}s of SIGTERM\n{self.log_tail()}"
            ) from None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / _CLK_TCK

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def assert_alive(self) -> None:
        if not self.running:
            raise AssertionError(f"replicator exited ({self.returncode})\n{self.log_tail()}")


def wait_for(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.2,
    rep: Replicator | None = None,
) -> None:
    """Poll ``check``; with ``rep``, fail at once if it exits, and show its log on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rep is not None:
            rep.assert_alive()
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{rep.log_tail() if rep else ''}")


def synced(dest_endpoint: str) -> bool:
    """The destination checkpoint says the full sync is done (etcdctl read)."""
    try:
        _, kvs = oracle.dump(dest_endpoint, oracle.CHECKPOINT, timeout=10)
    except (AssertionError, subprocess.TimeoutExpired):
        return False
    ck = oracle.checkpoint(kvs)
    return ck is not None and ck.get("phase") == "watching"


def converge(
    rep: Replicator,
    source_endpoint: str,
    dest_endpoint: str,
    *,
    own: Sequence[str] = (),
    timeout: float = 30.0,
    require_running: bool = True,
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Wait until the destination equals the oracle over the source and the checkpoint has reached
    the source's head; returns (source dump, dest dump). Fails with the last difference."""
    deadline = time.monotonic() + timeout
    last = "nothing compared yet"
    while time.monotonic() < deadline:
        if require_running:
            rep.assert_alive()
        try:
            head, src = oracle.dump(source_endpoint)
            _, dst = oracle.dump(dest_endpoint)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            last = str(exc)
            time.sleep(0.3)
            continue
        diff = oracle.compare(src, dst, own=own)
        ck = oracle.checkpoint(dst)
        at = int(str(ck["revision"])) if ck else -1
        if not diff and at >= head:
            return src, dst
        last = f"{diff}; destination checkpoint {ck}, source head {head}"
        time.sleep(0.3)
    raise AssertionError(f"destination did not converge within {timeout}s: {last}\n{rep.log_tail()}")
