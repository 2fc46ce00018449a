"""Benchmark of the SansType seq2seq model (CPU or GPU).

    python scripts/bench_seq2seq.py [--arch cpu|paper] [--iters 5] [--device auto]

Reports (1) training tokens/s of our model (transformers MBart built from a config) vs the same
architecture on plain torch.nn.Transformer (composed_ft/code/model.py, pre-LayerNorm,
shared embeddings, tied output projection, learned positions); (2) the composed step (sample ŷ from f, NLL_Π(y|ŷ) under
the frozen Π, log p_f(ŷ|x), CE) relative to a plain CE step (target ≤ 2x); (3) greedy decoding
with our incremental decoder vs transformers' key/value cache vs no cache. Batches are SansType-shaped:
16 sources of 84 and targets of 151 BPE tokens (the data's mean lengths), ~3,800 tokens. Timings on a loaded machine are
noisy: compare ratios measured in the same call."""
import argparse
import json
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code import (  # noqa: E402
    batching,
    losses,
    model as models,  # noqa: E402
)
from composed_ft.code.decode import generate  # noqa: E402
from composed_ft.code.presets import ARCHS  # noqa: E402
from composed_ft.code.reinforce import composed_loss  # noqa: E402
from composed_ft.code.tokens import EOS  # noqa: E402
from composed_ft.core.compose import freeze  # noqa: E402
from composed_ft.core.device import get_device  # noqa: E402


