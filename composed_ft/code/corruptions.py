"""Corruptions that make the denoiser's training inputs (corrupted code -> clean code).

All functions work on the one-line tokenized format (cpp_tokenize) and take a `random.Random`, so
the same seed gives the same corrupted data.

(a) corrupt_sanstype: the structured SansType corruptions of the paper.
(b) delete_tokens: random token deletion (the ablation). `$` and `~` are layout, not code, and are
    kept so that line structure survives; every code token is deleted with probability p.
(d) corrupt_authors / delete_tokens_authors: the authors' structured corruption of their SansType
    format (SANSTYPE.md §6) and the random-deletion ablation in that format.
(c) drrepair_corruptions: DrRepair-style (Yasunaga & Liang 2020) one-line edits for SPoC; a copy is
    kept only if it fails to compile (checked in the sandbox with g++ -fsyntax-only).
"""
import logging
import re

from composed_ft.code import sanstype_authors as sa
from composed_ft.code.cpp_tokenize import INDENT, LINE_SEP, split_lines

log = logging.getLogger(__name__)

SANSTYPE_TYPES = ("int", "bool", "string")
_VAR = re.compile(r"var_\d+$")


def join_lines(lines):
    return f" {LINE_SEP} ".join(" ".join([INDENT] * k + toks) for k, toks in lines)


# ---- (a) structured SansType corruptions -----------------------------------------------------

def _sanstype_variants(toks, all_vars, rng):
    """Corrupted variants of one SansType code line (list of token lists; [] = delete the line),
    or None when the line is not corruptible (braces, `if`, main)."""
    if toks[0] in SANSTYPE_TYPES and len(toks) >= 3 and (_VAR.match(toks[1]) or toks[1] == "temp"):
        wrong = rng.choice([t for t in SANSTYPE_TYPES if t != toks[0]])
        return [[wrong] + toks[1:], toks[1:]]  # wrong type, missing type
    if len(toks) >= 3 and (_VAR.match(toks[0]) or toks[0] == "temp") and toks[1] in ("=", "+=", "-="):
        return [[rng.choice(SANSTYPE_TYPES)] + toks]  # spurious (re)declaration
    if toks[:2] == ["cin", ">>"] and len(toks) == 4:
        v = toks[2]
        others = [w for w in all_vars if w != v] or [v]
        return [["cin", v, ";"], ["cin", ">>", v, ",", rng.choice(others), ";"], ["cin", "<<", v, ";"]]
    if toks[:2] == ["cout", "<<"]:
        return [[]]  # deleted print line
    return None


def corrupt_sanstype(tgt, rng, p_corrupt=0.9, max_lines=3):
    """With probability p_corrupt, replace 1..max_lines corruptible lines of a SansType program by a
    corrupted variant (wrong/missing declaration type, spurious declaration type on an assignment,
    malformed cin, deleted print line); otherwise return the program unchanged."""
    lines = split_lines(tgt)
    if rng.random() >= p_corrupt:
        return tgt
    all_vars = sorted({t for _, toks in lines for t in toks if _VAR.match(t)})
    options = [(i, v) for i, (_, toks) in enumerate(lines)
               for v in [_sanstype_variants(toks, all_vars, rng)] if v]
    if not options:
        return tgt
    chosen = rng.sample(options, min(len(options), rng.randint(1, max_lines)))
    new = list(lines)
    for i, variants in chosen:
        new[i] = (lines[i][0], rng.choice(variants))
    return join_lines([(k, toks) for k, toks in new if toks])


# ---- (b) random token deletion ---------------------------------------------------------------

def delete_tokens(tgt, rng, p=0.15):
    out = []
    for k, toks in split_lines(tgt):
        kept = [t for t in toks if rng.random() >= p]
        if kept:
            out.append((k, kept))
    return join_lines(out)


# ---- (c) DrRepair-style one-line corruptions -------------------------------------------------

CPP_TYPES = ("int", "long", "double", "float", "char", "string", "bool", "short", "unsigned", "auto",
             "void", "long long")
