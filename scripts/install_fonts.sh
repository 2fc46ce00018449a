#!/usr/bin/env bash
# Install the font files the fonts dataset is rendered from (see ../shared/FONTS.md).
#
#   scripts/install_fonts.sh [PACKAGE_LIST]
#
# Sources:
#   * the Debian fonts-* packages named in PACKAGE_LIST (default:
#     $FONT_PACKAGES_LIST or <repo>/../shared/fonts/debian-font-packages.txt);
#     names that do not exist on this release are skipped, not fatal.
#   * texlive-fonts-extra and texlive-fonts-recommended: downloaded with `apt-get download`
#     and only usr/share/texlive/texmf-dist/fonts/{type1,opentype,truetype} (plus the package's
#     doc folder, for licences) unpacked into data/fonts-extra/<package>/ -- installing them with
#     apt-get would pull in TeX itself.
#
# As root the fonts-* packages are installed with `apt-get install --no-install-recommends`.
# Otherwise they are downloaded and unpacked with `dpkg-deb -x` into data/fonts-extra/<package>/.
# Each unpacked package gets a .done marker holding its version, so a second run with
# everything present only checks and finishes in seconds.
#
# Environment: FONT_PACKAGES_LIST (package list), FONTS_EXTRA_DIR (default <repo>/data/fonts-extra),
#              FONTS_NO_ROOT=1 (behave as non-root even when root), KEEP_DEBS=1 (keep the .deb files).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIST="${1:-${FONT_PACKAGES_LIST:-$(dirname "$REPO")/shared/fonts/debian-font-packages.txt}}"
EXTRA="${FONTS_EXTRA_DIR:-$REPO/data/fonts-extra}"
TEX_PKGS=(texlive-fonts-extra texlive-fonts-recommended)
export DEBIAN_FRONTEND=noninteractive

log() { echo "[install_fonts] $*"; }
die() { echo "[install_fonts] error: $*" >&2; exit 1; }

[[ -f "$LIST" ]] || die "package list not found: $LIST (pass it as the first argument or set FONT_PACKAGES_LIST)"
command -v apt-cache >/dev/null || die "apt-cache not found: this script needs a Debian/Ubuntu system"

is_root=0
if [[ "$(id -u)" == 0 && "${FONTS_NO_ROOT:-0}" != 1 ]]; then is_root=1; fi

mapfile -t WANTED < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$' | sort -u)
log "${#WANTED[@]} font packages listed in $LIST; target for unpacked files: $EXTRA"

# One apt-cache call: "name installed candidate" for every name this release knows.
declare -A CAND INST
while read -r name inst cand; do
    CAND[$name]="$cand"; INST[$name]="$inst"
