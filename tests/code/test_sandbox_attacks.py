"""Hostile programs that try to turn the judge against its host or against each other (issue 23):
each attack is played for real by a C++ program and must be contained.

The file attacks run twice: in fresh namespaces (where the kernel allows them) and with the
uid + rlimit sandbox alone (CFT_SANDBOX_NS=0), which must contain them by itself."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

import composed_ft
from composed_ft.code import sandbox
from composed_ft.code.judge import evaluate_programs, run_programs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks aim at a judge running as root")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(composed_ft.__file__)))
SECRET = "TOP-SECRET-7c1e"


# getattr/hasattr below: these tests also run against the judge from before issue 23 (which has no
# policy), to show that each attack succeeded there.
def _policy():
    return sandbox.policy() if hasattr(sandbox, "policy") else {"uid": True, "ns": True}


@pytest.fixture(params=["ns", "no-ns"])
def mode(request, monkeypatch):
    """The judge with namespaces, and without them (the fallback must contain these on its own)."""
    monkeypatch.setenv("CFT_SANDBOX_NS", "1" if request.param == "ns" else "0")
    reset = getattr(sandbox, "reset_policy", lambda: None)
    reset()
    if request.param == "ns" and not _policy()["ns"]:
        pytest.skip("namespaces unavailable here")
    yield request.param
    reset()


@pytest.fixture
def root_only():
    """A root-only dir (0700) outside every temp dir, so a program's link can name a real host
    file from inside its namespaces too; holds a secret and a victim file, both 0600."""
    d = tempfile.mkdtemp(prefix="cft-attack-", dir="/var/lib")
    for name, text in (("secret.txt", SECRET + "\n"), ("victim.txt", "precious\n")):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(d, name), 0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _unchanged(path, text):
    with open(path) as f:
        return f.read() == text and os.stat(path).st_mode & 0o777 == 0o600


def test_symlinked_stdout_and_stderr_return_no_root_file(mode, root_only):
    """A program replaces the files the judge reads its output from by links to a root-only file."""
    secret = os.path.join(root_only, "secret.txt")
    prog = ("#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n  error_code ec;\n"
            + "".join(f'  filesystem::remove("{f}", ec); filesystem::create_symlink("{secret}", "{f}", ec);\n'
                      for f in ("stdout.txt", "stderr.txt"))
            + "  return 1;\n}\n")
    res = evaluate_programs([prog], [[("", "x\n")]], jobs=1)
    fail = res[0]["failure"]
    assert res[0]["outcome"] == "runtime_error"
    assert SECRET not in fail["got"] and SECRET not in fail["stderr"]
    out = run_programs([prog], [""], jobs=1)
    assert SECRET not in out[0]["stdout"] and SECRET not in out[0]["error"]
    assert _unchanged(secret, SECRET + "\n")


def test_symlinked_input_does_not_make_root_write(mode, root_only):
    """A program links the judge's input file to a root-only file: the next test's input must not be
    written (nor the file chmodded) through the link."""
    victim = os.path.join(root_only, "victim.txt")
    prog = ('int main() { error_code ec; filesystem::remove("input.txt", ec); '
            f'filesystem::create_symlink("{victim}", "input.txt", ec); int a; cin >> a; cout << a + 1 << endl; }}')
    res = evaluate_programs([prog], [[("1\n", "2\n"), ("2\n", "3\n"), ("5\n", "6\n")]], jobs=1)
    assert _unchanged(victim, "precious\n")
    assert res[0]["outcome"] == "correct"


def test_batch_neighbour_cannot_tamper(mode):
    """The first program of a batch points the output file at /dev/null and leaves a file behind:
    its neighbours must still be judged on their own output, in a dir of their own."""
    evil = ('int main() { error_code ec; filesystem::remove("stdout.txt", ec); '
            'filesystem::create_symlink("/dev/null", "stdout.txt", ec); ofstream("note.txt") << "planted"; '
            'cout << 1 << endl; }')
    good = "int main() { int a; cin >> a; cout << a + 1 << endl; }"
    reader = 'int main() { ifstream f("note.txt"); string s; cout << (f >> s ? s : "clean") << endl; }'
    res = evaluate_programs([evil, good, reader], [[("3\n", "1\n")], [("3\n", "4\n")], [("3\n", "clean\n")]],
                            jobs=1, batch=16)
    assert [r["outcome"] for r in res] == ["correct", "correct", "correct"]


SPY = r"""#include <bits/stdc++.h>
#include <dirent.h>
#include <unistd.h>
using namespace std;
int main() {  // for ~4 s, look for another program through /proc: read its input, replace its output
    string seen = "none";
    for (int round = 0; round < 400 && seen == "none"; round++) {
        DIR *d = opendir("/proc");
        while (dirent *e = d ? readdir(d) : nullptr) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid()) continue;
            string p = "/proc/" + to_string(pid), s;
            ifstream in(p + "/fd/0");
            if (!(in >> s) || s != "31337") continue;
            seen = s;
            ofstream(p + "/cwd/fake.txt") << "666\n";
            rename((p + "/cwd/fake.txt").c_str(), (p + "/cwd/stdout.txt").c_str());
        }
        if (d) closedir(d);
        usleep(10000);
    }
    cout << seen << endl;
}
"""
VICTIM = ("#include <bits/stdc++.h>\nusing namespace std;\n"
          "int main() { while (clock() < 1.5 * CLOCKS_PER_SEC) {} long a; cin >> a; cout << a + 1 << endl; }\n")


def test_concurrent_programs_cannot_read_or_replace_each_other(mode):
    """--jobs 2: a spy running beside a correct program must neither see its input nor change the
    output it is judged on."""
    res = evaluate_programs([SPY, VICTIM], [[("", "none\n")], [("31337\n", "31338\n")]], jobs=2, time_limit=5)
    assert res[0]["outcome"] == "correct", res[0]["failure"]  # saw nothing
    assert res[1]["outcome"] == "correct", res[1]["failure"]


def test_parent_dir_is_neither_writable_nor_listable(mode):
    """The default work dir's parents: no file can be left there, no other sandbox listed."""
    token = os.urandom(4).hex()
    prog = ("#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n"
            f'  for (string p : {{"..", "../..", "../../.."}}) {{ string f = p + "/cft-escape-{token}";\n'
            '    if (ofstream(f) << "x") cout << "wrote " << filesystem::canonical(f).string() << endl; }\n'
            '  error_code ec;\n'
            '  for (auto &e : filesystem::directory_iterator("..", ec))\n'
            '    if (e.path().filename().string().rfind("cft-", 0) == 0) cout << "listed " << e.path() << endl;\n'
            f'  ofstream("/tmp/cft-persist-{token}") << "x";\n'
            "}\n")
    out = run_programs([prog], [""], jobs=1)[0]
    for ln in out["stdout"].splitlines():  # clean up before asserting
        if ln.startswith("wrote "):
            os.remove(ln.split(" ", 1)[1])
    persisted = os.path.exists(f"/tmp/cft-persist-{token}")
    if persisted:
        os.remove(f"/tmp/cft-persist-{token}")
    assert out["status"] == "ok" and out["stdout"] == "", out
    assert not persisted or mode == "no-ns", "a program's /tmp file outlived its namespace"


