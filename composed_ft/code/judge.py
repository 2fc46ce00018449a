"""Judge many programs: compile once per distinct program, run its tests, bucket the outcome.

Outcome per program (the SPoC judge's buckets): correct / compile_error / runtime_error / timeout /
wrong_output. Programs are judged from a thread pool: the work happens in child processes (g++, the program),
and the sandbox sets limits without Python code in the forked child, so threads are safe.
Identical (program, tests) pairs are judged once. Per-example results can be written as JSONL so a
researcher can read the failures.

Batching: a program that is nothing but `int main() { ... }` (SansType's shape; see `batchable`)
is compiled together with up to `batch - 1` others in one g++ process and linked once, so g++'s
start-up and the ~100 MB precompiled header are paid once per batch instead of once per program.
Isolation is by construction (issue 37; code/README.md, "Batching"): g++ reads the programs as
checked tokens, each program in a namespace and file with a random name (so diagnostics are pinned
on programs by names no program can know), and each program runs from its own copy of the
executable, whose `main` tail-jumps to it. A test checks both paths give the same outcome on every
program, and another that hostile neighbours change no normal program's verdict.

Output comparison is byte-exact (`compare="exact"`); `compare="rstrip"` ignores trailing
whitespace at the end of the whole output (used only if a data set's expected outputs lack the
final newline)."""
import concurrent.futures
import hashlib
import json
import logging
import os
import re
import secrets

from composed_ft.code import gxx, sandbox
from composed_ft.core.io import write_json, write_text
from composed_ft.core.progress import progress_enabled
from composed_ft.core.runs import read_jsonl

log = logging.getLogger(__name__)

OUTCOMES = ("correct", "compile_error", "runtime_error", "timeout", "wrong_output")
SHOW = 500  # characters of input/expected/got kept per failure in the JSONL


def with_header(program, header=gxx.DEFAULT_HEADER):
    """Prepend the SPoC header unless the program already has its own #include lines."""
    if program.lstrip().startswith("#"):
        return program
    return header + program


def outputs_match(got: bytes, expected: str, compare="exact"):
    exp = expected.encode("utf-8")
    if compare == "exact":
        return got == exp
    if compare == "rstrip":
        return got.rstrip() == exp.rstrip()
    raise ValueError(f"unknown compare mode {compare!r}")


def judge(source, tests, std=None, time_limit=sandbox.TIME_LIMIT_S, compare="exact",
          use_pch=True, tmp_base=None):
    """Compile `source` (full C++ text) and run every (input, expected_output) test in order,
    stopping at the first failure. Returns a JSON-able dict."""
    with sandbox.workdir(tmp_base) as wd:
        exe, err = sandbox.compile_source(source, wd, std=std, use_pch=use_pch)
        if exe is None:
            return _compile_error(tests, err)
        return _run_tests(exe, tests, wd, (), time_limit, compare)


def _compile_error(tests, err):
    return {"outcome": "compile_error", "tests_passed": 0, "tests_total": len(tests), "compile_error": err,
            "failure": None}


def _run_tests(exe, tests, wd, args, time_limit, compare):
    """Run the compiled program (with command-line `args`) on each test in order, stopping at the
    first failure."""
    res = {"outcome": None, "tests_passed": 0, "tests_total": len(tests), "compile_error": None, "failure": None}
    for i, (inp, expected) in enumerate(tests):
        r = sandbox.run_binary(exe, inp.encode("utf-8"), wd, time_limit=time_limit, args=args)
        if r["status"] == "ok" and outputs_match(r["stdout"], expected, compare):
            res["tests_passed"] += 1
            continue
        res["outcome"] = {"ok": "wrong_output", "output_limit": "wrong_output"}.get(r["status"], r["status"])
        res["failure"] = {
            "test": i, "status": r["status"], "returncode": r["returncode"],
            "input": inp[:SHOW], "expected": expected[:SHOW],
            "got": r["stdout"][:SHOW].decode("utf-8", "replace"),
            "stderr": r["stderr"][:SHOW].decode("utf-8", "replace"),
        }
        return res
    res["outcome"] = "correct"
    return res


def _judge_task(args):
    source, tests, kw = args
    return judge(source, tests, **kw)


# ---------------------------------------------------------------- batched judging of main-only programs

# programs per g++ process: on the 500 OOD outputs of a SansType Pretrained model (53% compile errors, so most
# batches compile twice) batches of 64 took 26-29 s against 78-97 s for 16 and 37 s for 32, 2 jobs, the same
# outcome for every program (2026-12-02, a loaded 2-core machine, both in one process)
BATCH = 64

