"""SansType: random straight-line C++ programs whose pseudocode never states types.

Variables var_0..var_9 have types int, bool or string; the pseudocode says "read var_3" or
"set var_3 to var_1", so the type of a declaration must be inferred from how the variable is
used elsewhere in the program (global type inference). Every program's variables are made
inferable: if no line reveals a variable's type (a literal, or a type-specific operation, possibly
through copies/swaps), a revealing operation is inserted.

Deliberate differences from the authors' generator (see code/README.md):
- seeded and deterministic: one --seed gives byte-identical files;
- the bool branch does emit negation (`v = ! v ;`);
- the pseudocode of a subtraction says what the code computes: `v -= k` is "subtract k from v",
  `v = k - v` is "set v to k - v" (the authors wrote "k minus v" for v - k);
- gold outputs come from compiling and running the gold program in the sandbox.
ID and OOD phrasings are disjoint template sets; OOD programs use only OOD phrasings. Every word
of an OOD template also occurs in some ID template: OOD tests new *combinations* of known words
(clauses reordered, "set" dropped, "and v with w" -> "v to v and w", as in the paper's examples),
not words the model has never seen, which no amount of labeled or unlabeled data could teach.
"""
import logging
import os
import random
import re

from composed_ft.code import dataset
from composed_ft.code.cpp_tokenize import tokenize_lines
from composed_ft.core.io import write_json

log = logging.getLogger(__name__)

TYPES = ("int", "bool", "string")
NAMES = [f"var_{i}" for i in range(10)]
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# kind -> (code lines with {v} {w} {k} {lit} {T} {b} {x} {y}, ID templates, OOD templates)
# Code lines may be indented by leading "~ " (one level relative to the body).
STATEMENTS = {
    "decl_lit": (["{T} {v} = {lit} ;"], ["{v} = {lit}", "set {v} to {lit}"], ["{v} is {lit}"]),
    "decl_copy": (["{T} {v} = {w} ;"], ["{v} = {w}", "set {v} to {w}"], ["{v} is {w}"]),
    "decl_read": (["{T} {v} ;", "cin >> {v} ;"], ["read {v}", "read {v} from input"], ["{v} from input"]),
    "int_add_k": (["{v} += {k} ;"], ["add {k} to {v}", "increase {v} by {k}"], ["to {v} add {k}"]),
    "int_sub_k": (["{v} -= {k} ;"], ["subtract {k} from {v}", "decrease {v} by {k}"], ["from {v} subtract {k}"]),
    "int_rsub": (["{v} = {k} - {v} ;"], ["set {v} to {k} - {v}", "{v} = {k} - {v}"], ["{v} to {k} - {v}"]),
    "int_assign_k": (["{v} = {k} ;"], ["set {v} to {k}", "{v} = {k}"], ["{v} to {k}"]),
    "int_add_var": (["{v} += {w} ;"], ["add {w} to {v}", "increase {v} by {w}"], ["to {v} add {w}"]),
    "int_sub_var": (["{v} -= {w} ;"], ["subtract {w} from {v}", "decrease {v} by {w}"], ["from {v} subtract {w}"]),
    "int_assign": (["{v} = {w} ;"], ["set {v} to {w}", "{v} = {w}"], ["{v} to {w}"]),
    "int_max": (["{v} = max ( {v} , {w} ) ;"], ["set {v} to max of {v} and {w}", "{v} = max ( {v} , {w} )"],
                ["{v} to max of {v} and {w}"]),
    "int_min": (["{v} = min ( {v} , {w} ) ;"], ["set {v} to min of {v} and {w}", "{v} = min ( {v} , {w} )"],
                ["{v} to min of {v} and {w}"]),
    "bool_and": (["{v} = {v} && {w} ;"], ["set {v} to {v} and {w}", "{v} = {v} && {w}"], ["{v} to {v} and {w}"]),
    "bool_not": (["{v} = ! {v} ;"], ["negate {v}", "set {v} to not {v}"], ["{v} to not {v}"]),
    "str_append_lit": (["{v} += {lit} ;"], ["append {lit} to {v}", "add {lit} to the end of {v}"],
                       ["to the end of {v} add {lit}"]),
    "str_prepend_lit": (["{v} = {lit} + {v} ;"], ["prepend {lit} to {v}", "add {lit} to the start of {v}"],
                        ["to the start of {v} add {lit}"]),
    "str_append_var": (["{v} += {w} ;"], ["append {w} to {v}", "add {w} to the end of {v}"],
                       ["to the end of {v} add {w}"]),
    "str_prepend_var": (["{v} = {w} + {v} ;"], ["prepend {w} to {v}", "add {w} to the start of {v}"],
                        ["to the start of {v} add {w}"]),
    "swap": (["if ( {b} ) {", "~ {T} temp = {x} ;", "~ {x} = {y} ;", "~ {y} = temp ;", "}"],
             ["if {b} , exchange {x} and {y}", "if {b} is true , exchange the values of {x} and {y}"],
             ["exchange {x} and {y} if {b}"]),
    "print": (["cout << {v} << endl ;"], ["print {v}", "output {v}"], ["print the values of {v}"]),
}

