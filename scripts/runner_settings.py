"""The hyperparameter comments of the runners, generated from the preset tables.

A runner holds each setting a user may edit as a shell variable, empty by default: empty means the preset's
value. So that a reader sees what will run, the variable's comment ends with the values empty means at
the cpu and paper presets, e.g.

    LAM=${LAM:-}                       # λ of the CE term (cpu 1, paper 1)
    COMP_EPOCHS=${COMP_EPOCHS:-}       # (cpu 30, paper 300 [compose] / 50 [compose-bt])

(a value per stage table in brackets where the stages it reaches differ). Which stages and settings a
variable reaches is not written anywhere by hand: the runner is planned with PY=echo (it prints its
commands) and every variable set to a distinct sentinel number, and the flag before each sentinel names
the setting; the values are then resolved from the preset tables as the stage would resolve them
(composed_ft/imggen/config.py, composed_ft/code/config.py). A variable with a default of its own
(BLUR_MAX=2) and such a comment must hold the values it states.

    python scripts/runner_settings.py            # check every runner; rc 1 and the differences when one drifted
    python scripts/runner_settings.py --write    # rewrite the comments from the tables

tests/test_runner_settings.py runs the check.
"""
import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

RUNNERS = ("imggen/runner.sh", "code/runner.sh", "code/runner_spoc.sh")
PRESETS = ("cpu", "paper")
# variables whose value is not a setting of a stage's config: flags appended as they are, run switches, paths
SKIP = {"STAGE_FLAGS", "EXTEND", "OVERWRITE", "JOBS", "SPOC_DIR"}
# variables a runner turns into a stage's flag through a table of its own (not the stage's)
OVERRIDES = {("imggen/runner.sh", "ABL_UPDATES_COMPOSED"): [("ablation", "composed_max_update")]}
ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=\$\{\1:-([^}]*)\}(.*)$")
STATED = re.compile(r"\s*\((cpu .*)\)\s*$")
SENTINEL = 9731000


def variables(text):
    """[(line index, name, default, comment)] of the assignments `NAME=${NAME:-default}` that name a setting:
    empty by default, or stating its values in a `(cpu ...)` comment."""
    out = []
    for i, line in enumerate(text.splitlines()):
        m = ASSIGN.match(line)
        if not m or m.group(1) in SKIP:
            continue
        rest = m.group(3)
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        if m.group(2) == "" or STATED.search(comment):
            out.append((i, m.group(1), m.group(2), comment))
    return out


