"""SansType as the paper generated it: the distribution of the authors' generator, seeded.

The paper's SansType numbers come from one draw of the authors' generator (released as
../shared/data/sanstype-1000a). That draw has no unlabeled programs: the authors generated the
denoiser's 20,000 at run time. This module draws programs, pseudocode, inputs, gold outputs and the
denoiser's unlabeled programs from the same distribution, specified in ../shared/SANSTYPE.md (written from
that description, not from the authors' code), quirks included:
- "set v to k minus v" for the code `v -= k` (the pseudocode says the opposite of what runs);
- no negation; max/min only over the *initial* int variables;
- a swap block over fresh block-local variables (declared after a `~` indent marker in the middle
  of the line, never printed) has no effect on the output;
- bools print as 0/1, nothing separates printed values, the gold output is the raw stdout.
Unlike the authors' generator it is seeded: one stream per (seed, split), so the same seed gives
byte-identical files and a larger test split does not change the train split.

Its corruption of programs for the denoiser is in corruptions.py (corrupt_authors). Serialized exactly
as the release (`.src`, `.tgt` with the untokenized header `int main () {` and
footer `return 0; }`, `.inp` tab-separated stdin values, `.out` raw stdout); `tests/code/
test_sanstype_authors.py` and `scripts/sanstype_faithfulness.py` compare a draw with the release.
"""
import random

TYPES = ("int", "bool", "string")
NAMES = tuple(f"var_{i}" for i in range(10))
HEADER, FOOTER = "int main () {", "return 0; }"
# the authors' swap scans the types in Python set order; with PYTHONHASHSEED=0 (SANSTYPE.md §3)
SWAP_TYPE_ORDER = ("string", "int", "bool")

# pseudocode templates (a piece ends with "; "); ID: one phrasing or a uniform choice, OOD: a list
ID = {
    "read": ["read {v} from stdin;"],
    "print": ["print {v};", "output {v} to stdout;"],
    "int_add": ["set {v} to {k} plus {v};"],
    "int_sub": ["set {v} to {k} minus {v};"],
    "bool_and": ["set {v} to the and with {k};"],
    "str_append": ["add {k} to the end of {v};"],
    "str_prepend": ["add {k} to the beginning of {v};"],
    "swap_cond": ["if {v} is true, "],
    "swap_phrase": ["set {a} to the value of {b} and {b} to the value of {a};", "swap the values of {a} and {b};"],
}
OOD = {
    "read": ["read {v};", "{v} from stdin;"],
    "print": ["print {v} to stdout;", "output {v};", "stdout {v};"],
    "int_add": ["set {v} to {v} plus {k};", "{v} to {k} plus {v};", "set {v} to {k} plus the value of {v};"],
    "int_sub": ["{v} to {k} minus {v};", "set {v} to {k} minus the value of {v};"],
    "bool_and": ["set {v} to {v} and {k};", "and {v} with {k};", "{v} and {k};"],
    "str_append": ["add {k} to {v} end;", "add {k} to end of {v};"],
    "str_prepend": ["add {k} to {v} beginning;", "add {k} to beginning of {v};"],
    "swap_cond": ["if {v} true, ", "if {v}, "],
    "swap_phrase": ["set {a} to {b} and set {b} to {a};", "set {a} to the value of {b} and {b} to {a};",
                    "swap {a} and {b};"],
}
# shared by ID and OOD
SHARED = {"set": "set {v} to {k};", "instantiate": "instantiate {v};",
          "maxmin": "set {v} to {f} applied to {v} and {w};"}

SIZES = {"train": 1000, "val": 500, "test": 500, "ood": 500, "unlabeled": 20000, "unlabeled_val": 500}


def literal(rng, t):
    if t == "int":
        return str(rng.randint(0, 99))
    if t == "bool":
        return "true" if rng.random() < 0.5 else "false"
    return f'"str_{rng.randint(0, 9)}"'


def stdin_value(rng, t):
    if t == "int":
        return str(rng.randint(0, 99))
    if t == "bool":
        return rng.choice(("0", "1"))
    return f"str_{rng.randint(0, 9)}"


def _fill(template, **fields):
    return template.format(**fields)


