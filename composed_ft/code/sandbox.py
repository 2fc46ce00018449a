"""Compile and run one untrusted C++ program, contained (code/README.md, "Containment", gives the
threat model: what is contained, how, and what is not).

As root (as in CI) every compile and every run
- runs as a uid of its own: one leased per sandbox from a pool (UID_BASE + k, an flock per uid,
  so no two sandboxes on the machine, in any process, share one),
- in fresh network, IPC, PID and mount namespaces where the kernel allows them: no network, no
  other process, private tmpfs mounts over the world-writable temp dirs; a run's working dir is
  that private /tmp. Without namespaces (a logged warning) each run gets a fresh dir of its own, and
  what its uid left in the shared temp dirs and System V IPC is removed after it,
- under resource limits (CPU seconds, address space, file size = output cap, open files, no core
  dumps, one process for runs: a program cannot fork), and in a memory cgroup of its uid where the
  kernel offers one (memfds and tmpfs counted too),
- in a session of its own without a controlling terminal (nothing to type into or write on), its
  stdin/stdout/stderr never a terminal, with a fresh empty session keyring, killed as a whole on
  timeout and after every run, with a clean environment (no inherited secrets).
A small helper does all that right before exec (sandbox_helper.c, built with g++ once per machine): a
Python preexec_fn is unsafe in a threaded parent, and util-linux's unshare/setpriv/prlimit chain
costs several execs per test.

The judge (root) never handles by path anything a program could have replaced: stdin, stdout and
stderr are memfds it made; the executable is opened O_NOFOLLOW through a descriptor of the compile
dir, checked to be a regular file the compiler made, made root's and run through that descriptor
(fexecve); dirs are made, handed over and removed through descriptors of their root-owned parents,
under /var/lib/composed_ft/sandbox (only root can list it).

Root that cannot switch uids refuses to run programs (SandboxError) unless CFT_ALLOW_UNSANDBOXED=1.
Not root: programs run as the calling user under the limits only (a logged warning).
CFT_SANDBOX_NS=0 turns the namespaces off, CFT_SANDBOX_CGROUP=0 the memory cgroups.

Compilation uses a precompiled header of <bits/stdc++.h> built once per g++ version and flags
(gxx.py: the compiler, its flags and the build-once cache).
"""
import contextlib
import ctypes
import fcntl
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time

from composed_ft.code.gxx import (
    CLEAN_PATH,
    clean_env,
    compile_flags,
    ensure_pch,
    gxx,
    gxx_version,
    link_flags,
)
from composed_ft.core.io import BuildError, build_source_once, cache_root

log = logging.getLogger(__name__)


TIME_LIMIT_S = 2.0
OUTPUT_CAP_BYTES = 16 << 20  # far above any expected output; a 1 GB writer is cut here
RUN_ADDRESS_SPACE = 2 << 30
RUN_OPEN_FILES = 16  # with the 16 MiB file size limit: at most ~200 MiB of memfds held open beside the 2 GiB
CGROUP_HEADROOM = 256 << 20  # a memory cgroup's cap: the address-space limit plus this (page cache, tmpfs, memfds)
COMPILE_ADDRESS_SPACE = 6 << 30  # cc1plus maps the ~100 MB PCH and needs room besides
COMPILE_TIME_S = 30
STDERR_KEEP = 4000