# The batch's translation unit is made of tokens, not of the programs' text: `_tokens` cuts a program into
# C++ tokens and `batch_source` writes each token back alone (between whitespace, or beside one of the
# separators below, which join no neighbour), so g++ reads exactly the tokens that were checked. A program
# whose text is not plainly such tokens (a preprocessor line, a digraph, a trigraph, a line splice, a
# literal with a prefix, suffix or digit separator, a character outside them) is judged alone.
_SEPARATORS = set("(){}[];,")
_PUNCT = sorted(["<=>", "<<=", ">>=", "...", "->*", "::", "->", ".*", "++", "--", "<<", ">>", "<=", ">=", "==",
                 "!=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=", "&=", "|=", *"{}[]();:?.~!+-*/%^&|=<>,"],
                key=len, reverse=True)
_NOT_PUNCT = ("<:", ":>", "<%", "%>", "%:")  # digraphs: judged alone
_IDENT_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_OPEN = {"(": ")", "[": "]", "{": "}"}


def _tokens(program):
    """[(whitespace before, token)] of `program`, or None when its text is not plainly C++ tokens
    (see above). Comments count as whitespace (their newlines kept)."""
    if "??" in program or "\\\n" in program or any(c in program for c in "\r\f\v\0"):
        return None
    out, ws, i, n = [], "", 0, len(program)
    while i < n:
        c = program[i]
        if c in " \t\n":
            ws += c
            i += 1
        elif program.startswith("//", i):
            j = program.find("\n", i)
            i = n if j < 0 else j
            ws += " "
        elif program.startswith("/*", i):
            j = program.find("*/", i + 2)
            if j < 0:
                return None
            ws += "\n" * program.count("\n", i, j) or " "
            i = j + 2
        elif c in _IDENT_CHARS or (c == "." and program[i + 1:i + 2].isdigit()):
            if c in _IDENT_CHARS and not c.isdigit():
                j = _IDENT.match(program, i).end()
            else:  # a pp-number: digits, letters, '_', '.', and a sign only after e/E
                j = i + 1
                while j < n:
                    if program[j] in "eE" and j + 1 < n and program[j + 1] in "+-":
                        j += 2
                    elif program[j] in "pP" and j + 1 < n and program[j + 1] in "+-" or program[j] == "'":
                        return None  # a hex float's exponent, a digit separator: not in every -std
                    elif program[j] in _IDENT_CHARS or program[j] == ".":
                        j += 1
                    else:
                        break
            if j < n and program[j] in "\"'":
                return None  # a literal's prefix (L, u8, R...), or a number before a quote
            out.append((ws, program[i:j]))
            ws, i = "", j
        elif c in "\"'":
            j = i + 1
            while j < n and program[j] != c:
                if program[j] == "\n":
                    return None
                j += 2 if program[j] == "\\" else 1
            if j >= n or (j + 1 < n and program[j + 1] in _IDENT_CHARS):
                return None  # unterminated, or a user-defined suffix
            out.append((ws, program[i:j + 1]))
            ws, i = "", j + 1
        else:
            if program.startswith(_NOT_PUNCT, i):
                return None
            p = next((p for p in _PUNCT if program.startswith(p, i)), None)
            if p is None:
                return None  # '#', '\\', '$', '@', '`', a character outside ASCII
            out.append((ws, p))
            ws, i = "", i + len(p)
    return out


def _checked(program):
    """The tokens of `program` when it can share a translation unit, else None: exactly one
    `int main ( ) { ... }` with properly nested brackets and nothing after it, and none of the tokens
    that act beyond a function body or give it storage in the shared executable: `asm`, reserved
    names (`__x`, `_X`: _Pragma, __COUNTER__, __attribute__, ...), attributes (`[ [`), `static` and
    `thread_local` (a static array would take its neighbours' address space), our own names (cft_...),
    `main` again."""
    toks = _tokens(program)
    if not toks or [t for _, t in toks[:5]] != ["int", "main", "(", ")", "{"]:
        return None
    stack = []
    for k, (_, t) in enumerate(toks):
        if t in _OPEN:
            if t == "[" and k + 1 < len(toks) and toks[k + 1][1] == "[":
                return None
            stack.append(_OPEN[t])
        elif t in ")]}":
            if not stack or stack.pop() != t or (not stack and 3 < k != len(toks) - 1):
                return None  # unbalanced, or main closed before the end
        elif t[0] in _IDENT_CHARS and not t[0].isdigit():
            if (t in ("asm", "static", "thread_local") or t.startswith(("__", "cft_"))
                    or (t[0] == "_" and t[1:2].isupper()) or (t == "main" and k != 1)):
                return None
    return toks if not stack else None