CPP_KEYWORDS = {"for", "while", "if", "else", "return", "break", "continue", "do", "switch", "case",
                "default", "const", "static", "struct", "class", "using", "namespace", "true", "false",
                "sizeof", "new", "delete", "signed", "typedef", "template", "typename", "main"}
KNOWN_NAMES = {"cin", "cout", "endl", "std", "max", "min", "abs", "swap", "sort", "printf", "scanf",
               "vector", "map", "set", "pair", "size", "length", "push_back", "begin", "end", "sqrt",
               "pow", "memset", "getline", "string", "npos", "first", "second", "make_pair", "puts", "gets"}
BRACKETS = ("(", ")", "[", "]", "{", "}")
PUNCT = (";", ",")
OPERATORS = ("+", "-", "*", "/", "%", "=", "==", "!=", "<", ">", "<=", ">=", "<<", ">>", "&&", "||",
             "++", "--", "+=", "-=", "!", "&", "|", ".")
FAMILIES = (("syntax", 0.30), ("type", 0.15), ("declaration", 0.20), ("identifier", 0.30), ("keyword", 0.05))
TRIVIAL = {("}",), ("{",), ("return", "0", ";"), ("int", "main", "(", ")", "{"), ("}", "else", "{")}
_IDENT = re.compile(r"[A-Za-z_]\w*$")


def _identifiers(toks):
    return [t for t in toks if _IDENT.match(t) and t not in CPP_KEYWORDS and t not in CPP_TYPES
            and t not in KNOWN_NAMES]


def _edit_syntax(toks, names, rng):
    cands = [i for i, t in enumerate(toks) if t in BRACKETS or t in PUNCT or t in OPERATORS or t[:1] in "\"'"]
    if not cands:
        return None
    i = rng.choice(cands)
    t = toks[i]
    if t[:1] in "\"'":  # a literal: drop one of its quotes
        return toks[:i] + [t[:-1] if rng.random() < 0.5 else t[1:]] + toks[i + 1:]
    op = rng.choice(("delete", "duplicate", "replace"))
    if op == "delete":
        return toks[:i] + toks[i + 1:]
    if op == "duplicate":
        return toks[:i + 1] + [t] + toks[i + 1:]
    pool = BRACKETS if t in BRACKETS else PUNCT if t in PUNCT else OPERATORS
    return toks[:i] + [rng.choice([x for x in pool if x != t])] + toks[i + 1:]


def _type_positions(toks):
    return [i for i, t in enumerate(toks) if t in CPP_TYPES]


def _edit_type(toks, names, rng):
    pos = _type_positions(toks)
    op = rng.choice(("replace", "delete", "insert")) if pos else "insert"
    if op == "insert":
        ids = [i for i, t in enumerate(toks) if t in names]
        if not ids:
            return None
        i = rng.choice(ids)
        return toks[:i] + rng.choice(CPP_TYPES).split() + toks[i:]
    i = rng.choice(pos)
    if op == "delete":
        return toks[:i] + toks[i + 1:]
    return toks[:i] + rng.choice([t for t in CPP_TYPES if t != toks[i]]).split() + toks[i + 1:]


def _edit_declaration(toks, names, rng):
    pos = _type_positions(toks)
    if not pos:
        return None
    t_end = pos[-1] + 1
    declared = [i for i in range(t_end, len(toks)) if toks[i] in names and
                (i == t_end or toks[i - 1] == ",")]
    op = rng.choice(("add", "replace", "delete"))
    if op == "add" or not declared:
        return toks[:t_end] + [rng.choice(sorted(names)), ","] + toks[t_end:]
    i = rng.choice(declared)
    if op == "replace":
        return toks[:i] + [rng.choice(sorted(names))] + toks[i + 1:]
    # delete the name and its initializer up to the next top-level ',' or ';'
    j = i + 1
    depth = 0
    while j < len(toks) and not (depth == 0 and toks[j] in (",", ";")):
        depth += int(toks[j] in ("(", "[", "{")) - int(toks[j] in (")", "]", "}"))
        j += 1
    if j < len(toks) and toks[j] == ",":
        j += 1
    elif i > 0 and toks[i - 1] == ",":
        i -= 1
    return toks[:i] + toks[j:]


