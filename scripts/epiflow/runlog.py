"""Logging set-up shared by the workflow's script entry points."""

from __future__ import annotations

import logging
import os
import sys


def start(log_path: str) -> None:
    """Send logging records, warnings and stderr of this job to its Snakemake log file. Entry scripts call it before
    importing the rest of the library, so an import error (a package missing from the rule's env) is logged too.
    The process's file descriptor 2 is pointed at the log as well, so what C libraries write to stderr (htslib's
    and libBigWig's warnings, a crash's message) lands there, not on the console of the snakemake run."""
    handle = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr.flush()
    os.dup2(handle.fileno(), 2)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.captureWarnings(True)
