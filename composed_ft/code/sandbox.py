"""Compile and run one untrusted C++ program, contained.

Generated programs are untrusted, so every compile and every run happens
- in a fresh temp dir (removed afterwards), with a clean environment (no inherited secrets),
- under resource limits set right before exec by util-linux `prlimit` (CPU seconds, address
  space, file size = output cap, open files, no core dumps, and RLIMIT_NPROC=1 for runs: the
  user already has a process, so a program cannot fork at all),
- in its own process group, which is killed as a whole on timeout and after every run,
- as an unprivileged user (`nobody`) when we are root (as in CI), so the program can read nothing
  root could, and write nowhere but its temp dir and world-writable places (/tmp, bounded by the
  file size limit).

Not contained (documented limits): world-readable files stay readable (a program could read the
SPoC test cases under ../shared) and world-writable dirs writable; a mount namespace would close
both. Compiles may fork (g++ runs cc1plus, as, ld); their process group is killed afterwards.

Compilation uses a precompiled header of <bits/stdc++.h> built once per g++ version and flags
(`ensure_pch`): compiling a small program drops from ~1.6 s to ~0.25 s.
"""
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from composed_ft.core.io import cache_root

log = logging.getLogger(__name__)

DEFAULT_HEADER = "#include <bits/stdc++.h>\nusing namespace std;\n"
BASE_FLAGS = ("-O0", "-w", "-fmax-errors=5")
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"

TIME_LIMIT_S = 2.0
OUTPUT_CAP_BYTES = 16 << 20  # far above any expected output; a 1 GB writer is cut here
RUN_ADDRESS_SPACE = 2 << 30
COMPILE_ADDRESS_SPACE = 6 << 30  # cc1plus maps the ~100 MB PCH and needs room besides
COMPILE_TIME_S = 30
STDERR_KEEP = 4000


def gxx():
    return os.environ.get("CXX_SANDBOX", "g++")


def link_flags():
    """Flags for the program compile only (not the PCH): -pipe (no temp .s/.o files between cc1plus,
    as and ld) and the gold linker when binutils ships it; linking with GNU ld's default
    (bfd) was a large share of a PCH compile (scripts/bench_evaluator.py measures both)."""
    flags = ["-pipe"]
    if os.environ.get("CFT_LINKER", "gold") == "gold" and shutil.which("ld.gold", path=CLEAN_PATH):
        flags.append("-fuse-ld=gold")
    return flags


def compile_flags(std=None):
    """g++ flags for programs and the PCH (they must match for the PCH to be used)."""
    flags = list(BASE_FLAGS)
    if std:
        flags.append(f"-std={std}")
    return flags


def _running_as_root():
    return os.geteuid() == 0


_IDS = []


def sandbox_ids():
    """(uid, gid) of the unprivileged user programs run as, or None when we are not root (or root
    cannot switch users here, e.g. a container without CAP_SETUID: then a warning, once)."""
    if not _running_as_root():
        return None
    if not _IDS:
        try:
            pw = pwd.getpwnam("nobody")
            ids = (pw.pw_uid, pw.pw_gid)
        except KeyError:
            ids = (65534, 65534)
        try:
            subprocess.run(["true"], user=ids[0], group=ids[1], extra_groups=[], check=True,
                           env={"PATH": CLEAN_PATH}, cwd="/")
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("cannot switch to the unprivileged user %s (%s): programs run as root", ids, e)
            ids = None
        _IDS.append(ids)
    return _IDS[0]


def _real_header_path():
    out = subprocess.run(
        [gxx(), "-x", "c++", "-M", "-"], input="#include <bits/stdc++.h>\n",
        capture_output=True, text=True, env=_clean_env(tempfile.gettempdir()), check=True
    ).stdout
    for tok in out.replace("\\\n", " ").split():
        if tok.endswith("bits/stdc++.h"):
            return tok
    raise RuntimeError("could not locate bits/stdc++.h via g++ -M")


def _gxx_version():
    return subprocess.run([gxx(), "--version"], capture_output=True, text=True, check=True).stdout


_PCH_MEMO = {}


