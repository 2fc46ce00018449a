"""The manifest's package and licence columns: which Debian package (or data/fonts-extra/<pkg>)
each font file came from, and that package's licence (its copyright file, or texlive's Licenses.gz)."""
import gzip
import os
import re
import subprocess


def _extra_package(path):
    """For a file under .../data/fonts-extra/<pkg>/..., the package it was unpacked from."""
    parts = os.path.abspath(path).split(os.sep)
    for k in range(len(parts) - 2):
        if parts[k] == "data" and parts[k + 1] == "fonts-extra":
            return parts[k + 2], os.sep.join(parts[: k + 3])
    return None, None


def _glob_escape(path):
    """dpkg -S takes fnmatch patterns: escape the metacharacters of a literal path."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def dpkg_owners(paths, chunk=200):
    """{path: package} for the paths dpkg knows (one `dpkg -S` call per chunk of paths)."""
    owners = {}
    paths = list(paths)
    for s in range(0, len(paths), chunk):
        try:
            out = subprocess.run(["dpkg", "-S", *map(_glob_escape, paths[s: s + chunk])],
                                 capture_output=True, text=True, check=False).stdout
        except OSError:
            return owners
        for line in out.splitlines():
            k = line.find(": /")
            if k < 0 or line.startswith("diversion "):
                continue
            pkg = line[:k].split(",")[0].strip().split(":")[0]
            owners[line[k + 2:]] = pkg
    return owners


_LICENSE_PATTERNS = (
    (r"SIL Open Font License|\bOFL\b", "OFL-1.1"),
    (r"GUST Font License", "GUST-Font-License"),
    (r"LaTeX Project Public License|\bLPPL\b", "LPPL"),
    (r"Apache License", "Apache-2.0"),
    (r"GNU (Affero|AFFERO)", "AGPL"),
    (r"GNU Lesser|GNU LESSER|\bLGPL\b", "LGPL"),
    (r"GNU General Public License|GNU GENERAL PUBLIC LICENSE|\bGPL\b", "GPL"),
    (r"Bitstream Vera", "Bitstream-Vera"),
    (r"Creative Commons", "CC"),
    (r"public domain", "public-domain"),
    (r"Permission is hereby granted, free of charge", "MIT"),
)


def parse_copyright(path):
    """Short licence name from a Debian copyright file, or the file path when it can't be parsed."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    stanzas = re.split(r"\n\s*\n", text)
    first = None
    for st in stanzas:
        files = re.search(r"^Files:\s*(.*)$", st, re.M)
        lic = re.search(r"^License:[ \t]*(\S.*)$", st, re.M)
        if not files or not lic:
            continue
        name = lic.group(1).strip()
        if files.group(1).strip() == "*":
            return name
        if first is None and not files.group(1).strip().startswith("debian/"):
            first = name
    if first:
        return first
    for pat, name in _LICENSE_PATTERNS:
        if re.search(pat, text):
            return name
    return path


def tex_licenses(licenses_gz):
    """Parse texlive's Licenses.gz: {'texmf-dist/fonts/.../dir': licence} for the '<dir>/*' and
    exact-file patterns listed under each 'package: licence' line."""
    table = {}
    try:
        with gzip.open(licenses_gz, "rt", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError):
        return table
    current = ""
    for line in lines:
        m = re.match(r"^(\S+):\s*(.*)$", line)
        if m and not line.startswith("texmf-dist/"):
            current = m.group(2).strip()
            continue
        line = line.strip()
        if line.startswith("texmf-dist/") and current:
            table[line[:-2] if line.endswith("/*") else line] = current
    return table


def _tex_license(path, table):
    k = path.find("texmf-dist/")
    if k < 0:
        return ""
    rel = path[k:]
    while rel and rel != "texmf-dist":
        if rel in table:
            return table[rel]
        rel = os.path.dirname(rel)
    return ""


def add_package_and_license(meta):
    """Fill 'package' and 'license' of every manifest row (in place)."""
    system = [m["file"] for m in meta if _extra_package(m["file"])[0] is None]
    owners = dpkg_owners(sorted(set(system)))
    copyright_cache, tex_cache = {}, {}
    for m in meta:
        pkg, root = _extra_package(m["file"])
        if pkg is None:
            pkg, root = owners.get(m["file"], ""), "/"
        m["package"] = pkg
        lic = ""
        if pkg.startswith("texlive"):
            lic_gz = os.path.join(root, "usr/share/doc", pkg, "Licenses.gz")
            if lic_gz not in tex_cache:
                tex_cache[lic_gz] = tex_licenses(lic_gz)
            found = _tex_license(m["file"], tex_cache[lic_gz])
            lic = f"{found.upper()} ({pkg})" if found else f"LPPL ({pkg})"
        elif pkg:
            cp = os.path.join(root, "usr/share/doc", pkg, "copyright")
            if cp not in copyright_cache:
                copyright_cache[cp] = parse_copyright(cp)
            lic = copyright_cache[cp]
        m["license"] = lic
