"""Data commands of `python -m composed_ft.code`: make-sanstype, gold-ceiling, make-denoise-data, make-spoc."""
import argparse
import json
import logging
import os
import random

from composed_ft.core.errors import UserError
from composed_ft.core.io import write_json
from composed_ft.core.presets import NAMES, given_flags, resolve

log = logging.getLogger(__name__)


def _with_preset(args, key, defaults):
    """args with the flags of `defaults` left unset filled from SPoC's --preset table `key` (or `defaults`)."""
    from composed_ft.code import presets
    table = presets.table("spoc", args.preset, key) if args.preset else {}
    return argparse.Namespace(**{**vars(args), **resolve(given_flags(args), table, defaults)})


# ---- make-sanstype ---------------------------------------------------------------------------

def add_args_make_sanstype(p):
    from composed_ft.code.sanstype import SIZES

    p.add_argument("--variant", choices=["authors", "strict"], default="authors",
                   help="authors: the distribution of the paper's generator (../shared/SANSTYPE.md), quirks "
                        "included -- the paper's benchmark; strict: this project's harder variant (types always "
                        "inferable, OOD phrasings disjoint from ID), beyond the paper (default: authors)")
    p.add_argument("--labeled-from", default=None, metavar="DIR",
                   help="authors: copy train/val/test/ood from this released draw (e.g. "
                        "../shared/data/sanstype-1000a) instead of drawing them; unlabeled programs are drawn")
    p.add_argument("--n-gen", type=int, default=0, metavar="N",
                   help="authors: also write test_gen and ood_gen, N programs each from the generator with "
                        "--gen-seed, none whose code is in train, val or the unlabeled programs (default 0: none)")
    p.add_argument("--gen-seed", type=int, default=1, help="seed of test_gen / ood_gen (default 1)")
    p.add_argument("--out", default="data/sanstype", help="output directory (default: data/sanstype)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, byte-identical files)")
    for split, n in SIZES.items():
        p.add_argument(f"--n-{split.replace('_', '-')}", type=int, default=n, metavar="N",
                       help=f"number of {split} programs (default {n})")
    p.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")


def run_make_sanstype(args):
    from composed_ft.code.sanstype import SIZES

    sizes = {s: getattr(args, f"n_{s}") for s in SIZES}
    if args.variant == "strict":
        if args.labeled_from or args.n_gen:
            raise UserError("make-sanstype: --labeled-from and --n-gen apply to --variant authors only")
        from composed_ft.code.sanstype import make_sanstype
        make_sanstype(args.out, seed=args.seed, sizes=sizes, jobs=args.jobs)
    else:
        from composed_ft.code.sanstype_authors import make_dataset
        if args.labeled_from and not os.path.isdir(args.labeled_from):
            raise UserError(f"{args.labeled_from}: not a directory (--labeled-from wants the released draw)")
        try:
            sizes = make_dataset(args.out, seed=args.seed, sizes=sizes, labeled_from=args.labeled_from,
                                 n_gen=args.n_gen, gen_seed=args.gen_seed, jobs=args.jobs)["sizes"]
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    print(f"SansType ({args.variant}) written to {args.out}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


# ---- gold-ceiling ----------------------------------------------------------------------------

def add_args_gold_ceiling(p):
    p.add_argument("--dataset", choices=["spoc", "sanstype"], required=True)
    p.add_argument("--data", default=None,
                   help="data directory (default: data/spoc with fallback to ../shared/data/spoc; "
                        "data/sanstype)")
    p.add_argument("--stds", default="default,gnu++11",
                   help="SPoC: comma-separated -std values to try ('default' = g++'s own); the "
                        "one with more programs passing is chosen")
    p.add_argument("--limit", type=int, default=None,
                   help="judge only the first N programs of each split (quick look; 0: all)")
    p.add_argument("--preset", choices=NAMES, default=None,
                   help="SPoC: --limit from this preset (code/presets.py): the programs per split its stages evaluate")
    p.add_argument("--compare", choices=["exact", "rstrip"], default=None,
                   help="output comparison (default: the data set's: byte-exact, or rstrip for the authors' "
                        "SansType format, whose gold outputs are stripped lines)")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--out", default="runs/code/gold_ceiling",
                   help="where per-program JSONL results and summary.json go")