def ensure_pch(std=None):
    """Build (once) and return an include dir whose bits/stdc++.h.gch matches `std`; None on failure.

    Keyed by g++ version + flags, built in a temp dir and renamed into place so concurrent builders
    never see a half-written PCH. Dirs are 0755 / files 0644 so `nobody` can read but not write."""
    flags = compile_flags(std)
    if tuple(flags) in _PCH_MEMO:
        return _PCH_MEMO[tuple(flags)]
    result = None
    try:
        key = hashlib.sha256((_gxx_version() + "\0" + " ".join(flags)).encode()).hexdigest()[:16]
        root = os.path.join(cache_root(), "pch")
        final = os.path.join(root, key)
        if not os.path.exists(os.path.join(final, "bits", "stdc++.h.gch")):
            os.makedirs(root, mode=0o755, exist_ok=True)
            os.chmod(root, 0o755)
            tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
            try:
                os.makedirs(os.path.join(tmp, "bits"))
                hdr = os.path.join(tmp, "bits", "stdc++.h")
                with open(hdr, "w") as f:
                    # the real header by absolute path, so this file never includes itself
                    f.write(f"#include <{_real_header_path()}>\n")
                log.info("building precompiled header for g++ %s (once)", " ".join(flags))
                subprocess.run([gxx(), *flags, "-x", "c++-header", hdr, "-o", hdr + ".gch"],
                               check=True, capture_output=True, env=_clean_env(tmp))
                for dirpath, _, files in os.walk(tmp):
                    os.chmod(dirpath, 0o755)
                    for name in files:
                        os.chmod(os.path.join(dirpath, name), 0o644)
                try:
                    os.rename(tmp, final)
                except OSError:  # another process won the race
                    pass
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        result = final
    except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
        log.warning("precompiled header unavailable (%s); compiling without it (slower)", e)
    _PCH_MEMO[tuple(flags)] = result
    return result


def _clean_env(workdir):
    return {"PATH": CLEAN_PATH, "LANG": "C", "LC_ALL": "C", "HOME": workdir, "TMPDIR": workdir}


def _limited(cmd, cpu_s, address_space, fsize, nproc, nofile):
    """Prefix `cmd` with util-linux `prlimit`, which sets the limits on itself and execs `cmd`.

    Done by an exec'd helper rather than a Python preexec_fn, which is unsafe in a threaded parent
    (we judge from a thread pool, and callers may be torch processes). NPROC counts every process
    of the user; the uid switch happened before, so the kernel's "over NPROC at setuid" exec check
    was made against the old (high) limit and only later forks are refused."""
    return ["prlimit", "--core=0", f"--cpu={cpu_s}:{cpu_s + 1}", f"--as={address_space}",
            f"--fsize={fsize}", f"--nofile={nofile}", f"--nproc={nproc}", "--", *cmd]


def _popen_kwargs(workdir):
    # own process group (killed as a whole), but not a new session: a new session also gets a new
    # scheduler autogroup, which measurably slowed compiles on a loaded machine
    kw = dict(cwd=workdir, env=_clean_env(workdir), close_fds=True)
    if sys.version_info >= (3, 11):
        kw["process_group"] = 0
    else:
        kw["start_new_session"] = True
    ids = sandbox_ids()
    if ids is not None:
        kw.update(user=ids[0], group=ids[1], extra_groups=[])
    return kw


def _kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _wait(proc, wall_s):
    """Block in wait4 until the process ends (no polling latency, and its rusage); a timer kills
    the whole group at the wall limit. Returns (returncode, timed_out, cpu_seconds)."""
    fired = threading.Event()

    def on_timeout():
        # a process that already ended (we were merely slow to reap it, e.g. suspended) is no timeout
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        fired.set()
        _kill_group(proc.pid)

    timer = threading.Timer(wall_s, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        while True:
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid)  # leftovers of a program that exited but left children behind
    return proc.returncode, fired.is_set(), ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def workdir(base=None):
    """A fresh private temp dir, owned by the sandbox user when we are root; always removed."""
    d = tempfile.mkdtemp(prefix="cft-sbx-", dir=base)
    try:
        ids = sandbox_ids()
        if ids is not None:
            _check_traversable(os.path.dirname(d))
            os.chown(d, *ids)
        os.chmod(d, 0o700)
        yield d
    finally:
        _rmtree(d)