def test_removed_even_when_the_program_fights(mode):
    """1,500 nested dirs (deeper than shutil.rmtree recurses), made unreadable, and a link to a dir
    of the host: all removed, the host dir untouched."""
    keep = tempfile.mkdtemp(prefix="cft-keep-", dir="/var/lib")
    base = tempfile.mkdtemp(prefix="cft-base-", dir="/var/lib")
    os.chmod(base, 0o711)
    try:
        with open(os.path.join(keep, "f"), "w") as f:
            f.write("x")
        prog = ("#include <bits/stdc++.h>\n#include <sys/stat.h>\n#include <unistd.h>\nusing namespace std;\n"
                f'int main() {{ symlink("{keep}", "host"); for (int i = 0; i < 1500; i++) {{ '
                'if (mkdir("d", 0700) || chdir("d")) return 3; } chmod(".", 0); chmod("..", 0); '
                'cout << "ok" << endl; }\n')
        res = evaluate_programs([prog], [[("", "ok\n")]], jobs=1, tmp_base=base)
        assert res[0]["outcome"] == "correct"
        assert os.listdir(base) == []
        assert os.listdir(keep) == ["f"]
    finally:  # rm: what a failing judge leaves is deeper than shutil.rmtree goes
        subprocess.run(["rm", "-rf", keep, base])


