"""Run directories: one directory per run holding everything needed to read, resume or redo it.

    runs/<experiment>/<name>/
        config.json      every hyperparameter, the git commit, the command line
        metrics.jsonl    one JSON object per logged step or epoch
        checkpoint_last.pt / checkpoint_best.pt
        results.json     written last: its presence means the run is finished
        *.png            pictures

A rerun of a finished run is a no-op; a killed run resumes from checkpoint_last.pt.
"""
import json
import logging
import os
import subprocess
import sys
import time

from .errors import UserError
from .io import write_json
from .records import lines as stored_lines

log = logging.getLogger(__name__)


def git_commit(root=None):
    """The commit of the code that produced a run, with '+dirty' when tracked files outside results/
    have local changes. results/ is excluded because runner.sh itself rewrites the committed tables and
    archives there between stages: without the exclusion every run after the first of a clean clone
    would be marked dirty."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("+dirty" if dirty else "")


class Run:
    """A run directory. `config` is a plain dict of every hyperparameter."""

    def __init__(self, path, config=None):
        self.path = os.fspath(path)
        self.config = dict(config or {})
        # rows of metrics.jsonl: counted once, then kept by log_metrics and truncate_metrics. The training
        # loop asks every epoch (its checkpoint records the count); re-reading the file each time made a
        # run of 16,000 short epochs quadratic (0.1 s per epoch by its end, 10% of the run's wall time).
        self._n_rows = None

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def finished(self):
        return os.path.exists(self.file("results.json"))

    def differences(self, upgrade=None):
        """{key: (saved, new)} of the settings where this run's config.json differs from `self.config` (none
        when there is no config.json yet); `upgrade` as in start(). Keys only one side has are not compared."""
        if not os.path.exists(self.file("config.json")):
            return {}
        return self._differences(read_json(self.file("config.json")).get("config", {}), upgrade)

    def _differences(self, saved, upgrade):
        old = json.loads(json.dumps(upgrade(saved) if upgrade else saved))
        new = json.loads(json.dumps(self.config))  # as it would read back (tuples are lists)
        return {k: (old.get(k), new.get(k)) for k in sorted(set(saved) & set(new))
                if old.get(k) != new.get(k) and k not in VOLATILE_KEYS}

    def refuse_or_replace(self, overwrite=False, upgrade=None, switch="--overwrite"):
        """The one rule for a changed setting, checked before any "finished" shortcut: when config.json holds
        other settings than `self.config`, refuse with every differing key (old -> new) and the switch that
        retrains; with `overwrite`, move the old run aside to <run>.replaced-<time> (never deleted) so the
        run starts afresh. Returns the path it was moved to, or None."""
        diff = self.differences(upgrade)
        if not diff:
            return None
        if not overwrite:
            keys = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise UserError(f"{self.path}: the run exists with other settings ({keys}); rerun with {switch} to "
                            f"train the new settings (the old run is moved to {os.path.basename(self.path)}"
                            f".replaced-<time>), or use another run directory")
        aside = f"{self.path.rstrip(os.sep)}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(self.path, aside)
        self._n_rows = None
        log.info("%s: settings changed (%s); the old run moved to %s", self.path, ", ".join(diff), aside)
        return aside

    def start(self, resume_ok=True, upgrade=None, extend=None):
        """Create the directory and write config.json.

        An existing run with a different config is refused (a silent mix of two settings in one
        directory would make its results meaningless); pass a new --name or delete it. `upgrade`
        reads an older config as today's code does (fields added since are filled with the values the
        old run was made with); a key only one side has (added or dropped since) is not compared.

        `extend` = (keys, budget, outputs): continue a run to a larger budget. When the configs differ
        only in `keys` (the budget's) and budget(new) >= budget(old), config.json takes the new budget
        (the old one recorded under "extended"), results.json and each of `outputs` (files a finished run
        wrote, e.g. its per-example records) are set aside as <name>_<old budget><ext>, so the shorter
        run stays readable, and training resumes from checkpoint_last.pt. Only for a training whose
        steps do not depend on the budget (a constant learning rate): then the extended run equals one
        given the larger budget from the start (tests/test_imggen.py)."""
        os.makedirs(self.path, exist_ok=True)
        cfg_path = self.file("config.json")
        if os.path.exists(cfg_path):
            record = read_json(cfg_path)
            mismatch = set(self._differences(record.get("config", {}), upgrade))
            new = json.loads(json.dumps(self.config))  # as it would read back (tuples are lists)
            added = self._added(record, new)  # settings the code gained since the run began
            if mismatch and extend and mismatch <= set(extend[0]):
                self._extend(record, new, mismatch, added, *extend[1:])
            elif not mismatch and added:  # resumed under them: they hold from this metric row on
                rows = self.n_metrics() if os.path.exists(self.file("metrics.jsonl")) else 0
                record.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv,
                                                         "metric_rows": rows, "new_settings": added})
                write_json(cfg_path, record)
            elif mismatch:
                hint = (" (only the budget may change, to a larger one)" if extend else
                        "; use another run name or delete the directory")
                raise UserError(f"{cfg_path}: run exists with different settings ({', '.join(sorted(mismatch))})"
                                + hint)
        else:
            write_json(cfg_path, {"config": self.config, "git_commit": git_commit(),
                                  "argv": sys.argv, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        log.info("%s: the resolved settings (config.json)\n%s", self.path, settings_block(self.config))
        return self

    @staticmethod
    def _added(record, new):
        """Settings of `new` the run's recorded config lacks (added to the code after the run began), other
        than the volatile ones, unless already recorded by an earlier resumption or extension."""
        seen = {k for e in record.get("resumed", []) + record.get("extended", []) for k in e.get("new_settings", {})}
        return {k: v for k, v in new.items() if k not in record["config"] and k not in VOLATILE_KEYS and k not in seen}

    def _extend(self, record, new, keys, added, budget, outputs=()):
        before, after = budget(record["config"]), budget(new)
        if after < before:
            raise UserError(f"{self.file('config.json')}: cannot extend a run of budget {before} to the smaller "
                            f"{after}; use another run name")
        if self.finished:
            for name in ("results.json", *outputs):
                if os.path.exists(self.file(name)):
                    stem, ext = os.path.splitext(name)
                    os.replace(self.file(name), self.file(f"{stem}_{before}{ext}"))
        # settings the code has gained since the run began (`added`) hold from here on only: recorded with the
        # extension, not in the run's config
        record["config"] = {**record["config"], **{k: new[k] for k in keys}}
        record.setdefault("extended", []).append({"from": before, "to": after, "argv": sys.argv,
                                                  "at": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                  **({"new_settings": added} if added else {})})
        write_json(self.file("config.json"), record)
        log.info("%s: extending from budget %s to %s", self.path, before, after)

    def log_metrics(self, **row):
        row.setdefault("time", round(time.time(), 3))
        with open(self.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._n_rows is not None:
            self._n_rows += 1

    def metrics(self):
        return read_jsonl(self.file("metrics.jsonl"))

    def truncate_metrics(self, n_lines):
        """Drop metric rows written after the checkpoint we resume from, so a resumed run's log
        equals an uninterrupted one's."""
        rows = self.metrics()[:n_lines]
        from .io import write_text
        write_text(self.file("metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        self._n_rows = len(rows)

    def n_metrics(self):
        if self._n_rows is None:
            self._n_rows = len(self.metrics())
        return self._n_rows

    def finish(self, results):
        """Write results.json, with the machine that produced them (tables name the runs' machines); the
        key is added to `results` itself, so a stage returns what a finished run's results.json reads back."""
        if "machine" not in results:
            from .machine import describe
            results["machine"] = describe()
        write_json(self.file("results.json"), results)

    def results(self):
        return read_json(self.file("results.json"))


def settings_block(config, width=110, indent="    "):
    """Every setting of a config as `key=value` pairs, sorted, wrapped into indented lines: what a stage
    logs once before it trains (the runners show it), so a reader sees the values that will run."""
    lines, line = [], ""
    for k in sorted(config):
        v = config[k]
        cell = f"{k}={' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
        if line and len(indent) + len(line) + 2 + len(cell) > width:
            lines.append(line)
            line = ""
        line = f"{line}  {cell}" if line else cell
    return "\n".join(indent + x for x in lines + ([line] if line else []))


# Keys that may change between a run and its resumption without changing what it computes.
VOLATILE_KEYS = {"device", "jobs", "progress", "run_dir", "name", "extend"}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def read_jsonl(path):
    """The rows of a JSON-lines file of a run directory, in whatever form it is kept (core/records.py: the
    archive compresses and packs them); [] when there is none."""
    rows = []
    for i, line in enumerate(stored_lines(path) or [], 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A kill mid-write can leave one partial last line; anything else is corruption.
                log.warning("%s: skipping unreadable line %d", path, i)
    return rows
