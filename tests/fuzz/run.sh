#!/bin/sh
# Runs one libFuzzer harness for a while, starting from its seed corpus
# (tests/fuzz/corpus/NAME); what it learns goes to a work corpus next to the
# executable, crashes to artifacts/ there. The fuzz suite's tests call it
# with 60 s; run it by hand for longer:
#   tests/fuzz/run.sh build/tests/fuzz/fuzz_tfjob tfjob 600 [libFuzzer flags...]
# Exit status: 0 when nothing broke, 1 when the harness found something (the
# crashing input is printed in hex so a CI log carries it).
set -u
if [ $# -lt 3 ]; then
    echo "usage: $0 HARNESS NAME SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
exe=$1 name=$2 seconds=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/$name
work=${RINGTRAIN_FUZZ_WORK:-$(dirname "$exe")/work-$name}
if [ ! -x "$exe" ] || [ ! -d "$seeds" ]; then
    echo "run.sh: error: $exe is not an executable or $seeds is missing" >&2
    exit 2
fi
mkdir -p "$work/corpus" "$work/artifacts"
# A harness's own dictionary (NAME.dict) where it has one, else the
# launcher's words (YAML, hostfiles).
dict=$here/$name.dict
[ -f "$dict" ] || dict=$here/launcher.dict
# Leaks inside libfyaml itself are not ours to fix (see lsan.supp).
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# -timeout: an input slower than 10 s is a hang; -rss_limit_mb: libFuzzer's
# default, stated. The work corpus comes first: new inputs are written there.
# -error_exitcode / -timeout_exitcode: libFuzzer's defaults (77, 70) would
# read as "skipped" to meson for a crash; every finding must be a failure.
"$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -dict="$dict" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
rc=$?
if [ $rc -ne 0 ]; then
    for f in "$work"/artifacts/*; do
        [ -f "$f" ] || continue
        echo "run.sh: $f:"
        od -A d -t x1z "$f" | head -n 64
    done
fi
exit $rc