def test_namespaces_hide_network_processes_and_temp_files():
    """In namespaces a program reaches no listening socket of the host, sees no other process and
    none of the host's /tmp."""
    getattr(sandbox, "reset_policy", lambda: None)()
    if not _policy()["ns"]:
        pytest.skip("namespaces unavailable here")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    visible = tempfile.NamedTemporaryFile(prefix="cft-visible-", dir="/tmp")
    os.chmod(visible.name, 0o644)
    prog = ("#include <bits/stdc++.h>\n#include <arpa/inet.h>\n#include <sys/socket.h>\nusing namespace std;\n"
            "int main() {\n  sockaddr_in a{}; a.sin_family = AF_INET; "
            f"a.sin_port = htons({srv.getsockname()[1]}); a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);\n"
            "  int s = socket(AF_INET, SOCK_STREAM, 0);\n"
            "  bool net = connect(s, (sockaddr *)&a, sizeof a) == 0;\n"
            "  int procs = 0;\n"
            '  for (auto &e : filesystem::directory_iterator("/proc"))\n'
            "    procs += isdigit(e.path().filename().string()[0]) != 0;\n"
            f'  bool tmp = filesystem::exists("{visible.name}");\n'
            '  cout << "net=" << net << " procs=" << procs << " tmp=" << tmp << endl;\n'
            "}\n")
    try:
        out = run_programs([prog], [""], jobs=1)[0]
    finally:
        srv.close()
        visible.close()
    assert out["stdout"] == "net=0 procs=2 tmp=0\n", out  # procs: the sandbox's init and the program


UID_PROG = "int main() { cout << getuid() << endl; }"


def _judge_in_child(caps, **env):
    """Judge UID_PROG in a python whose capability bounding set lacks `caps` (a container-like root)."""
    code = ("import logging; logging.basicConfig(level=logging.WARNING)\n"
            "from composed_ft.code.judge import evaluate_programs\n"
            f"r = evaluate_programs([{UID_PROG!r}], [[('', '0\\n')]], jobs=1)\n"
            "print('OUTCOME', r[0]['outcome'], r[0]['failure'] and r[0]['failure']['got'])\n")
    full_env = dict(os.environ, PYTHONPATH=REPO, **env)
    return subprocess.run(["setpriv", f"--bounding-set={caps}", "--", sys.executable, "-c", code],
                          capture_output=True, text=True, env=full_env, timeout=300)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_root_that_cannot_drop_privileges_refuses():
    """Root without CAP_SETUID/CAP_SETGID must not run programs as root: one clear error, unless the
    user opts in explicitly."""
    r = _judge_in_child("-setuid,-setgid", CFT_ALLOW_UNSANDBOXED="")
    assert r.returncode != 0 and "OUTCOME" not in r.stdout, r.stdout + r.stderr
    assert "CFT_ALLOW_UNSANDBOXED=1" in r.stderr
    r = _judge_in_child("-setuid,-setgid", CFT_ALLOW_UNSANDBOXED="1")
    assert r.returncode == 0 and "OUTCOME correct" in r.stdout, r.stdout + r.stderr
    assert "AS ROOT" in r.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_without_namespaces_degrades_with_a_warning():
    """Root without CAP_SYS_ADMIN cannot make namespaces: a logged warning, then the uid sandbox."""
    r = _judge_in_child("-sys_admin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "namespaces unavailable" in r.stderr
    got = r.stdout.split("OUTCOME ", 1)[1].split()
    assert got[0] == "wrong_output" and int(got[1]) >= sandbox.UID_BASE  # ran as a pool uid, not root


def test_concurrent_sandboxes_get_distinct_uids():
    """Two sandboxes of this process and one of another process hold three different uids."""
    code = ("import sys, time\nfrom composed_ft.code import sandbox\n"
            "with sandbox.workdir() as b:\n    print(b.uid, flush=True)\n    sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO))
    try:
        other = int(child.stdout.readline())
        with sandbox.workdir() as a, sandbox.workdir() as b:
            uids = {a.uid, b.uid, other}
    finally:
        child.communicate("")
    assert len(uids) == 3 and min(uids) >= sandbox.UID_BASE


def test_executable_must_be_a_regular_file_the_compiler_made():
    """take_exe refuses a link (here to a root-owned binary) planted where the compiler's output goes."""
    with sandbox.workdir() as box:
        name, fd = box.subdir()
        try:
            os.symlink("/bin/true", "prog", dir_fd=fd)
            assert box.take_exe(fd, "prog") is None
        finally:
            box.drop(name, fd)


def test_boxes_of_a_dead_judge_are_removed():
    """A judge killed mid-run leaves its box behind: the next judge removes it, but never the box of
    a judge that is still alive (it holds an flock on it), however old."""
    base = tempfile.mkdtemp(prefix="cft-base-", dir="/var/lib")
    os.chmod(base, 0o711)
    code = ("import sys\nfrom composed_ft.code import sandbox\n"
            f"with sandbox.workdir({base!r}) as b:\n"
            "    b.subdir()\n    print(b.path, flush=True)\n    sys.stdin.read()\n")
    judges = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONPATH=REPO)) for _ in range(2)]
    try:
        dead, alive = [j.stdout.readline().strip() for j in judges]
        judges[0].kill()
        judges[0].wait()
        for box in (dead, alive):
            os.utime(box, (0, os.stat(box).st_mtime - 7200))  # both last changed two hours ago
        with sandbox.workdir(base):
            pass
        assert os.path.exists(alive) and not os.path.exists(dead)
        judges[1].communicate("")
        assert not os.path.exists(alive)  # removed by its own judge when done
    finally:
        for j in judges:
            j.kill()
        subprocess.run(["rm", "-rf", base])