def _typo(name, rng):
    k = rng.randrange(len(name))
    if len(name) > 1 and rng.random() < 0.5:
        return name[:k] + name[k + 1:]
    return name[:k] + rng.choice("abcdefghijklmnopqrstuvwxyz") + name[k:]


def _edit_identifier(toks, names, rng):
    ids = [i for i, t in enumerate(toks) if t in names]
    if not ids:
        return None
    i = rng.choice(ids)
    op = rng.choice(("replace", "typo", "delete"))
    if op == "delete":
        return toks[:i] + toks[i + 1:]
    if op == "typo":
        return toks[:i] + [_typo(toks[i], rng)] + toks[i + 1:]
    others = sorted(n for n in names if n != toks[i])
    return toks[:i] + [rng.choice(others) if others else _typo(toks[i], rng)] + toks[i + 1:]


def _edit_keyword(toks, names, rng):
    swaps = {"for": "while", "while": "for", "if": "while", "else": "if"}
    kw = [i for i, t in enumerate(toks) if t in swaps or t in ("return", "break", "continue")]
    calls = [i for i in range(len(toks) - 1) if _IDENT.match(toks[i]) and toks[i + 1] == "("
             and toks[i] not in ("for", "while", "if", "switch")]
    choices = [("kw", i) for i in kw] + [("call", i) for i in calls]
    if not choices:
        return None
    kind, i = rng.choice(choices)
    if kind == "call":
        return toks[:i] + toks[i + 1:]
    t = toks[i]
    if t in swaps and rng.random() < 0.7:
        new = swaps[t] if t != "if" else rng.choice(("while", "else if"))
        return toks[:i] + new.split() + toks[i + 1:]
    return toks[:i] + toks[i + 1:]


EDITS = {"syntax": _edit_syntax, "type": _edit_type, "declaration": _edit_declaration,
         "identifier": _edit_identifier, "keyword": _edit_keyword}


def corrupt_one_line(tgt, rng, tries=20):
    """One DrRepair-style edit of exactly one non-trivial line: returns (corrupted tgt, family) or
    None if no edit applied after `tries` attempts."""
    lines = split_lines(tgt)
    cands = [i for i, (_, toks) in enumerate(lines) if tuple(toks) not in TRIVIAL]
    if not cands:
        return None
    names = {t for _, toks in lines for t in _identifiers(toks)}
    fams, weights = zip(*FAMILIES)
    for _ in range(tries):
        i = rng.choice(cands)
        fam = rng.choices(fams, weights)[0]
        new = EDITS[fam](lines[i][1], names, rng)
        if new is None or new == lines[i][1]:
            continue
        out = list(lines)
        out[i] = (lines[i][0], new)
        return join_lines([(k, toks) for k, toks in out if toks]), fam
    return None


def drrepair_corruptions(programs, copies, rng, jobs=None, attempts_per_copy=3, std=None):
    """For each clean program (tokenized), up to `copies` distinct one-line corruptions that fail to
    compile. Returns [(corrupted, clean)] in program order (deterministic given rng)."""
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import compile_check

    cands = []
    for g, tgt in enumerate(programs):
        seen, mine = set(), []
        for _ in range(copies * attempts_per_copy):
            r = corrupt_one_line(tgt, rng)
            if r and r[0] not in seen and r[0] != tgt:
                seen.add(r[0])
                mine.append(r[0])
        cands.append(mine)
    # Keep each program's first `copies` failing candidates, in order. Compiling in rounds — each
    # round only as many next candidates as a program still lacks — selects exactly those while
    # compiling far fewer candidates than all of them (most corruptions fail to compile).
    kept, pos, n_compiled = [[] for _ in programs], [0] * len(programs), 0
    while True:
        batch = []
        for g, mine in enumerate(cands):
            need = copies - len(kept[g])
            batch += [(g, c) for c in mine[pos[g]:pos[g] + need]]
            pos[g] += max(need, 0)
        if not batch:
            break
        ok = compile_check([detokenize_program(c) for _, c in batch], jobs=jobs, std=std)
        n_compiled += len(batch)
        for (g, c), compiles in zip(batch, ok):
            if not compiles:
                kept[g].append(c)
    out = [(c, programs[g]) for g in range(len(programs)) for c in kept[g]]
    log.info("DrRepair corruptions: %d failing copies of %d programs (%d of %d candidates compiled)",
             len(out), len(programs), n_compiled, sum(map(len, cands)))
    return out


