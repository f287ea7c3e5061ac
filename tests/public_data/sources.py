"""Obtaining the public sample data, from PyPI only, into a cache folder outside git.

- Chinook (music store; MIT licence, DDL and data by Luis Rocha): the SQL files shipped in
  the wheel of ``dictum-core==0.1.15`` (``dictum_core/examples/chinook/``), downloaded with
  ``pip download --no-deps`` and read from the wheel; dictum-core is never installed.
- TPC-DS (the TPC's public decision-support benchmark schema): generated at scale factor
  0.01 by ``tpcgen-cli`` (Apache-2.0, a dev dependency), then cut down to the rows the
  tests load (see ``tpcds.py``).

The cache is ``$GOVKIT_PUBLIC_DATA`` or ``~/.cache/govkit-public-data``. Run this file
(``python tests/public_data/sources.py``) to fill it ahead of the tests, as ``.ci/run`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CHINOOK_WHEEL_SPEC = "dictum-core==0.1.15"
CHINOOK_WHEEL = "dictum_core-0.1.15-py3-none-any.whl"
CHINOOK_MEMBERS = {
    "sqlite": "dictum_core/examples/chinook/chinook.sqlite.sql",
    "postgres": "dictum_core/examples/chinook/chinook.postgres.sql",
}
TPCDS_SCALE = "0.01"


class DataUnavailable(RuntimeError):
    """The public data could not be obtained (no network, no tpcgen-cli)."""


def cache_dir() -> Path:
    """The folder the public data is kept in (created when missing)."""
    root = Path(os.environ.get("GOVKIT_PUBLIC_DATA")
                or Path.home() / ".cache" / "govkit-public-data")
    root.mkdir(parents=True, exist_ok=True)
    return root


def chinook_wheel() -> Path:
    """The dictum-core wheel holding the Chinook SQL, downloaded from PyPI once."""
    wheel = cache_dir() / CHINOOK_WHEEL
    if not wheel.exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-q", CHINOOK_WHEEL_SPEC, "-d", str(cache_dir())],
            capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not wheel.exists():
            raise DataUnavailable(f"pip download {CHINOOK_WHEEL_SPEC} failed: "
                                  f"{(done.stderr or done.stdout).strip()[-300:]}")
    return wheel


def chinook_sql(dialect: str) -> str:
    """The Chinook SQL script for ``sqlite`` or ``postgres``, as published."""
    with zipfile.ZipFile(chinook_wheel()) as z:
        return z.read(CHINOOK_MEMBERS[dialect]).decode("utf-8")


def tpcds_raw_dir() -> Path:
    """The CSV files tpcgen-cli generates for TPC-DS at scale factor 0.01."""
    out = cache_dir() / f"tpcds-sf{TPCDS_SCALE}"
    if (out / ".complete").exists():
        return out
    exe = shutil.which("tpcgen-cli")
    if exe is None:
        raise DataUnavailable("tpcgen-cli is not installed (pip install -e '.[dev]')")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    done = subprocess.run([exe, "tpcds", "csv", "-s", TPCDS_SCALE, "--output-dir", str(tmp)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise DataUnavailable(f"tpcgen-cli failed: {done.stderr.strip()[-300:]}")
    (tmp / ".complete").write_text("tpcgen-cli tpcds csv -s " + TPCDS_SCALE + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def prepare() -> None:
    """Fetch and generate everything the public-data tests load."""
    for dialect in CHINOOK_MEMBERS:
        chinook_sql(dialect)
    raw = tpcds_raw_dir()
    print(f"public data ready in {cache_dir()} (Chinook from {CHINOOK_WHEEL}, "
          f"TPC-DS in {raw.name})")


if __name__ == "__main__":
    prepare()
