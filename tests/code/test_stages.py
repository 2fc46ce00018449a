"""The SansType stages end to end on tiny data (every stage, judged by g++), their configs and their CLI."""
import dataclasses
import json
import os
import shutil

import pytest
import torch

from composed_ft.code.__main__ import build_parser, main as cli
from composed_ft.code.config import MAX_POSITIONS, preset_values
from composed_ft.core.presets import given_flags

SMALL = ["--n-train", "24", "--n-val", "6", "--n-test", "4", "--n-ood", "4", "--n-unlabeled", "40",
         "--n-unlabeled-val", "6"]


def test_stage_cli_help_and_presets():
    p = build_parser()
    for name in ("denoise", "direct", "pretrain", "compose", "backtranslate", "evaluate", "table"):
        with pytest.raises(SystemExit) as e:
            p.parse_args([name, "--help"])
        assert e.value.code == 0
    a = preset_values("denoise", {"preset": "paper"})
    assert tuple(a[k] for k in ("layers", "d_model", "ffn", "heads", "dropout", "lr", "warmup_updates", "max_epoch")) \
        == (3, 256, 1024, 2, 0.4, 1e-3, 4000, 50)
    a = preset_values("compose", given_flags(p.parse_args(["compose", "--preset", "paper", "--run-dir", "x", "--init",
                                                           "y", "--lr", "1e-5"])))
    assert a["lr"] == 1e-5 and a["lam"] == 1.0 and a["update_freq"] == 4 and a["max_tokens"] == 4000


def test_every_table_key_is_a_setting_of_some_stage():
    """A misspelt key in a preset table would be silently ignored: every key is a field of a stage's
    config (or of the data commands' tables)."""
    from composed_ft.code import config, presets
    fields = {f.name for cls in config.CLASSES.values() for f in dataclasses.fields(cls)}
    for exp, tables in presets.PRESETS.items():
        for preset, stages in tables.items():
            for key, table in stages.items():
                if key in ("make-spoc", "gold-ceiling"):
                    continue
                assert set(table) <= fields, (exp, preset, key, set(table) - fields)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sanstype")
    cli(["make-sanstype", "--out", str(d), "--seed", "3", "--jobs", "2"] + SMALL)
    return str(d)


def _run(argv):
    cli(argv)


