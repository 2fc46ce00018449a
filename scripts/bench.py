"""Run the project's benchmarks and write their sections of results/BENCH.md.

Each benchmark times our implementation against a baseline in the same process (interleaved where
it can), so the ratios hold on a busy machine even when the absolute times do not. Every section it
writes opens with the date, the command, the machine and the load average; the sections it skips are
kept as they are in the file.

    python scripts/bench.py [--out results/BENCH.md] [--skip imggen,seq2seq,compose,evaluator] [--quick]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from composed_ft.core.io import write_text  # noqa: E402
from composed_ft.core.machine import describe  # noqa: E402


def imggen_section(quick):
    import tempfile

    import bench_imggen
    r = bench_imggen.bench(reps=3 if quick else 7)
    # issue 38: the composed update at the cpu preset's width (16), today's against the previous implementation
    # and the Direct step, the torch.compile option, the targets' pass/fail lines, the validation-curve check and
    # the profile it rests on
    u = bench_imggen.bench_update(16, 256, reps=15 if quick else 31, compile_step=True)
    with tempfile.TemporaryDirectory() as tmp:
        curve = bench_imggen.curve_check(tmp, updates=60 if quick else 120)
    profiles = bench_imggen.profile_update(16, 256)
    # the runners' JOBS question: two 1-thread processes against one 2-thread process (deliver 4)
    updates = 100 if quick else 300
    jobs = bench_imggen.jobs_report(bench_imggen.bench_jobs(16, 256, updates), 16, 256, updates)
    return ("## Composed font training step (imggen)\n\n" + bench_imggen.report(r) + "\n\n"
            f"### The composed update at the cpu preset's width (issue 38), load average {os.getloadavg()[0]:.1f}\n\n"
            + bench_imggen.update_report(u, curve, profiles) + "\n\n"
            "### Two stages side by side at one thread each, or one at two threads (issue 38, JOBS)\n\n"
            + jobs + "\n")


def seq2seq_section(quick):
    import bench_seq2seq
    r = bench_seq2seq.bench(iters=3 if quick else 5)
    ratio = r["train_tokens_per_s_ours"] / r["train_tokens_per_s_plain_torch"]
    from composed_ft.core.perf import gemm_peak_flops
    lines = [
        "## Seq2seq (SansType cpu architecture)", "",
        f"arch {r['arch']} ({r['params']:,} parameters), device {r['device']}, {r['threads']} threads, "
        f"batch {r['batch']} x (src {r['src_len']} + tgt {r['tgt_len']})", "",
        "| measure | ours | baseline | ratio |", "|---|---|---|---|",
        f"| training target tokens/s (vs plain torch.nn.Transformer, same sizes) | {r['train_tokens_per_s_ours']:,.0f} "
        f"| {r['train_tokens_per_s_plain_torch']:,.0f} | {ratio:.2f}x |",
        f"| composed step vs CE step, s (target ≤ 2x) | {r['composed_step_s']:.3f} | {r['ce_step_s']:.3f} "
        f"| {r['composed_vs_ce']:.2f}x |",
        "| composed step vs CE step, counted FLOPs (GFLOP; the objective's floor: "
        f"{r['composed_flop_ratio_no_sampling']:.2f}x without sampling) | {r['composed_flops'] / 1e9:.1f} | "
        f"{r['ce_flops'] / 1e9:.1f} | {r['composed_flop_ratio']:.2f}x |",
        f"| greedy decoding, s (our incremental decoder vs transformers' cache) | {r['greedy_s_cache']:.2f} "
        f"| {r['greedy_s_hf_cache']:.2f} | {r['fast_vs_hf_cache']:.1f}x faster |",
        f"| greedy decoding, s (our incremental decoder vs no cache) | {r['greedy_s_cache']:.2f} "
        f"| {r['greedy_s_nocache']:.2f} | {r['cache_speedup']:.1f}x faster |",
    ]
    if "train_flops_per_s_ours" in r:
        lines.append(f"\ntraining achieves {r['train_flops_per_s_ours'] / 1e9:.1f} GFLOP/s = "
                     f"{100 * r['train_flops_per_s_ours'] / gemm_peak_flops('cpu'):.0f}% of the measured sgemm peak")
    return "\n".join(lines) + "\n"


def compose_section(quick):
    import bench_compose
    r = bench_compose.bench(batches=2 if quick else 4, reps=1 if quick else 2)
    return ("## SansType composed step vs CE step (issue 38)\n\n" + bench_compose.__doc__.split("\n\n", 2)[2].strip()
            + "\n\n" + bench_compose.report(r) + "\n")


def evaluator_section(quick):
    import bench_evaluator
    r = bench_evaluator.bench(n=200 if quick else 500, baseline_n=20 if quick else 30)
    lines = ["## Sandboxed evaluator (SansType programs)", "",
             "| | programs/s | programs |", "|---|---|---|",
             f"| ours: PCH, {r['jobs']} parallel jobs, up to {r['batch']} programs per g++ process, cache by program "
             f"text | {r['fast_programs_per_s']:.2f} | {r['n']} |",
             f"| ours, one program per g++ process (no batching) | {r['fast_nobatch_programs_per_s']:.2f} | {r['n']} |",
             *([f"| ours with GNU ld instead of gold (no caching) | {r['fast_bfd_programs_per_s']:.2f} | {r['n']} |"]
               if "fast_bfd_programs_per_s" in r else []),
             f"| ours on the same programs corrupted ({100 * r['mixed_compile_error_rate']:.0f}% compile errors), "
             f"batched / not | {r['mixed_programs_per_s']:.2f} / {r['mixed_nobatch_programs_per_s']:.2f} | {r['n']} |",
             f"| plain: one g++ compile + run at a time, no PCH | {r['plain_programs_per_s']:.2f} | {r['plain_n']} |",
             "", f"ratio: **{r['ratio']:.1f}x**" + (f" ({r['ratio_nodedup']:.1f}x without duplicate caching)"
                                                   if "ratio_nodedup" in r else "")
             + f"; batching alone: {r['batching_gain']:.2f}x on gold programs, {r['mixed_batching_gain']:.2f}x on "
               "the corrupted ones"]
    return "\n".join(lines) + "\n"


SECTIONS = {"imggen": imggen_section, "seq2seq": seq2seq_section, "compose": compose_section,
            "evaluator": evaluator_section}


def merge(old, sections, head):
    """The text of the file `old` under a new `head`, each of `sections` (texts opening with their "## " title
    line) in place of the section of the same title, or appended; the other sections kept as they were."""
    body, cur = [], None
    for line in old.split("\n"):
        if line.startswith("## "):
            cur = [line]
            body.append(cur)
        elif cur is not None:
            cur.append(line)
    body = ["\n".join(c).strip() + "\n" for c in body]
    for text in sections:
        title = text.split("\n", 1)[0]
        at = [i for i, b in enumerate(body) if b.split("\n", 1)[0] == title]
        if at:
            body[at[0]] = text.strip() + "\n"
        else:
            body.append(text.strip() + "\n")
    return "\n".join([head] + body)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/BENCH.md")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: " + ",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    unknown = skip - set(SECTIONS)
    if unknown:
        p.error(f"--skip: unknown section(s) {', '.join(sorted(unknown))} (choose from {', '.join(SECTIONS)})")
    cmd = "python scripts/bench.py" + (f" --skip {a.skip}" if a.skip else "") + (" --quick" if a.quick else "")
    parts = []
    for name, fn in SECTIONS.items():
        if name in skip:
            continue
        print(f"[bench] {name} ...", file=sys.stderr)
        load0, t0 = os.getloadavg()[0], time.time()
        text = fn(a.quick)
        title, rest = text.split("\n", 1)
        parts.append(f"{title}\n\nGenerated on {time.strftime('%Y-%m-%d %H:%M')} by `OMP_NUM_THREADS="
                     f"{os.environ.get('OMP_NUM_THREADS', '(unset)')} {cmd}` in {(time.time() - t0) / 60:.1f} min. "
                     f"Machine: {describe()}. Load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
                     f"end.\n{rest}")
        print(parts[-1])
    head = ("# Benchmarks\n\nWritten by `python scripts/bench.py`, a section per benchmark, each under the date, "
            "command, machine and load of its last regeneration. Each ratio compares two implementations timed in "
            "the same process; the absolute numbers depend on the load.\n")
    old = open(a.out).read() if os.path.exists(a.out) else ""
    write_text(a.out, merge(old, parts, head))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