STATE_ROOT = "/var/lib/composed_ft"  # as root: the sandboxes' parent and the uid pool's locks
UID_BASE = 2_000_000  # a range no account uses; numeric ids need no passwd entry
UID_POOL = 64  # concurrent sandboxes on the machine, all processes together
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable: cleaned after each run without namespaces


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as promised; nothing was run."""


def _running_as_root():
    return os.geteuid() == 0


# ---------------------------------------------------------------- the helper that starts every process

# Run by root; its arguments come from this module only. The program never inherits the report or
# executable descriptors (close-on-exec) and, in namespaces, runs as PID 2 under a root init that
# only waits for it (a PID 1 would ignore SIGXCPU, SIGXFSZ and SIGABRT). Its source: sandbox_helper.c.
_HELPER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_helper.c")
_HELPER = []
_HELPER_LOCK = threading.Lock()


def _helper():
    """Path of the built helper (once per machine and g++), checked to be ours and unwritable by
    anyone else, since root runs it."""
    with _HELPER_LOCK:
        if not _HELPER:
            try:
                built = build_source_once("sandbox-helper", _HELPER_SOURCE, lambda src, tmp: [
                    gxx(), "-O2", "-x", "c++", src, "-o", os.path.join(tmp, "cft-sandbox")],
                    key_parts=(gxx_version(),), env=clean_env)
            except BuildError as e:
                raise SandboxError(f"cannot build the sandbox helper with {gxx()}: {e}") from None
            path = os.path.join(built, "cft-sandbox")
            for p in (path, os.path.dirname(path)):
                st = os.lstat(p)
                if st.st_uid != os.geteuid() or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
                    raise SandboxError(f"{p}: not owned by us or writable by others; remove it")
            _HELPER.append(path)
        return _HELPER[0]


# ---------------------------------------------------------------- file descriptors instead of paths

def _memfd(name, data=b""):
    """An anonymous in-memory file: the program's stdin/stdout/stderr, never reachable by a path."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_fd(fd, limit):
    chunks, off = [], 0
    while off < limit:
        b = os.pread(fd, min(limit - off, 1 << 20), off)
        if not b:
            break
        chunks.append(b)
        off += len(b)
    return b"".join(chunks)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _owned_dir(path, mode, fix_mode):
    """Open (creating it) a dir of ours that nobody else can write to; returns its descriptor.
    fix_mode: set `mode` (our own dirs); else only refuse one that is writable by others."""
    os.makedirs(path, mode=mode, exist_ok=True)
    fd = os.open(path, _DIR_FLAGS)
    st = os.fstat(fd)
    if fix_mode and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
    elif st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise SandboxError(f"sandbox dir {path} must be owned by uid {os.geteuid()} and writable by nobody "
                           "else (not /tmp itself)")
    return fd


def _mkdir(parent_fd, prefix, mode):
    """A new dir under parent_fd with a random name; returns (name, descriptor)."""
    while True:
        name = prefix + secrets.token_hex(6)
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            continue
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        os.fchmod(fd, mode)
        return name, fd