# operations on an existing variable of each type: (kind, needs another variable of that type)
OPS = {
    "int": [("int_add_k", False), ("int_sub_k", False), ("int_rsub", False), ("int_assign_k", False),
            ("int_add_var", True), ("int_sub_var", True), ("int_assign", True), ("int_max", True),
            ("int_min", True)],
    "bool": [("bool_not", False), ("bool_and", True)],
    "string": [("str_append_lit", False), ("str_prepend_lit", False), ("str_append_var", True),
               ("str_prepend_var", True)],
}
# statements whose pseudocode reveals the type of v (and of w where there is one)
REVEALING = {k for k in STATEMENTS if k.startswith(("int_", "bool_", "str_"))} - {"int_assign"}
# the simplest revealing operation per type, inserted when a variable's type is not inferable
REVEAL_FIX = {"int": "int_add_k", "bool": "bool_not", "string": "str_append_lit"}

SIZES = {"train": 1000, "val": 500, "test": 500, "ood": 500, "unlabeled": 20000, "unlabeled_val": 500}
LABELED = ("train", "val", "test", "ood")


def _rand_word(rng, lo=1, hi=3):
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _literal(rng, t):
    if t == "int":
        return str(rng.randint(0, 99))
    if t == "bool":
        return rng.choice(["true", "false"])
    return f'"{_rand_word(rng)}"'


def _input_value(rng, t):
    if t == "int":
        return str(rng.randint(-50, 50))
    if t == "bool":
        return rng.choice(["0", "1"])
    return _rand_word(rng, 1, 4)


def _random_op(rng, v, types, declared):
    t = types[v]
    others = [w for w in declared if w != v and types[w] == t]
    kind, needs_w = rng.choice([o for o in OPS[t] if others or not o[1]])
    st = {"kind": kind, "v": v}
    if needs_w:
        st["w"] = rng.choice(others)
    if "{k}" in " ".join(STATEMENTS[kind][0]):
        st["k"] = str(rng.randint(0, 99))
    if "{lit}" in " ".join(STATEMENTS[kind][0]):
        st["lit"] = _literal(rng, t)
    return st


def _revealed(statements, types):
    """Variables whose type the pseudocode determines, closed over copies, assignments, swaps."""
    known = set()
    links = []
    for st in statements:
        k = st["kind"]
        if k in ("decl_lit",) or k in REVEALING:
            known.add(st["v"])
            if "w" in st and k in REVEALING:
                known.add(st["w"])
        if k in ("decl_copy", "int_assign"):
            links.append((st["v"], st["w"]))
        if k == "swap":
            known.add(st["b"])
            links.append((st["x"], st["y"]))
    changed = True
    while changed:
        changed = False
        for a, b in links:
            if (a in known) != (b in known):
                known.update((a, b))
                changed = True
    return known


def generate_program(rng, ood=False):
    """One random program: dict with src (pseudocode line), tgt (tokenized code line), inp."""
    n_vars = rng.randint(3, 6)
    names = rng.sample(NAMES, n_vars)
    types = {v: rng.choice(TYPES) for v in names}
    n_ops = rng.randint(2, 6)
    slots = ["D"] + rng.sample(["D"] * (n_vars - 1) + ["O"] * n_ops, n_vars - 1 + n_ops)
    pending = list(names)
    declared = []
    statements = []
    for slot in slots:
        if slot == "D":
            v = pending.pop(0)
            same = [w for w in declared if types[w] == types[v]]
            r = rng.random()
            if same and r < 0.2:
                st = {"kind": "decl_copy", "v": v, "w": rng.choice(same)}
            elif r < 0.6:
                st = {"kind": "decl_lit", "v": v, "lit": _literal(rng, types[v])}
            else:
                st = {"kind": "decl_read", "v": v, "input": _input_value(rng, types[v])}
            declared.append(v)
        else:
            st = _random_op(rng, rng.choice(declared), types, declared)
        statements.append(st)
    bools = [v for v in names if types[v] == "bool"]
    if bools and rng.random() < 0.5:
        b = rng.choice(bools)
        pairs = [(x, y) for x in names for y in names if x < y and b not in (x, y) and types[x] == types[y]]
        if pairs:
            x, y = rng.choice(pairs)
            if rng.random() < 0.5:
                x, y = y, x
            statements.append({"kind": "swap", "b": b, "x": x, "y": y, "T": types[x]})
    # make every variable's type inferable: insert a revealing op after its declaration
    for v in names:
        if v in _revealed(statements, types):
            continue
        decl = next(i for i, st in enumerate(statements) if st.get("v") == v and st["kind"].startswith("decl"))
        last = len(statements) - (1 if statements[-1]["kind"] == "swap" else 0)
        fix = {"kind": REVEAL_FIX[types[v]], "v": v}
        if fix["kind"] == "int_add_k":
            fix["k"] = str(rng.randint(0, 99))
        if fix["kind"] == "str_append_lit":
            fix["lit"] = _literal(rng, "string")
        statements.insert(rng.randint(decl + 1, last), fix)
    statements += [{"kind": "print", "v": v} for v in names]
    return _render(rng, statements, types, ood)


