"""Logging setup and tqdm progress bars that stay quiet in CI and when output is not a terminal."""
import logging
import os
import sys

from tqdm import tqdm


def progress_enabled():
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable=None, **kwargs):
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