def _remove(parent_fd, name):
    """Remove parent/name, whatever the program left in it. rmtree works through descriptors and
    never follows links; a tree deeper than its recursion goes to coreutils rm."""
    path = f"/proc/self/fd/{parent_fd}/{name}"
    try:
        shutil.rmtree(path)
        return
    except (OSError, RecursionError):
        pass
    # not root: the program (running as us) may have made dirs unwritable; root needs no chmod
    script = 'rm -rf -- "$1"' if _running_as_root() else 'chmod -R u+rwx -- "$1"; rm -rf -- "$1"'
    subprocess.run(["sh", "-c", script, "sh", path], pass_fds=(parent_fd,), env={"PATH": CLEAN_PATH},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.path.lexists(path):
        log.warning("could not remove sandbox dir %s", name)


# ---------------------------------------------------------------- uid pool and the policy

_DIRTY = b"held\n"  # written into a uid's lock file while leased; still there means its holder died


def _kill_leftovers(uid):
    """SIGKILL every process whose real uid is `uid` (left behind by a judge that died)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                ruid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            if ruid == uid:
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, StopIteration, ValueError):
            pass


@contextlib.contextmanager
def _lease_uid():
    """A uid from the pool that no other sandbox on this machine holds (an exclusive flock per uid
    in a root-only dir, so judges in other processes take others); None when not root."""
    if not _running_as_root():
        yield None
        return
    locks = _owned_dir(os.path.join(STATE_ROOT, "uids"), 0o700, fix_mode=True)
    try:
        while True:
            for uid in range(UID_BASE, UID_BASE + UID_POOL):
                fd = os.open(str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=locks)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    if os.pread(fd, 16, 0) == _DIRTY:
                        _kill_leftovers(uid)
                    os.pwrite(fd, _DIRTY, 0)
                    yield uid
                    os.ftruncate(fd, 0)  # released cleanly: no process of this uid is left
                finally:
                    os.close(fd)
                return
            time.sleep(0.05)  # every uid busy
    finally:
        os.close(locks)


_POLICY = {}
_POLICY_LOCK = threading.Lock()


def _probe(uid, ns):
    """Run `id -u` the way programs will run; returns an error text, or None when it ran as `uid`."""
    box = Box(None, None, uid, ns)
    fd = os.open("/", _DIR_FLAGS)
    out = _memfd("cft-probe")
    try:
        rc, _, _ = box.spawn(["id", "-u"], (5, 1 << 30, 1 << 20, 64, 1), 30, cwd_fd=None if ns else fd,
                             stdout=out, stderr=out)
        text = _read_fd(out, 4096).decode("utf-8", "replace").strip()
    except SandboxError as e:
        return str(e)
    finally:
        os.close(fd)
        os.close(out)
    want = str(uid if uid is not None else os.geteuid())
    return None if rc == 0 and text == want else f"exit {rc}, output {text!r}"


def policy(uid=None):
    """How programs are contained here, decided once per process: {"uid": they run as the leased
    uid, "ns": in fresh namespaces, "cgroup": the memory cgroup ("v1"/"v2") every sandbox's processes
    are counted in, or None}. Raises SandboxError when root cannot switch uids (unless
    CFT_ALLOW_UNSANDBOXED=1). uid: the caller's leased uid, if it holds one."""
    with _POLICY_LOCK:
        if not _POLICY:
            if not _running_as_root():
                log.warning("not root: programs run as this user (uid %d) under resource limits only, "
                            "without a uid of their own or namespaces", os.geteuid())
                _POLICY.update(uid=False, ns=False, cgroup=None)
            elif uid is None:
                with _lease_uid() as leased:
                    _decide(leased)
            else:
                _decide(uid)
        return dict(_POLICY)


def _decide(uid):
    taken = [u for u in range(UID_BASE, UID_BASE + UID_POOL) if _has_account(u)]
    err = f"uids {taken} of the pool belong to accounts" if taken else _probe(uid, ns=False)
    if err:
        if os.environ.get("CFT_ALLOW_UNSANDBOXED") != "1":
            raise SandboxError(
                f"running as root but cannot run programs as an unprivileged uid ({err}); refusing to run "
                "untrusted programs as root. Set CFT_ALLOW_UNSANDBOXED=1 to run them as root anyway (only "
                "on a machine you can throw away).")
        log.warning("CFT_ALLOW_UNSANDBOXED=1: untrusted programs run AS ROOT (cannot switch uid: %s)", err)
    ns = False
    if os.environ.get("CFT_SANDBOX_NS", "1") != "0":
        ns_err = _probe(None if err else uid, ns=True)
        if ns_err:
            log.warning("namespaces unavailable (%s): programs are contained by their uid and resource limits "
                        "only; they can reach the network and the shared temp dirs", ns_err)
        ns = ns_err is None
    cg = None
    if not err and os.environ.get("CFT_SANDBOX_CGROUP", "1") != "0":
        cg_err = _probe_cgroup(uid, ns)
        if cg_err:
            log.warning("no memory cgroup for the sandboxes (%s): a program's memory is capped by rlimits only "
                        "(address space, open files x file size, the private /tmp)", cg_err)
        else:
            cg = _memory_cgroup()[0]
    _POLICY.update(uid=not err, ns=ns, cgroup=cg)


def _has_account(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def reset_policy():
    """Forget the probed policy (tests change the environment between calls)."""
    with _POLICY_LOCK:
        _POLICY.clear()


# ---------------------------------------------------------------- memory cgroups

_CGROUP = []


def _memory_cgroup():
    """(version, dir) of the cgroup under which the sandboxes' memory cgroups are made (this
    process's own memory cgroup: v2 where memory is delegated to its children, else v1's memory
    hierarchy), or (None, why)."""
    if _CGROUP:
        return _CGROUP[0]
    found = (None, "no cgroup with the memory controller")
    try:
        with open("/proc/self/cgroup") as f:
            own = dict((c, path) for line in f for _, cs, path in [line.rstrip("\n").split(":", 2)]
                       for c in (cs.split(",") if cs else ["<v2>"]))
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
        for m in mounts:
            sep = m.index("-")
            fstype, opts, root, point = m[sep + 1], m[sep + 3].split(","), m[3], m[4]
            if fstype == "cgroup2" and "<v2>" in own:
                d = os.path.join(point, os.path.relpath(own["<v2>"], root).lstrip("."))
                try:
                    with open(os.path.join(d, "cgroup.subtree_control")) as f:
                        delegated = "memory" in f.read().split()
                    if not delegated:  # possible only while no process sits in our cgroup itself
                        with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                            f.write("+memory")
                    found = ("v2", d)
                    break
                except OSError:
                    continue
            if fstype == "cgroup" and "memory" in opts and "memory" in own:
                rel = os.path.relpath(own["memory"], root)
                if not rel.startswith(".."):
                    found = ("v1", os.path.normpath(os.path.join(point, rel)))
    except (OSError, ValueError, IndexError) as e:
        found = (None, f"cannot read this process's cgroups ({e})")
    _CGROUP.append(found)
    return found


def _cgroup_procs(uid, limit_bytes):
    """A descriptor on cgroup.procs of the sandbox uid's memory cgroup (made once, reused), its cap set
    to limit_bytes; the helper writes its own pid into it before anything runs."""
    version, root = _memory_cgroup()
    d = os.path.join(root, "cft-sandbox", f"u{uid}")
    files = {"v1": ("memory.limit_in_bytes",), "v2": ("memory.max", "memory.swap.max")}[version]
    for attempt in (0, 1):
        os.makedirs(d, mode=0o755, exist_ok=True)
        try:
            for name in files:
                try:
                    with open(os.path.join(d, name), "w") as f:
                        f.write(str(limit_bytes) if name != "memory.swap.max" else "0")
                except OSError:
                    if name != "memory.swap.max":  # no swap accounting: RAM is still capped
                        raise
            break
        except OSError:  # e.g. a cap below what earlier processes left charged: a fresh cgroup
            if attempt:
                raise
            os.rmdir(d)  # the uid has no process left (its lease is ours); its charges go to the parent
    return os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)


def _probe_cgroup(uid, ns):
    """None when a sandbox's processes can be put in a memory cgroup of its uid that caps them; else why
    not. The probe allocates past a small cap and must be killed."""
    version, root = _memory_cgroup()
    if version is None:
        return root
    box = Box(None, None, uid, ns, cgroup=version)
    fd = os.open("/", _DIR_FLAGS)
    try:
        box.cg_limit = 32 << 20  # `head -c 64M /dev/zero | tail` holds 64 MiB in tail's memory
        rc, _, _ = box.spawn(["sh", "-c", "head -c 67108864 /dev/zero | tail -c 67108864 >/dev/null"],
                             (10, 1 << 30, 1 << 20, 64, 8), 30, cwd_fd=None if ns else fd)
    except (OSError, SandboxError) as e:
        return str(e)
    finally:
        os.close(fd)
    return None if rc != 0 else "a 32 MiB cap did not stop a 64 MiB allocation"


# ---------------------------------------------------------------- without namespaces: what a run leaves

_LIBC = []


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _remove_ipc(uid):
    """Remove the System V shared memory, message queues and semaphores the uid created (they outlive
    the program without an IPC namespace, holding memory no rlimit counts)."""
    libc = _libc()
    for table, rm in (("shm", lambda i: libc.shmctl(i, 0, None)), ("msg", lambda i: libc.msgctl(i, 0, None)),
                      ("sem", lambda i: libc.semctl(i, 0, 0))):
        try:
            with open(f"/proc/sysvipc/{table}") as f:
                head, *rows = f.read().splitlines()
        except OSError:
            continue
        col = head.split().index("cuid")  # the creator: IPC_SET cannot change it
        for row in rows:
            cells = row.split()
            if len(cells) > col and int(cells[col]) == uid:
                rm(int(cells[1]))  # IPC_RMID


def _remove_owned(dir_fd, uid, depth=0):
    """Remove every entry the uid owns under dir_fd, looking into the world-writable dirs of others
    (e.g. /tmp/.X11-unix) too. Through descriptors, never following a link; the uid has no process
    left to race with."""
    for name in os.listdir(dir_fd):
        try:
            st = os.lstat(name, dir_fd=dir_fd)
            if st.st_uid == uid:
                if stat.S_ISDIR(st.st_mode):
                    _remove(dir_fd, name)
                else:
                    os.unlink(name, dir_fd=dir_fd)
            elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002 and depth < 4:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _remove_owned(sub, uid, depth + 1)
                finally:
                    os.close(sub)
        except OSError:
            pass


def clean_after(uid):
    """Without namespaces: remove what the uid's program left in the shared temp dirs (files whose
    blocks `fallocate(FALLOC_FL_KEEP_SIZE)` hides from their size included) and its System V IPC
    objects. Called after every process of the sandbox."""
    for d in TEMP_DIRS:
        try:
            fd = os.open(d, _DIR_FLAGS)
        except OSError:
            continue
        try:
            _remove_owned(fd, uid)
        finally:
            os.close(fd)
    _remove_ipc(uid)


# ---------------------------------------------------------------- one sandbox

class Box:
    """One program's (or one batch's) sandbox: a root-owned dir (0711) under the base, the uid
    leased for it, and the programs compiled in it, held as descriptors."""

    def __init__(self, fd, path, uid, ns, cgroup=None):
        self.fd, self.path, self.uid, self.ns, self.cgroup = fd, path, uid, ns, cgroup
        self.cg_limit = None  # a memory cgroup's cap other than the address-space limit + CGROUP_HEADROOM
        self.exes = []

    def subdir(self, files=None):
        """A fresh dir in the box for the compiler or one test: root writes `files` into it first,
        then hands it to the sandbox uid (0700). Returns (name, descriptor)."""
        name, fd = _mkdir(self.fd, "d", 0o700)
        for fname, text in (files or {}).items():
            f = os.open(fname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
            with os.fdopen(f, "w") as fh:
                os.fchmod(f, 0o644)
                fh.write(text)
        if self.uid is not None:
            os.fchown(fd, self.uid, self.uid)
        return name, fd

    def drop(self, name, fd):
        os.close(fd)
        _remove(self.fd, name)

    @contextlib.contextmanager
    def run_dir(self):
        """The working dir of one run: None (the namespace's private /tmp) or a fresh subdir."""
        if self.ns:
            yield None
            return
        name, fd = self.subdir()
        try:
            yield fd
        finally:
            self.drop(name, fd)

    def take_exe(self, dir_fd, name):
        """The compiler's output as a descriptor, if it is a regular file the sandbox uid made (never
        a link, a fifo or a hard link to something else); then root's (0755), so nothing a program
        runs as can change it for the next test or the next program of a batch."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != (
                os.geteuid() if self.uid is None else self.uid):
            os.close(fd)
            return None
        if self.uid is not None:
            os.fchown(fd, 0, 0)
        os.fchmod(fd, 0o755)
        self.exes.append(fd)
        return fd

    def variant(self, exe, offset, patch):
        """A copy of the executable `exe` (a descriptor from take_exe) with `patch` written at `offset`:
        root's (0755) in the box, which only root can write; returns its descriptor."""
        data = bytearray(_read_fd(exe, 1 << 31))
        data[offset:offset + len(patch)] = patch
        name = "x" + secrets.token_hex(8)
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755, dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)  # a descriptor open for writing cannot be executed
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        self.exes.append(fd)
        return fd

    def spawn(self, argv, limits, wall_s, cwd_fd=None, exe_fd=None, stdin=subprocess.DEVNULL,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        """Start argv through the helper and wait; returns (returncode, timed_out, cpu_seconds).
        limits: (CPU s, address space, file size, open files, processes). stdin, stdout and stderr
        are never the judge's own (which may be a terminal)."""
        report = _memfd("cft-report")
        cmd, fds, cg = [_helper()], [report], None
        if self.ns:
            cmd.append("-n")
        if self.uid is not None:
            cmd += ["-u", str(self.uid), "-g", str(self.uid)]
        try:
            if self.cgroup:
                cg = _cgroup_procs(self.uid, self.cg_limit or int(limits[1]) + CGROUP_HEADROOM)
            for flag, fd in (("-m", cg), ("-c", cwd_fd), ("-x", exe_fd)):
                if fd is not None:
                    cmd += [flag, str(fd)]
                    fds.append(fd)
            cmd += ["-r", str(report), "-l", ",".join(str(int(x)) for x in limits), "--", *argv]
            # a session of its own (no controlling terminal; the helper checks), which is also the process
            # group that is killed as a whole
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=fds, cwd="/",
                                    env=clean_env("/tmp" if self.ns or cwd_fd is None else "."),
                                    start_new_session=True)
            rc, timed_out, cpu = _wait(proc, wall_s)
            lines = _read_fd(report, 4096).decode("utf-8", "replace").splitlines()
        finally:
            os.close(report)
            if cg is not None:
                os.close(cg)
            if not self.ns and self.uid is not None:
                clean_after(self.uid)
        for line in lines:
            if line.startswith("E "):
                raise SandboxError(f"sandbox setup failed: {line[2:]}")
            if line.startswith("S "):  # the program's own status, reported by the namespace's init
                rc = os.waitstatus_to_exitcode(int(line[2:]))
        return rc, timed_out, cpu


def default_base():
    """Where sandboxes are made: /var/lib/composed_ft/sandbox as root, else in the user's cache."""
    return os.path.join(STATE_ROOT if _running_as_root() else cache_root(), "sandbox")


_SWEPT_BASES = set()


def _sweep_stale(base_fd):
    """Remove the boxes of judges that died (a live judge holds an flock on its box's dir); a box
    changed within the hour is left alone all the same (its judge may not have locked it yet)."""
    for name in os.listdir(base_fd):
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=base_fd)
        except OSError:
            continue
        try:
            if name.startswith("cft-") and time.time() - os.fstat(fd).st_mtime > 3600:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _remove(base_fd, name)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def workdir(base=None):
    """A sandbox (Box) for one program or one batch: a fresh dir under `base` (default_base();
    it must be ours and writable by nobody else), a uid of its own; always removed."""
    with _lease_uid() as uid:
        pol = policy(uid)
        base = base or default_base()
        base_fd = _owned_dir(base, 0o711, fix_mode=base == default_base())
        try:
            if base not in _SWEPT_BASES:  # once per process and base
                _SWEPT_BASES.add(base)
                _sweep_stale(base_fd)
            name, fd = _mkdir(base_fd, "cft-", 0o711)
            fcntl.flock(fd, fcntl.LOCK_EX)  # in use, until this process closes fd or dies
            box = Box(fd, os.path.join(base, name), uid if pol["uid"] else None, pol["ns"], pol.get("cgroup"))
            try:
                yield box
            finally:
                for exe in box.exes:
                    os.close(exe)
                os.close(fd)
                _remove(base_fd, name)
        finally:
            os.close(base_fd)


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


