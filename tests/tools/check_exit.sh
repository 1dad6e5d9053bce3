# Sourced by test scripts. check_exit WANT NEEDLE RC OUT LABEL: passes when
# the exit status RC is WANT and file OUT has a line containing NEEDLE (a
# fixed string); prints "ok: LABEL -> exit RC: <that line>", or "FAIL: ..."
# followed by OUT and counts the failure in $fails.
check_exit()
{
    local want=$1 needle=$2 rc=$3 out=$4 label=$5
    if [ "$rc" -ne "$want" ] || ! grep -qF -- "$needle" "$out"; then
        echo "FAIL: $label -> exit $rc, wanted $want and '$needle':"
        cat "$out"
        fails=$((fails + 1))
    else
        echo "ok: $label -> exit $rc: $(grep -F -- "$needle" "$out" | head -1)"
    fi
}