def _batch(b, ls, lt, vocab, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    srcs = [torch.randint(4, vocab, (ls - 1,), generator=g).tolist() + [EOS] for _ in range(b)]
    tgts = [torch.randint(4, vocab, (lt - 1,), generator=g).tolist() + [EOS] for _ in range(b)]
    return srcs, tgts


def _time(fn, iters, device):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def _flops(fn):
    """FLOPs of one call, counted by torch (matmuls and attention, forward and backward)."""
    fc = FlopCounterMode(display=False)
    with fc:
        fn()
    return fc.get_total_flops()


def bench(arch="cpu", iters=5, device="auto", batch=16, src_len=84, tgt_len=151, vocab=600, decode_len=151):
    torch.manual_seed(0)
    dev = get_device(device)
    a = ARCHS[arch]
    srcs, tgts = _batch(batch, src_len, tgt_len, vocab, dev)
    b = batching.collate(srcs, tgts, dev)
    ntok = int(b["tgt_mask"].sum())
    out = {"arch": arch, "device": str(dev), "batch": batch, "src_len": src_len, "tgt_len": tgt_len,
           "threads": torch.get_num_threads(), "iters": iters}

    model = models.build_model(vocab, **a).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def ce_step():
        loss, _ = losses.batch_nll(model, b, 0.1)
        (loss.sum() / ntok).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # the same sizes and dropout on torch.nn.Transformer (composed_ft/code/model.py)
    plain = models.build_model(vocab, **a, impl="torch-pre").to(dev).train()
    popt = torch.optim.AdamW(plain.parameters(), lr=1e-4)

    def plain_step():
        loss, _ = losses.batch_nll(plain, b, 0.1)
        (loss.sum() / ntok).backward()
        popt.step()
        popt.zero_grad(set_to_none=True)

    t_ours, t_plain = _time(ce_step, iters, dev), _time(plain_step, iters, dev)
    out["train_tokens_per_s_ours"] = ntok / t_ours
    out["train_tokens_per_s_plain_torch"] = ntok / t_plain
    out["train_all_tokens_per_s_ours"] = (int(b["src_mask"].sum()) + ntok) / t_ours
    out["params"] = models.count_parameters(model)

    pi = freeze(models.build_model(vocab, **a).to(dev))
    # A random f samples until the length limit; cap sampling at the target length so the composed
    # step costs what it costs on a trained f (samples about as long as the gold programs).
    def comp_step():
        loss, _, _ = composed_loss(model, pi, srcs, tgts, max_len=tgt_len, device=dev)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_comp = _time(comp_step, max(1, iters // 2), dev)
    out["ce_step_s"], out["composed_step_s"] = t_ours, t_comp
    out["composed_vs_ce"] = t_comp / t_ours
    # The arithmetic floor of the objective: the composed step's counted FLOPs over the CE step's.
    # Without sampling it still runs the decoder forward and backward over 2B sequences ([y; ŷ]) and Π
    # forward over B, so no implementation of this objective can take less than this ratio of a CE step
    # at equal FLOP/s; sampling adds its (sequential, less efficient) FLOPs on top.
    def comp_step_no_sampling():  # the gold targets stand in for the samples
        loss, _, _ = composed_loss(model, pi, srcs, tgts, max_len=tgt_len, device=dev, yhats=[list(t) for t in tgts])
        loss.backward()
        opt.zero_grad(set_to_none=True)

    out["ce_flops"] = _flops(ce_step)
    out["composed_flops"] = _flops(comp_step)
    out["composed_flops_no_sampling"] = _flops(comp_step_no_sampling)
    out["composed_flop_ratio"] = out["composed_flops"] / out["ce_flops"]
    out["composed_flop_ratio_no_sampling"] = out["composed_flops_no_sampling"] / out["ce_flops"]
    out["train_flops_per_s_ours"] = out["ce_flops"] / t_ours

    model.eval()
    # an untrained model rarely emits EOS, so every row decodes the full decode_len tokens
    t_cache = _time(lambda: generate(model, srcs, max_len=decode_len, device=dev), 2, dev)
    t_hf = _time(lambda: generate(model, srcs, max_len=decode_len, device=dev, cache="hf"), 2, dev)
    t_nocache = _time(lambda: generate(model, srcs, max_len=decode_len, device=dev, cache="none"), 1, dev)
    out["greedy_s_cache"], out["greedy_s_hf_cache"], out["greedy_s_nocache"] = t_cache, t_hf, t_nocache
    out["greedy_tokens_per_s_cache"] = batch * decode_len / t_cache
    out["cache_speedup"] = t_nocache / t_cache
    out["fast_vs_hf_cache"] = t_hf / t_cache
    return out


def report(r):
    print(f"seq2seq benchmark: arch {r['arch']} ({r['params']:,} parameters), device {r['device']}, "
          f"{r['threads']} threads, batch {r['batch']} x (src {r['src_len']} + tgt {r['tgt_len']})")
    print(f"  training, target tokens/s: ours (transformers MBart) {r['train_tokens_per_s_ours']:,.0f}, "
          f"plain torch.nn.Transformer {r['train_tokens_per_s_plain_torch']:,.0f} "
          f"(ratio {r['train_tokens_per_s_ours'] / r['train_tokens_per_s_plain_torch']:.2f}); "
          f"source+target tokens/s ours {r['train_all_tokens_per_s_ours']:,.0f}")
    print(f"  composed step {r['composed_step_s']:.2f} s vs CE step {r['ce_step_s']:.2f} s: "
          f"{r['composed_vs_ce']:.2f}x (target <= 2x); counted FLOPs {r['composed_flop_ratio']:.2f}x "
          f"({r['composed_flop_ratio_no_sampling']:.2f}x without sampling: the objective's floor)")
    print(f"  CE training step: {r['train_flops_per_s_ours'] / 1e9:.1f} GFLOP/s (counted FLOPs / time)")
    print(f"  greedy decoding of {r['batch']} x {r['tgt_len']} tokens: our incremental decoder "
          f"{r['greedy_s_cache']:.2f} s, "
          f"transformers' cache {r['greedy_s_hf_cache']:.2f} s ({r['fast_vs_hf_cache']:.1f}x), "
          f"no cache {r['greedy_s_nocache']:.2f} s ({r['cache_speedup']:.1f}x)")
    print("  (timings on a shared or loaded machine are noisy; ratios from one call are the meaningful part)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="cpu", choices=sorted(ARCHS))
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the numbers here")
    a = p.parse_args()
    res = bench(a.arch, a.iters, a.device)
    report(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
