"""Presets: named sets of defaults, one mechanism for every experiment.

A setting resolves in the same order everywhere: a flag given on the command line wins, else the
preset's table for the stage, else the stage's own default. So a preset only fills defaults and any
flag overrides it. The values live in one Python table per experiment (composed_ft/code/presets.py,
composed_ft/imggen/presets.py); the runners only pick a preset (`PRESET=cpu`) and pass the flags a
user set, and never repeat a preset's value in code: the comment of each runner variable states what
empty means at the cpu and paper presets, generated from the tables (scripts/runner_settings.py, checked
by tests/test_runner_settings.py). `python -m composed_ft.code presets` and `python -m composed_ft.imggen
presets` print the tables as the stages resolve them, and every stage logs its resolved settings before
it trains.
"""
NAMES = ("smoke", "cpu", "paper")


def resolve(given, table, defaults, select=None):
    """{key: value} over the keys of `defaults`: given[key] unless it is None, else table[key], else
    defaults[key]. Keys of `table` that are not in `defaults` belong to other stages and are left out.
    A table value may be a dict {choice: value} (a default that depends on, e.g., imggen's --method);
    `select` names the choice."""
    out = {}
    for k, default in defaults.items():
        v = given.get(k)
        if v is None:
            v = table.get(k, default)
            if isinstance(v, dict):
                v = v[select]
        out[k] = v
    return out


def given_flags(args):
    """The flags of an argparse namespace that were set: every preset-filled flag defaults to None."""
    return {k: v for k, v in vars(args).items() if v is not None}


def render(tables):
    """Markdown of {preset: {stage: {key: value}}}: one table per preset, a row per setting, a column
    per stage (empty where a stage has no such setting)."""
    out = []
    for preset, stages in tables.items():
        keys = sorted({k for row in stages.values() for k in row})
        out.append(f"### {preset}\n")
        out.append("| setting | " + " | ".join(stages) + " |")
        out.append("|" + "---|" * (len(stages) + 1))
        for k in keys:
            out.append(f"| {k} | " + " | ".join(_cell(row.get(k)) for row in stages.values()) + " |")
        out.append("")
    return "\n".join(out)


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return str(v)
