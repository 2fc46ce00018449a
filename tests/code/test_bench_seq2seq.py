"""scripts/bench_seq2seq.py runs and its counted-FLOP ratios mean what BENCH.md says (tiny model)."""
from conftest import load_script


def test_bench_seq2seq_smoke_and_flop_floor():
    mod = load_script("bench_seq2seq")
    r = mod.bench(arch="smoke", iters=1, batch=4, src_len=12, tgt_len=16, decode_len=16)
    for k in ("composed_vs_ce", "cache_speedup", "fast_vs_hf_cache", "train_flops_per_s_ours"):
        assert r[k] > 0, k
    # without sampling the composed step runs the decoder over [y; ŷ] forward and backward plus Π forward:
    # about twice a CE step's FLOPs; sampling only adds (forward) FLOPs
    assert 1.8 < r["composed_flop_ratio_no_sampling"] < r["composed_flop_ratio"] < 3.5
    assert r["composed_flops"] > r["composed_flops_no_sampling"] > r["ce_flops"] > 0
    mod.report(r)  # the printed report formats every number
