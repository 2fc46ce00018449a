"""What the authors' padded log p does to the REINFORCE term of a trained f, before any composed training.

    python scripts/probe_padded_logp.py --run-dir runs/sanstype/cpu/main/pretrain-s0 [--n 320] \
        [--max-tokens 2000 4000 16000] [--cap 200] [--out results/probe_padded_logp.json]

f (a run's kept checkpoint) samples ŷ in eval mode, as the authors' generator does, for the first N
labeled train programs, grouped into token batches of each size exactly as training groups them
(token_batches, the training stage's order by length); the teacher-forced log p of each sample is then
summed as objective.sample_logp sums it (the code the composed step runs). Printed per batch size: the
share of samples whose padded sum is below the clamp (their REINFORCE term has no gradient), the same
share for the masked sum, the mean log p of a post-EOS PAD position, and each sample's length against
its batch's longest. 16,000 tokens is one accumulated update of the authors' batches (4,000 x 4): the
probe reports it to show how the share grows with the batch, but training pads per 4,000-token batch."""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from composed_ft.code import model as models  # noqa: E402
from composed_ft.code.batching import token_batches  # noqa: E402
from composed_ft.code.config import from_saved  # noqa: E402
from composed_ft.code.corpus import Corpus  # noqa: E402
from composed_ft.code.decode import generate  # noqa: E402
from composed_ft.code.reinforce import _ce_and_token_logp, sample_stats  # noqa: E402
from composed_ft.code.tokens import EOS  # noqa: E402
from composed_ft.core.io import write_text  # noqa: E402
from composed_ft.core.objective import sample_logp  # noqa: E402
from composed_ft.core.runs import read_json  # noqa: E402


def probe(f, srcs, tgts, max_tokens, cap, clamp_min):
    """The diagnostics of reinforce.sample_stats over every batch of this size, weighted by samples."""
    batches = token_batches([len(s) for s in srcs], [len(t) for t in tgts], max_tokens, shuffle=False)
    sums, n = {}, 0
    for idx in batches:
        xs, ys = [srcs[i] for i in idx], [tgts[i] for i in idx]
        outs, _ = generate(f, xs, max_len=cap, mode="sample")
        yhats = [o + [EOS] for o in outs]
        with torch.no_grad():
            _, _, tok_lp = _ce_and_token_logp(f, xs, ys, yhats, 0.0, torch.device("cpu"), "eval")
            _, diag = sample_logp(tok_lp, [len(y) for y in yhats], [len(idx)], "padded")
        stats = sample_stats(diag, [len(y) for y in yhats], clamp_min)
        n_pad = diag["pad_logp"].numel()
        for k, v in stats.items():
            w = n_pad if k == "logp_pad_token" else len(idx)  # a PAD position's mean: over positions
            if w:
                sums.setdefault(k, [0.0, 0])
                sums[k][0] += v * w
                sums[k][1] += w
        n += len(idx)
    out = {k: s / w for k, (s, w) in sums.items()}
    out.update(batches=len(batches), samples=n, samples_per_batch=n / len(batches))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", required=True, help="a predictor run (its kept checkpoint samples)")
    p.add_argument("--n", type=int, default=320, help="labeled train programs to sample for")
    p.add_argument("--max-tokens", type=int, nargs="+", default=[2000, 4000, 16000])
    p.add_argument("--cap", type=int, default=200, help="sample length cap (the authors': 200)")
    p.add_argument("--clamp-min", type=float, default=-50.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the numbers as JSON here")
    args = p.parse_args()
    cfg = from_saved(read_json(os.path.join(args.run_dir, "config.json"))["config"])
    f, _ = models.load(args.run_dir, torch.device("cpu"))
    f.eval()
    srcs, tgts, _, _ = Corpus(cfg).labeled(cfg)
    srcs, tgts = srcs[:args.n], tgts[:args.n]
    res = {"run_dir": args.run_dir, "n": len(srcs), "cap": args.cap, "by_max_tokens": {}}
    for mt in args.max_tokens:
        torch.manual_seed(args.seed)
        r = probe(f, srcs, tgts, mt, args.cap, args.clamp_min)
        res["by_max_tokens"][mt] = r
        print(f"{mt:6d} tokens/batch ({r['samples_per_batch']:.0f} samples): clamped padded "
              f"{100 * r['clamped_padded']:.0f}% vs masked {100 * r['clamped_masked']:.0f}%; log p of a PAD "
              f"{r.get('logp_pad_token', float('nan')):.1f}; mean log p padded {r['logp_padded']:.1f} vs masked "
              f"{r['logp_masked']:.1f}; sample length {r['sample_len']:.0f} vs its batch's longest "
              f"{r['sample_len_longest']:.0f} (ratio {r['sample_len_ratio']:.2f})")
    if args.out:
        write_text(args.out, json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