class _Program:
    """Body lines (code tokens as one string, pseudocode piece) and what a run of it does."""

    def __init__(self, rng, ood):
        self.rng, self.ood = rng, ood
        self.code, self.pseudo = [], []
        self.types = {}          # top-level variables in declaration order -> type
        self.env = {}            # their values (Python simulation of the program)
        self.inputs, self.output = [], []

    def phrase(self, kind, **fields):
        table = OOD if self.ood else ID
        return _fill(self.rng.choice(table[kind]), **fields)

    def emit(self, code, pseudo):
        self.code.append(code)
        self.pseudo.append(pseudo)

    def init_code(self, t, v, x):
        """An initialize line: `T v = x ;` or `T v ; v = x ;` (uniform)."""
        return f"{t} {v} = {x} ;" if self.rng.random() < 0.5 else f"{t} {v} ; {v} = {x} ;"

    def initialize(self, v, t, x):
        self.types[v] = t
        self.env[v] = _value(t, x)
        self.emit(self.init_code(t, v, x), _fill(SHARED["set"], v=v, k=x))

    def instantiate_and_read(self, v, t):
        self.types[v] = t
        self.emit(f"{t} {v} ;", _fill(SHARED["instantiate"], v=v))
        raw = stdin_value(self.rng, t)
        self.inputs.append(raw)
        self.env[v] = _value(t, raw)
        self.emit(f"cin >> {v} ;", self.phrase("read", v=v))

    def op(self, v):
        """One type-preserving op on v (SANSTYPE.md §3): a literal of v's type, then i ~ U{0,1,2}."""
        rng, t = self.rng, self.types[v]
        k = literal(rng, t)
        i = rng.randint(0, 2)
        if t == "int":
            if i == 0:
                self.emit(rng.choice((f"{v} += {k} ;", f"{v} = {v} + {k} ;")), self.phrase("int_add", v=v, k=k))
                self.env[v] += int(k)
            elif i == 1:   # the pseudocode says "k minus v"; the code computes v - k (upstream quirk)
                self.emit(rng.choice((f"{v} -= {k} ;", f"{v} = {v} - {k} ;")), self.phrase("int_sub", v=v, k=k))
                self.env[v] -= int(k)
            else:
                self.set_line(v, k)
        elif t == "bool":
            if i == 0:
                self.emit(f"{v} = {v} && {k} ;", self.phrase("bool_and", v=v, k=k))
                self.env[v] = self.env[v] and k == "true"
            elif i == 1:
                self.set_line(v, k)
            else:
                self.swap(v)
        else:
            if i == 0:
                self.emit(rng.choice((f"{v} += {k} ;", f"{v} = {v} + {k} ;")), self.phrase("str_append", v=v, k=k))
                self.env[v] += _value(t, k)
            elif i == 1:
                self.emit(f"{v} = {k} + {v} ;", self.phrase("str_prepend", v=v, k=k))
                self.env[v] = _value(t, k) + self.env[v]
            else:
                self.set_line(v, k)

    def set_line(self, v, k):
        self.emit(f"{v} = {k} ;", _fill(SHARED["set"], v=v, k=k))
        self.env[v] = _value(self.types[v], k)

    def swap(self, v):
        """`if ( v ) { ... swap via temp ... }` on one line: the first two top-level variables of the
        first type (string, int, bool) that has two, else two fresh block-local variables."""
        rng = self.rng
        cond = self.phrase("swap_cond", v=v)
        for t in SWAP_TYPE_ORDER:
            same = [w for w, tw in self.types.items() if tw == t]
            if len(same) >= 2:
                a, b = same[:2]
                code = f"if ( {v} ) {{ {t} temp = {a} ; {a} = {b} ; {b} = temp ; }}"
                pseudo = cond + self.phrase("swap_phrase", a=a, b=b)
                if self.env[v]:
                    self.env[a], self.env[b] = self.env[b], self.env[a]
                self.emit(code, pseudo)
                return
        t = rng.choice(TYPES)
        a, b = rng.sample(NAMES, 2)   # may shadow top-level variables, v included; never printed
        x, y = literal(rng, t), literal(rng, t)
        code = (f"if ( {v} ) {{ ~ {self.init_code(t, a, x)} ~ {self.init_code(t, b, y)} "
                f"{t} temp = {a} ; {a} = {b} ; {b} = temp ; }}")
        pseudo = (cond + "TAB " + _fill(SHARED["set"], v=a, k=x) + " TAB " + _fill(SHARED["set"], v=b, k=y) + " "
                  + self.phrase("swap_phrase", a=a, b=b))
        self.emit(code, pseudo)

    def maxmin(self, ints):
        f = self.rng.choice(("max", "min"))
        a, b = self.rng.sample(ints, 2)
        self.emit(f"{a} = {f} ( {a} , {b} ) ;", _fill(SHARED["maxmin"], v=a, w=b, f=f))
        self.env[a] = (max if f == "max" else min)(self.env[a], self.env[b])

    def print_all(self):
        for v, t in self.types.items():
            val = self.env[v]
            self.output.append(("1" if val else "0") if t == "bool" else str(val))
            self.emit(f"cout << {v} ;", self.phrase("print", v=v))


