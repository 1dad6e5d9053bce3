#!/bin/sh
# A rank that behaves as a checkpoint-on-SIGTERM trainer does, for the
# preemption test: it runs PROGRAM; on SIGTERM (from its container's
# ringtrain-init) it notes the time, passes the signal on, "writes its
# checkpoint" for SECONDS (sleeps), notes that and exits 143. SIGUSR1, the
# launcher's stop request that mpirun passes to every rank, does not stop
# the probe: what it measures is the SIGTERM. Notes go to DIR/rank<N> (N:
# Open MPI's rank), one line each:
# "<epoch seconds> start|TERM|saved|ended <status>".
#   rank_probe.sh DIR SECONDS PROGRAM [ARGS...]
dir=$1
seconds=$2
shift 2
note() { echo "$(date +%s.%N) $*" >>"$dir/rank${OMPI_COMM_WORLD_RANK:-x}"; }
# shellcheck disable=SC2317 # called by the trap
on_term() {
    trap '' TERM
    note TERM
    kill -TERM "$child" 2>/dev/null
    sleep "$seconds"
    note saved
    exit 143
}
trap on_term TERM
trap : USR1
note start
"$@" &
child=$!
# A trapped signal ends a wait early: wait again while the program runs.
while :; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break
done
note ended "$status"
exit "$status"