def compile_source(source, wd, std=None, use_pch=True, syntax_only=False, max_errors=None,
                   stderr_keep=STDERR_KEEP):
    """Compile `source` in the sandbox `wd` (a Box from `workdir`) as its uid. Returns (executable
    descriptor or None, stderr text); the descriptor belongs to the box.

    syntax_only: run g++ -fsyntax-only (about twice as fast; enough to tell whether code compiles,
    except for link errors); returns (True, stderr) on success then. max_errors overrides
    -fmax-errors (0: all; the batched judge needs every program's errors) without invalidating the
    PCH; stderr_keep: how many bytes of the diagnostics to return."""
    cmd = [gxx(), *compile_flags(std)]
    pch = ensure_pch(std) if use_pch else None
    if pch:
        cmd.append(f"-I{pch}")
    if max_errors is not None:
        cmd.append(f"-fmax-errors={max_errors}")
    cmd += ["prog.cpp", "-fsyntax-only"] if syntax_only else [*link_flags(), "prog.cpp", "-o", "prog"]
    name, dfd = wd.subdir({"prog.cpp": source})
    err = _memfd("cft-compile")
    try:
        rc, timed_out, _ = wd.spawn(cmd, (COMPILE_TIME_S, COMPILE_ADDRESS_SPACE, 256 << 20, 256, 64),
                                    COMPILE_TIME_S * 2, cwd_fd=dfd, stdout=err, stderr=err)
        text = _read_fd(err, stderr_keep).decode("utf-8", "replace")
        ok = rc == 0 and not timed_out
        exe = wd.take_exe(dfd, "prog") if ok and not syntax_only else None
    finally:
        os.close(err)
        wd.drop(name, dfd)
    if timed_out:
        text += "\n[compile timed out]"
    if not ok:
        return None, text
    return (True if syntax_only else exe), text


