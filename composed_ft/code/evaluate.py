"""Judge many programs: compile once per distinct program, run its tests, bucket the outcome.

Outcome per program (the SPoC judge's buckets): correct / compile_error / runtime_error / timeout /
wrong_output. Programs are judged from a thread pool: the work happens in child processes (g++, the program),
and the sandbox sets limits without Python code in the forked child, so threads are safe.
Identical (program, tests) pairs are judged once. Per-example results can be written as JSONL so a
researcher can read the failures.

Output comparison is byte-exact (`compare="exact"`); `compare="rstrip"` ignores trailing
whitespace at the end of the whole output (used only if a data set's expected outputs lack the
final newline)."""
import concurrent.futures
import hashlib
import json
import logging
import os
import sys

from composed_ft.code import sandbox
from composed_ft.core.io import write_text

log = logging.getLogger(__name__)

OUTCOMES = ("correct", "compile_error", "runtime_error", "timeout", "wrong_output")
SHOW = 500  # characters of input/expected/got kept per failure in the JSONL


def with_header(program, header=sandbox.DEFAULT_HEADER):
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
    res = {"outcome": None, "tests_passed": 0, "tests_total": len(tests), "compile_error": None,
           "failure": None}
    with sandbox.workdir(tmp_base) as wd:
        exe, err = sandbox.compile_source(source, wd, std=std, use_pch=use_pch)
        if exe is None:
            res["outcome"] = "compile_error"
            res["compile_error"] = err
            return res
        for i, (inp, expected) in enumerate(tests):
            r = sandbox.run_binary(exe, inp.encode("utf-8"), wd, time_limit=time_limit)
            if r["status"] == "ok" and outputs_match(r["stdout"], expected, compare):
                res["tests_passed"] += 1
                continue
            status = {"ok": "wrong_output", "output_limit": "wrong_output"}.get(r["status"], r["status"])
            res["outcome"] = status
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


def _pool_map(fn, items, jobs, desc):
    """[fn(x) for x in items] on a thread pool (the heavy work is in child processes), with a
    progress bar; results in input order."""
    from tqdm import tqdm

    out = [None] * len(items)
    if not items:
        return out
    bar = tqdm(total=len(items), desc=desc, disable=not _progress_enabled(), leave=False)
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


def run_programs(programs, inputs, jobs=None, std=None, header=sandbox.DEFAULT_HEADER,
                 time_limit=sandbox.TIME_LIMIT_S, use_pch=True, tmp_base=None, desc="running"):
    """Compile and run each program on its input in the sandbox; returns dicts with `status`
    (ok / compile_error / runtime_error / timeout / output_limit), `stdout` and `error`."""
    if len(programs) != len(inputs):
        raise ValueError(f"{len(programs)} programs but {len(inputs)} inputs")
    if use_pch:
        sandbox.ensure_pch(std)
    kw = dict(std=std, time_limit=time_limit, use_pch=use_pch, tmp_base=tmp_base)
    items = [(with_header(p, header), inp, kw) for p, inp in zip(programs, inputs)]
    return _pool_map(_capture_task, items, jobs or os.cpu_count() or 1, desc)


def _compile_task(args):
    source, kw = args
    with sandbox.workdir(kw["tmp_base"]) as wd:
        ok, _ = sandbox.compile_source(source, wd, std=kw["std"], use_pch=kw["use_pch"], syntax_only=True)
        return ok is not None


def compile_check(programs, jobs=None, std=None, header=sandbox.DEFAULT_HEADER, use_pch=True,
                  tmp_base=None, desc="compiling"):
    """Whether each program compiles (g++ -fsyntax-only in the sandbox); identical programs once."""
    if use_pch:
        sandbox.ensure_pch(std)
    kw = dict(std=std, use_pch=use_pch, tmp_base=tmp_base)
    uniq = sorted(set(programs))
    res = _pool_map(_compile_task, [(with_header(p, header), kw) for p in uniq], jobs or os.cpu_count() or 1, desc)
    memo = dict(zip(uniq, res))
    return [memo[p] for p in programs]


def _progress_enabled():
    return sys.stderr.isatty() and not os.environ.get("CI")


def _key(source, tests):
    h = hashlib.sha256(source.encode("utf-8"))
    for inp, out in tests:
        h.update(b"\0" + inp.encode("utf-8") + b"\1" + out.encode("utf-8"))
    return h.hexdigest()


def evaluate_programs(programs, tests, jobs=None, std=None, out_jsonl=None, header=sandbox.DEFAULT_HEADER,
                      time_limit=sandbox.TIME_LIMIT_S, compare="exact", use_pch=True, dedup=True,
                      ids=None, tmp_base=None, desc="judging"):
    """Judge `programs[i]` (C++ text, header added if missing) on `tests[i]` (list of (input,
    expected_output) strings). Returns one dict per program, in order, with `outcome` among
    OUTCOMES, `tests_passed`, `tests_total`, `compile_error`, `failure`, `cached` (True when the
    identical program+tests was already judged in this call)."""
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
        sandbox.ensure_pch(std)  # build once here, not racing in every worker
    order = list(unique.items())
    outs = _pool_map(_judge_task, [(sources[i], tests[i], kw) for _, i in order], jobs, desc)
    done = {k: r for (k, _), r in zip(order, outs)}
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
