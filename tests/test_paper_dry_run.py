"""The paper preset, proven on a CPU: every stage of every experiment at the paper preset's model sizes and
batch settings, a few updates each, through the runners (PRESET=paper) on the real data, writing real run
directories and evaluated on a few examples (scripts/paper_dry_run.py). Then the projection that
scripts/gpu_check.sh writes on a GPU, from these CPU measurements. Slow: about half an hour on 2 cores
(`bash scripts/test.sh -m slow -k paper_dry_run`)."""
import json
import os

import pytest
from conftest import load_script, require_shared

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # every paper-size stage for 2 updates on 2 CPU cores: ~30 min (`bash scripts/test.sh -m slow`)
def test_every_stage_runs_at_the_paper_preset(tmp_path):
    require_shared("spoc", "test", "spoc-testp.tsv")
    require_shared("sanstype-1000a")
    dry = load_script("paper_dry_run")
    work = tmp_path / "dry"
    assert dry.main(["--work", str(work), "--device", "cpu", "--profile", "dry"]) == 0
    out = json.load(open(work / "dry_run.json"))
    assert out["problems"] == [] and set(out["experiments"]) == {"imggen", "sanstype", "spoc"}
    runs = {(r["experiment"], r["run"]): r for r in out["records"]}
    # every stage of the three runners, at the paper's sizes, trained exactly the capped updates
    for (exp, run), r in runs.items():
        assert r["updates"] == 2 and r["sizes"]["preset"] == "paper", (exp, run)
    den = runs[("imggen", "denoisers/blur2")]
    assert den["sizes"]["unet_width"] == 64 and den["sizes"]["batch_size"] == 256
    st = runs[("sanstype", "main/composed-s0")]
    assert (st["sizes"]["layers"], st["sizes"]["d_model"], st["sizes"]["heads"]) == (3, 256, 2)
    assert (st["sizes"]["max_tokens"], st["sizes"]["update_freq"]) == (4000, 4) and st["eval_n"] == 4 * 2
    sp = runs[("spoc", "main/composed-s0")]
    assert (sp["sizes"]["layers"], sp["sizes"]["heads"], sp["sizes"]["vocab_size"]) == (5, 8, 10000)
    assert sp["sizes"]["vocab_n"] > 4000  # as many BPE pieces as SPoC's available train programs yield
    for exp in ("sanstype", "spoc"):  # `evaluate` re-judged the Composed run
        res = json.load(open(work / "runs" / exp / "main" / "composed-s0" / "eval_dry_run.json"))
        assert all(v["base"]["n"] == 2 and "denoised" in v for v in res.values())
    # the projection gpu_check.sh writes, from these (CPU) measurements and the plan counted on the data
    gc = load_script("gpu_check")
    plan = gc.load_plan(str(work))
    tables, missing = gc.project(out, plan)
    assert "SansType main" in tables and "SPoC main" in tables
    for rows in tables.values():
        assert all(sec["total_s"] > 0 for _, _, sec in rows)
    info = dict(gpu="cpu (dry run)", memory_gib=0, cpu_cores=os.cpu_count(), torch="-", cuda="-", bf16_tflops=0,
                commit="-")
    md = gc.render(info, None, out, plan, tables, missing)
    (work / "projection_cpu.md").write_text(md)
    assert "## Projected wall time of each paper table (one seed)" in md
