"""Atomic file writes: write to a temp file in the same directory, fsync, then rename.

A killed process therefore never leaves a half-written checkpoint, table or dataset behind."""
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def display_path(path):
    """A path as a generated file names it: relative to the repository, ../shared/... for the data
    beside it, anything else unchanged (a table must not print the directories of the machine that
    made it)."""
    p = os.path.abspath(path)
    parent = os.path.dirname(REPO)
    for root, prefix in ((REPO, ""), (os.path.join(parent, "shared"), "../")):
        if p == root or p.startswith(root + os.sep):
            return prefix + os.path.relpath(p, REPO if not prefix else parent)
    return path


_SHARED = re.compile(r"(?<![\w.])/[^\s'\"]*?/shared/(?=data/)")


def display_paths(text):
    """A text written elsewhere (an older run's note) with absolute paths into ../shared/data as ../shared/data."""
    return _SHARED.sub("../shared/", text)


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


def build_once(kind, key, build):
    """cache_root()/kind/key, built by build(tmp_dir) into a temp dir renamed into place, so
    concurrent builders never see half a build; dirs 0755, files 0644 unless executable."""
    root = os.path.join(cache_root(), kind)
    final = os.path.join(root, key)
    if not os.path.exists(final):
        os.makedirs(root, mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
        try:
            build(tmp)
            for dirpath, _, files in os.walk(tmp):
                os.chmod(dirpath, 0o755)
                for name in files:
                    p = os.path.join(dirpath, name)
                    os.chmod(p, 0o755 if os.stat(p).st_mode & 0o100 else 0o644)
            try:
                os.rename(tmp, final)
            except OSError:  # another process won the race
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class BuildError(RuntimeError):
    pass


def build_source_once(kind, source_path, argv, key_parts=(), env=None):
    """build_once of one source file: its text copied into the temp build dir (same base name) and compiled there
    by argv(src, tmp) (with env(tmp) when given), once per key: the source text and key_parts (the compiler's
    version, the CPU a -march=native build is for). Returns the built directory; a failed command raises
    BuildError with the tail of its stderr."""
    with open(source_path) as fh:
        source = fh.read()

    def build(tmp):
        src = os.path.join(tmp, os.path.basename(source_path))
        with open(src, "w") as fh:
            fh.write(source)
        cmd = argv(src, tmp)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env(tmp) if env else None)
        if r.returncode:
            raise BuildError(f"{cmd[0]} failed on {source_path}:\n{r.stderr[-2000:]}")

    key = hashlib.sha256("\0".join((*key_parts, source)).encode()).hexdigest()[:16]
    return build_once(kind, key, build)
