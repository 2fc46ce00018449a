"""Where a SansType composed step spends its time, beside a CE step on the same batches (issue 38, item 1).

    python scripts/profile_compose.py --init runs/sanstype/cpu/main/pretrain-s0 \
        --denoiser runs/sanstype/cpu/denoisers/main-s0 [--batches 4] [--max-tokens 4000]

f (a trained run's kept checkpoint) and the frozen Π run the composed objective as the preset's paper row
does (padded log p in eval mode, recorded while sampling, a gradient only for the samples above the clamp,
samples capped at 200 tokens) on the first token batches of the labeled
train programs, under torch.profiler; printed: the wall time of each part of the step (sampling, Π's NLL,
the CE and log p passes with their backward) against one CE step of the same batches, and the ops with
the most self time. Timings on a loaded machine are noisy; the shares are what the profile is for."""
import argparse
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code import model as models  # noqa: E402
from composed_ft.code.batching import collate, token_batches  # noqa: E402
from composed_ft.code.config import from_saved  # noqa: E402
from composed_ft.code.corpus import Corpus  # noqa: E402
from composed_ft.code.decode import generate  # noqa: E402
from composed_ft.code.losses import batch_nll  # noqa: E402
from composed_ft.code.reinforce import _ce_and_token_logp, clamp_live, denoiser_nll, sampled_logp  # noqa: E402
from composed_ft.code.tokens import EOS  # noqa: E402
from composed_ft.core.compose import freeze  # noqa: E402
from composed_ft.core.objective import program_loss, sample_logp  # noqa: E402
from composed_ft.core.runs import read_json  # noqa: E402


def load_inputs(init, denoiser, max_tokens, n_batches):
    """What a composed step of the run `init` reads, on the CPU: f (its kept checkpoint), the frozen Π of
    `denoiser`, the labeled train sources and targets, and the first n_batches token batches of them
    (shuffled with seed 0)."""
    cpu = torch.device("cpu")
    cfg = from_saved(read_json(os.path.join(init, "config.json"))["config"])
    f, _ = models.load(init, cpu)
    pi = freeze(models.load(denoiser, cpu)[0])
    srcs, tgts, _, _ = Corpus(cfg).labeled(cfg)
    batches = token_batches([len(s) for s in srcs], [len(t) for t in tgts], max_tokens, shuffle=True,
                            generator=torch.Generator().manual_seed(0))[:n_batches]
    return f, pi, srcs, tgts, batches


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", required=True)
    p.add_argument("--denoiser", required=True)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=4000)
    p.add_argument("--cap", type=int, default=200)
    p.add_argument("--clamp-min", type=float, default=-50.0)
    p.add_argument("--full-logp", action="store_true",
                   help="the log p pass with gradient over every sample (before skip_clamped)")
    p.add_argument("--unfused", action="store_true",
                   help="sample without recording log p; a pass without gradient finds the live samples")
    p.add_argument("--rows", type=int, default=20, help="ops printed")
    a = p.parse_args()
    cpu = torch.device("cpu")
    f, pi, srcs, tgts, batches = load_inputs(a.init, a.denoiser, a.max_tokens, a.batches + 1)
    parts = {"sample": 0.0, "pi_nll": 0.0, "ce_and_logp": 0.0, "backward": 0.0, "ce_step": 0.0}

    def composed(idx, timed):
        xs, ys = [srcs[i] for i in idx], [tgts[i] for i in idx]
        t = time.perf_counter()
        with record_function("sample"):
            fused = not (a.full_logp or a.unfused)
            got = generate(f, xs, max_len=a.cap, mode="sample", logp=fused)
        yh = [o + [EOS] for o in got[0]]
        t1 = time.perf_counter()
        with record_function("pi_nll"):
            w = denoiser_nll(pi, yh, ys, cpu)
        t2 = time.perf_counter()
        f.train()
        with record_function("ce_and_logp"):
            lens = [len(y) for y in yh]  # as the paper row runs it: a gradient only for the unclamped samples
            live = None if a.full_logp else clamp_live(lens, [len(idx)], "padded", a.clamp_min)
            known = sampled_logp(got[2], lens, [len(idx)], max(lens)) if fused else None
            ce, _, tok = _ce_and_token_logp(f, xs, ys, yh, 0.0, cpu, "eval", live, known)
            logp, _ = sample_logp(tok, lens, [len(idx)], "padded")
            loss = program_loss(ce, logp, w, [len(idx)], clamp_min=a.clamp_min).sum() / sum(map(len, ys))
        t3 = time.perf_counter()
        with record_function("backward"):
            loss.backward()
        t4 = time.perf_counter()
        with record_function("ce_step"):
            f.train()
            l2, _ = batch_nll(f, collate(xs, ys, cpu), 0.0)
            (l2.sum() / sum(map(len, ys))).backward()
        t5 = time.perf_counter()
        f.zero_grad(set_to_none=True)
        if timed:
            for k, dt in zip(parts, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                parts[k] += dt

    torch.manual_seed(0)
    composed(batches[0], False)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in batches[1:]:
            composed(idx, True)
    step = sum(v for k, v in parts.items() if k != "ce_step")
    print(f"{a.batches} batches of {a.max_tokens} tokens, {torch.get_num_threads()} threads: composed step "
          f"{step / a.batches:.2f} s vs CE step {parts['ce_step'] / a.batches:.2f} s "
          f"({step / parts['ce_step']:.2f}x)")
    for k, v in parts.items():
        if k != "ce_step":
            print(f"  {k:12s} {v / a.batches:6.2f} s  {100 * v / step:5.1f}% of the composed step")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
