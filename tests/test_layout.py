"""The package's layering, checked from the source: core imports no experiment, the experiments never
import each other, no two modules import each other (directly or through others), every file of
composed_ft/code is in code/README's layout table, and stages.py stays a file a reader can hold."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "composed_ft")


def _modules():
    out = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                out[name] = path
    return out


def _imports(name, path):
    """Every composed_ft module `name` imports, at module level or inside a function."""
    pkg = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("composed_ft")}


def _graph():
    mods = _modules()
    return {n: {m for m in _imports(n, p) if m in mods and m != n} for n, p in mods.items()}


def test_core_imports_no_experiment_and_experiments_not_each_other():
    for mod, deps in _graph().items():
        if mod.startswith("composed_ft.core"):
            assert not {d for d in deps if not d.startswith("composed_ft.core")}, mod
        for a, b in (("code", "imggen"), ("imggen", "code")):
            if mod.startswith(f"composed_ft.{a}"):
                assert not {d for d in deps if d.startswith(f"composed_ft.{b}")}, mod


def test_no_import_cycle():
    graph = _graph()
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_code_readme_layout_names_every_file():
    text = open(os.path.join(ROOT, "code", "README.md"), encoding="utf-8").read()
    table = text[text.index("<!-- layout:begin"):text.index("<!-- layout:end")]
    listed = set(re.findall(r"^\| `([\w.]+\.py)`", table, re.M))
    files = {f for f in os.listdir(os.path.join(PKG, "code")) if f.endswith(".py") and f != "__init__.py"}
    assert listed == files, {"not in the table": files - listed, "no such file": listed - files}


def test_stages_file_stays_small():
    with open(os.path.join(PKG, "code", "stages.py"), encoding="utf-8") as f:
        assert sum(1 for _ in f) <= 400


def test_help_of_every_command_imports_no_torch():
    """`--help` stays fast: the parsers of both command lines are built without importing torch (the
    modules that run a command are imported only when it runs)."""
    import subprocess
    import sys
    code = ("import sys\n"
            "from composed_ft.code.__main__ import build_parser\n"
            "build_parser()\n"
            "from composed_ft.imggen.__main__ import parse\n"
            "for cmd in ('denoise', 'train', 'table', 'presets', 'build-fonts'):\n"
            "    try:\n"
            "        parse([cmd, '--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
