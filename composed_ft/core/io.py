"""Atomic file writes: write to a temp file in the same directory, fsync, then rename.

A killed process therefore never leaves a half-written checkpoint, table or dataset behind."""
import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path next to `path`; on success it is renamed onto `path`, on error removed."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result should be an ordinary file
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def cache_root():
    """The project's per-machine cache (the precompiled header, the measured GEMM peak):
    $COMPOSED_FT_CACHE, else /var/cache/composed_ft as root (root's home is not traversable by the
    sandbox's `nobody`, which must read the PCH), else ~/.cache/composed_ft."""
    env = os.environ.get("COMPOSED_FT_CACHE")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/cache/composed_ft"
    return os.path.join(os.path.expanduser("~"), ".cache", "composed_ft")