def loaded_size(exe):
    """Bytes an ELF64 executable maps (its PT_LOAD segments' memory sizes); None if it is not one."""
    head = os.pread(exe, 64, 0)
    if len(head) < 64 or head[:5] != b"\x7fELF\x02":
        return None
    order = "<" if head[5] == 1 else ">"
    phoff, = struct.unpack_from(order + "Q", head, 32)
    phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    table = os.pread(exe, phentsize * phnum, phoff)
    total = 0
    for k in range(phnum):
        if struct.unpack_from(order + "I", table, k * phentsize)[0] == 1:  # PT_LOAD
            total += struct.unpack_from(order + "Q", table, k * phentsize + 40)[0]
    return total


def run_binary(exe, input_bytes, wd, time_limit=TIME_LIMIT_S, output_cap=OUTPUT_CAP_BYTES, args=()):
    """Run a compiled program (`exe` from compile_source) on one input (`args`: its command-line
    arguments) in a fresh working dir. Returns dict(status, stdout, returncode, seconds).

    status: ok / runtime_error / timeout / output_limit. Timeout means over `time_limit` CPU seconds
    (RLIMIT_CPU) or over a generous wall limit (sleepers); CPU time, not wall time, decides so a
    busy machine does not turn correct programs into timeouts."""
    cpu = max(1, int(time_limit + 0.999))
    fds = [_memfd("cft-stdin", input_bytes), _memfd("cft-stdout"), _memfd("cft-stderr")]
    try:
        t0 = time.monotonic()
        with wd.run_dir() as cwd:
            rc, wall_out, cpu_used = wd.spawn(["prog", *args], (cpu, RUN_ADDRESS_SPACE, output_cap, RUN_OPEN_FILES, 1),
                                              max(10.0, 5 * time_limit), cwd_fd=cwd, exe_fd=exe,
                                              stdin=fds[0], stdout=fds[1], stderr=fds[2])
        seconds = time.monotonic() - t0
        stdout, stderr = _read_fd(fds[1], output_cap), _read_fd(fds[2], STDERR_KEEP)
    finally:
        for fd in fds:
            os.close(fd)
    if wall_out or cpu_used > time_limit or rc in (-signal.SIGXCPU,):
        status = "timeout"
    elif rc == -signal.SIGXFSZ:
        status = "output_limit"
    elif rc != 0:
        status = "runtime_error"
    else:
        status = "ok"
    return {"status": status, "stdout": stdout, "returncode": rc, "seconds": seconds,
            "cpu_seconds": cpu_used, "stderr": stderr}
