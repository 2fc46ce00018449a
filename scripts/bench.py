"""Run every benchmark of the project in one go and write results/BENCH.md.

Each benchmark times our implementation against a baseline in the same process (interleaved where
it can), so the ratios hold on a busy machine even when the absolute times do not; the load average
at the start and end is recorded beside them.

    python scripts/bench.py [--out results/BENCH.md] [--skip imggen,seq2seq,evaluator] [--quick]
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
    return ("## Composed font training step (imggen)\n\n" + bench_imggen.report(r) + "\n\n"
            f"### The composed update at the cpu preset's width (issue 38), load average {os.getloadavg()[0]:.1f}\n\n"
            + bench_imggen.update_report(u, curve, profiles) + "\n")


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


SECTIONS = {"imggen": imggen_section, "seq2seq": seq2seq_section, "evaluator": evaluator_section}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/BENCH.md")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: " + ",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    load0, t0 = os.getloadavg()[0], time.time()
    parts = []
    for name, fn in SECTIONS.items():
        if name in skip:
            continue
        print(f"[bench] {name} ...", file=sys.stderr)
        parts.append(fn(a.quick))
        print(parts[-1])
    head = (f"# Benchmarks\n\nGenerated by `python scripts/bench.py{' --quick' if a.quick else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')} ({(time.time() - t0) / 60:.1f} min). Machine: {describe()}. "
            f"Load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: each ratio compares "
            f"two implementations timed in the same process, the absolute numbers depend on the load.\n")
    write_text(a.out, head + "\n" + "\n".join(parts))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