# ---------------------------------------------------------------- issue 37: the terminal, the keyring, the batch,
# memory beside the address space. Each test below failed on the judge before issue 37 (code/README says how).

def _read_until(fd, token, timeout):
    """Read a pty's master until `token` appears; returns all that was read."""
    import select
    import time
    got, end = b"", time.monotonic() + timeout
    while token.encode() not in got and time.monotonic() < end:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got.decode("utf-8", "replace")


TIOCSTI_PROG = r"""#include <bits/stdc++.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
using namespace std;
int main() {  // type a command into the terminal of whoever runs the judge, and write on it
    int fd = open("/dev/tty", O_RDWR);
    if (fd >= 0) {
        for (const char *c = "touch MARKER\n"; *c; c++) ioctl(fd, TIOCSTI, c);
        dprintf(fd, "\nWROTE-ON-THE-TERMINAL\n");
    }
    cout << "tty " << (fd >= 0) << " stdio " << isatty(0) << isatty(1) << isatty(2) << endl;
}
"""
TTY_BATCHABLE = ('int main() { ofstream t("/dev/tty"); t << "WROTE-ON-THE-TERMINAL" << endl; '
                 'cout << "tty " << bool(t) << endl; }')


@pytest.mark.skipif(not os.path.exists("/dev/tty"), reason="needs /dev/tty")
def test_no_terminal_to_type_into(mode):
    """An interactive root shell on a pty runs the judge: a program that types a command into the
    terminal with TIOCSTI (dev.tty.legacy_tiocsti=1 lets it) must find no terminal, so the shell runs
    nothing after the judge exits; nor may a program write on the terminal, batched or not."""
    import pty
    marker = f"/tmp/cft-tiocsti-{os.urandom(4).hex()}"
    prog = TIOCSTI_PROG.replace("MARKER", marker)
    code = ("from composed_ft.code.judge import run_programs, evaluate_programs\n"
            f"a = run_programs([{prog!r}], [''], jobs=1)[0]\n"
            f"b = evaluate_programs([{TTY_BATCHABLE!r}] * 2, [[('', 'tty 0\\n')]] * 2, jobs=1, dedup=False)\n"
            "print('RESULT', a['status'], a['stdout'].strip(), [r['outcome'] for r in b])\n")
    script = os.path.join(tempfile.mkdtemp(prefix="cft-tty-", dir="/var/lib"), "judge.py")
    with open(script, "w") as f:
        f.write(code)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root", "TERM": "dumb", "PS1": "$ ",
           "PYTHONPATH": REPO, "CFT_SANDBOX_NS": os.environ["CFT_SANDBOX_NS"]}
    pid, master = pty.fork()
    if pid == 0:  # the child: an interactive shell whose controlling terminal is the pty
        os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
    try:
        # $((...)): the token is in the output, not in the echo of the command line
        os.write(master, f"{sys.executable} {script}; echo JUDGE-$((1+1))-DONE\n".encode())
        out = _read_until(master, "JUDGE-2-DONE", 300)
        os.write(master, b"echo SHELL-$((2+2))-END\n")  # the shell reads what was typed before this, then this
        out += _read_until(master, "SHELL-4-END", 30)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(master)
        shutil.rmtree(os.path.dirname(script), ignore_errors=True)
    typed = os.path.exists(marker)
    if typed:
        os.remove(marker)
    assert "RESULT" in out, out
    assert not typed, "the shell ran a command a program typed into its terminal"
    assert "WROTE-ON-THE-TERMINAL" not in out, out
    assert "RESULT ok tty 0 stdio 000 ['correct', 'correct']" in out, out


