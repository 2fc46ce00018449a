"""scripts/bench_seq2seq.py runs and its counted-FLOP ratios mean what BENCH.md says (tiny model)."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_seq2seq_smoke_and_flop_floor():
    spec = importlib.util.spec_from_file_location("bench_seq2seq", os.path.join(REPO, "scripts", "bench_seq2seq.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.bench(arch="smoke", iters=1, batch=4, src_len=12, tgt_len=16, decode_len=16)
    for k in ("composed_vs_ce", "cache_speedup", "fast_vs_hf_cache", "train_flops_per_s_ours"):
        assert r[k] > 0, k
    # without sampling the composed step runs the decoder over [y; ŷ] forward and backward plus Π forward:
    # about twice a CE step's FLOPs; sampling only adds (forward) FLOPs
    assert 1.8 < r["composed_flop_ratio_no_sampling"] < r["composed_flop_ratio"] < 3.5
    assert r["composed_flops"] > r["composed_flops_no_sampling"] > r["ce_flops"] > 0
    mod.report(r)  # the printed report formats every number