# ---- line-level pairs for the denoiser's optional line-wise pre-training ---------------------

def changed_line_windows(corrupted, clean, context=1):
    """(corrupted window, clean window) pairs around the lines where two versions of a program
    differ, `context` unchanged lines on each side. A DrRepair-style copy differs in one line (or
    lacks it), so each copy gives one short pair: the denoiser's line-wise pre-training stage
    (`denoise --noise given-lines`) learns the local repairs on these before seeing whole programs."""
    import difflib
    a, b = corrupted.split(f" {LINE_SEP} "), clean.split(f" {LINE_SEP} ")
    pairs = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lo_a, lo_b = max(i1 - context, 0), max(j1 - context, 0)
        k = min(i1 - lo_a, j1 - lo_b)  # the same number of context lines on both sides
        m = min(len(a) - i2, len(b) - j2, context)
        pairs.append((f" {LINE_SEP} ".join(a[i1 - k:i2 + m]), f" {LINE_SEP} ".join(b[j1 - k:j2 + m])))
    return pairs


# ---- (d) the authors' SansType corruption (../shared/SANSTYPE.md §6) ---------------------------

_T = r"(int|bool|string)"
_V = r"(var_\d|temp)"
_LIT = r'(-?\d+|true|false|"str_\d")'
_LINE_KINDS = [  # (kind, pattern over one code line)
    ("init", re.compile(rf"{_T} {_V} = {_LIT} ;$")),
    ("init", re.compile(rf"{_T} {_V} ; \2 = {_LIT} ;$")),
    ("instantiate", re.compile(rf"{_T} {_V} ;$")),
    ("cin", re.compile(rf"cin >> {_V} ;$")),
    ("add", re.compile(rf"{_V} (?:\+= |= \1 \+ )(-?\d+|\"str_\d\") ;$")),
    ("sub", re.compile(rf"{_V} (?:-= |= \1 - )(-?\d+) ;$")),
    ("and", re.compile(rf"{_V} = \1 && {_LIT} ;$")),
    ("prepend", re.compile(rf"{_V} = (\"str_\d\") \+ \1 ;$")),
    ("set", re.compile(rf"{_V} = {_LIT} ;$")),
    ("maxmin", re.compile(rf"{_V} = (max|min) \( \1 , {_V} \) ;$")),
    ("print", re.compile(rf"cout << {_V} ;$")),
    ("swap", re.compile(rf"if \( {_V} \) \{{ (.*)\}}$")),
]
_SWAP_TAIL = re.compile(rf"{_T} temp = {_V} ; \2 = {_V} ; \3 = temp ; $")


def parse_line(line):
    """(kind, match) of one body line of the authors' SansType, or (None, None)."""
    for kind, pat in _LINE_KINDS:
        m = pat.match(line)
        if m:
            return kind, m
    return None, None


def _other_type(rng, t):
    return rng.choice([x for x in sa.TYPES if x != t])


def _noised_init(rng, t, v, x):
    return rng.choice((f"{_other_type(rng, t)} {v} = {x} ;", f"{v} = {x} ;",
                       f"{_other_type(rng, t)} {v} ; {v} = {x} ;"))