def test_every_stage_end_to_end(data, tmp_path):
    r = str(tmp_path)
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "3",
              "--device", "cpu", "--jobs", "2"]
    den = f"{r}/den"
    _run(["denoise", *common, "--run-dir", den])
    _run(["denoise", *common, "--run-dir", f"{r}/den_del", "--noise", "delete"])
    _run(["direct", *common, "--run-dir", f"{r}/direct", "--denoiser", den, "--tag", "main"])
    _run(["pretrain", *common, "--run-dir", f"{r}/pre", "--init", den, "--tag", "main"])
    _run(["compose", *common, "--run-dir", f"{r}/comp", "--init", f"{r}/pre", "--denoiser", den, "--tag", "main"])
    _run(["compose", *common, "--run-dir", f"{r}/comp_d", "--init", f"{r}/direct", "--denoiser", den,
          "--lam", "0.5", "--tag", "main"])
    _run(["direct", *common, "--run-dir", f"{r}/rev", "--reverse"])
    _run(["backtranslate", *common, "--run-dir", f"{r}/bt", "--reverse-model", f"{r}/rev", "--denoiser", den,
          "--tag", "main"])
    from composed_ft.code.judge import gated_summary
    for name in ("direct", "pre", "comp", "comp_d", "bt"):
        res = json.load(open(f"{r}/{name}/results.json"))
        for split in ("test", "ood"):
            recs = [json.loads(line) for line in open(f"{r}/{name}/eval_{split}.jsonl")]
            assert len(recs) == 3
            for kind in ("base", "denoised"):  # the summary is the per-program records, counted
                s = res["eval"][split][kind]
                assert s["n"] == 3 and s["accuracy"] == sum(x[kind]["outcome"] == "correct" for x in recs) / 3
                assert s["hit_limit"] == sum(x[kind]["hit_limit"] for x in recs)
            assert res["eval"][split]["gated"] == gated_summary(recs)
    comp = json.load(open(f"{r}/comp/results.json"))
    assert comp["init_stage"] == "pretrain" and json.load(open(f"{r}/comp_d/results.json"))["init_stage"] == "direct"
    assert len(open(f"{r}/bt/pseudo.src").read().splitlines()) == 32  # smoke preset: 32 unlabeled programs
    # Π inside the composed run's checkpoint is bit-identical to the trained denoiser
    pi = torch.load(f"{den}/checkpoint_best.pt", weights_only=False)["model"]
    last = torch.load(f"{r}/comp/checkpoint_last.pt", weights_only=False)["model"]
    for k, v in pi.items():
        assert torch.equal(last["denoiser." + k], v), k
    # a rerun of a finished run is a no-op
    mtime = os.path.getmtime(f"{r}/direct/results.json")
    _run(["direct", *common, "--run-dir", f"{r}/direct", "--denoiser", den, "--tag", "main"])
    assert os.path.getmtime(f"{r}/direct/results.json") == mtime
    # another Π only post hoc: evaluating the trained Direct with it (--as-run) gives what retraining gives
    _run(["direct", *common, "--run-dir", f"{r}/direct_del", "--denoiser", f"{r}/den_del", "--tag", "abl"])
    _run(["evaluate", "--run-dir", f"{r}/direct", "--as-run", f"{r}/direct_as", "--denoiser", f"{r}/den_del",
          "--tag", "abl", "--device", "cpu"])
    retrained, derived = (json.load(open(f"{r}/{n}/results.json")) for n in ("direct_del", "direct_as"))
    assert derived["trained_in"] == f"{r}/direct" and derived["denoiser"] == retrained["denoiser"]
    for split in ("test", "ood"):
        for kind in ("base", "denoised", "gated"):
            assert derived["eval"][split][kind] == retrained["eval"][split][kind], (split, kind)
        assert open(f"{r}/direct_as/eval_{split}.jsonl").read() == open(f"{r}/direct_del/eval_{split}.jsonl").read()
    assert json.load(open(f"{r}/direct_as/config.json"))["config"]["tag"] == "abl"
    shutil.rmtree(f"{r}/direct_del")
    _run(["table", "--runs", r, "--out", f"{r}/t.md"])
    md = open(f"{r}/t.md").read()
    assert "Composed (from Pretrained) Π(f(x))" in md and "Backtranslation + Π" in md and "Denoisers" in md


