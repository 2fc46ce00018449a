"""The sandbox contains hostile programs, buckets them correctly and leaves nothing behind."""
import os
import shutil
import tempfile

import pytest

from composed_ft.code import gxx, sandbox
from composed_ft.code.judge import evaluate_programs, run_programs, summarize

HOSTILE = {
    "correct": ("int main() { int a; cin >> a; cout << a + 1 << endl; }", "correct"),
    "compile_error": ("int main() { undeclared_thing; }", "compile_error"),
    "wrong": ("int main() { cout << 5 << endl; }", "wrong_output"),
    "crash": ("int main() { int *p = nullptr; cout << *p; }", "runtime_error"),
    "fork_bomb": ("#include <unistd.h>\nint main() { while (true) fork(); }", "timeout"),
    "infinite_loop": ("int main() { volatile long x = 0; while (true) x++; }", "timeout"),
    "alloc_10gb": ("#include <bits/stdc++.h>\nint main() { char *p = new char[10000000000LL];"
                   " memset(p, 1, 10000000000LL); std::cout << (int)p[5]; }", "runtime_error"),
    "output_1gb": ("int main() { std::string s(1 << 20, 'a'); for (int i = 0; i < 1024; i++) cout << s; }",
                   "wrong_output"),
    "deep_recursion": ("int f(int n) { return n ? f(n - 1) + 1 : 0; }\nint main() { cout << f(1 << 30); }",
                       "runtime_error"),
}


