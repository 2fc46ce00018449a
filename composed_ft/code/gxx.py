"""The compiler side of the judge: g++, its flags, the precompiled <bits/stdc++.h> (`ensure_pch`: a small
program's compile drops from ~1.6 s to ~0.25 s) and the build-once cache that the PCH and the sandbox's
helper are built into. Nothing here runs an untrusted program (sandbox.py does)."""
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

from composed_ft.core.io import build_once

log = logging.getLogger(__name__)

DEFAULT_HEADER = "#include <bits/stdc++.h>\nusing namespace std;\n"
BASE_FLAGS = ("-O0", "-w", "-fmax-errors=5")
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


def gxx():
    return os.environ.get("CXX_SANDBOX", "g++")


def link_flags():
    """Flags for the program compile only (not the PCH): -pipe (no temp .s/.o files between cc1plus,
    as and ld) and the gold linker when binutils ships it; linking with GNU ld's default
    (bfd) was a large share of a PCH compile (scripts/bench_evaluator.py measures both)."""
    flags = ["-pipe"]
    if os.environ.get("CFT_LINKER", "gold") == "gold" and shutil.which("ld.gold", path=CLEAN_PATH):
        flags.append("-fuse-ld=gold")
    return flags


def compile_flags(std=None):
    """g++ flags for programs and the PCH (they must match for the PCH to be used)."""
    flags = list(BASE_FLAGS)
    if std:
        flags.append(f"-std={std}")
    return flags


def real_header_path():
    out = subprocess.run(
        [gxx(), "-x", "c++", "-M", "-"], input="#include <bits/stdc++.h>\n",
        capture_output=True, text=True, env=clean_env(tempfile.gettempdir()), check=True
    ).stdout
    for tok in out.replace("\\\n", " ").split():
        if tok.endswith("bits/stdc++.h"):
            return tok
    raise RuntimeError("could not locate bits/stdc++.h via g++ -M")


def gxx_version():
    return subprocess.run([gxx(), "--version"], capture_output=True, text=True, check=True).stdout


_PCH_MEMO = {}


def ensure_pch(std=None):
    """Build (once) and return an include dir whose bits/stdc++.h.gch matches `std`; None on failure.

    Keyed by g++ version + flags. Dirs are 0755 / files 0644 so the sandbox uids can read but not
    write."""
    flags = compile_flags(std)
    if tuple(flags) in _PCH_MEMO:
        return _PCH_MEMO[tuple(flags)]
    result = None

    def build(tmp):
        os.makedirs(os.path.join(tmp, "bits"))
        hdr = os.path.join(tmp, "bits", "stdc++.h")
        with open(hdr, "w") as f:
            # the real header by absolute path, so this file never includes itself
            f.write(f"#include <{real_header_path()}>\n")
        log.info("building precompiled header for g++ %s (once)", " ".join(flags))
        subprocess.run([gxx(), *flags, "-x", "c++-header", hdr, "-o", hdr + ".gch"],
                       check=True, capture_output=True, env=clean_env(tmp))

    try:
        key = hashlib.sha256((gxx_version() + "\0" + " ".join(flags)).encode()).hexdigest()[:16]
        final = build_once("pch", key, build)
        if os.path.exists(os.path.join(final, "bits", "stdc++.h.gch")):
            result = final
    except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
        log.warning("precompiled header unavailable (%s); compiling without it (slower)", e)
    _PCH_MEMO[tuple(flags)] = result
    return result


def clean_env(home):
    return {"PATH": CLEAN_PATH, "LANG": "C", "LC_ALL": "C", "HOME": home, "TMPDIR": home}