def test_pretrained_continued_control_and_its_two_selections(data, tmp_path, capsys):
    """`compose --reinforce off` ("Pretrained, continued"): Composed's loop, schedule and selection with CE
    alone (no sampling in training); both kept checkpoints (best NLL_Π of sampled ŷ, best validation CE) are
    the epochs the metrics say, and the second one evaluates as a run of its own with its own row."""
    r = str(tmp_path)
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "3",
              "--device", "cpu", "--jobs", "2"]
    den = f"{r}/den"
    _run(["denoise", *common, "--run-dir", den])
    _run(["pretrain", *common, "--run-dir", f"{r}/pre", "--init", den, "--tag", "main"])
    with pytest.raises(SystemExit):
        _run(["compose", *common, "--run-dir", f"{r}/bad", "--init", f"{r}/pre", "--denoiser", den,
              "--reinforce", "off", "--lam", "0.5"])
    assert "--lam 0.5 is refused" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # options that shape only the REINFORCE term would be ignored: refused
        _run(["compose", *common, "--run-dir", f"{r}/bad", "--init", f"{r}/pre", "--denoiser", den,
              "--reinforce", "off", "--logp-sum", "masked", "--reinforce-baseline", "loo"])
    err = capsys.readouterr().err
    assert "--reinforce-baseline, --logp-sum (options of the REINFORCE term) would be ignored" in err
    assert not os.path.exists(f"{r}/bad")  # refused before the run directory is made
    _run(["compose", *common, "--run-dir", f"{r}/cont", "--init", f"{r}/pre", "--denoiser", den, "--tag", "main",
          "--reinforce", "off", "--max-epoch", "4", "--lr", "1e-3"])
    rows = [json.loads(line) for line in open(f"{r}/cont/metrics.jsonl")]
    assert len(rows) == 4 and all("train_logp_sample" not in x and "val_pi_nll" in x for x in rows)
    assert all(x["train_loss"] == pytest.approx(x["train_nll"]) for x in rows)  # λ·CE, λ = 1, no smoothing
    res = json.load(open(f"{r}/cont/results.json"))
    by = lambda k: min(rows, key=lambda x: x[k])["epoch"]  # noqa: E731
    assert (res["best_epoch"], res["best_val_nll_epoch"], res["reinforce"]) == (by("val_pi_nll"), by("val_nll"), "off")
    for name, epoch in (("checkpoint_best.pt", by("val_pi_nll")), ("checkpoint_best_val_nll.pt", by("val_nll"))):
        assert torch.load(f"{r}/cont/{name}", weights_only=False)["epoch"] == epoch
    _run(["evaluate", "--run-dir", f"{r}/cont", "--checkpoint", "best_val_nll", "--as-run", f"{r}/cont_ce",
          "--denoiser", den, "--tag", "main", "--device", "cpu"])
    assert json.load(open(f"{r}/cont_ce/results.json"))["checkpoint"] == "best_val_nll"
    _run(["compose", *common, "--run-dir", f"{r}/comp", "--init", f"{r}/pre", "--denoiser", den, "--tag", "main"])
    _run(["table", "--runs", r, "--out", f"{r}/t.md"])
    md = open(f"{r}/t.md").read()
    for row in ("| Pretrained, continued base |", "| Pretrained, continued (best val CE) base |",
                "| Composed (from Pretrained) Π(f(x)) |"):
        assert row in md, row


def test_a_changed_setting_is_refused_with_its_keys_or_retrained_with_overwrite(data, tmp_path, capsys):
    """One rule before any "finished" shortcut: a finished compose run rerun with another λ is refused, the
    message naming the key (old -> new) and the switch; with --overwrite the old run is moved aside, never
    deleted, and the new setting trains. The same settings stay a no-op."""
    r = str(tmp_path)
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "3",
              "--device", "cpu", "--jobs", "2"]
    _run(["denoise", *common, "--run-dir", f"{r}/den"])
    _run(["pretrain", *common, "--run-dir", f"{r}/pre", "--init", f"{r}/den"])
    comp = ["compose", *common, "--run-dir", f"{r}/comp", "--init", f"{r}/pre", "--denoiser", f"{r}/den"]
    _run(comp)
    before = open(f"{r}/comp/results.json").read()
    _run(comp)  # the same settings: nothing to do
    assert open(f"{r}/comp/results.json").read() == before
    with pytest.raises(SystemExit):
        _run(comp + ["--lam", "0.5"])
    err = capsys.readouterr().err
    assert "lam: 1.0 -> 0.5" in err and "--overwrite" in err
    assert open(f"{r}/comp/results.json").read() == before  # refused: untouched
    _run(comp + ["--lam", "0.5", "--overwrite"])
    aside = [d for d in os.listdir(r) if d.startswith("comp.replaced-")]
    assert len(aside) == 1 and open(f"{r}/{aside[0]}/results.json").read() == before
    assert json.load(open(f"{r}/comp/results.json"))["lam"] == 0.5