def _gold_sanstype(args):
    from composed_ft.code import dataset
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import evaluate_programs, summarize
    from composed_ft.code.sanstype import LABELED

    d = args.data or "data/sanstype"
    # SansType: `~` is a layout marker wherever it stands; the comparison is the data set's own
    # (the authors' release: stdout vs the stripped gold line) unless --compare says otherwise
    compare = args.compare or dataset.describe(d)["compare"]
    summary = {}
    ok = True
    splits = [s for s in LABELED + ("test_gen", "ood_gen") if os.path.exists(os.path.join(d, f"{s}.tgt"))]
    if not splits:
        raise UserError(f"{d}: no labeled split (train/val/test/ood .tgt) found")
    for split in splits:
        exs = dataset.load_split(d, split)[: args.limit]
        if exs and exs[0]["inp"] is None:
            raise UserError(f"{d}/{split}.inp: missing (gold ceiling needs test inputs)")
        res = evaluate_programs([detokenize_program(e["tgt"], indent_anywhere=True) for e in exs],
                                [[(e["inp"], e["out"])] for e in exs], jobs=args.jobs, compare=compare,
                                out_jsonl=os.path.join(args.out, f"sanstype_{split}.jsonl"), desc=f"gold {split}")
        s = summarize(res)
        summary[split] = s
        ok &= s["counts"]["correct"] == s["n"]
        print(f"SansType {split}: {s['counts']['correct']}/{s['n']} gold programs correct "
              f"({100 * s['accuracy']:.2f}%)")
    write_json(os.path.join(args.out, "sanstype_summary.json"), summary)
    return 0 if ok else 1


def _gold_spoc(args):
    from composed_ft.code import spoc
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import evaluate_programs, summarize

    data = spoc.load_spoc(args.data, splits=("testp", "testw"))
    print(data["note"])
    stds = [s.strip() for s in args.stds.split(",") if s.strip()]
    table = {}
    for std in stds:
        flag = None if std == "default" else std
        table[std] = {}
        for split in ("testp", "testw"):
            exs = data["splits"][split][: args.limit]
            res = evaluate_programs([detokenize_program(e["tgt"]) for e in exs], spoc.tests_for(data["dir"], exs),
                                    jobs=args.jobs, std=flag, compare=args.compare or "exact",
                                    ids=[f"{e['probid']}/{e['subid']}" for e in exs],
                                    out_jsonl=os.path.join(args.out, f"spoc_{split}_{std}.jsonl"),
                                    desc=f"{split} {std}")
            table[std][split] = summarize(res)
            s = table[std][split]
            print(f"  -std={std:8s} {split}: {100 * s['accuracy']:.2f}% of {s['n']} "
                  f"(compile errors {s['counts']['compile_error']}, runtime {s['counts']['runtime_error']}, "
                  f"timeout {s['counts']['timeout']}, wrong {s['counts']['wrong_output']})")
    best = max(stds, key=lambda s: sum(table[s][k]["counts"]["correct"] for k in ("testp", "testw")))
    print(f"SPoC gold ceiling (chosen -std={best}, compare={args.compare or 'exact'}): "
          f"TestP {100 * table[best]['testp']['accuracy']:.2f}%  TestW {100 * table[best]['testw']['accuracy']:.2f}%")
    write_json(os.path.join(args.out, "spoc_summary.json"),
               {"chosen_std": best, "compare": args.compare or "exact", "note": data["note"], "limit": args.limit,
                "table": table})
    return 0


def run_gold_ceiling(args):
    if args.dataset == "spoc":
        args = _with_preset(args, "gold-ceiling", dict(limit=None))
    args = argparse.Namespace(**{**vars(args), "limit": args.limit or None})  # 0: every program
    return _gold_spoc(args) if args.dataset == "spoc" else _gold_sanstype(args)


# ---- make-denoise-data -----------------------------------------------------------------------