done < <(apt-cache policy "${WANTED[@]}" "${TEX_PKGS[@]}" 2>/dev/null | awk '
    /^[^ ].*:$/ { if (n != "") print n, i, c; n = substr($0, 1, length($0) - 1); i = "(none)"; c = "(none)"; next }
    /^  Installed:/ { i = $2 } /^  Candidate:/ { c = $2 }
    END { if (n != "") print n, i, c }')

available=(); missing=()
for p in "${WANTED[@]}"; do
    if [[ -n "${CAND[$p]:-}" && "${CAND[$p]}" != "(none)" ]]; then available+=("$p"); else missing+=("$p"); fi
done
if ((${#missing[@]})); then
    log "skipping ${#missing[@]} package(s) unknown to this release: ${missing[*]}"
fi

mkdir -p "$EXTRA"
DEBS="$EXTRA/.debs"

# done_version PKG -> version recorded in the marker ('' if none)
done_version() { [[ -f "$EXTRA/$1/.done" ]] && cat "$EXTRA/$1/.done" || true; }

# Download the .debs of the given packages into $DEBS (one batch; on failure one by one).
download() {
    (($#)) || return 0
    mkdir -p "$DEBS"
    chmod 777 "$DEBS" 2>/dev/null || true   # lets apt's _apt sandbox user write there
    log "downloading $# package(s) with apt-get download ..."
    if ! (cd "$DEBS" && apt-get download -q "$@" >/dev/null); then
        log "batch download failed; retrying one by one"
        for p in "$@"; do
            (cd "$DEBS" && apt-get download -q "$p" >/dev/null) || log "warning: could not download $p"
        done
    fi
}

deb_of() { ls -t "$DEBS/$1"_*.deb 2>/dev/null | head -n1; }

# ---- fonts-* packages ------------------------------------------------------------------------
if ((is_root)); then
    todo=()
    for p in "${available[@]}"; do
        [[ "${INST[$p]}" == "(none)" ]] && todo+=("$p")
    done
    log "${#available[@]} available, $((${#available[@]} - ${#todo[@]})) already installed, ${#todo[@]} to install (root: apt-get install)"
    if ((${#todo[@]})); then
        if ! apt-get install -y -q --no-install-recommends "${todo[@]}"; then
            log "batch install failed; installing one by one"
            for p in "${todo[@]}"; do
                apt-get install -y -q --no-install-recommends "$p" >/dev/null || log "warning: could not install $p"
            done
        fi
    fi
else
    todo=()
    for p in "${available[@]}"; do
        if [[ "${INST[$p]}" != "(none)" ]]; then continue; fi                 # installed system-wide
        if [[ "$(done_version "$p")" == "${CAND[$p]}" ]]; then continue; fi  # already unpacked
        todo+=("$p")
    done
    log "${#available[@]} available, ${#todo[@]} to download and unpack (non-root: dpkg-deb -x into $EXTRA)"
    download "${todo[@]}"
    for p in "${todo[@]}"; do
        deb="$(deb_of "$p")"
        [[ -n "$deb" ]] || { log "warning: no .deb for $p"; continue; }
        rm -rf "${EXTRA:?}/$p"; mkdir -p "$EXTRA/$p"
        if dpkg-deb -x "$deb" "$EXTRA/$p"; then
            echo "${CAND[$p]}" > "$EXTRA/$p/.done"
        else
            log "warning: could not unpack $deb"
        fi
    done
fi

# ---- TeX font collections (never apt-get install: that pulls in TeX) ---------------------------
tex_todo=()
for p in "${TEX_PKGS[@]}"; do
    if [[ -z "${CAND[$p]:-}" || "${CAND[$p]}" == "(none)" ]]; then log "skipping $p: unknown to this release"; continue; fi
    if [[ "${INST[$p]}" != "(none)" ]]; then log "$p is installed system-wide; nothing to unpack"; continue; fi
    if [[ "$(done_version "$p")" == "${CAND[$p]}" ]]; then log "$p ${CAND[$p]} already unpacked"; continue; fi
    tex_todo+=("$p")
done
download "${tex_todo[@]}"
for p in "${tex_todo[@]}"; do
    deb="$(deb_of "$p")"
    [[ -n "$deb" ]] || { log "warning: no .deb for $p"; continue; }
    log "unpacking the font folders of $(basename "$deb") ..."
    rm -rf "${EXTRA:?}/$p"; mkdir -p "$EXTRA/$p"
    # tar exits non-zero when one of the patterns has no member (e.g. no truetype folder): judge
    # success by what was extracted instead.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$EXTRA/$p" --wildcards \
        './usr/share/texlive/texmf-dist/fonts/type1/*' \
        './usr/share/texlive/texmf-dist/fonts/opentype/*' \
        './usr/share/texlive/texmf-dist/fonts/truetype/*' \
        "./usr/share/doc/$p/*" 2>/dev/null || true
    n=$(find "$EXTRA/$p/usr/share/texlive" -type f 2>/dev/null | wc -l)
    if ((n > 0)); then
        echo "${CAND[$p]}" > "$EXTRA/$p/.done"
        log "$p: $n font files unpacked"
    else
        log "warning: nothing unpacked from $deb"
    fi
done

if [[ "${KEEP_DEBS:-0}" != 1 && -d "$DEBS" ]]; then rm -rf "$DEBS"; fi

# ---- summary -----------------------------------------------------------------------------------
count_fonts() {
    find "$@" -type f \( -iname '*.ttf' -o -iname '*.otf' -o -iname '*.ttc' -o -iname '*.otc' \
        -o -iname '*.pfb' -o -iname '*.pfa' -o -iname '*.t1' -o -iname '*.woff' -o -iname '*.woff2' \) \
        2>/dev/null | wc -l
}
sys_dirs=()
for d in /usr/share/fonts /usr/share/texmf/fonts /usr/share/texlive/texmf-dist/fonts /usr/share/fonts-*; do
    [[ -d "$d" ]] && sys_dirs+=("$d")
done
log "done: $(count_fonts "${sys_dirs[@]}") font files in system dirs, $(count_fonts "$EXTRA") in $EXTRA ($(du -sh "$EXTRA" | cut -f1))"
