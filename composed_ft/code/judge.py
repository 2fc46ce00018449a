"""Judge many programs: compile once per distinct program, run its tests, bucket the outcome.

Outcome per program (the SPoC judge's buckets): correct / compile_error / runtime_error / timeout /
wrong_output. Programs are judged from a thread pool: the work happens in child processes (g++, the program),
and the sandbox sets limits without Python code in the forked child, so threads are safe.
Identical (program, tests) pairs are judged once. Per-example results can be written as JSONL so a
researcher can read the failures.

Batching: a program that is nothing but `int main() { ... }` (SansType's shape; see `batchable`)
is compiled together with up to `batch - 1` others in one g++ process — each renamed into its own
namespace, its lines tagged with `#line` so every diagnostic names the program it belongs to, and a
dispatcher `main` that runs program k when called with argument k. g++'s start-up and the ~100 MB
precompiled header are then paid once per batch instead of once per program. When the batch does
not compile, the programs named in the diagnostics are judged compile errors and the rest are
compiled again without them; diagnostics that name no program send the rest to the one-program
path. A test checks both paths give the same outcome on every program.

Output comparison is byte-exact (`compare="exact"`); `compare="rstrip"` ignores trailing
whitespace at the end of the whole output (used only if a data set's expected outputs lack the
final newline)."""
import concurrent.futures
import hashlib
import json
import logging
import os
import re

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
_MAIN = re.compile(r"\s*int\s+main\s*\(\s*\)\s*\{")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_PROG_FILE = "cft_prog_{}.cpp"
_PROG_RE = re.compile(r"cft_prog_(\d+)\.cpp")


def batchable(program):
    """True when `program` is exactly one `int main() { ... }` that can share a translation unit:
    balanced braces outside literals, nothing after the closing brace, no preprocessor line, no
    comment, no raw string, no line continuation, `main` named once, no identifier we generate
    (cft_...) or that reveals the file (__FILE__, __LINE__, any __name)."""
    m = _MAIN.match(program)
    if not m:
        return False
    text, depth, i, n = program.rstrip(), 0, m.end() - 1, len(program.rstrip())
    idents = _IDENT.findall(program[:m.end()])
    while i < n:
        c = text[i]
        if c in "\"'":
            if c == '"' and i > 0 and text[i - 1] == "R":
                return False  # raw string
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\n":
                    return False
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return False  # unterminated literal
            i = j + 1
            continue
        if c in "#\\" or (c == "/" and i + 1 < n and text[i + 1] in "/*"):
            return False
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and i != n - 1:
                return False  # something after main's closing brace (or main closed early)
        elif c.isalpha() or c == "_":
            w = _IDENT.match(text, i).group()
            idents.append(w)
            i += len(w)
            continue
        i += 1
    if depth != 0:
        return False
    return idents.count("main") == 1 and not any(w.startswith(("cft_", "__")) for w in idents)


def batch_source(programs, header=gxx.DEFAULT_HEADER):
    """One translation unit for batchable programs: program k becomes cft_p<k>::cft_main (with an
    explicit `return 0;` at its end, which a real main has implicitly), its lines numbered from 1 in
    a file named cft_prog_<k>.cpp; `main` runs program argv[1]."""
    parts = [header]
    for k, p in enumerate(programs):
        body = p.rstrip()
        body = body.replace("main", "cft_main", 1)[:-1] + " return 0; }"  # the last char is main's '}'
        parts.append(f'namespace cft_p{k} {{\n#line 1 "{_PROG_FILE.format(k)}"\n{body}\n}}\n')
    cases = "".join(f"    case {k}: return cft_p{k}::cft_main();\n" for k in range(len(programs)))
    parts.append('#line 1 "cft_dispatch.cpp"\nint main(int argc, char **argv) {\n'
                 f"  if (argc < 2) return 99;\n  switch (std::atoi(argv[1])) {{\n{cases}  }}\n  return 99;\n}}\n")
    return "".join(parts)


def _errors_of(err, k):
    """The diagnostics lines of program k, with its file called prog.cpp as in a one-program compile."""
    name = _PROG_FILE.format(k)
    lines = [ln.replace(name, "prog.cpp").replace(f"cft_p{k}::cft_main", "main") for ln in err.splitlines()
             if name in ln]
    return "\n".join(lines)[:sandbox.STDERR_KEEP]


def judge_batch(programs, tests, header=gxx.DEFAULT_HEADER, std=None, time_limit=sandbox.TIME_LIMIT_S,
                compare="exact", use_pch=True, tmp_base=None):
    """Judge batchable programs (without header) in as few g++ processes as the compile errors allow;
    one result dict per program, as `judge` returns."""
    out = [None] * len(programs)
    pending = list(range(len(programs)))
    with sandbox.workdir(tmp_base) as wd:
        while pending:
            src = batch_source([programs[i] for i in pending], header)
            exe, err = sandbox.compile_source(src, wd, std=std, use_pch=use_pch, max_errors=0, stderr_keep=1 << 20)
            if exe is not None:
                for k, i in enumerate(pending):
                    out[i] = _run_tests(exe, tests[i], wd, (str(k),), time_limit, compare)
                return out
            bad = {int(k) for k in _PROG_RE.findall(err)} & set(range(len(pending)))
            if not bad:
                break  # not attributable to a program (time or memory limit, link error): one at a time
            for k in bad:
                out[pending[k]] = _compile_error(tests[pending[k]], _errors_of(err, k))
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
