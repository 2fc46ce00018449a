"""How much work each stage of the paper's main tables is at the `paper` preset, counted on the data.

    python scripts/paper_plan.py --out results/paper_plan.json

Per stage (one seed): updates and epochs (batches cut exactly as the stage cuts them: token batches of
--max-tokens in fairseq's sense, --update-freq of them per update; images in batches of 256), examples per
validation pass and examples evaluated at the end. scripts/gpu_check.sh multiplies these by what it
measures per update, per validation example and per evaluated example on a GPU; the committed
results/paper_plan.json lets it do so on a machine without the data (it states where its counts came
from).

The tables: imggen main (the blur-2 denoiser, then Direct, Composed and the strongest Direct at 2,500 and
500 labels), SansType main (denoiser, Pretrained, Direct, Composed; evaluated on test, ood, test_gen,
ood_gen as code/runner.sh does) and SPoC main (gold ceiling, denoiser, Direct, Pretrained, Composed).
SPoC's denoiser data at the paper's 100 corrupted copies per program is not built here (make-spoc's
compile checks of ~700k candidates); it is counted as 100 copies of every unlabeled program, each as long
as its clean program -- an upper bound (make-spoc keeps up to 100 distinct failing copies).
"""
import argparse
import math
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from composed_ft.core.io import write_json  # noqa: E402


def _stage(table, stage, run, updates, epochs, val_n, eval_n, examples, **extra):
    return dict(table=table, stage=stage, run=run, updates=int(updates), epochs=int(epochs), val_n=int(val_n),
                eval_n=int(eval_n), examples=int(examples), **extra)


# ---------------------------------------------------------------- imggen

