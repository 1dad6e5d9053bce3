#!/bin/bash
# A rank that behaves as a checkpoint-on-SIGTERM trainer does, for the
# preemption test: it runs (without child processes, as a trainer has
# none: bash's read -t on a FIFO is its sleep) until SIGTERM from its
# container's ringtrain-init; it then notes the time, "writes its
# checkpoint" for SECONDS, notes that and exits 143. SIGUSR1, the
# launcher's stop request that mpirun passes to every rank, does not stop
# the probe: what it measures is the SIGTERM. Notes go to DIR/rank<N> (N:
# Open MPI's rank), one line each: "<epoch seconds> start|TERM|saved".
#   rank_probe.bash DIR SECONDS
dir=$1
seconds=$2
rank=${OMPI_COMM_WORLD_RANK:-x}
note() { echo "$EPOCHREALTIME $*" >>"$dir/rank$rank"; }
fifo=$dir/.fifo$rank
rm -f "$fifo"
mkfifo "$fifo"
exec 3<>"$fifo"
rm -f "$fifo"
# shellcheck disable=SC2317 # called by the trap
on_term() {
    trap '' TERM
    note TERM
    read -r -t "$seconds" <&3
    note saved
    exit 143
}
trap on_term TERM
trap '' USR1
note start
echo "rank_probe: rank $rank up"
# A trapped signal ends a read early: read again (at most 10 minutes).
for _ in $(seq 600); do read -r -t 1 <&3; done