def add_args_make_denoise_data(p):
    p.add_argument("--dataset", choices=["spoc", "sanstype"], required=True)
    p.add_argument("--data", default=None, help="source data directory (as for gold-ceiling)")
    p.add_argument("--out", required=True, help="output directory: <split>.src (corrupted) / <split>.tgt (clean)")
    p.add_argument("--corruption", choices=["structured", "token-deletion"], default="structured",
                   help="SansType corruption family (default: structured)")
    p.add_argument("--copies", type=int, default=10,
                   help="SPoC: up to this many distinct failing one-line corruptions per program")
    p.add_argument("--limit", type=int, default=None, help="use only the first N programs of each split")
    p.add_argument("--std", default="gnu++11",
                   help="SPoC: g++ -std for the compile checks (default gnu++11, see gold-ceiling)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None)


def run_make_denoise_data(args):
    from composed_ft.code import corruptions, dataset

    rng = random.Random(f"denoise:{args.seed}")
    if args.dataset == "sanstype":
        d = args.data or "data/sanstype"
        fn = corruptions.corrupt_sanstype if args.corruption == "structured" else corruptions.delete_tokens
        for split in ("unlabeled", "unlabeled_val"):
            exs = dataset.load_split(d, split)[: args.limit]
            pairs = [{"src": fn(e["tgt"], rng) or e["tgt"], "tgt": e["tgt"]} for e in exs]
            dataset.write_split(args.out, split, pairs)
            print(f"{split}: {len(pairs)} pairs")
        return 0
    from composed_ft.code import spoc

    data = spoc.load_spoc(args.data, splits=("train", "valid"))
    print(data["note"])
    extra = spoc.load_codeforces_extra(exclude_probids=spoc.test_problem_ids(args.data))[: args.limit]
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import compile_check

    # a few reconstructed Codeforces programs still do not compile; clean targets must
    std = None if args.std == "default" else args.std
    ok = compile_check([detokenize_program(e["tgt"]) for e in extra], jobs=args.jobs, std=std)
    extra = [e for e, good in zip(extra, ok) if good]
    print(f"Codeforces extra code: {len(extra)} programs compile")
    for split, progs in (("unlabeled", [e["tgt"] for e in data["splits"]["train"]] + [e["tgt"] for e in extra]),
                         ("unlabeled_val", [e["tgt"] for e in data["splits"]["valid"]])):
        progs = progs[: args.limit] if args.limit else progs
        pairs = corruptions.drrepair_corruptions(progs, copies=args.copies, rng=rng, jobs=args.jobs, std=std)
        dataset.write_split(args.out, split, [{"src": c, "tgt": g} for c, g in pairs])
        print(f"{split}: {len(pairs)} corrupted copies of {len(progs)} programs")
    return 0


# ---- make-spoc -------------------------------------------------------------------------------

SPOC_MANIFEST = "dataset.json"


def add_args_make_spoc(p):
    p.add_argument("--spoc-dir", default=None,
                   help="SPoC release directory (default: data/spoc, falling back to ../shared/data/spoc)")
    p.add_argument("--out", default="data/spoc_ft", help="output directory in the four-file format")
    p.add_argument("--preset", choices=NAMES, default=None,
                   help="fill the four flags below from SPoC's preset (code/presets.py; default: the values below)")
    p.add_argument("--copies", type=int, default=None,
                   help="up to this many distinct failing one-line corruptions per unlabeled program "
                        "(3; each candidate costs one g++ -fsyntax-only)")
    p.add_argument("--n-train", type=int, default=None, help="use only the first N labeled training programs (0: all)")
    p.add_argument("--n-val", type=int, default=None, help="use only the first N validation programs (0: all)")
    p.add_argument("--n-unlabeled", type=int, default=None,
                   help="corrupt only the first N unlabeled programs (0: all training code + Codeforces extras)")
    p.add_argument("--n-eval", type=int, default=0, help="keep only the first N programs of each test split (0: all)")
    p.add_argument("--no-extra", action="store_true", help="do not add the DrRepair Codeforces programs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None)


def run_make_spoc(args):
    """SPoC as a data set in the four-file format, ready for the training stages:
    train / val (labeled; official split or the fallback mapping), testp / testw (with a
    `.probid` file naming each program's problem, whose test cases the evaluator runs),
    unlabeled / unlabeled_val (DrRepair-style corrupted code -> clean code, for the denoiser),
    and dataset.json (where the test cases are, the judge's -std, the split note)."""
    from composed_ft.code import corruptions, dataset, spoc
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import compile_check
    from composed_ft.core.io import write_text

    args = _with_preset(args, "make-spoc", dict(copies=3, n_train=0, n_val=0, n_unlabeled=0))
    data = spoc.load_spoc(args.spoc_dir)
    print(data["note"])
    s = data["splits"]
    first = lambda xs, n: xs[:n] if n else xs  # noqa: E731
    test_all = s["testp"] + s["testw"]
    train, n_drop_train = spoc.without_test_programs(s["train"], test_all)
    valid, n_drop_val = spoc.without_test_programs(s["valid"], test_all)
    print(f"dropped programs identical to a test program: {n_drop_train} train, {n_drop_val} validation")
    train, valid = first(train, args.n_train), first(valid, args.n_val)
    tests = {k: first(s[k], args.n_eval) for k in ("testp", "testw")}
    test_probs = {e["probid"] for e in test_all}
    os.makedirs(args.out, exist_ok=True)
    dataset.write_split(args.out, "train", [{"src": e["src"], "tgt": e["tgt"]} for e in train])
    dataset.write_split(args.out, "val", [{"src": e["src"], "tgt": e["tgt"]} for e in valid])
    for split, exs in tests.items():
        dataset.write_split(args.out, split, [{"src": e["src"], "tgt": e["tgt"]} for e in exs])
        write_text(os.path.join(args.out, f"{split}.probid"), "".join(e["probid"] + "\n" for e in exs))
    # unlabeled code: every training program's code plus the Codeforces extras whose problem is not
    # a test problem; never a test program (TestW problems do appear in SPoC's own train split by
    # design -- TestW is "unseen annotators" -- but no test *program* does: tests/code check it)
    std = spoc.JUDGE_STD
    extra = [] if args.no_extra else [e["tgt"] for e in spoc.load_codeforces_extra(exclude_probids=test_probs)]
    candidates = list(dict.fromkeys([e["tgt"] for e in s["train"]] + extra))
    test_code = {e["tgt"] for e in test_all}
    unl = [t for t in candidates if t not in test_code]
    n_drop_unl = len(candidates) - len(unl)
    unl = first(unl, args.n_unlabeled)
    # a few reconstructed Codeforces programs do not compile; a denoiser's clean target must
    own = {e["tgt"] for e in s["train"]}
    check = [t for t in unl if t not in own]
    ok = (dict(zip(check, compile_check([detokenize_program(t) for t in check], jobs=args.jobs, std=std)))
          if check else {})
    n_extra = sum(ok.values())
    unl = [t for t in unl if ok.get(t, True)]
    rng = random.Random(f"make-spoc:{args.seed}")
    sizes = {}
    for split, progs in (("unlabeled", unl), ("unlabeled_val", [e["tgt"] for e in valid])):
        pairs = corruptions.drrepair_corruptions(progs, copies=args.copies, rng=rng, jobs=args.jobs, std=std)
        if not pairs:
            raise UserError(f"{args.out}/{split}: no failing corruption of {len(progs)} programs")
        dataset.write_split(args.out, split, [{"src": c, "tgt": g} for c, g in pairs])
        sizes[split] = {"programs": len(progs), "corrupted_copies": len(pairs)}
        print(f"{split}: {len(pairs)} corrupted copies of {len(progs)} programs")
    manifest = {"dataset": "spoc", "spoc_dir": os.path.abspath(data["dir"]), "official": data["official"],
                "note": data["note"], "judge_std": std, "eval_splits": ["testw", "testp"],
                "sizes": {"train": len(train), "val": len(valid), **{k: len(v) for k, v in tests.items()}, **sizes},
                "dropped_identical_to_test": {"train": n_drop_train, "val": n_drop_val, "unlabeled": n_drop_unl},
                "codeforces_extra": n_extra, "copies": args.copies, "seed": args.seed}
    write_json(os.path.join(args.out, SPOC_MANIFEST), manifest)
    print(f"SPoC written to {args.out}: " + json.dumps(manifest["sizes"]))
    return 0