def _value(t, text):
    if t == "int":
        return int(text)
    if t == "bool":
        return text in ("true", "1")
    return text.strip('"')


def generate_program(rng, ood=False):
    """One program (SANSTYPE.md §2) as {src, tgt, inp, out} in the release's serialization."""
    p = _Program(rng, ood)
    n0 = rng.randint(1, 3)
    initial = rng.sample(NAMES, n0)
    decl = [(v, t, literal(rng, t)) for v in initial for t in [rng.choice(TYPES)]]
    for v, t, x in decl:
        if rng.random() < 0.5:
            p.initialize(v, t, x)
        else:   # the literal drawn above is unused: the value comes from stdin
            p.instantiate_and_read(v, t)
    order = list(initial)
    rng.shuffle(order)
    for v in order:
        p.op(v)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.8:
            ints = [v for v in initial if p.types[v] == "int"]
            if rng.random() < 0.1 and len(ints) >= 2:
                p.maxmin(ints)
            p.op(rng.choice(list(p.types)))
        else:
            t = rng.choice(TYPES)
            v = rng.choice(NAMES)
            while v in p.types:
                v = rng.choice(NAMES)
            p.initialize(v, t, literal(rng, t))
    p.print_all()
    return {"src": serialize_src(p.pseudo), "tgt": serialize_tgt(p.code), "inp": "\n".join(p.inputs),
            "out": "".join(p.output)}


def serialize_src(pieces):
    return " $ " + " $ ".join(piece + " " for piece in pieces) + " $ "


def serialize_tgt(lines):
    return " $ ".join([HEADER, *lines, FOOTER])


def body_lines(tgt):
    """The body lines of a released-format program (header and footer split off); None when the
    program does not have the release's header and footer."""
    parts = tgt.split(" $ ")
    if len(parts) < 2 or parts[0] != HEADER or parts[-1] != FOOTER:
        return None
    return parts[1:-1]


def generate_split(seed, split, n, ood=None):
    """n programs of `split` (OOD templates for split names starting with 'ood' unless `ood` says)."""
    rng = random.Random(f"sanstype-authors:{seed}:{split}")
    ood = split.startswith("ood") if ood is None else ood
    return [generate_program(rng, ood) for _ in range(n)]


# ---- a data set on disk -----------------------------------------------------------------------

LABELED = ("train", "val", "test", "ood")
GENERATED_EVAL = ("test_gen", "ood_gen")   # large evaluation splits beside the released 500


def _check_gold(examples, jobs, split):
    """Every gold program, compiled and run in the sandbox, prints what the simulation says."""
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import evaluate_programs

    # byte-exact against the simulated output (batched: 16 programs per g++ process)
    res = evaluate_programs([detokenize_program(ex["tgt"], indent_anywhere=True) for ex in examples],
                            [[(ex["inp"] + "\n", ex["out"])] for ex in examples], jobs=jobs, desc=f"gold {split}",
                            compare="rstrip")
    for ex, r in zip(examples, res):
        if r["outcome"] != "correct":
            raise RuntimeError(f"SansType gold program failed ({r['outcome']}; simulated output {ex['out']!r}): "
                               f"{ex['tgt']}\n{r['compile_error'] or r['failure']}")