KEYRING_PROG = r"""#include <bits/stdc++.h>
#include <sys/syscall.h>
#include <unistd.h>
using namespace std;
int main() {  // find a key in the session keyring (-3) and read it
    long id = syscall(SYS_keyctl, 10, -3L, "user", "cft-secret", 0L);
    char buf[256] = {0};
    long n = id > 0 ? syscall(SYS_keyctl, 11, id, buf, (long)sizeof buf - 1) : -1;
    cout << "key " << (n > 0 ? string(buf, n) : string("none")) << endl;
}
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test's syscall numbers are x86_64's")
def test_judges_session_keyring_is_out_of_reach(mode):
    """A key in the judge's session keyring: the program must not read it (it gets a fresh, empty
    session keyring after the uid drop). The judge runs in a child that has a keyring of its own."""
    code = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.syscall(250, 1, b'cft-test-ring', 0, 0, 0)\n"  # keyctl(KEYCTL_JOIN_SESSION_KEYRING)
            f"kid = libc.syscall(248, b'user', b'cft-secret', {SECRET.encode()!r}, {len(SECRET)}, -3)\n"  # add_key
            "assert kid > 0, ctypes.get_errno()\n"
            "from composed_ft.code.judge import run_programs\n"
            f"print('OUT', run_programs([{KEYRING_PROG!r}], [''], jobs=1)[0]['stdout'].strip())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr
    assert "OUT key none" in r.stdout and SECRET not in r.stdout, r.stdout


GOOD = "int main() { int a; cin >> a; cout << a + 1 << endl; }"
# programs that tried to change their batch neighbours' verdicts (the first four: issue 37's)
BATCH_ATTACKS = {
    "digraph_static_initializer": 'int main() { %> static int h = (cout << "4" << endl, exit(0), 0); int g() <% }',
    "asm_init_array": ('int main() { asm(".pushsection .text\\nevil_init: mov $60, %eax\\nmov $3, %edi\\n'
                       'syscall\\n.popsection\\n.pushsection .init_array,\\"aw\\"\\n.quad evil_init\\n'
                       '.popsection"); }'),
    "digraph_define": "int main() {\n%:define cout cerr\n}",
    "diagnostics_name_neighbours": ('int main() { static_assert(false, "'
                                    + " ".join(f"cft_prog_{k}.cpp:1:1: error:" for k in range(8)) + '"); }'),
    "section_attribute": ('int main() { [[gnu::section(".init_array"), gnu::used]] static void (*p)() = '
                          '+[] { cout << "4" << endl; exit(0); }; }'),
    "pragma_poison": 'int main() { _Pragma("GCC poison cout") }',
    "static_array_takes_the_address_space": "int main() { static char big[1900000000]; big[0] = 1; }",
    "link_error": "int main() { int helper(); cout << helper() << endl; }",
    "compile_error": "int main() { cout << undeclared << endl; }",
}
NORMAL = [GOOD,
          "int main() { vector<char> v(300000000, 1); int a; cin >> a; cout << a + v[7] << endl; }",  # 300 MB
          "int main() { int a; cin >> a; cout << a + 2 << endl; }",  # wrong output
          "int main() { string s = 5; }"]                             # compile error


NEIGHBOURS = [*NORMAL, GOOD.replace("+ 1", "+ 1 + 0")]
NEIGHBOUR_TESTS = [("3\n", "4\n"), ("5\n", "6\n")]


@pytest.fixture(scope="module")
def alone():
    """The verdicts of the normal programs, each judged alone: {program: (outcome, tests passed)}."""
    progs = sorted({*NEIGHBOURS, *(GOOD.replace("+ 1", f"+ 1 + {k} - {k}") for k in range(len(BATCH_ATTACKS)))})
    res = evaluate_programs(progs, [NEIGHBOUR_TESTS] * len(progs), jobs=2, batch=0)
    return {p: (r["outcome"], r["tests_passed"]) for p, r in zip(progs, res)}


@pytest.mark.parametrize("attack", list(BATCH_ATTACKS)[:4])
def test_batch_attack_changes_no_neighbour(attack, alone):
    """Each of issue 37's batch attacks, first in a batch of normal programs: every neighbour's verdict
    is its verdict when judged alone."""
    progs = [BATCH_ATTACKS[attack], *NEIGHBOURS]
    batched = evaluate_programs(progs, [NEIGHBOUR_TESTS] * len(progs), jobs=1, batch=64, dedup=False)
    assert [(r["outcome"], r["tests_passed"]) for r in batched[1:]] == [alone[p] for p in NEIGHBOURS]
    assert [alone[p][0] for p in NEIGHBOURS] == ["correct", "correct", "wrong_output", "compile_error", "correct"]


def test_differential_hostile_and_normal_programs_batched(alone):
    """Every hostile program above, interleaved with normal ones in batches (two jobs, batches of 64 and
    of 5): every normal program's verdict and tests passed equal its verdict when judged alone."""
    progs, is_normal = [], []
    for k, h in enumerate(BATCH_ATTACKS.values()):
        progs += [h, NORMAL[k % len(NORMAL)], GOOD.replace("+ 1", f"+ 1 + {k} - {k}")]
        is_normal += [False, True, True]
    for batch in (64, 5):
        got = evaluate_programs(progs, [NEIGHBOUR_TESTS] * len(progs), jobs=2, batch=batch, dedup=False)
        for k in (k for k, n in enumerate(is_normal) if n):
            assert (got[k]["outcome"], got[k]["tests_passed"]) == alone[progs[k]], (batch, k, progs[k], got[k])