_TRAVERSABLE = set()


def _check_traversable(path):
    """`nobody` must be able to reach its temp dir: every ancestor needs the others-x bit."""
    if path in _TRAVERSABLE:
        return
    p = os.path.abspath(path)
    while True:
        if not os.stat(p).st_mode & 0o001:
            raise RuntimeError(f"sandbox temp base {path}: {p} is not traversable by the unprivileged "
                               "user (needs o+x); pass a base dir such as /tmp")
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    _TRAVERSABLE.add(path)


def _rmtree(d):
    def fix_and_retry(func, path, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)

    shutil.rmtree(d, onerror=fix_and_retry)


def _read_head(path, limit):
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def compile_source(source, wd, std=None, use_pch=True, syntax_only=False, max_errors=None,
                   stderr_keep=STDERR_KEEP):
    """Compile `source` inside `wd` as the sandbox user. Returns (exe path or None, stderr text).

    syntax_only: run g++ -fsyntax-only (about twice as fast; enough to tell whether code compiles,
    except for link errors); returns (True, stderr) on success then. max_errors overrides
    -fmax-errors (0: all; the batched judge needs every program's errors) without invalidating the
    PCH; stderr_keep: how many bytes of the diagnostics to return."""
    src = os.path.join(wd, "prog.cpp")
    exe = os.path.join(wd, "prog")
    with open(src, "w") as f:
        f.write(source)
    os.chmod(src, 0o644)
    cmd = [gxx(), *compile_flags(std)]
    pch = ensure_pch(std) if use_pch else None
    if pch:
        cmd.append(f"-I{pch}")
    if max_errors is not None:
        cmd.append(f"-fmax-errors={max_errors}")
    cmd += [src, "-fsyntax-only"] if syntax_only else [*link_flags(), src, "-o", exe]
    err_path = os.path.join(wd, "compile.err")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            _limited(cmd, COMPILE_TIME_S, COMPILE_ADDRESS_SPACE, 256 << 20, 4096, 256),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, **_popen_kwargs(wd))
        rc, timed_out, _ = _wait(proc, COMPILE_TIME_S * 2)
    text = _read_head(err_path, stderr_keep).decode("utf-8", "replace")
    if timed_out:
        text += "\n[compile timed out]"
    if rc != 0 or timed_out:
        return None, text
    if syntax_only:
        return True, text
    if not os.path.exists(exe):
        return None, text
    return exe, text


def run_binary(exe, input_bytes, wd, time_limit=TIME_LIMIT_S, output_cap=OUTPUT_CAP_BYTES, args=()):
    """Run a compiled program on one input (`args`: its command-line arguments). Returns
    dict(status, stdout, returncode, seconds).

    status: ok / runtime_error / timeout / output_limit. Timeout means over `time_limit` CPU seconds
    (RLIMIT_CPU) or over a generous wall limit (sleepers); CPU time, not wall time, decides so a
    busy machine does not turn correct programs into timeouts."""
    in_path = os.path.join(wd, "input.txt")
    out_path = os.path.join(wd, "stdout.txt")
    err_path = os.path.join(wd, "stderr.txt")
    with open(in_path, "wb") as f:
        f.write(input_bytes)
    os.chmod(in_path, 0o644)
    cpu = max(1, int(time_limit + 0.999))
    t0 = time.monotonic()
    with open(in_path, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
        proc = subprocess.Popen(
            _limited([exe, *args], cpu, RUN_ADDRESS_SPACE, output_cap, 1, 64),
            stdin=fin, stdout=fout, stderr=ferr, **_popen_kwargs(wd))
        rc, wall_out, cpu_used = _wait(proc, max(10.0, 5 * time_limit))
    seconds = time.monotonic() - t0
    stdout = _read_head(out_path, output_cap)
    if wall_out or cpu_used > time_limit or rc in (-signal.SIGXCPU,):
        status = "timeout"
    elif rc == -signal.SIGXFSZ:
        status = "output_limit"
    elif rc != 0:
        status = "runtime_error"
    else:
        status = "ok"
    return {"status": status, "stdout": stdout, "returncode": rc, "seconds": seconds,
            "cpu_seconds": cpu_used, "stderr": _read_head(err_path, STDERR_KEEP)}