def _procs_under(path):
    """Processes whose executable or cwd lies under `path`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for what in ("exe", "cwd"):
            try:
                if os.readlink(f"/proc/{pid}/{what}").startswith(str(path)):
                    found.append(pid)
            except OSError:
                pass
    return found


@pytest.fixture
def sbx_base():
    """A base of our own for the sandboxes (so the test can see they are all removed), beside the
    default one: not under /tmp, which programs in namespaces do not see."""
    parent = os.path.dirname(sandbox.default_base())
    os.makedirs(parent, exist_ok=True)
    d = tempfile.mkdtemp(prefix="cft-test-", dir=parent)
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_hostile_programs_bucketed_and_cleaned_up(tmp_path, sbx_base):
    base = sbx_base
    names = list(HOSTILE)
    res = evaluate_programs([HOSTILE[n][0] for n in names], [[("3\n", "4\n")]] * len(names), jobs=2,
                            tmp_base=str(base), out_jsonl=str(tmp_path / "r.jsonl"))
    got = {n: r["outcome"] for n, r in zip(names, res)}
    assert got == {n: HOSTILE[n][1] for n in names}
    assert res[names.index("output_1gb")]["failure"]["status"] == "output_limit"
    assert os.listdir(base) == []  # every temp dir removed
    assert _procs_under(base) == []
    assert (tmp_path / "r.jsonl").read_text().count("\n") == len(names)
    # the evaluator still works after all that
    again = evaluate_programs([HOSTILE["correct"][0]], [[("1\n", "2\n")]], jobs=1, tmp_base=str(base))
    assert again[0]["outcome"] == "correct"
    s = summarize(res)
    assert s["counts"]["timeout"] == 2 and s["n"] == len(names)


@pytest.mark.skipif(os.geteuid() != 0, reason="write/read isolation relies on switching to a uid of its own")
def test_cannot_write_outside_or_read_root_files(sbx_base):
    base = sbx_base
    target = os.path.join(base, "escaped.txt")  # the parent of the program's sandbox dir
    secret = os.path.join(os.path.dirname(base), f"secret-{os.path.basename(base)}.txt")
    with open(secret, "w") as f:
        f.write("42\n")
    os.chmod(secret, 0o600)
    write = ('int main() { FILE *f = fopen("%s", "w"); if (!f) return 3; fputs("x", f); fclose(f);'
             ' cout << "ok" << endl; }' % target)
    read = 'int main() { ifstream f("%s"); int x; if (!(f >> x)) return 3; cout << x << endl; }' % secret
    include = '#include "%s"\nint main() { }' % secret
    res = evaluate_programs([write, read, include], [[("", "ok\n")], [("", "42\n")], [("", "")]], jobs=2,
                            tmp_base=str(base))
    os.remove(secret)
    assert [r["outcome"] for r in res] == ["runtime_error", "runtime_error", "compile_error"]
    assert "Permission denied" in res[2]["compile_error"] and "42" not in res[2]["compile_error"]
    assert not os.path.exists(target)
    assert os.listdir(base) == []


def test_clean_environment_and_identical_programs_judged_once(sbx_base, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    prog = 'int main() { const char *s = getenv("SECRET_TOKEN"); cout << (s ? s : "none") << endl; }'
    res = evaluate_programs([prog, prog], [[("", "none\n")]] * 2, jobs=2, tmp_base=sbx_base)
    assert [r["outcome"] for r in res] == ["correct", "correct"]
    assert [r["cached"] for r in res] == [False, True]


def test_run_programs_captures_output(sbx_base):
    out = run_programs(["int main() { string s; cin >> s; cout << s << s << endl; }"], ["ab\n"],
                       tmp_base=sbx_base)
    assert out[0]["status"] == "ok" and out[0]["stdout"] == "abab\n"


def test_pch_is_built_and_used():
    d = gxx.ensure_pch(None)
    assert d and os.path.exists(os.path.join(d, "bits", "stdc++.h.gch"))


def test_batchable_programs():
    from composed_ft.code.judge import batchable
    yes = ["int main() { int a; cin >> a; cout << a + 1 << endl; }",
           'int main ( ) {\n  string s = "a}{" ;\n  char c = \'}\' ;\n  cout << s << c << endl ;\n}\n',
           'int main() { string s = "\\"}"; cout << s; }',
           "int main() { // hi\n }",                # comments are whitespace
           "int main() { double d = .5e+3; cout << d; }"]
    no = ["int main() { } int x;",                 # something after main
          "int main() { if (1) { }",               # unbalanced
          "int main() { } }",                      # main closed early
          "int main() { ( } ) }",                  # brackets crossed
          "#include <cstdio>\nint main() { }",     # preprocessor
          "int main() {\n%:define cout cerr\n}",   # preprocessor, as a digraph
          "int main() { %> int g() <% }",          # a digraph closes main
          "int main() { ??< }",                    # a trigraph
          "int main() { int a = 1; a = a \\\n+ 1; }",  # a line splice
          "int main() { cout << __LINE__; }",      # reserved names
          '_Pragma("x") int main() { }',
          'int main() { _Pragma("GCC poison cout") }',
          'int main() { asm("nop"); }',            # asm
          "int main() { [[gnu::used]] static int x; }",  # attributes
          "int main() { [ [gnu::used] ] static int x; }",
          "int main() { static char big[1 << 30]; }",    # storage in the shared executable
          "int main() { thread_local int x; }",
          "int main() { int x = 1'000; }",         # digit separator
          'int main() { auto s = u8"x"; }',        # literal prefix
          'int main() { auto s = "x"s; }',         # literal suffix
          "int main() { main(); }",                # main named twice
          "int main() { int cft_p0 = 1; }",        # our names
          'int main() { string s = "abc; }',       # unterminated literal
          "int main() { int $x; }",                # not a C++ token
          "void f() {} int main() { f(); }"]       # not main-only
    assert [batchable(p) for p in yes] == [True] * len(yes)
    assert [batchable(p) for p in no] == [False] * len(no)


def test_batched_judging_equals_one_program_at_a_time(sbx_base):
    """Every outcome (and tests passed) is the same whether programs share a g++ process or not,
    with compile errors of several kinds in the same batch as good programs."""
    progs = [
        "int main() { int a; cin >> a; cout << a + 1 << endl; }",            # correct
        "int main() { int a; cin >> a; cout << a + 2 << endl; }",            # wrong output
        "int main() { string s = 5; cout << s; }",                           # type error
        "int main() { int a cin >> a; }",                                    # syntax error
        "int main() { cout << undeclared << endl; }",                        # undeclared name
        "int main() { int a; cin >> a; if (a == 3) return 3; cout << a; }",  # nonzero exit: runtime error
        "int main() { int a; cin >> a; cout << a + 1 << endl; return 0; }",  # correct, explicit return
        "int main() { volatile long x = 0; while (true) x++; }",             # timeout
        "int main() { vector<int> v; cout << v.at(3); }",                    # exception: runtime error
        "int main() { int a; cin >> a; cout << a + 1 << endl; } int y;",     # not batchable, correct
        'int main() { string s = "}"; int a; cin >> a; cout << a + 1 << endl; }',  # correct, brace in a literal
    ]
    tests = [[("3\n", "4\n"), ("5\n", "6\n")]] * len(progs)
    batched = evaluate_programs(progs, tests, jobs=2, batch=16, dedup=False, tmp_base=sbx_base)
    single = evaluate_programs(progs, tests, jobs=2, batch=0, dedup=False, tmp_base=sbx_base)
    got = [(r["outcome"], r["tests_passed"]) for r in batched]
    assert got == [(r["outcome"], r["tests_passed"]) for r in single]
    assert [o for o, _ in got] == ["correct", "wrong_output", "compile_error", "compile_error", "compile_error",
                                   "runtime_error", "correct", "timeout", "runtime_error", "correct", "correct"]
    assert "undeclared" in batched[4]["compile_error"] and "prog.cpp" in batched[4]["compile_error"]
    assert "cft_" not in batched[4]["compile_error"]
    assert os.listdir(sbx_base) == []
