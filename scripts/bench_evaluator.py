"""Evaluator throughput: the sandboxed, PCH-using, parallel, caching evaluator vs the plain way.

The evaluator runs with the containment this machine allows (`sandbox.policy()`: a uid of its own
per sandbox, and fresh namespaces where the kernel allows them); with namespaces, the same programs
are judged once more without them, so their cost is measured in the same run.

The plain way: one plain `g++ prog.cpp -o prog` per program (no precompiled header), one program
at a time, then run it on its input and compare. Both are measured in this process on SansType
programs, with expected outputs from the generator's Python simulation. The plain way is timed on
a subsample (`baseline_n`, default 30) and its rate extrapolated: timing all 500 one at a time
would take ~15 minutes and a per-program rate does not depend on the count.

Usage: python scripts/bench_evaluator.py [--n 500] [--baseline-n 30] [--jobs N]
`bench(n=500) -> dict` is what an aggregate scripts/bench.py calls.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code import gxx, sandbox  # noqa: E402
from composed_ft.code.corruptions import corrupt_sanstype  # noqa: E402
from composed_ft.code.cpp_tokenize import detokenize_program  # noqa: E402
from composed_ft.code.judge import BATCH, evaluate_programs, summarize, with_header  # noqa: E402
from composed_ft.code.sanstype import generate_split  # noqa: E402


def plain_judge(source, inp, expected, workdir):
    """The unoptimized pipeline: plain compile (no PCH), run, compare."""
    src = os.path.join(workdir, "p.cpp")
    exe = os.path.join(workdir, "p")
    with open(src, "w") as f:
        f.write(source)
    if subprocess.run(["g++", *gxx.BASE_FLAGS, src, "-o", exe], capture_output=True).returncode:
        return "compile_error"
    r = subprocess.run([exe], input=inp.encode(), capture_output=True, timeout=10)
    if r.returncode:
        return "runtime_error"
    return "correct" if r.stdout == expected.encode() else "wrong_output"


def bench(n=500, baseline_n=30, jobs=None, seed=0):
    exs = generate_split(seed, "bench", n)
    programs = [detokenize_program(e["tgt"]) for e in exs]
    tests = [[(e["inp"], e["expected"])] for e in exs]
    jobs = jobs or os.cpu_count() or 1
    gxx.ensure_pch(None)  # built once per machine; not part of the per-program cost

    t = time.perf_counter()
    fast = evaluate_programs(programs, tests, jobs=jobs, desc="fast evaluator")
    fast_s = time.perf_counter() - t
    n_unique = len({(p, e["inp"]) for p, e in zip(programs, exs)})
    out = {"n": n, "unique_programs": n_unique, "jobs": jobs, "batch": BATCH, "fast_seconds": fast_s,
           "fast_programs_per_s": n / fast_s, "fast_accuracy": summarize(fast)["accuracy"],
           "sandbox": sandbox.policy()}
    if n_unique < n:  # report the honest number without duplicate caching as well
        t = time.perf_counter()
        evaluate_programs(programs, tests, jobs=jobs, dedup=False, desc="fast, no dedup")
        out["fast_nodedup_programs_per_s"] = n / (time.perf_counter() - t)

    # what batching buys: the same programs, one g++ process each
    t = time.perf_counter()
    evaluate_programs(programs, tests, jobs=jobs, dedup=False, batch=0, desc="fast, one program per g++")
    out["fast_nobatch_programs_per_s"] = n / (time.perf_counter() - t)
    # model outputs are not all gold: the same programs with SansType's structured corruptions
    # (p 0.9 per program, 1-3 lines), most of which no longer compile
    rng = random.Random(seed)
    corrupted = [detokenize_program(corrupt_sanstype(e["tgt"], rng)) for e in exs]
    t = time.perf_counter()
    mixed = evaluate_programs(corrupted, tests, jobs=jobs, dedup=False, desc="fast, corrupted")
    out["mixed_programs_per_s"] = n / (time.perf_counter() - t)
    out["mixed_compile_error_rate"] = summarize(mixed)["compile_error_rate"]
    t = time.perf_counter()
    evaluate_programs(corrupted, tests, jobs=jobs, dedup=False, batch=0, desc="fast, corrupted, no batching")
    out["mixed_nobatch_programs_per_s"] = n / (time.perf_counter() - t)

    if out["sandbox"]["ns"]:  # what the namespaces cost: the same run with the uid + rlimit sandbox alone
        os.environ["CFT_SANDBOX_NS"] = "0"
        sandbox.reset_policy()
        try:
            t = time.perf_counter()
            evaluate_programs(programs, tests, jobs=jobs, dedup=False, desc="fast, no namespaces")
            out["fast_nons_programs_per_s"] = n / (time.perf_counter() - t)
        finally:
            del os.environ["CFT_SANDBOX_NS"]
            sandbox.reset_policy()

    if gxx.link_flags()[-1] == "-fuse-ld=gold":  # what the gold linker buys: the same run with GNU ld
        os.environ["CFT_LINKER"] = "bfd"
        try:
            t = time.perf_counter()
            evaluate_programs(programs, tests, jobs=jobs, dedup=False, desc="fast, GNU ld")
            out["fast_bfd_programs_per_s"] = n / (time.perf_counter() - t)
        finally:
            del os.environ["CFT_LINKER"]

    k = min(baseline_n, n)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        plain = [plain_judge(with_header(programs[i]), exs[i]["inp"], exs[i]["expected"], d) for i in range(k)]
    plain_s = time.perf_counter() - t
    out.update({"plain_n": k, "plain_seconds": plain_s, "plain_programs_per_s": k / plain_s,
                "plain_accuracy": plain.count("correct") / k})
    out["ratio"] = out["fast_programs_per_s"] / out["plain_programs_per_s"]
    out["batching_gain"] = out["fast_programs_per_s"] / out["fast_nobatch_programs_per_s"]
    out["mixed_batching_gain"] = out["mixed_programs_per_s"] / out["mixed_nobatch_programs_per_s"]
    # other work on the machine eats into the parallel evaluator first: report how busy it was
    out["loadavg_1min"] = os.getloadavg()[0]
    if "fast_bfd_programs_per_s" in out:
        out["gold_vs_bfd"] = out["fast_programs_per_s"] / out["fast_bfd_programs_per_s"]
    if "fast_nodedup_programs_per_s" in out:
        out["ratio_nodedup"] = out["fast_nodedup_programs_per_s"] / out["plain_programs_per_s"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="SansType programs for the fast evaluator")
    p.add_argument("--baseline-n", type=int, default=30, help="programs timed the plain way")
    p.add_argument("--jobs", type=int, default=None, help="evaluator parallelism (default: all cores)")
    a = p.parse_args(argv)
    r = bench(a.n, a.baseline_n, a.jobs)
    box = r["sandbox"]
    print(f"fast evaluator : {r['fast_programs_per_s']:.2f} programs/s ({r['n']} programs, "
          f"{r['unique_programs']} distinct, {r['jobs']} jobs, accuracy {r['fast_accuracy']:.3f}; sandbox: "
          f"{'a uid of its own' if box['uid'] else 'no uid switch'}, {'namespaces' if box['ns'] else 'no namespaces'})")
    if "fast_nons_programs_per_s" in r:
        print(f"no namespaces  : {r['fast_nons_programs_per_s']:.2f} programs/s (no caching)")
    if "gold_vs_bfd" in r:
        print(f"same, GNU ld   : {r['fast_bfd_programs_per_s']:.2f} programs/s (gold linker: {r['gold_vs_bfd']:.2f}x)")
    print(f"no batching    : {r['fast_nobatch_programs_per_s']:.2f} programs/s (batching: {r['batching_gain']:.2f}x)")
    print(f"corrupted      : {r['mixed_programs_per_s']:.2f} programs/s batched vs "
          f"{r['mixed_nobatch_programs_per_s']:.2f} not ({r['mixed_compile_error_rate']:.0%} compile errors; "
          f"batching: {r['mixed_batching_gain']:.2f}x)")
    print(f"plain g++      : {r['plain_programs_per_s']:.2f} programs/s ({r['plain_n']} programs, one at a "
          f"time, no PCH, accuracy {r['plain_accuracy']:.3f})")
    print(f"ratio          : {r['ratio']:.1f}x" + (f" ({r['ratio_nodedup']:.1f}x without duplicate caching)"
                                                 if "ratio_nodedup" in r else " (no duplicates, so no caching gain)")
          + f"; load average {r['loadavg_1min']:.1f} on {os.cpu_count()} cores")
    return r


if __name__ == "__main__":
    main()