def plan(runner, env):
    """The commands (lists of words) a runner plans at the cpu preset with every target, `env` set."""
    with tempfile.TemporaryDirectory() as tmp:
        fonts = os.path.join(tmp, "fonts32.npz")
        open(fonts, "w").close()
        e = dict(os.environ, PY="echo", PRESETS_PY=sys.executable, PRESET="cpu", TARGETS="all", SEEDS="0", JOBS="1",
                 RUNS=os.path.join(tmp, "runs"), TABLE=os.path.join(tmp, "t.md"),
                 DATA=fonts if runner.startswith("imggen") else os.path.join(tmp, "data"), **env)
        p = subprocess.run(["bash", runner], cwd=REPO, env=e, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{runner}: planning failed (rc {p.returncode}): {p.stderr[-1000:]}")
    return [line.split() for line in p.stdout.splitlines() if line.startswith("-m composed_ft.")]


def _strip(cmd, sentinels):
    """A command without the flags whose value is a sentinel (what it resolves to when they are empty)."""
    out, skip = [], False
    for j, a in enumerate(cmd):
        if skip:
            skip = False
            continue
        if a.startswith("--") and j + 1 < len(cmd) and cmd[j + 1] in sentinels:
            skip = True
            continue
        out.append(a)
    return out


def _column_and_resolver(cmd, sentinels):
    """(column, values(preset) -> {setting: value}) of a planned command, or None for a command that is not
    a configured stage (table, evaluate, gold-ceiling, ...)."""
    pkg, command, argv = cmd[1], cmd[2], _strip(cmd[2:], sentinels)
    if pkg == "composed_ft.imggen":
        if command not in ("denoise", "train"):
            return None
        from composed_ft.imggen.__main__ import resolved_tables
        column = "denoise" if command == "denoise" else f"train {argv[argv.index('--method') + 1]}"
        return column, lambda preset: resolved_tables(preset)[column]
    from composed_ft.code import config, presets
    if command == "make-spoc":
        return "make-spoc", lambda preset: presets.PRESETS["spoc"][preset]["make-spoc"]
    if command not in config.CLASSES:
        return None
    from composed_ft.code.__main__ import build_parser
    from composed_ft.core.presets import given_flags
    given = given_flags(build_parser().parse_args(argv))
    column = config.table_key(command, {**config._defaults(config.CLASSES[command]), **given})
    return column, lambda preset: config.preset_values(command, {**given, "preset": preset})


@functools.lru_cache(maxsize=None)
def reach(runner):
    """{variable: [(column, setting, {preset: value})]}: the stage tables and settings each variable of a
    runner reaches, in the order its commands do, and what empty means there at each preset."""
    with open(os.path.join(REPO, runner)) as f:
        names = [v[1] for v in variables(f.read())]
    out = {}
    todo = list(names)
    while todo:  # a variable another one shadows (UPDATES over UPDATES_DIRECT) is planned again without it
        sentinels = {str(SENTINEL + i): n for i, n in enumerate(todo)}
        cmds = plan(runner, {n: s for s, n in sentinels.items()})
        found = {}
        for c in cmds:
            hits = [(c[j - 1], sentinels[a]) for j, a in enumerate(c) if a in sentinels and c[j - 1].startswith("--")]
            if not hits:
                continue
            col = _column_and_resolver(c, sentinels)
            if col is None:
                continue
            column, values = col
            for flag, name in hits:
                key = flag[2:].replace("-", "_")
                entry = (column, key)
                if entry not in [e[:2] for e in found.get(name, [])]:
                    found.setdefault(name, []).append((column, key, {p: values(p).get(key) for p in PRESETS}))
        out.update(found)
        left = [n for n in todo if n not in found]
        if len(left) == len(todo):
            break
        todo = left
    for (r, name), targets in OVERRIDES.items():
        if r == runner:
            from composed_ft.imggen.__main__ import resolved_tables
            out[name] = [(col, key, {p: resolved_tables(p)[col][key] for p in PRESETS}) for col, key in targets]
    return {n: [e for e in entries if any(v is not None for v in e[2].values())] for n, entries in out.items()}


def fmt(v):
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return " ".join(map(fmt, v))
    return str(v)


def _short(column):
    return column.split(" ", 1)[1] if column.startswith("train ") else column


def describe(entries):
    """`(cpu V, paper W)` of a variable's entries; a value per stage table in brackets where they differ."""
    parts = []
    for preset in PRESETS:
        by = {}
        for column, _, values in entries:
            cols = by.setdefault(fmt(values[preset]), [])
            if _short(column) not in cols:
                cols.append(_short(column))
        if len(by) == 1:
            parts.append(f"{preset} {next(iter(by))}")
        else:
            parts.append(f"{preset} " + " / ".join(f"{v} [{' '.join(cols)}]" for v, cols in by.items()))
    return "(" + ", ".join(parts) + ")"


def _number(s):
    try:
        return float(s)
    except ValueError:
        return s


def check(runner, text=None):
    """(problems, rewritten text) of a runner: each setting variable's comment against the tables."""
    if text is None:
        with open(os.path.join(REPO, runner)) as f:
            text = f.read()
    lines = text.splitlines()
    reached = reach(runner)
    problems = []
    for i, name, default, comment in variables(text):
        entries = reached.get(name)
        if not entries:  # a setting the runner passes to no stage (or a path: then SKIP it)
            problems.append(f"{runner}:{i + 1}: {name} reaches no stage's preset setting")
            continue
        want = describe(entries)
        m = STATED.search(comment)
        have = f"({m.group(1)})" if m else None
        if have != want:
            problems.append(f"{runner}:{i + 1}: {name}: comment says {have or 'nothing'}, the tables give {want}")
            base = lines[i][:len(lines[i]) - len(m.group(0))] if m else lines[i]
            lines[i] = base + " " + want if "#" in base else f"{base:<34} # {want}"
        if default:
            off = {p: fmt(e[2][p]) for e in entries for p in PRESETS if _number(fmt(e[2][p])) != _number(default)}
            if off:
                problems.append(f"{runner}:{i + 1}: {name} defaults to {default}, the tables give {want}")
    return problems, "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runners", nargs="*", default=list(RUNNERS))
    p.add_argument("--write", action="store_true", help="rewrite the comments from the tables")
    args = p.parse_args(argv)
    rc = 0
    for runner in args.runners:
        problems, text = check(runner)
        for line in problems:
            print(line)
        if problems and args.write:
            with open(os.path.join(REPO, runner), "w") as f:
                f.write(text)
            print(f"rewrote {runner}")
        rc |= bool(problems) and not args.write
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