def batchable(program):
    """True when `program` (without header) can be judged in a batch: see `_checked`."""
    return _checked(program) is not None


def _emit(toks):
    """The tokens as text g++ reads back as the same tokens: each after its own whitespace, or after a
    space where it touched its neighbour (unless either is a separator)."""
    parts, prev = [], None
    for ws, t in toks:
        if not ws and prev is not None and prev not in _SEPARATORS and t not in _SEPARATORS:
            ws = " "
        parts.append(ws + t)
        prev = t
    return "".join(parts)


def batch_source(programs, names, magic, header=gxx.DEFAULT_HEADER):
    """One translation unit for batchable programs: program k becomes `int <names[k]>::main()` (with the
    `return 0;` a real main has implicitly), its lines numbered from 1 in a file <names[k]>.cpp. The
    names are random, so no program can name another's code or forge its diagnostics. The real `main`
    jumps (a tail call: the program's frame is where main's would be) to the program whose index
    follows the random bytes `magic` in the executable; each program runs from its own copy of the
    executable with that index written in (`judge_batch`)."""
    parts = [header]
    for p, name in zip(programs, names):
        toks = _checked(p)
        body = _emit(toks[:-1]) + " return 0 ; " + toks[-1][0] + "}"
        parts.append(f'namespace {name} {{\n#line 1 "{name}.cpp"\n{body}\n}}\n')
    sel = ", ".join(str(b) for b in magic + bytes(4))
    table = ", ".join(f"&{name}::main" for name in names)
    parts.append(f'#line 1 "cft_dispatch.cpp"\nnamespace cft_dispatch {{\nvolatile unsigned char sel[] = {{{sel}}};\n'
                 f"int (*const table[])() = {{{table}}};\n}}\n"
                 '__attribute__((optimize("O2"))) int main() {\n'
                 f"  const volatile unsigned char *k = cft_dispatch::sel + {len(magic)};\n"
                 "  return cft_dispatch::table[k[0] | k[1] << 8 | k[2] << 16 | (unsigned)k[3] << 24]();\n}\n")
    return "".join(parts)


# a batch's executable may map this much (SansType's: ~40 KB for 64 programs); beyond it, a program's
# constant data (an initializer's image) could take its neighbours' address space: judged alone
BATCH_EXE_LIMIT = 4 << 20


def _errors_of(err, name):
    """The diagnostics lines that name program `name`, with its file called prog.cpp as in a one-program
    compile."""
    lines = [ln.replace(f"{name}.cpp", "prog.cpp").replace(f"{name}::", "") for ln in err.splitlines()
             if name in ln]
    return "\n".join(lines)[:sandbox.STDERR_KEEP]


def judge_batch(programs, tests, header=gxx.DEFAULT_HEADER, std=None, time_limit=sandbox.TIME_LIMIT_S,
                compare="exact", use_pch=True, tmp_base=None):
    """Judge batchable programs (without header) with as few g++ processes as the compile errors allow;
    one result dict per program, as `judge` returns.

    The programs share one g++ process (one translation unit: the precompiled header is read once) and
    one link, then each runs from its own copy of the executable whose `main` is that program's. A
    compile or link error is pinned on the programs whose random names it mentions (no program can
    know another's); they are compile errors and the rest compile again without them. Errors that name
    no program (a limit, a crash of g++), and an executable over BATCH_EXE_LIMIT, send the rest to the
    one-program path."""
    out = [None] * len(programs)
    pending = list(range(len(programs)))
    with sandbox.workdir(tmp_base) as wd:
        while pending:
            names = [f"cft_{secrets.token_hex(8)}" for _ in pending]
            magic = secrets.token_bytes(16)
            src = batch_source([programs[i] for i in pending], names, magic, header)
            exe, err = sandbox.compile_source(src, wd, std=std, use_pch=use_pch, max_errors=0, stderr_keep=1 << 20)
            if exe is not None:
                data = sandbox._read_fd(exe, BATCH_EXE_LIMIT + 1)
                size = sandbox.loaded_size(exe)
                if data.count(magic) != 1 or size is None or size > BATCH_EXE_LIMIT:
                    break
                at = data.index(magic) + len(magic)
                for k, i in enumerate(pending):
                    mine = wd.variant(exe, at, k.to_bytes(4, "little"))
                    out[i] = _run_tests(mine, tests[i], wd, (), time_limit, compare)
                return out
            bad = {k for k, nm in enumerate(names) if nm in err}
            if not bad:
                break  # not attributable to a program (time or memory limit): one at a time
            for k in bad:
                out[pending[k]] = _compile_error(tests[pending[k]], _errors_of(err, names[k]))
            pending = [i for k, i in enumerate(pending) if k not in bad]
    for i in pending:
        out[i] = judge(with_header(programs[i], header), tests[i], std=std, time_limit=time_limit,
                       compare=compare, use_pch=use_pch, tmp_base=tmp_base)
    return out


