"""Shared by the generator scripts: one Go module's source, fetched through the Go module proxy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def download(module: str, version: str, *, gopath: Path | None = None) -> Path:
    """The unpacked ``module@version`` directory (from the module cache, else the proxy).

    ``gopath`` gives the download a private module cache (and so a private copy)."""
    env = dict(os.environ, GOFLAGS="-modcacherw", GO111MODULE="on")
    if gopath is not None:
        env["GOPATH"] = str(gopath)
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Error" in info or "Dir" not in info:
        raise SystemExit(f"go mod download {module}@{version} failed: {info.get('Error') or out.stderr}")
    return Path(info["Dir"])