def imggen_plan(fonts):
    """The imggen main table from the fonts dataset's size (composed_ft/imggen/presets.py, data.py)."""
    import numpy as np

    from composed_ft.imggen.data import N_CHARS, split_indices
    from composed_ft.imggen.presets import PRESETS

    with np.load(fonts, allow_pickle=False) as z:
        n_fonts = z["glyphs"].shape[0]
    idx = split_indices(n_fonts)
    other = len(idx["unlabeled_fonts"]) * N_CHARS
    holdout = min(1000, other // 10)
    n_unlabeled = other - holdout + len(idx["pool"])
    den = PRESETS["denoise"]["paper"]
    steps = math.ceil(n_unlabeled / den["batch_size"])
    epochs = max(den["max_epoch"], math.ceil(den["min_updates"] / steps))
    updates = epochs * steps
    # the denoiser validates on the holdout every epoch and logs a curve point every curve_interval updates
    stages = [_stage("imggen", "denoise", "denoisers/blur2", updates, epochs, holdout, 0, n_unlabeled,
                     val_passes=epochs + updates // den["curve_interval"])]
    tr = PRESETS["train"]["paper"]
    for n in (2500, 500):
        for method, name in (("direct", "direct"), ("composed", "composed"), ("direct", "direct_strong")):
            steps = math.ceil(n / tr["batch_size"])
            stages.append(_stage("imggen", method, f"main/{name}-n{n}-s0", steps * tr["max_epoch"], tr["max_epoch"],
                                 len(idx["val"]), len(idx["test"]), n))
    return stages, {"fonts": os.path.relpath(fonts, REPO), "n_fonts": int(n_fonts), "n_unlabeled_images": n_unlabeled}


# ---------------------------------------------------------------- SansType and SPoC

def _cfg(experiment, stage):
    from composed_ft.code.config import preset_values
    return preset_values(stage, {"experiment": experiment, "preset": "paper"})


def _updates(src_lens, tgt_lens, cfg):
    from composed_ft.code.batching import token_batches
    batches = len(token_batches(src_lens, tgt_lens, cfg["max_tokens"], shuffle=False))
    per_epoch = math.ceil(batches / cfg["update_freq"])
    total = per_epoch * cfg["max_epoch"]
    return (min(total, cfg["max_update"]) if cfg["max_update"] else total), batches


def _lens(tok, texts):
    return [len(ids) for ids in tok.encode_many(texts)]


def _group_longest(tgt_lens, cfg, seed=0):
    """Mean over an epoch's updates of the longest target among an update's examples: how many steps one
    sampling pass of Composed takes when f's samples are about as long as the gold programs."""
    import torch

    from composed_ft.code.batching import token_batches
    idx = token_batches(tgt_lens, tgt_lens, cfg["max_tokens"], shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    uf = cfg["update_freq"]
    groups = [[i for b in idx[j:j + uf] for i in b] for j in range(0, len(idx), uf)]
    return sum(max(tgt_lens[i] for i in g) for g in groups) / len(groups)


def sanstype_plan(data):
    from composed_ft.code import dataset
    from composed_ft.code.tokens import ensure_vocab
    cfg = {st: _cfg("sanstype", st) for st in ("denoise", "direct", "pretrain", "compose")}
    tok = ensure_vocab(data, cfg["direct"]["vocab_size"])  # as the first stage builds it (train split only)
    split = {s: dataset.load_split(data, s) for s in ("train", "val", "unlabeled", "unlabeled_val")}
    evals = [s for s in ("test", "ood", "test_gen", "ood_gen") if os.path.exists(os.path.join(data, f"{s}.tgt"))]
    n_eval = sum(len(dataset.load_split(data, s)) for s in evals)
    # the fixed structured corruption changes a program's length by a line at most: its clean length stands in
    unl = _lens(tok, [e["tgt"] for e in split["unlabeled"]])
    src, tgt = _lens(tok, [e["src"] for e in split["train"]]), _lens(tok, [e["tgt"] for e in split["train"]])
    stages = []
    u, b = _updates(unl, unl, cfg["denoise"])
    stages.append(_stage("sanstype", "denoise", "denoisers/main-s0", u, cfg["denoise"]["max_epoch"],
                         len(split["unlabeled_val"]), len(split["unlabeled_val"]) + len(split["train"]), len(unl),
                         batches_per_epoch=b))
    for st, run in (("pretrain", "main/pretrain-s0"), ("direct", "main/direct-s0"), ("compose", "main/composed-s0")):
        u, b = _updates(src, tgt, cfg[st])
        extra = {}
        if st == "compose":
            val_tgt = _lens(tok, [e["tgt"] for e in split["val"]])
            extra = dict(sample_steps=_group_longest(tgt, cfg[st]) + 1, val_decode_steps=max(val_tgt) + 1)
        stages.append(_stage("sanstype", st, run, u, cfg[st]["max_epoch"], len(split["val"]), n_eval, len(src),
                             batches_per_epoch=b, **extra))
    return stages, {"data": os.path.relpath(data, REPO), "eval_splits": evals, "vocab": len(tok)}


def spoc_plan(data, copies=None):
    """SPoC from a make-spoc data set (its train, val, test splits and vocabulary) and the release's
    unlabeled programs (the candidates make-spoc corrupts), `copies` corrupted copies each (the paper's)."""
    from composed_ft.code import dataset, spoc
    from composed_ft.code.presets import SPOC
    from composed_ft.code.tokens import Tokenizer, default_path
    copies = copies or SPOC["paper"]["make-spoc"]["copies"]
    cfg = {st: _cfg("spoc", st) for st in ("denoise", "direct", "pretrain", "compose")}
    tok = Tokenizer(default_path(data, cfg["direct"]["vocab_size"]))
    man = dataset.describe(data)
    release = spoc.load_spoc(man.get("spoc_dir"))
    s = release["splits"]
    test_all = s["testp"] + s["testw"]
    extra = spoc.load_codeforces_extra(exclude_probids={e["probid"] for e in test_all})
    test_code = {e["tgt"] for e in test_all}
    unlabeled = [t for t in dict.fromkeys([e["tgt"] for e in s["train"]] + [e["tgt"] for e in extra])
                 if t not in test_code]
    train, _ = spoc.without_test_programs(s["train"], test_all)
    valid, _ = spoc.without_test_programs(s["valid"], test_all)
    max_pos = cfg["direct"]["max_positions"] - 2
    src, tgt = _lens(tok, [e["src"] for e in train]), _lens(tok, [e["tgt"] for e in train])
    keep = [i for i in range(len(src)) if max(src[i], tgt[i]) <= max_pos]
    src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    unl = [n for n in _lens(tok, unlabeled) if n <= max_pos] * copies
    n_eval = len(s["testp"]) + len(s["testw"])
    stages = [_stage("spoc", "gold-ceiling", "gold_ceiling", 0, 0, 0, n_eval, 0)]
    u, b = _updates(unl, unl, cfg["denoise"])
    stages.append(_stage("spoc", "denoise", "denoisers/main", u, cfg["denoise"]["max_epoch"], copies * len(valid),
                         copies * len(valid), len(unl), batches_per_epoch=b))
    for st, run in (("direct", "main/direct-s0"), ("pretrain", "main/pretrain-s0"), ("compose", "main/composed-s0")):
        u, b = _updates(src, tgt, cfg[st])
        extra = {}
        if st == "compose":
            val_tgt = [n for n in _lens(tok, [e["tgt"] for e in valid]) if n <= max_pos]
            extra = dict(sample_steps=_group_longest(tgt, cfg[st]) + 1, val_decode_steps=max(val_tgt) + 1)
        stages.append(_stage("spoc", st, run, u, cfg[st]["max_epoch"], len(valid), n_eval, len(src),
                             batches_per_epoch=b, **extra))
    return stages, {"data": os.path.relpath(data, REPO), "note": release["note"], "vocab": len(tok),
                    "unlabeled_programs": len(unlabeled), "copies": copies}


def build(fonts=None, sanstype=None, spoc_data=None):
    plan = {"made": time.strftime("%Y-%m-%d %H:%M"), "preset": "paper", "seeds": 1, "stages": [], "sources": {}}
    for name, arg, fn in (("imggen", fonts, imggen_plan), ("sanstype", sanstype, sanstype_plan),
                          ("spoc", spoc_data, spoc_plan)):
        if arg and os.path.exists(arg):
            stages, source = fn(arg)
            plan["stages"] += stages
            plan["sources"][name] = source
    return plan


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fonts", default=os.path.join(REPO, "data/fonts/fonts32.npz"))
    p.add_argument("--sanstype", default=os.path.join(REPO, "data/sanstype-paper"), help="the runner's data set")
    p.add_argument("--spoc", default=None, help="a make-spoc data set (its vocabulary and splits)")
    p.add_argument("--out", default=os.path.join(REPO, "results/paper_plan.json"))
    args = p.parse_args(argv)
    plan = build(args.fonts, args.sanstype, args.spoc)
    write_json(args.out, plan)
    for s in plan["stages"]:
        print(f"{s['table']:9s} {s['stage']:13s} {s['updates']:>8,} updates {s['epochs']:>5} epochs "
              f"val {s['val_n']:>6} eval {s['eval_n']:>6}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
