#!/bin/sh
# Prints the packages (Debian or Ubuntu, dpkg) that provide the shared
# libraries the given programs load, one per line, sorted (libc6 and the like
# included: installing what the base image has already is a no-op). The
# Dockerfiles' build stage runs it on what meson installed, and the runtime
# stage installs exactly that list, under whatever names the release gives
# those libraries (Debian 12: libopenmpi3; Ubuntu 24.04: libopenmpi3t64).
#   deploy/runtime-deps.sh PROGRAM...
# Scripts and static programs are skipped.
# Exit status: 0; 1 when a library is not found (ldd says "not found") or a
# program is missing; a library no package owns is named on stderr and left out.
set -eu

me=runtime-deps.sh
[ $# -gt 0 ] || { echo "usage: $me PROGRAM..." >&2; exit 2; }

libs=$(mktemp)
pkgs=$(mktemp)
trap 'rm -f "$libs" "$pkgs"' EXIT

for prog in "$@"; do
    [ -f "$prog" ] || { echo "$me: error: $prog does not exist" >&2; exit 1; }
    # Scripts and static programs load no shared libraries.
    if ! out=$(ldd "$prog" 2>&1); then
        case $out in
        *"not a dynamic executable"*) continue ;;
        esac
        echo "$me: error: ldd $prog: $out" >&2
        exit 1
    fi
    if printf '%s\n' "$out" | grep -q 'not found'; then
        echo "$me: error: $prog needs libraries that are not installed:" >&2
        printf '%s\n' "$out" | grep 'not found' >&2
        exit 1
    fi
    # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)"
    printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' >>"$libs"
done

sort -u "$libs" | while IFS= read -r lib; do
    # dpkg knows a file by the path its package ships: try the path ldd gave,
    # then the real file behind links (alternatives, usr-merge), then that
    # path without /usr (Debian 12 still ships libc under /lib).
    real=$(readlink -f "$lib")
    owner=
    for path in "$lib" "$real" "${real#/usr}"; do
        owner=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    if [ -z "$owner" ]; then
        echo "$me: note: no package owns $lib; the base image must provide it" >&2
        continue
    fi
    echo "$owner"
done >"$pkgs"

sort -u "$pkgs"