def noised_variant(line, rng):
    """The noised variant of one clean body line (SANSTYPE.md §6): wrong/missing/extra type,
    malformed cin, or "" (a deleted print line). Some variants equal the clean line (no-ops), as
    upstream. A line of no known kind is returned unchanged."""
    kind, m = parse_line(line)
    R = rng.choice(sa.TYPES)
    if kind == "init":
        return _noised_init(rng, m.group(1), m.group(2), m.group(3))
    if kind == "instantiate":
        return f"{_other_type(rng, m.group(1))} {m.group(2)} ;"
    if kind == "cin":
        v = m.group(1)
        return rng.choice((f"cin {v} ;", f"cin >> {v} ;", f"cin << {v} ;"))
    if kind in ("add", "sub"):
        v, k = m.group(1), m.group(2)
        if k.startswith('"'):   # string append
            return rng.choice((f"{R} {v} = {v} + {k} ;", f"{R} {v} += {k} ;", f"string {v} = {v} + {k} ;",
                               f"string {v} += {k} ;"))
        op = "+" if kind == "add" else "-"
        return rng.choice((f"int {v} {op}= {k} ;", f"int {v} = {v} {op} {k} ;", f"{R} {v} {op}= {k} ;",
                           f"{R} {v} = {v} {op} {k} ;"))
    if kind == "set":
        return rng.choice((line, f"{R} {line}"))
    if kind == "and":
        v, b = m.group(1), m.group(2)
        return rng.choice((f"bool {v} = {v} && {b} ;", f"{R} {v} = {v} && {b} ;"))
    if kind == "prepend":
        v, s = m.group(1), m.group(2)
        return rng.choice((f"{R} {v} = {s} + {v} ;", f"string {v} = {s} + {v} ;"))
    if kind == "maxmin":
        return f"{R} {line}"
    if kind == "print":
        return ""
    if kind == "swap":
        v, inner = m.group(1), m.group(2)
        tail = _SWAP_TAIL.search(inner)
        if tail is None:
            return line
        t, a, b = tail.group(1), tail.group(2), tail.group(3)
        head = ""
        if inner.startswith("~ "):   # the block-local declarations: each gets its noised variant
            for decl in inner[:tail.start()].split("~ ")[1:]:
                dm = parse_line(decl.strip())
                head += "~ " + (_noised_init(rng, dm[1].group(1), dm[1].group(2), dm[1].group(3))
                                if dm[0] == "init" else decl.strip()) + " "
        swap = f"temp = {a} ; {a} = {b} ; {b} = temp ; }}"
        return f"if ( {v} ) {{ " + head + rng.choice((swap, f"{_other_type(rng, t)} {swap}"))
    return line


def corrupt_authors(tgt, rng, p_corrupt=0.9, max_lines=3):
    """The authors' structured corruption of one program: with p 0.9, m ~ U{1..3} body lines drawn
    with replacement are replaced by their noised variant (a line drawn twice keeps one variant);
    else the program is returned clean. A deleted print leaves an empty segment (` $  $ `)."""
    body = sa.body_lines(tgt)
    if body is None:
        raise ValueError(f"not a SansType program in the authors' format: {tgt[:80]!r}")
    if rng.random() >= p_corrupt or not body:
        return tgt
    m = rng.randint(1, max_lines)
    chosen = sorted({rng.randrange(len(body)) for _ in range(m)})
    new = list(body)
    for i in chosen:
        new[i] = noised_variant(body[i], rng)
    return sa.serialize_tgt(new)


def delete_tokens_authors(tgt, rng, p=0.15, p_corrupt=0.9):
    """The random-deletion ablation in the authors' format: with p 0.9 every body token is dropped
    with probability p (header, footer and the line structure are kept); else clean."""
    body = sa.body_lines(tgt)
    if body is None:
        raise ValueError(f"not a SansType program in the authors' format: {tgt[:80]!r}")
    if rng.random() >= p_corrupt:
        return tgt
    return sa.serialize_tgt([" ".join(t for t in line.split() if rng.random() >= p) for line in body])
