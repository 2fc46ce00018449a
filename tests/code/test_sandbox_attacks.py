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