def test_same_seed_same_numbers_and_reevaluation(data, tmp_path):
    """Two runs with the same seed give the same numbers on CPU; a run whose results.json was lost
    (killed during evaluation) skips training on rerun and re-evaluates to the same result."""
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--eval-splits", "test"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _run(["direct", *common, "--run-dir", a, "--max-epoch", "3"])
    _run(["direct", *common, "--run-dir", b, "--max-epoch", "3"])
    first = json.load(open(f"{b}/results.json"))
    os.remove(f"{b}/results.json")
    _run(["direct", *common, "--run-dir", b, "--max-epoch", "3"])
    ra, rb = (json.load(open(f"{d}/results.json")) for d in (a, b))
    assert ra["best"] == rb["best"] == first["best"]
    assert ra["eval"]["test"]["base"] == rb["eval"]["test"]["base"]
    assert len(open(f"{b}/metrics.jsonl").read().splitlines()) == 3


def test_evaluate_into_results_adds_a_split_as_if_evaluated_from_the_start(data, tmp_path, capsys):
    """`evaluate --into-results` (a data set that gained splits) writes the run's own evaluation of those
    splits into results.json and eval_<split>.jsonl: the same as a run that evaluated them from the start."""
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--max-epoch", "2"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _run(["direct", *common, "--run-dir", a, "--eval-splits", "test", "ood"])
    _run(["direct", *common, "--run-dir", b, "--eval-splits", "test"])
    assert "ood" not in json.load(open(f"{b}/results.json"))["eval"]
    _run(["evaluate", "--run-dir", b, "--into-results", "--eval-splits", "ood", "--device", "cpu"])
    ra, rb = (json.load(open(f"{d}/results.json")) for d in (a, b))
    for split in ("test", "ood"):
        assert "base" in ra["eval"][split]
        for kind in ("base", "denoised", "gated"):
            assert rb["eval"][split].get(kind) == ra["eval"][split].get(kind)
    assert open(f"{a}/eval_ood.jsonl").read() == open(f"{b}/eval_ood.jsonl").read()
    assert rb["re_evaluated"][0]["splits"] == ["ood"] and "re_evaluated" not in ra
    # only the run's own evaluation may be written into its records
    with pytest.raises(SystemExit):
        _run(["evaluate", "--run-dir", b, "--into-results", "--eval-splits", "ood", "--beam", "3"])
    assert "drop --beam" in capsys.readouterr().err


def test_cosine_schedule_anneals_to_the_floor_at_the_last_epoch(data, tmp_path):
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--eval-splits", "test"]
    r = str(tmp_path / "cos")
    _run(["direct", *common, "--run-dir", r, "--max-epoch", "4", "--warmup-updates", "1", "--lr-scheduler", "cosine",
          "--min-lr-ratio", "0.05"])
    lrs = [json.loads(line)["lr"] for line in open(f"{r}/metrics.jsonl")]
    cfg = json.load(open(f"{r}/config.json"))["config"]
    assert cfg["lr_scheduler"] == "cosine" and len(lrs) == 4
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3] and lrs[3] == pytest.approx(0.05 * cfg["lr"])


def test_checkpoint_select_last_keeps_and_evaluates_the_last_epoch(data, tmp_path):
    """--checkpoint-select last: the kept (evaluated, handed-on) weights are the last epoch's, whatever
    the validation metric did; `evaluate --checkpoint last` judges them on a chosen split."""
    import torch
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--eval-splits", "test"]
    r = str(tmp_path / "last")
    _run(["direct", *common, "--run-dir", r, "--max-epoch", "3", "--checkpoint-select", "last"])
    res = json.load(open(f"{r}/results.json"))
    assert res["best_epoch"] == 3
    best, last = (torch.load(f"{r}/checkpoint_{k}.pt", weights_only=False)["model"] for k in ("best", "last"))
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)
    _run(["evaluate", "--run-dir", r, "--checkpoint", "last", "--eval-splits", "val", "--device", "cpu"])
    ev = json.load(open(f"{r}/eval_beam0_last.json"))
    assert ev["val"]["n"] == 2 and os.path.exists(f"{r}/eval_val_beam0_last.jsonl")