_FIELD_RE = re.compile(r"\{(\w+)\}")


def _fill(template, fields):
    # not str.format: code lines contain literal braces
    return _FIELD_RE.sub(lambda m: fields[m.group(1)], template)


def _value(lit, t):
    if t == "int":
        return int(lit)
    if t == "bool":
        return lit in ("true", "1")
    return lit.strip('"')


def _simulate(st, env, types, out):
    """What the statement does, in Python: the expected output without a compiler (a cross-check
    of the gold outputs, and the benchmark's expected outputs)."""
    k, v = st["kind"], st.get("v")
    num = int(st["k"]) if "k" in st else None
    lit = _value(st["lit"], types[v]) if "lit" in st else None
    w = env.get(st.get("w"))
    if k == "decl_lit":
        env[v] = lit
    elif k in ("decl_copy", "int_assign"):
        env[v] = w
    elif k == "decl_read":
        env[v] = _value(st["input"], types[v])
    elif k == "int_add_k":
        env[v] += num
    elif k == "int_sub_k":
        env[v] -= num
    elif k == "int_rsub":
        env[v] = num - env[v]
    elif k == "int_assign_k":
        env[v] = num
    elif k in ("int_add_var", "str_append_var"):
        env[v] += w
    elif k == "int_sub_var":
        env[v] -= w
    elif k == "int_max":
        env[v] = max(env[v], w)
    elif k == "int_min":
        env[v] = min(env[v], w)
    elif k == "bool_and":
        env[v] = env[v] and w
    elif k == "bool_not":
        env[v] = not env[v]
    elif k == "str_append_lit":
        env[v] += lit
    elif k == "str_prepend_lit":
        env[v] = lit + env[v]
    elif k == "str_prepend_var":
        env[v] = w + env[v]
    elif k == "swap":
        if env[st["b"]]:
            env[st["x"]], env[st["y"]] = env[st["y"]], env[st["x"]]
    elif k == "print":
        val = env[v]
        out.append(("1" if val else "0") if isinstance(val, bool) else str(val))
    else:
        raise AssertionError(k)


def _render(rng, statements, types, ood):
    pseudo, code, inputs = [], [(0, "int main ( ) {")], []
    env, printed = {}, []
    for st in statements:
        _simulate(st, env, types, printed)
        lines, id_t, ood_t = STATEMENTS[st["kind"]]
        fields = dict(st)
        fields.setdefault("T", types.get(st.get("v"), ""))
        pseudo.append(_fill(rng.choice(ood_t if ood else id_t), fields))
        for ln in lines:
            depth = 1
            while ln.startswith("~ "):
                depth, ln = depth + 1, ln[2:]
            code.append((depth, _fill(ln, fields)))
        if "input" in st:
            inputs.append(st["input"] + "\n")
    code.append((0, "}"))
    return {"src": " $ ".join(pseudo), "tgt": tokenize_lines(code), "inp": "".join(inputs),
            "expected": "".join(x + "\n" for x in printed)}


def generate_split(seed, split, n):
    # str seeds are hashed deterministically by random (not affected by PYTHONHASHSEED)
    rng = random.Random(f"sanstype:{seed}:{split}")
    return [generate_program(rng, ood=(split == "ood")) for _ in range(n)]


def make_sanstype(out_dir, seed=0, sizes=None, jobs=None):
    """Generate every split into `out_dir` (four-file format); gold outputs come from compiling and
    running each labeled gold program in the sandbox (and must equal a Python simulation of the
    program, else the generator has a bug). Returns {split: n}."""
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import run_programs

    sizes = {**SIZES, **(sizes or {})}
    os.makedirs(out_dir, exist_ok=True)
    for split, n in sizes.items():
        examples = generate_split(seed, split, n)
        if split in LABELED:
            runs = run_programs([detokenize_program(ex["tgt"]) for ex in examples],
                                [ex["inp"] for ex in examples], jobs=jobs, desc=f"gold {split}")
            for ex, r in zip(examples, runs):
                if r["status"] != "ok" or r["stdout"] != ex["expected"]:
                    raise RuntimeError(f"SansType gold program failed ({r['status']}, output {r['stdout']!r}, "
                                       f"simulated {ex['expected']!r}): {ex['tgt']}\n{r['error']}")
                ex["out"] = r["stdout"]
        else:
            for ex in examples:
                del ex["inp"]
        for ex in examples:
            del ex["expected"]
        dataset.write_split(out_dir, split, examples)
        log.info("wrote %s: %d programs", split, n)
    write_json(os.path.join(out_dir, dataset.MANIFEST),
               {"dataset": "sanstype", "variant": "strict", "compare": "exact", "indent_anywhere": True, "seed": seed,
                "sizes": sizes, "eval_splits": ["test", "ood"],
                "note": f"the strict variant (beyond the paper), seed {seed}"})
    return sizes
