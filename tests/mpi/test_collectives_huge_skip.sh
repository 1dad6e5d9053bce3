#!/usr/bin/env bash
# The > 2^31-byte part ('huge') when one rank cannot allocate its 2 GiB:
# rank 0's address space is capped (ulimit -v), rank 1's is not. Every rank
# must skip together (the job exits 77, rank 0 names the rank that could
# not), never leave the other rank waiting in a collective.
#   test_collectives_huge_skip.sh TEST_COLLECTIVES_ALLREDUCE
set -uo pipefail
prog=${1:?usage: $0 TEST_COLLECTIVES_ALLREDUCE}
fail() { echo "FAIL: $*"; exit 1; }
out=$(mktemp /tmp/ringtrain-huge-skip.XXXXXX)
trap 'rm -f "$out"' EXIT
# meson's MALLOC_PERTURB_ would make rank 1 write its 2 GiB twice (at
# allocation and at free): seconds for nothing this test checks.
unset MALLOC_PERTURB_
# 1.5 GB of address space: room for MPI_Init, not for 2 GiB more.
# shellcheck disable=SC2016 # "$0" is for the inner bash
timeout -k 10 60 mpirun --oversubscribe \
    -np 1 bash -c 'ulimit -v 1500000 && exec "$0" huge' "$prog" : \
    -np 1 "$prog" huge >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -ne 124 ] || fail "the job hung (killed after 60 s): the ranks did not agree to skip"
[ $rc -eq 77 ] || fail "exit $rc, expected 77 (skipped on every rank)"
grep -q "^cannot allocate 2147483658 bytes on rank(s) 0; skipped on every rank$" "$out" ||
    fail "rank 0 did not say which rank could not allocate"
echo "PASS: both ranks skipped together"
