"""C++ tokenizer for the one-line program format of the paper's data.

A program is written on one line: its lines joined by ` $ `, each line a space-separated token
sequence preceded by one `~` token per indentation level, e.g.

    int main ( ) { $ ~ int var_0 = 5 ; $ ~ cout << var_0 << endl ; $ }

Fixes over the authors' tokenizer, which broke these:
- `::`, `<<=`, `>>=`, `->`, `++` ... are single tokens (longest match), `1LL`, `0x1F`, `1e-9`,
  `1'000` are single number tokens;
- string and char literals are single tokens kept verbatim, spaces and `$` inside them included;
  the detokenizer recognizes literals before splitting, so ` $ ` or `~` inside a literal is safe;
- `#include <bits/stdc++.h>` keeps its header name as one token.
- a bitwise-not `~` at the start of a line (e.g. a destructor) would read as indentation, so it is
  written as its C++ alternative token `compl`, which means the same to the compiler.

Detokenized code is the tokens joined by single spaces (indented by two spaces per level): it is
not byte-identical to the original, but it compiles to the same program.
"""
import re

_STRING = r'(?:u8|u|U|L)?"(?:[^"\\\n]|\\.)*"'
_CHAR = r"(?:u8|u|U|L)?'(?:[^'\\\n]|\\.)*'"
_NUMBER = (r"0[xX][0-9a-fA-F']+[uUlL]*"
           r"|0[bB][01']+[uUlL]*"
           r"|(?:\d[\d']*(?:\.[\d']*)?|\.\d[\d']*)(?:[eE][+-]?\d+)?[fFlLuU]*")
_NAME = r"[A-Za-z_$][\w$]*"
_OPERATORS = sorted(
    "<<= >>= ->* ... :: -> ++ -- << >> <= >= == != && || += -= *= /= %= &= |= ^= .* ## "
    "+ - * / % & | ^ ~ ! = < > ? : ; , . ( ) [ ] { } # \\".split(), key=len, reverse=True)
_OPERATOR = "|".join(re.escape(o) for o in _OPERATORS)

_TOKEN_RE = re.compile(rf"\s*({_STRING}|{_CHAR}|{_NUMBER}|{_NAME}|{_OPERATOR}|\S)")
_INCLUDE_RE = re.compile(r"\s*#\s*include\s*(<[^>\n]*>|\"[^\"\n]*\")")
_DEFINE_FN_RE = re.compile(r"\s*#\s*define\s+([A-Za-z_]\w*\()")
# detokenizer: literals first, so spaces, `$` and `~` inside them stay inside
_DETOK_RE = re.compile(rf"\s*({_STRING}|{_CHAR}|\S+)")
_LITERAL_RE = re.compile(_STRING + "|" + _CHAR)

LINE_SEP = "$"
INDENT = "~"


def _strip_comments(line, in_block):
    """Remove // and /* */ comments outside literals; returns (text, still_in_block_comment)."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if in_block:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out), True
            i, in_block = j + 2, False
            out.append(" ")
            continue
        m = _LITERAL_RE.match(line, i)
        if m:
            out.append(m.group(0))
            i = m.end()
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block, i = True, i + 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_block


def tokenize_line(line):
    """Tokens of one line of C++ (comments already removed)."""
    toks = []
    pos = 0
    m = _INCLUDE_RE.match(line)
    if m:
        return ["#include", m.group(1)]
    m = _DEFINE_FN_RE.match(line)
    if m:  # function-like macro: the name and `(` must stay glued
        toks, pos = ["#define", m.group(1)], m.end()
    while True:
        m = _TOKEN_RE.match(line, pos)
        if not m:
            break
        toks.append(m.group(1))
        pos = m.end()
    return toks


def _indent_of(raw, unit):
    expanded = raw.expandtabs(unit)
    return (len(expanded) - len(expanded.lstrip(" "))) // unit


def tokenize_lines(lines):
    """[(indent, code_line)] → one-line format. Blank and comment-only lines are dropped."""
    parts = []
    in_block = False
    for indent, code in lines:
        text, in_block = _strip_comments(code, in_block)
        toks = tokenize_line(text)
        if not toks:
            continue
        if toks[0] == "~":
            toks[0] = "compl"
        parts.append(" ".join([INDENT] * indent + toks))
    return f" {LINE_SEP} ".join(parts)


def tokenize_program(code_text, indent_unit=None):
    """C++ source text → one-line format. Indentation levels come from leading whitespace (a tab
    or `indent_unit` spaces per level; the unit defaults to the smallest indentation seen)."""
    raw = [ln.rstrip() for ln in code_text.splitlines()]
    raw = [ln for ln in raw if ln.strip()]
    if indent_unit is None:
        widths = [len(ln.expandtabs(4)) - len(ln.expandtabs(4).lstrip(" ")) for ln in raw]
        widths = [w for w in widths if w > 0]
        indent_unit = min(widths) if widths else 4
    return tokenize_lines([(_indent_of(ln, indent_unit), ln) for ln in raw])


def split_lines(one_line, indent_anywhere=False):
    """One-line format → [(indent, [tokens])]; literal tokens are kept whole.

    indent_anywhere: every `~` token is a layout marker, also in the middle of a line (SansType,
    where a swap block is one line whose block-local declarations are each preceded by `~`, and
    `~` is never C++'s bitwise not); those after the line's first code token are dropped."""
    lines = [[]]
    for m in _DETOK_RE.finditer(one_line):
        tok = m.group(1)
        if tok == LINE_SEP:
            lines.append([])
        else:
            lines[-1].append(tok)
    out = []
    for toks in lines:
        k = 0
        while k < len(toks) and toks[k] == INDENT:
            k += 1
        if k < len(toks):
            rest = [t for t in toks[k:] if t != INDENT] if indent_anywhere else toks[k:]
            out.append((k, rest))
    return out


def detokenize_program(one_line, indent="  ", indent_anywhere=False):
    """One-line format → compilable C++ text (one code line per line, indented). indent_anywhere:
    see split_lines (SansType data sets)."""
    return "".join(f"{indent * k}{' '.join(toks)}\n" for k, toks in split_lines(one_line, indent_anywhere))