def test_direct_on_the_torch_transformer_trains_saves_and_reevaluates(data, tmp_path):
    """--impl torch-pre: Direct on nn.Transformer end to end; the checkpoint rebuilds the same model
    (re-evaluation gives the run's own numbers) and a stage initialized from the run takes its impl."""
    common = ["--preset", "smoke", "--data", data, "--vocab-size", "120", "--max-len", "30", "--n-eval", "2",
              "--device", "cpu", "--eval-splits", "test"]
    r = str(tmp_path / "torch")
    _run(["direct", *common, "--run-dir", r, "--max-epoch", "2", "--impl", "torch-pre"])
    res = json.load(open(f"{r}/results.json"))
    assert json.load(open(f"{r}/config.json"))["config"]["impl"] == "torch-pre"
    ckpt = torch.load(f"{r}/checkpoint_best.pt", weights_only=False)["model"]
    assert any(k.startswith("tf.encoder.layers.0") for k in ckpt)
    _run(["evaluate", "--run-dir", r, "--device", "cpu", "--eval-splits", "test"])
    ev = json.load(open(f"{r}/eval_beam0.json"))
    assert ev["test"]["base"] == res["eval"]["test"]["base"]
    from composed_ft.code.config import resolve
    args = build_parser().parse_args(["pretrain", "--run-dir", "x", "--init", r, "--impl", "torch", "--data", data,
                                      "--vocab-size", "120"])
    cfg = resolve(args, "pretrain")
    assert cfg.impl == "torch-pre" and cfg.init_stage == "direct"  # f takes the architecture of the run it starts from


def _fake_run(root, name, cfg, res):
    d = os.path.join(root, name)
    os.makedirs(d)
    json.dump({"config": cfg, "git_commit": "abc"}, open(os.path.join(d, "config.json"), "w"))
    json.dump(res, open(os.path.join(d, "results.json"), "w"))


def _summary(acc):
    return {"n": 10, "accuracy": acc, "compile_error_rate": 1 - acc, "runtime_error_rate": 0.0,
            "wrong_output_rate": 0.0, "hit_limit": 1}


AUTHORS = {"logp_sum": "padded", "logp_mode": "eval"}  # a fake Composed run: the authors' objective


def test_table_from_run_directories(tmp_path):
    from composed_ft.code.report import write_tables
    root = str(tmp_path / "runs")
    den = {"noise": "structured", "n_unlabeled": 20000}
    for seed, (a, b) in enumerate([(0.2, 0.3), (0.4, 0.5)]):
        ev = {s: {"n": 10, "base": _summary(a), "denoised": _summary(b)} for s in ("test", "ood")}
        _fake_run(root, f"main/direct-s{seed}", {"stage": "direct", "seed": seed, "tag": "main", "preset": "cpu"},
                  {"eval": ev, "denoiser": den, "wall_s": 60})
        _fake_run(root, f"main/composed-s{seed}", {"stage": "compose", "seed": seed, "tag": "main", "preset": "cpu",
                                                   "lam": 1.0, **AUTHORS},
                  {"eval": ev, "denoiser": den, "init_stage": "pretrain", "wall_s": 60})
        _fake_run(root, f"ablation-lam/composed-lam4-s{seed}", {"stage": "compose", "seed": seed, "tag": "ablation-lam",
                                                                "preset": "cpu", "lam": 4.0, **AUTHORS},
                  {"eval": ev, "denoiser": den, "init_stage": "pretrain", "wall_s": 60})
    # a one-seed ablation: its reference rows are the main runs of that seed only
    ev0 = {s: {"n": 10, "base": _summary(0.6), "denoised": _summary(0.7)} for s in ("test", "ood")}
    _fake_run(root, "ablation-init/composed-from-direct-s0", {"stage": "compose", "seed": 0, "tag": "ablation-init",
                                                              "preset": "cpu", "lam": 1.0, **AUTHORS},
              {"eval": ev0, "denoiser": den, "init_stage": "direct", "wall_s": 60})
    _fake_run(root, "denoisers/main", {"stage": "denoise", "seed": 0, "preset": "cpu", "noise": "structured",
                                       "arch": "cpu"},
              {"n_unlabeled": 20000, "epochs": 3, "val_exact_match": 0.9, "val_input_already_clean": 0.1,
               "wall_s": 600})
    out = str(tmp_path / "t.md")
    write_tables(root, out)
    md = open(out).read()
    assert "| Direct base | 30.0 ± 14.1 | 30.0 ± 14.1 | 0 1 |" in md
    assert "| Composed (from Pretrained) Π(f(x)) | 40.0 ± 14.1 | 40.0 ± 14.1 | 0 1 |" in md
    init_section = md.split("Ablation: ablation-init")[1].split("###")[0]
    assert "| Direct base | — | 20.0 | 20.0 | 0 |" in init_section  # seed 0's main Direct, not the two-seed mean
    assert "| Composed (from Direct) Π(f(x)) | 1.0 | 70.0 | 70.0 | 0 |" in init_section
    # the main Composed (λ = 1) is the λ ablation's reference row; its runner trains only the other λ values
    lam_section = md.split("Ablation: ablation-lam")[1].split("###")[0]
    assert "| Composed (from Pretrained) Π(f(x)) | 1.0 |" in lam_section
    assert "| Composed (from Pretrained) Π(f(x)) | 4.0 |" in lam_section
    assert "Ablation: ablation-lam" in md and "| main | structured | 20000 | cpu | 3 | 90.0 | 10.0 | 10.0 |" in md
    assert os.path.exists(str(tmp_path / "t.tsv"))