def _judge_batch_task(args):
    programs, tests, kw = args
    return judge_batch(programs, tests, **kw)


def _pool_map(fn, items, jobs, desc):
    """[fn(x) for x in items] on a thread pool (the heavy work is in child processes), with a
    progress bar; results in input order."""
    from tqdm import tqdm

    out = [None] * len(items)
    if not items:
        return out
    bar = tqdm(total=len(items), desc=desc, disable=not progress_enabled(), leave=False)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        futs = {pool.submit(fn, x): j for j, x in enumerate(items)}
        step = max(1, len(items) // 10)
        try:
            for n_done, fut in enumerate(concurrent.futures.as_completed(futs), 1):
                out[futs[fut]] = fut.result()
                bar.update(1)
                if bar.disable and len(items) >= 50 and (n_done % step == 0 or n_done == len(items)):
                    log.info("%s: %d/%d", desc, n_done, len(items))  # progress where tqdm is off
        except BaseException:
            for f in futs:
                f.cancel()
            raise
        finally:
            bar.close()
    return out


def _capture_task(args):
    source, inp, kw = args
    with sandbox.workdir(kw["tmp_base"]) as wd:
        exe, err = sandbox.compile_source(source, wd, std=kw["std"], use_pch=kw["use_pch"])
        if exe is None:
            return {"status": "compile_error", "stdout": None, "error": err}
        r = sandbox.run_binary(exe, inp.encode("utf-8"), wd, time_limit=kw["time_limit"])
        return {"status": r["status"], "stdout": r["stdout"].decode("utf-8", "replace"),
                "error": r["stderr"].decode("utf-8", "replace")}


def run_programs(programs, inputs, jobs=None, std=None, header=gxx.DEFAULT_HEADER,
                 time_limit=sandbox.TIME_LIMIT_S, use_pch=True, tmp_base=None, desc="running"):
    """Compile and run each program on its input in the sandbox; returns dicts with `status`
    (ok / compile_error / runtime_error / timeout / output_limit), `stdout` and `error`."""
    if len(programs) != len(inputs):
        raise ValueError(f"{len(programs)} programs but {len(inputs)} inputs")
    if use_pch:
        gxx.ensure_pch(std)
    kw = dict(std=std, time_limit=time_limit, use_pch=use_pch, tmp_base=tmp_base)
    items = [(with_header(p, header), inp, kw) for p, inp in zip(programs, inputs)]
    return _pool_map(_capture_task, items, jobs or os.cpu_count() or 1, desc)


def _compile_task(args):
    source, kw = args
    with sandbox.workdir(kw["tmp_base"]) as wd:
        ok, _ = sandbox.compile_source(source, wd, std=kw["std"], use_pch=kw["use_pch"], syntax_only=True)
        return ok is not None


def compile_check(programs, jobs=None, std=None, header=gxx.DEFAULT_HEADER, use_pch=True,
                  tmp_base=None, desc="compiling"):
    """Whether each program compiles (g++ -fsyntax-only in the sandbox); identical programs once."""
    if use_pch:
        gxx.ensure_pch(std)
    kw = dict(std=std, use_pch=use_pch, tmp_base=tmp_base)
    uniq = sorted(set(programs))
    res = _pool_map(_compile_task, [(with_header(p, header), kw) for p in uniq], jobs or os.cpu_count() or 1, desc)
    memo = dict(zip(uniq, res))
    return [memo[p] for p in programs]


def _key(source, tests):
    h = hashlib.sha256(source.encode("utf-8"))
    for inp, out in tests:
        h.update(b"\0" + inp.encode("utf-8") + b"\1" + out.encode("utf-8"))
    return h.hexdigest()


def evaluate_programs(programs, tests, jobs=None, std=None, out_jsonl=None, header=gxx.DEFAULT_HEADER,
                      time_limit=sandbox.TIME_LIMIT_S, compare="exact", use_pch=True, dedup=True,
                      ids=None, tmp_base=None, desc="judging", batch=BATCH):
    """Judge `programs[i]` (C++ text, header added if missing) on `tests[i]` (list of (input,
    expected_output) strings). Returns one dict per program, in order, with `outcome` among
    OUTCOMES, `tests_passed`, `tests_total`, `compile_error`, `failure`, `cached` (True when the
    identical program+tests was already judged in this call). batch: programs per g++ process for
    batchable programs (0 or 1: one program per process). tmp_base: the dir the sandboxes are made
    in (default sandbox.default_base(): /var/lib/composed_ft/sandbox as root; it must be ours and
    writable by nobody else)."""
    if len(programs) != len(tests):
        raise ValueError(f"{len(programs)} programs but {len(tests)} test lists")
    jobs = jobs or os.cpu_count() or 1
    sources = [with_header(p, header) for p in programs]
    keys = [_key(s, t) if dedup else str(i) for i, (s, t) in enumerate(zip(sources, tests))]
    unique = {}
    for i, k in enumerate(keys):
        unique.setdefault(k, i)
    kw = dict(std=std, time_limit=time_limit, compare=compare, use_pch=use_pch, tmp_base=tmp_base)
    if use_pch:
        gxx.ensure_pch(std)  # build once here, not racing in every worker
    order = list(unique.items())
    together = [(k, i) for k, i in order if batch > 1 and sources[i] is not programs[i] and batchable(programs[i])]
    in_batch = {k for k, _ in together}
    alone = [(k, i) for k, i in order if k not in in_batch]
    done = {}
    if together:
        # spread over the workers: at most `batch` programs each, at least one batch per job
        size = max(2, min(batch, -(-len(together) // jobs)))
        chunks = [together[j:j + size] for j in range(0, len(together), size)]
        outs = _pool_map(_judge_batch_task, [([programs[i] for _, i in c], [tests[i] for _, i in c],
                                              dict(kw, header=header)) for c in chunks], jobs, desc + " (batched)")
        done.update({k: r for c, rs in zip(chunks, outs) for (k, _), r in zip(c, rs)})
    outs = _pool_map(_judge_task, [(sources[i], tests[i], kw) for _, i in alone], jobs, desc)
    done.update({k: r for (k, _), r in zip(alone, outs)})
    results = []
    for i, k in enumerate(keys):
        r = dict(done[k])
        r["index"] = i if ids is None else ids[i]
        r["cached"] = unique[k] != i
        r["program"] = programs[i]
        results.append(r)
    if out_jsonl:
        write_text(out_jsonl, "".join(json.dumps(r, sort_keys=True) + "\n" for r in results))
    return results


def summarize(results):
    """Counts and rates of each outcome; `accuracy` is the share correct."""
    n = len(results)
    counts = {o: 0 for o in OUTCOMES}
    for r in results:
        counts[r["outcome"]] += 1
    out = {"n": n, "counts": counts}
    out.update({f"{o}_rate": (counts[o] / n if n else 0.0) for o in OUTCOMES})
    out["accuracy"] = out["correct_rate"]
    return out


def gated_pick(per):
    """Per record, the judgement of the gated row: Π's where f's program fails to compile, else f's."""
    return [p["denoised"] if p["base"]["outcome"] == "compile_error" else p["base"] for p in per]


def gated_summary(per):
    """+ Π behind a gate (the role of the authors' classifier that decides whether an input is
    broken; here the compiler decides): Π's output replaces f's only where f's program fails to
    compile. Computed from the per-example records of the base and + Π judgements, so it costs
    nothing and can be rebuilt from eval_<split>.jsonl (backfill_gated)."""
    pick = gated_pick(per)
    s = summarize(pick)
    s["hit_limit"] = sum(bool(q["hit_limit"]) for q in pick)
    s["applied"] = sum(p["base"]["outcome"] == "compile_error" for p in per)
    s["exact_match"] = sum(q["pred"] == p["gold"] for q, p in zip(pick, per)) / max(len(per), 1)
    return s


def backfill_gated(run_dir):
    """Add the gated summary to a finished run's results.json from its eval_<split>.jsonl records
    (runs evaluated before the gate existed). Returns True when results.json changed."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.exists(path):
        return False
    with open(path) as fh:
        res = json.load(fh)
    changed = False
    for split, e in (res.get("eval") or {}).items():
        rec = os.path.join(run_dir, f"eval_{split}.jsonl")
        if not isinstance(e, dict) or "denoised" not in e or "gated" in e or not os.path.exists(rec):
            continue
        per = read_jsonl(rec)
        if len(per) != e.get("n") or not all("denoised" in p for p in per):
            continue
        e["gated"] = gated_summary(per)
        changed = True
    if changed:
        write_json(path, res)
    return changed
