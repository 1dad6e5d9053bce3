#!/usr/bin/env bash
# Preemption: every container of a running job stopped at once with a grace
# period of 30 s (`podman stop -t 30`, what a Kueue suspend or a node drain
# does to the pods). What must happen:
#   - every rank receives SIGTERM at once (within 3 s), from ringtrain-init,
#     PID 1 of its worker container, not a SIGKILL from the kernel when sshd
#     exits (as when sshd was PID 1);
#   - every rank then has the time to save a checkpoint (here each rank is
#     rank_probe.bash, which "saves" for CKPT seconds after the SIGTERM and
#     notes it) before anything kills it: sshd and orted, which carry the
#     ranks' output and status, are stopped only after the ranks;
#   - every container ends on its own inside the grace period with a clear
#     status: workers 143 (ringtrain-init: "every process ended ... exit
#     status 143"), the launcher 143 ("stopped by signal 15 (the job was
#     asked to stop: SIGUSR1 to mpirun, ...); exit status 143"); none is
#     SIGKILLed at the end of it (137);
#   - nothing of the job is left running.
# (containers_preempt_resume stops the real trainer and resumes it.)
#   test_preempt.sh MANIFEST CKPT
set -euo pipefail
source "$(dirname "$0")/pods.sh"

CTR_MANIFEST=${1:?usage: $0 MANIFEST CKPT}
ckpt=${2:?usage: $0 MANIFEST CKPT}
grace=30
ctr_prepare
ctr_job_dir
probe=$CTR_DIR/probe
mkdir -p "$probe/marks"
install -m 0755 "$(dirname "$0")/rank_probe.bash" "$probe/rank_probe.bash"
chmod 755 "$probe"
chmod 1777 "$probe/marks" # the ranks may run as mpiuser
ctr_job_up "$CTR_MANIFEST" --mount "$probe:/ringtrain-probe" --launcher-args \
    "$(ctr_json -- bash /ringtrain-probe/rank_probe.bash /ringtrain-probe/marks "$ckpt")"
ranks=$((WORKERS * SLOTS))
for _ in $(seq 600); do
    [ "$(grep -c '^rank_probe: rank [0-9]* up$' <<<"$(ctr_logs "$CTR_LAUNCHER")")" = $ranks ] && break
    [ "$(ctr_state "$CTR_LAUNCHER")" = running ] || ctr_fail "the launcher exited before every rank was up: $(ctr_logs "$CTR_LAUNCHER" | tail -n 20)"
    sleep 0.2
done

echo "--- stopping all ${#CTR_PODS[@]} containers at once: podman stop -t $grace (each)"
t0=$(date +%s.%N)
ctr_stop $grace "${CTR_PODS[@]}"
t1=$(date +%s.%N)
stop_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "--- all stopped after $stop_s s"
for pod in "${CTR_PODS[@]}"; do
    echo "--- $pod: exit $(ctr_exit_code "$pod")"
    ctr_logs "$pod" | grep -E 'ringtrain-(init|launcher)' || true
done
fails=()
for ((r = 0; r < ranks; r++)); do
    f=$probe/marks/rank$r
    [ -f "$f" ] || { fails+=("rank $r never started"); continue; }
    read -r term saved < <(awk -v t0="$t0" '$2 == "TERM" { term = $1 - t0 }
        $2 == "saved" { saved = $1 - t0 }
        END { printf "%s %s\n", term == "" ? "-" : term, saved == "" ? "-" : saved }' "$f")
    echo "rank $r: SIGTERM at +$term s, checkpoint saved at +$saved s"
    if [ "$term" = - ]; then
        fails+=("rank $r never received SIGTERM (killed outright)")
    elif awk -v t="$term" 'BEGIN { exit !(t > 3) }'; then
        fails+=("rank $r received SIGTERM only $term s after the stop")
    elif [ "$saved" = - ]; then
        fails+=("rank $r was killed before its $ckpt s checkpoint was saved")
    fi
done
for pod in "${CTR_PODS[@]}"; do
    code=$(ctr_exit_code "$pod")
    [ "$code" = 143 ] || fails+=("$pod exited $code, not 143 (SIGTERM handled)")
done
for pod in "${CTR_PODS[@]}"; do
    [ "$pod" = "$CTR_LAUNCHER" ] && continue
    ctr_logs "$pod" | grep -q '^ringtrain-init: every process ended .* exit status 143$' ||
        fails+=("$pod: ringtrain-init did not report that every process ended")
done
ctr_logs "$CTR_LAUNCHER" | grep -q 'stopped by signal 15 (the job was asked to stop: SIGUSR1 to mpirun, for every rank); exit status 143' ||
    fails+=("the launcher did not report the SIGTERM it handled")
awk -v s="$stop_s" -v g=$grace 'BEGIN { exit !(s < g) }' ||
    fails+=("stopping took $stop_s s: the grace period ran out")
[ -z "$(ctr_running)" ] || fails+=("still running: $(ctr_running)")
if [ ${#fails[@]} -gt 0 ]; then
    printf 'FAIL: %s\n' "${fails[@]}" >&2
    exit 1
fi
echo "PASS"