def test_gated_denoiser_row_and_its_backfill(tmp_path):
    """+ Π gated: Π's program replaces f's only where f's fails to compile; the same summary is
    rebuilt from the per-example records of a run evaluated before the gate existed."""
    from composed_ft.code.judge import backfill_gated, gated_summary, summarize

    def rec(o, pred):
        return {"outcome": o, "pred": pred, "hit_limit": o == "compile_error"}
    per = [{"index": 0, "gold": "g0", "base": rec("compile_error", "x"), "denoised": rec("correct", "g0")},
           {"index": 1, "gold": "g1", "base": rec("wrong_output", "y"), "denoised": rec("correct", "g1")},
           {"index": 2, "gold": "g2", "base": rec("correct", "g2"), "denoised": rec("wrong_output", "z")},
           {"index": 3, "gold": "g3", "base": rec("compile_error", "w"), "denoised": rec("compile_error", "v")}]
    s = gated_summary(per)
    # example 0 takes Π's fix, 1 keeps f's wrong output (it compiles), 2 keeps f's correct one, 3 Π's failure
    assert s["counts"]["correct"] == 2 and s["counts"]["wrong_output"] == 1 and s["counts"]["compile_error"] == 1
    assert s["applied"] == 2 and s["hit_limit"] == 1 and s["exact_match"] == 0.5
    run = tmp_path / "run"
    run.mkdir()
    res = {"eval": {"test": {"n": 4, "base": summarize([p["base"] for p in per]),
                             "denoised": summarize([p["denoised"] for p in per])}}}
    (run / "results.json").write_text(json.dumps(res))
    (run / "eval_test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in per))
    assert backfill_gated(str(run))
    assert json.load(open(run / "results.json"))["eval"]["test"]["gated"] == s
    assert not backfill_gated(str(run))  # already there: untouched


def test_pairs_longer_than_the_positions_are_dropped():
    from composed_ft.code.corpus import within_positions
    n = MAX_POSITIONS
    srcs = [[5] * 10, [5] * (n - 2), [5] * (n - 1), [5] * 3]
    tgts = [[6] * 10, [6] * 4, [6] * 4, [6] * (n + 5)]
    s, t = within_positions(srcs, tgts, "test", n)
    assert s == srcs[:2] and t == tgts[:2]


def test_max_positions_sets_the_model_the_limits_and_the_cuts():
    """--max-positions: the model's position tables, the generation limit, the pairs kept and the
    evaluation sources cut all follow it; runs without the key keep the default of 1,024."""
    from composed_ft.code import model
    from composed_ft.code.config import from_saved
    from composed_ft.code.corpus import within_positions
    from composed_ft.code.decode import generate
    from composed_ft.code.evaluation import cut_sources
    from composed_ft.code.presets import ARCHS
    from composed_ft.code.tokens import EOS
    from composed_ft.code.training import generation_limit
    old = dict(ARCHS["smoke"], stage="direct", dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
               max_positions=None)  # an older run's config: the key is null
    assert model.positions(model.from_config(from_saved(old), 50)) == MAX_POSITIONS
    cfg = from_saved(dict(old, max_positions=1500))
    m = model.from_config(cfg, 50).eval()
    assert model.positions(m) == 1500
    assert generation_limit(cfg, [[1] * 1626]) == 1498  # capped by the positions, not by 1,024
    assert generation_limit(from_saved(old), [[1] * 100]) == 160
    torch.manual_seed(0)
    with torch.no_grad():  # force the decoder never to stop: it runs past 1,024 positions up to the limit
        m.final_logits_bias[0, EOS] = -1e9  # EOS never wins
        outs, hit = generate(m, [[5, 6, EOS]], max_len=1200)
    assert len(outs[0]) == 1200 and hit[0]
    s, n_cut = cut_sources([[5] * 10 + [EOS], [5] * 1600 + [EOS]], 1500)
    assert n_cut == 1 and len(s[1]) == 1499 and s[1][-1] == EOS and s[0] == [5] * 10 + [EOS]
    kept, _ = within_positions([[5] * 1400, [5] * 1499], [[6] * 4, [6] * 4], "test", 1500)
    assert kept == [[5] * 1400]


def test_cpu_preset_predictors_cosine_small_batches_denoiser_unchanged():
    """Direct, the reverse model and Backtranslation share one schedule and batch size (code/README.md
    measures both against the old preset); Pretrained and Composed run the authors' regime (their batches,
    inverse-sqrt from their warmup lr, the authors' log p, sampled-ŷ selection over every validation
    program); the denoiser keeps its measured settings, so its runs stay valid."""
    den = preset_values("denoise", {})
    assert (den["lr_scheduler"], den["max_tokens"], den["max_epoch"], den["checkpoint_select"]) == \
        ("inverse_sqrt", 4000, 8, "best")
    for st, flags, epochs in (("direct", {}, 90), ("direct", {"reverse": True}, 40), ("backtranslate", {}, 8)):
        a = preset_values(st, flags)
        assert (a["lr_scheduler"], a["max_tokens"], a["max_epoch"], a["checkpoint_select"]) == \
            ("cosine", 2000, epochs, "last"), st
    for preset in ("cpu", "paper"):
        pre, comp = preset_values("pretrain", {"preset": preset}), preset_values("compose", {"preset": preset})
        assert (pre["lr_scheduler"], pre["max_tokens"], pre["update_freq"], pre["lr"], pre["warmup_updates"],
                pre["warmup_init_lr"], pre["checkpoint_select"]) == ("inverse_sqrt", 4000, 4, 2e-3, 150, 1e-4, "best")
        assert (comp["lr_scheduler"], comp["max_tokens"], comp["update_freq"], comp["lr"], comp["warmup_updates"],
                comp["warmup_init_lr"]) == ("inverse_sqrt", 4000, 4, 2e-4, 90, 1e-7)
        assert (comp["logp_sum"], comp["logp_mode"], comp["sample_max_len"], comp["val_yhat"], comp["n_valid"],
                comp["reinforce"]) == ("padded", "eval", 200, "sample", 0, "on"), preset
    a = preset_values("direct", {"preset": "paper"})
    assert (a["lr_scheduler"], a["max_tokens"], a["update_freq"]) == ("inverse_sqrt", 4000, 4)
