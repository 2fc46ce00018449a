"""Each corruption family does what it says, seeded."""
import random

import pytest

from composed_ft.code import corruptions as C
from composed_ft.code.cpp_tokenize import split_lines
from composed_ft.code.sanstype import generate_program

PROG = ("int main ( ) { $ ~ int n , m ; $ ~ cin >> n >> m ; $ ~ vector < int > a ( n ) ; $ "
        "~ for ( int i = 0 ; i < n ; i ++ ) { cin >> a [ i ] ; } $ ~ if ( n > m ) { $ "
        "~ ~ cout << \"YES\" << endl ; $ ~ } else { $ ~ ~ cout << max ( n , m ) << endl ; $ ~ } $ "
        "~ return 0 ; $ }")


def _changed_lines(a, b):
    la, lb = split_lines(a), split_lines(b)
    return la, lb


def test_structured_sanstype_corruptions():
    rng = random.Random(0)
    progs = [generate_program(random.Random(i))["tgt"] for i in range(300)]
    out = [C.corrupt_sanstype(p, rng) for p in progs]
    changed = [o != p for o, p in zip(out, progs)]
    assert 0.83 < sum(changed) / len(progs) < 0.97
    seen = {"missing_or_wrong_type": 0, "spurious_type": 0, "cin": 0, "deleted_print": 0}
    for o, p in zip(out, progs):
        lo, lp = split_lines(o), split_lines(p)
        if o == p:
            continue
        if len(lo) < len(lp):
            seen["deleted_print"] += 1
        diff = [(a, b) for a, b in zip(lo, lp) if a != b] if len(lo) == len(lp) else []
        assert len(diff) <= 3
        for (_, a), (_, b) in diff:
            if a[0] in C.SANSTYPE_TYPES and b[0] not in C.SANSTYPE_TYPES:
                seen["spurious_type"] += 1
            elif a[0] == "cin":
                seen["cin"] += 1
            else:
                seen["missing_or_wrong_type"] += 1
    assert all(v > 0 for v in seen.values()), seen
    assert [C.corrupt_sanstype(p, random.Random(3)) for p in progs[:20]] == \
        [C.corrupt_sanstype(p, random.Random(3)) for p in progs[:20]]


def test_token_deletion_rate_keeps_layout():
    rng = random.Random(0)
    prog = generate_program(random.Random(1))["tgt"]
    n_code = sum(len(t) for _, t in split_lines(prog))
    kept = [sum(len(t) for _, t in split_lines(C.delete_tokens(prog, rng))) for _ in range(300)]
    rate = 1 - sum(kept) / (300 * n_code)
    assert 0.12 < rate < 0.18


@pytest.mark.parametrize("family", list(C.EDITS))
def test_each_drrepair_family_edits_one_line(family):
    rng = random.Random(0)
    lines = split_lines(PROG)
    names = {t for _, toks in lines for t in C._identifiers(toks)}
    assert names == {"n", "m", "a", "i"}
    edited = 0
    for _ in range(50):
        i = rng.choice([k for k, (_, t) in enumerate(lines) if tuple(t) not in C.TRIVIAL])
        new = C.EDITS[family](lines[i][1], names, rng)
        if new is not None and new != lines[i][1]:
            edited += 1
    assert edited > 10


def test_corrupt_one_line_changes_exactly_one_nontrivial_line():
    rng = random.Random(0)
    fams = set()
    for _ in range(200):
        out, fam = C.corrupt_one_line(PROG, rng)
        fams.add(fam)
        a, b = split_lines(out), split_lines(PROG)
        assert len(a) == len(b)
        diff = [j for j in range(len(a)) if a[j] != b[j]]
        assert len(diff) == 1 and tuple(b[diff[0]][1]) not in C.TRIVIAL
    assert fams == set(C.EDITS)


def test_drrepair_keeps_only_failing_distinct_copies():
    out = C.drrepair_corruptions([PROG], copies=3, rng=random.Random(0), jobs=2)
    assert 1 <= len(out) <= 3
    assert len({c for c, _ in out}) == len(out)
    from composed_ft.code.cpp_tokenize import detokenize_program
    from composed_ft.code.judge import compile_check

    assert compile_check([detokenize_program(PROG)])[0]
    assert not any(compile_check([detokenize_program(c) for c, _ in out]))


def test_drrepair_rounds_select_what_compiling_everything_selects(monkeypatch):
    """Compiling candidates in rounds keeps, per program, exactly its first `copies` failing
    candidates — what compiling all of them and filtering would keep — with fewer compiles."""
    import zlib

    import composed_ft.code.judge as E
    fails = lambda text: zlib.crc32(text.encode()) % 3 != 0  # noqa: E731  (a deterministic stand-in for g++)
    calls = []

    def fake_check(texts, jobs=None, std=None):
        calls.append(len(texts))
        return [not fails(t) for t in texts]

    monkeypatch.setattr(E, "compile_check", fake_check)
    progs = [PROG, PROG.replace("a", "b"), PROG.replace("0", "7")]
    got = C.drrepair_corruptions(progs, copies=2, rng=random.Random(1))
    # brute force with the same candidates (same rng stream)
    from composed_ft.code.cpp_tokenize import detokenize_program
    rng, want = random.Random(1), []
    for tgt in progs:
        seen, mine = set(), []
        for _ in range(2 * 3):
            r = C.corrupt_one_line(tgt, rng)
            if r and r[0] not in seen and r[0] != tgt:
                seen.add(r[0])
                mine.append(r[0])
        want += [(c, tgt) for c in [c for c in mine if fails(detokenize_program(c))][:2]]
    assert got == want and len(got) > 0
    n_cands = len(progs) * 6  # at most; at least one program needs fewer than all of its candidates
    assert sum(calls) < n_cands


def test_changed_line_windows_for_line_wise_pretraining():
    """Each one-line DrRepair copy gives one window: the changed line with up to `context`
    unchanged lines on each side, the same lines on both sides of the pair."""
    clean = "int main ( ) { $ ~ int a ; $ ~ cin >> a ; $ ~ a += 2 ; $ ~ cout << a << endl ; $ }"
    edited = clean.replace("~ a += 2 ;", "~ a += 2")
    assert C.changed_line_windows(edited, clean, context=1) == [
        ("~ cin >> a ; $ ~ a += 2 $ ~ cout << a << endl ;", "~ cin >> a ; $ ~ a += 2 ; $ ~ cout << a << endl ;")]
    assert C.changed_line_windows(edited, clean, context=0) == [("~ a += 2", "~ a += 2 ;")]
    # a deleted line: the window holds its neighbours, the clean side the line itself
    dropped = clean.replace(" $ ~ int a ;", "")
    assert C.changed_line_windows(dropped, clean, context=1) == [
        ("int main ( ) { $ ~ cin >> a ;", "int main ( ) { $ ~ int a ; $ ~ cin >> a ;")]
    # an edit in the first line: no context before it exists
    first = clean.replace("int main ( ) {", "int main ( {")
    assert C.changed_line_windows(first, clean, context=2)[0] == (
        "int main ( { $ ~ int a ; $ ~ cin >> a ;", "int main ( ) { $ ~ int a ; $ ~ cin >> a ;")
    assert C.changed_line_windows(clean, clean) == []
    rng = random.Random(0)
    for _ in range(30):  # real corruptions: exactly one window each, and it differs
        out = C.corrupt_one_line(clean, rng)
        if out:
            (a, b), = C.changed_line_windows(out[0], clean)
            assert a != b and len(b.split(" $ ")) <= 3
