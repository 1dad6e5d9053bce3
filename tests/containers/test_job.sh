#!/usr/bin/env bash
# An MPIJob manifest run in containers of the image deploy/Dockerfile builds,
# wired as mpi-operator wires its pods (tests/containers/pods.sh): the
# launcher must exit 0 and its log match every --expect; the hostfile the
# launcher read is the controller's. The launcher container's args are
# replaced by `-- PROGRAM...` (a shorter run than the manifest's; everything
# else is the manifest's). With --no-root, while the ranks run, every process of every
# container must run as the image's user mpiuser (uid 1000), none as root.
# After the job, cleanPodPolicy Running stops the workers: they must end on
# the SIGTERM (ringtrain-init's exit 143), not be killed at the grace period.
#   test_job.sh MANIFEST [--expect REGEX]... [--no-root] -- PROGRAM...
set -euo pipefail
source "$(dirname "$0")/pods.sh"

manifest=${1:?usage: $0 MANIFEST [--expect REGEX]... [--no-root] -- PROGRAM...}
shift
expects=()
no_root=0
while [ $# -gt 0 ]; do
    case "$1" in
    --expect) expects+=("$2"); shift 2 ;;
    --no-root) no_root=1; shift ;;
    --) shift; break ;;
    *) ctr_fail "usage: $0 MANIFEST [--expect REGEX]... [--no-root] -- PROGRAM..." ;;
    esac
done
ctr_prepare
t0=$(date +%s%N)
ctr_job_up "$manifest" --launcher-args "$(ctr_json -- "$@")"

# Who runs what, while the ranks run: every worker has its slots' ranks.
if [ $no_root = 1 ]; then
    seen=0
    for _ in $(seq 300); do
        seen=0
        for pod in "${CTR_PODS[@]}"; do
            [ "$pod" = "$CTR_LAUNCHER" ] && continue
            n=$(ctr_processes "$pod" | grep -c ' ringtrain-worker ' || true)
            [ "$n" -ge "$SLOTS" ] && seen=$((seen + 1))
        done
        [ $seen = "$WORKERS" ] && break
        [ "$(ctr_state "$CTR_LAUNCHER")" = running ] || break
        sleep 0.1
    done
    [ $seen = "$WORKERS" ] || ctr_fail "never saw $SLOTS ranks running in each of the $WORKERS workers"
    for pod in "${CTR_PODS[@]}"; do
        procs=$(ctr_processes "$pod")
        echo "--- processes of $pod"
        echo "$procs"
        others=$(echo "$procs" | awk '$1 != "mpiuser"')
        [ -z "$others" ] || ctr_fail "$pod runs processes as another user than mpiuser: $others"
        user=$("${CTR_PODMAN[@]}" inspect --format '{{.Config.User}}' "$(ctr_name "$pod")")
        [ "${user%%:*}" = 1000 ] || ctr_fail "$pod's container runs as '$user', not uid 1000"
    done
    echo "every process of the job's ${#CTR_PODS[@]} containers runs as mpiuser (uid 1000)"
fi

ctr_launcher_result 300 "$t0" # t0: before the first worker was created
log=$CTR_LAUNCHER_LOG
[ "$CTR_LAUNCHER_RC" = 0 ] || ctr_fail "the launcher exited $CTR_LAUNCHER_RC"
for re in "${expects[@]}"; do
    grep -Eq -- "$re" <<<"$log" || ctr_fail "the launcher's log does not match /$re/"
done
want=$(for ((i = 0; i < WORKERS; i++)); do echo "$JOB-worker-$i.$JOB.$NS.svc slots=$SLOTS"; done)
[ "$(cat "$CTR_DIR/config/hostfile")" = "$want" ] || ctr_fail "hostfile is not the controller's"
grep -q "running: mpirun .*-np $((WORKERS * SLOTS)) --hostfile /etc/mpi/hostfile" <<<"$log" ||
    ctr_fail "the launcher did not run mpirun -np $((WORKERS * SLOTS)) on the operator's /etc/mpi/hostfile"
if [ $no_root = 1 ]; then
    grep -q -- "--allow-run-as-root" <<<"$log" && ctr_fail "mpirun ran with --allow-run-as-root as mpiuser"
fi

# cleanPodPolicy Running: the workers are stopped; ringtrain-init ends them on
# the SIGTERM (exit 143) well before the grace period.
t0=$(date +%s%N)
ctr_clean_pods 30
t1=$(date +%s%N)
for pod in "${CTR_PODS[@]}"; do
    [ "$pod" = "$CTR_LAUNCHER" ] && continue
    code=$(ctr_exit_code "$pod")
    [ "$code" = 143 ] || ctr_fail "worker $pod exited $code after SIGTERM, not 143: $(ctr_logs "$pod" | tail -n 5)"
done
echo "workers stopped in $(ctr_ms "$t0" "$t1") ms, exit 143 (SIGTERM through ringtrain-init)"
[ "$(ctr_ms "$t0" "$t1")" -lt 10000 ] || ctr_fail "stopping idle workers took over 10 s"
[ -z "$(ctr_running)" ] || ctr_fail "containers still running: $(ctr_running)"
echo "PASS"