def make_dataset(out_dir, seed=0, sizes=None, labeled_from=None, n_gen=0, gen_seed=1, jobs=None):
    """Write a SansType data set of the authors' distribution into `out_dir`.

    labeled_from: a directory with the released train/val/test/ood (copied byte for byte: the
    paper's benchmark); else those splits are drawn too. The unlabeled programs (denoiser, back-
    translation) are always drawn with `seed`. n_gen > 0 adds test_gen / ood_gen: n_gen programs each,
    drawn with their own `gen_seed`, none whose code occurs in train, val or the unlabeled programs.
    Returns the manifest (also written to dataset.json)."""
    import hashlib
    import os
    import shutil

    from composed_ft.code import dataset
    from composed_ft.core.io import write_json

    sizes = {**SIZES, **(sizes or {})}
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for split in LABELED:
        if labeled_from:
            for f in dataset.FIELDS:
                src = os.path.join(labeled_from, f"{split}.{f}")
                if not os.path.exists(src):
                    raise FileNotFoundError(f"{src}: missing (the released draw has four files per split)")
                dst = os.path.join(out_dir, f"{split}.{f}")
                tmp = dst + ".tmp"
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
                with open(dst, "rb") as fh:
                    files[f"{split}.{f}"] = hashlib.md5(fh.read()).hexdigest()
            _check_gold(dataset.load_split(out_dir, split), jobs, split)
        else:
            exs = generate_split(seed, split, sizes[split])
            _check_gold(exs, jobs, split)
            dataset.write_split(out_dir, split, exs)
    for split in ("unlabeled", "unlabeled_val"):
        exs = generate_split(seed, split, sizes[split], ood=False)
        dataset.write_split(out_dir, split, [{"tgt": ex["tgt"]} for ex in exs])
    seen = {ex["tgt"] for s in ("train", "val", "unlabeled", "unlabeled_val") for ex in dataset.load_split(out_dir, s)}
    dropped = {}
    for split in GENERATED_EVAL if n_gen else ():
        rng = random.Random(f"sanstype-authors:{gen_seed}:{split}")
        exs, n_drop = [], 0
        while len(exs) < n_gen:
            ex = generate_program(rng, ood=split.startswith("ood"))
            if ex["tgt"] in seen:
                n_drop += 1
                continue
            exs.append(ex)
        dropped[split] = n_drop
        _check_gold(exs, jobs, split)
        dataset.write_split(out_dir, split, exs)
    manifest = {
        "dataset": "sanstype", "variant": "authors", "compare": "rstrip", "indent_anywhere": True,
        "labeled_from": _shown_path(labeled_from) if labeled_from else None, "labeled_md5": files or None,
        "seed": seed, "gen_seed": gen_seed if n_gen else None,
        "sizes": {s: len(dataset.load_split(out_dir, s)) for s in LABELED + ("unlabeled", "unlabeled_val")
                  + (GENERATED_EVAL if n_gen else ())},
        "gen_dropped_seen": dropped or None,
        "eval_splits": ["test", "ood"] + (list(GENERATED_EVAL) if n_gen else []),
        # every gold program of these splits compiled and printed its gold output in our judge
        "gold_checked": list(LABELED) + (list(GENERATED_EVAL) if n_gen else []),
        "note": ("labeled: the authors' released draw" if labeled_from else "labeled: drawn from the authors' "
                 "distribution") + f"; unlabeled: drawn with seed {seed}"
                + (f"; test_gen/ood_gen: {n_gen} each, seed {gen_seed}, none in train/val/unlabeled" if n_gen else ""),
    }
    write_json(os.path.join(out_dir, "dataset.json"), manifest)
    return manifest


def _shown_path(path):
    """A path as tables print it: relative to the working directory when inside it or beside it
    (../shared/...), never an absolute path of the machine that made the data."""
    import os
    rel = os.path.relpath(os.path.abspath(path))
    return rel if not rel.startswith("../../") else os.path.basename(os.path.abspath(path))
