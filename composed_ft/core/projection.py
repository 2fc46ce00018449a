"""Projected wall time of a long run from a short one, per stage and per table (no torch here).

A stage's time is what grows with the run times how much of it the full run does, plus what does not:

    total = fixed + updates x update_s + epochs x (setup_s x examples_scale + val_s x val_scale + save_s)
            + eval_s x eval_scale

measured on a capped run of the same stage (scripts/paper_dry_run.py: `update_s` once warm, one epoch's
batch list `setup_s`, validation pass `val_s` on `val_n` examples and checkpoint writing `save_s`, the
final evaluation `eval_s` of `eval_n` examples, and `fixed`: the rest of the stage's wall time, process
start included) and counted for the full run (scripts/paper_plan.py: updates, epochs or validation passes,
examples, validation and evaluated examples). Validation and evaluation are scaled linearly in their
examples, which overstates them on a GPU, where a decoding step of many rows costs about one of few.
"""

PARTS = ("updates_s", "epochs_s", "eval_s", "fixed_s")


def stage_seconds(meas, plan):
    """{updates_s, epochs_s, eval_s, fixed_s, total_s} of one stage. meas: update_s, setup_s, val_s, val_n,
    save_s (per epoch), examples, eval_s, eval_n, fixed_s (any may be None or 0: that part is left out);
    plan: updates, epochs (or val_passes), val_n, eval_n, examples."""
    def scale(full, run):
        return full / run if full and run else 1.0

    per_epoch = ((meas.get("setup_s") or 0.0) * scale(plan.get("examples"), meas.get("examples"))
                 + (meas.get("val_s") or 0.0) * scale(plan.get("val_n"), meas.get("val_n"))
                 + (meas.get("save_s") or 0.0))
    out = {"updates_s": plan["updates"] * (meas.get("update_s") or 0.0),
           "epochs_s": (plan.get("val_passes") or plan["epochs"]) * per_epoch,
           "eval_s": (meas.get("eval_s") or 0.0) * scale(plan.get("eval_n"), meas.get("eval_n")),
           "fixed_s": max(meas.get("fixed_s") or 0.0, 0.0)}
    out["total_s"] = sum(out[k] for k in PARTS)
    return out


def table_seconds(rows):
    """rows: [(stage name, stage_seconds dict)] -> the table's parts and total, summed."""
    return {k: sum(r[k] for _, r in rows) for k in PARTS + ("total_s",)}


def bound(rows, top=3):
    """What bounds a table: its largest parts as 'stage part (share)' strings."""
    total = sum(r["total_s"] for _, r in rows) or 1.0
    names = {"updates_s": "updates", "epochs_s": "validation and checkpoints per epoch", "eval_s": "evaluation",
             "fixed_s": "start-up and fixed work"}
    parts = sorted(((r[k], f"{stage} {names[k]}") for stage, r in rows for k in PARTS), reverse=True)
    return [f"{what} ({100 * s / total:.0f}%)" for s, what in parts[:top] if s > 0]


def fmt_s(s):
    """Seconds as the table shows them: 42 s, 3.5 min, 1.2 h."""
    if s is None:
        return "–"
    if s < 100:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def projection_table(tables):
    """Markdown of {table: [(stage, plan, seconds)]}: a row per stage and a bold total per table."""
    lines = ["| table | stage | updates | epochs | training | per epoch x epochs | evaluation | fixed | total |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for table, rows in tables.items():
        for stage, plan, sec in rows:
            lines.append(f"| {table} | {stage} | {plan['updates']:,} | {plan.get('val_passes') or plan['epochs']:,} | "
                         f"{fmt_s(sec['updates_s'])} | {fmt_s(sec['epochs_s'])} | {fmt_s(sec['eval_s'])} | "
                         f"{fmt_s(sec['fixed_s'])} | {fmt_s(sec['total_s'])} |")
        tot = table_seconds([(s, sec) for s, _, sec in rows])
        lines.append(f"| **{table}** | **total** | | | {fmt_s(tot['updates_s'])} | {fmt_s(tot['epochs_s'])} | "
                     f"{fmt_s(tot['eval_s'])} | {fmt_s(tot['fixed_s'])} | **{fmt_s(tot['total_s'])}** |")
    return "\n".join(lines)