def test_fallocate_keep_size_leaves_nothing_in_temp_dirs(mode):
    """A program hides 1 GiB in a temp dir with fallocate(FALLOC_FL_KEEP_SIZE) (the file size limit
    does not count it): after the run, nothing it made is left in any shared temp dir."""
    token = os.urandom(4).hex()
    prog = ("#include <bits/stdc++.h>\n#include <fcntl.h>\nusing namespace std;\n"
            "int main() {\n  signal(SIGXFSZ, SIG_IGN);\n"
            f'  for (string d : {{"/tmp", "/var/tmp", "/dev/shm"}}) {{ string p = d + "/cft-keep-{token}";\n'
            "    int fd = open(p.c_str(), O_CREAT | O_RDWR, 0600);\n"
            "    cout << d << ' ' << (fd >= 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1L << 30) == 0) << endl; }\n"
            "}\n")
    out = run_programs([prog], [""], jobs=1)[0]
    left = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(f"{d}/cft-keep-{token}")]
    for d in left:
        os.remove(f"{d}/cft-keep-{token}")
    assert out["status"] == "ok", out
    assert left == [], f"left behind in {left}: {out['stdout']}"


MEMFD_PROG = r"""#include <bits/stdc++.h>
#include <sys/mman.h>
#include <unistd.h>
using namespace std;
int main() {  // hold memory beside the address space: 60 memfds of 15 MiB, then anonymous memory
    static char buf[1 << 20];
    memset(buf, 1, sizeof buf);
    long held = 0;
    for (int i = 0; i < 60; i++) {
        int fd = memfd_create("hold", 0);
        for (int j = 0; fd >= 0 && j < 15 && write(fd, buf, sizeof buf) == (ssize_t)sizeof buf; j++) held++;
        dprintf(1, "%ld\n", held);
    }
    for (;;) {
        char *p = (char *)malloc(64 << 20);
        if (!p) break;
        memset(p, 1, 64 << 20);
        held += 64;
        dprintf(1, "%ld\n", held);
    }
}
"""


def test_memfds_do_not_add_memory_beside_the_address_space(mode):
    """A program fills memfds (not in its address space), then anonymous memory: all it holds at once
    stays within the 2 GiB limit plus the cgroup's headroom (with or without a cgroup)."""
    out = run_programs([MEMFD_PROG], [""], jobs=1, time_limit=10)[0]
    held_mib = int(out["stdout"].split()[-1])
    cap = (sandbox.RUN_ADDRESS_SPACE + getattr(sandbox, "CGROUP_HEADROOM", 0)) >> 20
    assert held_mib <= cap, f"held {held_mib} MiB at once, more than {cap} MiB"
