# Simulated pods for the launcher's end-to-end tests (sourced by the tests).
#
# A "pod" is a process holding its own network, UTS and mount namespaces:
# its hostname is the pod name, its /etc/hosts is a private file
# bind-mounted over the real one (names resolve the way the MPIJob's
# headless Service makes them resolve: <job>-worker-<i>.<job>.<ns>.svc), and
# a veth joins it to a bridge that lives in a separate "switch" namespace,
# so nothing is added to the host's own network. Workers run sshd on port
# 2222 with a key pair made for this run (like the operator's ssh Secret),
# from config files in the run's temporary directory: the real /root/.ssh
# and /etc/ssh are never touched.
#
# Cleanup (on any exit): every process in one of the run's network
# namespaces is killed, which also destroys the namespaces, veths and
# bridge; then the temporary directory is removed. Should the test itself be
# SIGKILLed, the namespace holders and sshd still end on their own after
# E2E_MAX_SECONDS.
#
#   pods_require                      exit 77 (skip) when this cannot run here
#   pods_up JOB NS WORKERS [NOSSHD]   create launcher + WORKERS pods; NOSSHD: a
#                                     space-separated list of worker indexes
#                                     that get no sshd ("later": start it with
#                                     pods_start_sshd)
#   pods_start_sshd INDEX             start sshd in worker INDEX
#   pods_job WORKERS SLOTS            pods_up for a new job (its name in $job,
#                                     namespace e2e) and its MPIJob in
#                                     $POD_DIR/job.yaml
#   ( pods_launcher ARGS... )         run ringtrain-launcher in the launcher pod
#   pods_kill_worker INDEX            the pod dies: its sshd and every process
#                                     in it (orted, ranks) get SIGKILL
#   pods_wait_for FILE REGEX SECONDS  wait until a line of FILE matches (ERE)
#   pods_rc_wrapper                   $POD_DIR/record-rc: run a rank as
#                                     "record-rc DIR PROGRAM ARGS" and its exit
#                                     status lands in DIR/rc.<rank>.<pid>
#   pods_cleanup                      (runs on exit)
#
# Real links (tc), for the collectives' cross-host tests and bench/links.sh:
#   pods_require_tc [DELAY]           exit 77 unless tc can shape a veth here
#                                     (tbf; with DELAY also netem)
#   pods_limit_links RATE [DELAY]     shape every pod's link in both directions
#                                     like a full-duplex NIC: tbf at RATE (tc
#                                     units: 1gbit, 10gbit, 500mbit) on the
#                                     pod's eth0 and on its switch port; DELAY
#                                     (e.g. 1ms) adds netem latency each way.
#                                     Calling it again replaces the limits.
#                                     E2E_TBF_LATENCY: the longest a packet may
#                                     queue at the limit (default 50ms, the
#                                     switch buffer; tbf's "latency")
#   pods_wait_sshd                    wait until every worker's sshd answers
#   ( pods_mpirun ARGS... )           mpirun in the launcher pod over the
#                                     workers (hostfile: pods_hostfile SLOTS)

E2E_SUBNET=10.99.0
E2E_PORT=2222
E2E_MAX_SECONDS=900

e2e_skip() { echo "SKIP: $*"; exit 77; }
e2e_fail() { echo "FAIL: $*" >&2; exit 1; }

pods_require() {
    [ "$(id -u)" = 0 ] || e2e_skip "needs root (network namespaces, sshd)"
    local tool
    for tool in unshare nsenter ip ssh ssh-keygen mount; do
        command -v "$tool" >/dev/null 2>&1 ||
            e2e_skip "$tool is not installed (tools/setup --tests installs it)"
    done
    [ -x /usr/sbin/sshd ] || e2e_skip "/usr/sbin/sshd is not installed (Debian: openssh-server)"
    unshare --net --uts --mount true 2>/dev/null ||
        e2e_skip "cannot create network/UTS/mount namespaces here (unshare failed)"
    LAUNCHER=${RINGTRAIN_BUILD_DIR:?}/launcher/ringtrain-launcher
    [ -x "$LAUNCHER" ] || e2e_fail "$LAUNCHER is not built"
}

POD_DIR=
SWITCH_PID=
POD_NAMES=()
declare -A POD_PID=()
declare -A SSHD_PID=()

pods_cleanup() {
    local rc=$?
    set +e
    # Run to the end even if another INT/TERM comes while cleaning up.
    trap - EXIT
    trap '' INT TERM
    disown -a 2>/dev/null # no "Killed" job notices for what is ended below
    local nets=() p n x
    for p in $SWITCH_PID "${POD_PID[@]}"; do
        n=$(readlink "/proc/$p/ns/net" 2>/dev/null) && nets+=("$n")
    done
    # Everything living in our network namespaces: sshd, orted, ranks, holders.
    if [ ${#nets[@]} -gt 0 ]; then
        for p in /proc/[0-9]*; do
            n=$(readlink "$p/ns/net" 2>/dev/null) || continue
            for x in "${nets[@]}"; do
                [ "$n" = "$x" ] && kill -9 "${p#/proc/}" 2>/dev/null
            done
        done
    fi
    for p in $SWITCH_PID "${POD_PID[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "$POD_DIR" ] && [ -d "$POD_DIR" ] && rm -rf "$POD_DIR"
    POD_DIR=
    return $rc
}

# Waits until process $1 is in namespaces other than ours (unshare has run).
ns_wait() {
    local pid=$1 i
    for i in $(seq 200); do
        if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] &&
           [ -n "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" ]; then
            return 0
        fi
        sleep 0.01
    done
    e2e_fail "namespace holder $pid did not start"
}

pods_write_configs() {
    local job=$1 ns=$2 workers=$3 i
    ssh-keygen -q -t ed25519 -N '' -C ringtrain-e2e -f "$POD_DIR/id_ed25519"
    cp "$POD_DIR/id_ed25519.pub" "$POD_DIR/authorized_keys"
    ssh-keygen -q -t ed25519 -N '' -C ringtrain-e2e-host -f "$POD_DIR/ssh_host_ed25519_key"
    # sshd the mpi-operator way: port 2222, StrictModes no, keys from the "secret".
    cat >"$POD_DIR/sshd_config" <<EOF
Port $E2E_PORT
ListenAddress 0.0.0.0
HostKey $POD_DIR/ssh_host_ed25519_key
AuthorizedKeysFile $POD_DIR/authorized_keys
PidFile none
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
MaxStartups 64
LogLevel ERROR
EOF
    cat >"$POD_DIR/ssh_config" <<EOF
Host *
    Port $E2E_PORT
    User root
    IdentityFile $POD_DIR/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    GlobalKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
EOF
    {
        echo "127.0.0.1 localhost"
        echo "$E2E_SUBNET.10 $job-launcher.$job.$ns.svc $job-launcher"
        for ((i = 0; i < workers; i++)); do
            echo "$E2E_SUBNET.$((11 + i)) $job-worker-$i.$job.$ns.svc $job-worker-$i"
        done
    } >"$POD_DIR/hosts"
    chmod 644 "$POD_DIR/hosts"
}

pods_up() {
    local job=$1 ns=$2 workers=$3 nosshd=" ${4:-} " i name pid
    POD_DIR=$(mktemp -d /tmp/ringtrain-e2e.XXXXXX)
    chmod 755 "$POD_DIR"
    trap pods_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    pods_write_configs "$job" "$ns" "$workers"

    unshare --net sleep $E2E_MAX_SECONDS &
    SWITCH_PID=$!
    ns_wait $SWITCH_PID
    nsenter -t $SWITCH_PID -n ip link add br0 type bridge ||
        e2e_skip "cannot create a bridge here (no bridge support in the kernel)"
    nsenter -t $SWITCH_PID -n ip link set br0 up

    POD_NAMES=("$job-launcher")
    for ((i = 0; i < workers; i++)); do POD_NAMES+=("$job-worker-$i"); done
    for ((i = 0; i < ${#POD_NAMES[@]}; i++)); do
        name=${POD_NAMES[$i]}
        unshare --net --uts --mount sleep $E2E_MAX_SECONDS &
        pid=$!
        POD_PID[$name]=$pid
        ns_wait "$pid"
        nsenter -t "$pid" -u hostname "$name"
        nsenter -t "$pid" -m mount --bind "$POD_DIR/hosts" /etc/hosts
        # A private /run: sshd needs /run/sshd, and no host DNS stub is reachable.
        nsenter -t "$pid" -m mount -t tmpfs -o mode=755 tmpfs /run
        nsenter -t "$pid" -m mkdir -m 755 /run/sshd
        nsenter -t $SWITCH_PID -n ip link add "v$i" type veth peer name eth0 netns "$pid" ||
            e2e_skip "cannot create veth pairs here"
        nsenter -t $SWITCH_PID -n ip link set "v$i" master br0 up
        nsenter -t "$pid" -n ip link set lo up
        nsenter -t "$pid" -n ip addr add "$E2E_SUBNET.$((10 + i))/24" dev eth0
        nsenter -t "$pid" -n ip link set eth0 up
    done
    for ((i = 0; i < workers; i++)); do
        case "$nosshd" in *" $i "*) continue ;; esac
        pods_start_sshd "$i"
    done
}

pods_job() {
    job=$(e2e_job_name)
    pods_up "$job" e2e "$1"
    pods_mpijob "$job" e2e "$1" "$2" >"$POD_DIR/job.yaml"
}

pods_start_sshd() {
    local name=${POD_NAMES[$((1 + $1))]}
    nsenter -t "${POD_PID[$name]}" -n -u -m timeout $E2E_MAX_SECONDS \
        /usr/sbin/sshd -D -e -f "$POD_DIR/sshd_config" >>"$POD_DIR/sshd-$name.log" 2>&1 &
    SSHD_PID[$name]=$!
}

pods_kill_worker() {
    local name=${POD_NAMES[$((1 + $1))]} holder p
    holder=${POD_PID[$name]}
    # Everything in the pod's network namespace but the namespace holder,
    # at once (walking /proc is seconds on a loaded machine).
    for p in $(pgrep --ns "$holder" --nslist net); do
        [ "$p" = "$holder" ] || kill -9 "$p" 2>/dev/null
    done
    return 0
}

pods_wait_for() {
    local file=$1 re=$2 end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        grep -Eq -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

pods_rc_wrapper() {
    # The trap keeps bash alive when mpirun signals the rank's process
    # group; the rank itself decides what a signal means.
    cat >"$POD_DIR/record-rc" <<'EOF'
#!/usr/bin/env bash
out=$1
shift
trap : USR1 TERM
"$@"
rc=$?
echo $rc >"$out/rc.${OMPI_COMM_WORLD_RANK:-x}.$$"
exit $rc
EOF
    chmod 755 "$POD_DIR/record-rc"
}

# ringtrain-launcher inside the launcher pod, with ssh set up the way the
# operator's images have it (here through config files of this run). It
# execs, so call it in a subshell: ( pods_launcher ... ) [&]; with & the
# pid in $! is then the launcher's own.
pods_launcher() {
    exec nsenter -t "${POD_PID[${POD_NAMES[0]}]}" -n -u -m --wd="$PWD" env \
        OMPI_MCA_plm_rsh_agent=ssh \
        OMPI_MCA_plm_rsh_args="-F $POD_DIR/ssh_config -o ConnectionAttempts=10" \
        OMPI_MCA_plm_rsh_no_tree_spawn=1 \
        OMPI_MCA_btl=self,vader,tcp \
        OMPI_MCA_btl_tcp_if_include=$E2E_SUBNET.0/24 \
        OMPI_MCA_oob_tcp_if_include=$E2E_SUBNET.0/24 \
        "$LAUNCHER" "$@"
}

# A v2beta1 MPIJob for the pods above; a 5th argument "true" sets
# runLauncherAsWorker.
pods_mpijob() {
    local job=$1 ns=$2 workers=$3 slots=$4 as_worker=${5:-false}
    cat <<EOF
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: $job
  namespace: $ns
spec:
  slotsPerWorker: $slots
  runLauncherAsWorker: $as_worker
  runPolicy:
    cleanPodPolicy: Running
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        spec:
          containers:
          - name: launcher
            image: ringtrain:latest
            command: [ringtrain-launcher]
    Worker:
      replicas: $workers
      template:
        spec:
          containers:
          - name: worker
            image: ringtrain:latest
            command: [/usr/sbin/sshd, -De, -p, "$E2E_PORT"]
EOF
}

# Milliseconds between two $(date +%s%N) stamps.
ms() { echo $((($2 - $1) / 1000000)); }

# A name no earlier (leftover) run shares.
e2e_job_name() { printf 'rt%04x%04x' $RANDOM $RANDOM; }

# ---- links with limits (tc) --------------------------------------------------

# Bytes per second of a tc rate ("10gbit", "500mbit", "100kbit", "1000bit").
tc_rate_bytes() {
    local r=${1,,} num unit
    num=${r%%[a-z]*}
    unit=${r#"$num"}
    [[ "$num" =~ ^[0-9]+$ ]] || return 1
    case "$unit" in
    gbit) echo $((num * 125000000)) ;;
    mbit) echo $((num * 125000)) ;;
    kbit) echo $((num * 125)) ;;
    bit) echo $((num / 8)) ;;
    *) return 1 ;;
    esac
}

pods_require_tc() {
    local delay=${1:-}
    command -v tc >/dev/null 2>&1 || e2e_skip "tc is not installed (Debian: iproute2)"
    local probe=(unshare --net sh -c "ip link add rtq0 type veth peer name rtq1 &&
        tc qdisc add dev rtq0 root tbf rate 1gbit burst 128kb latency 20ms")
    "${probe[@]}" 2>/dev/null || e2e_skip "this kernel cannot shape links (no tbf qdisc)"
    if [ -n "$delay" ]; then
        unshare --net sh -c "ip link add rtq0 type veth peer name rtq1 &&
            tc qdisc add dev rtq0 root netem delay $delay" 2>/dev/null ||
            e2e_skip "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so no added latency"
    fi
}

# tc on one device of namespace holder $1: tbf at the rate, under netem when
# a delay is asked for.
tc_shape() {
    local pid=$1 dev=$2 rate=$3 delay=$4 burst
    burst=$(($(tc_rate_bytes "$rate") / 1000)) # 1 ms at line rate
    [ "$burst" -ge 65536 ] || burst=65536
    nsenter -t "$pid" -n tc qdisc del dev "$dev" root 2>/dev/null || true
    if [ -n "$delay" ]; then
        nsenter -t "$pid" -n tc qdisc add dev "$dev" root handle 1: netem delay "$delay" &&
            nsenter -t "$pid" -n tc qdisc add dev "$dev" parent 1:1 handle 10: \
                tbf rate "$rate" burst "$burst" latency ${E2E_TBF_LATENCY:-50ms}
    else
        nsenter -t "$pid" -n tc qdisc add dev "$dev" root tbf rate "$rate" \
            burst "$burst" latency ${E2E_TBF_LATENCY:-50ms}
    fi
}

pods_limit_links() {
    local rate=$1 delay=${2:-} i name
    tc_rate_bytes "$rate" >/dev/null || e2e_fail "link rate '$rate': use a tc rate such as 1gbit or 500mbit"
    for ((i = 0; i < ${#POD_NAMES[@]}; i++)); do
        name=${POD_NAMES[$i]}
        tc_shape "${POD_PID[$name]}" eth0 "$rate" "$delay" ||
            e2e_fail "cannot shape $name's eth0 to $rate${delay:+ + $delay}"
        tc_shape "$SWITCH_PID" "v$i" "$rate" "$delay" ||
            e2e_fail "cannot shape $name's switch port to $rate${delay:+ + $delay}"
    done
}

pods_hostfile() {
    local slots=$1 i
    for ((i = 1; i < ${#POD_NAMES[@]}; i++)); do
        echo "${POD_NAMES[$i]} slots=$slots"
    done >"$POD_DIR/hostfile"
}

pods_wait_sshd() {
    local i name try
    for ((i = 1; i < ${#POD_NAMES[@]}; i++)); do
        name=${POD_NAMES[$i]}
        for try in $(seq 100); do
            nsenter -t "${POD_PID[${POD_NAMES[0]}]}" -n -u -m \
                ssh -F "$POD_DIR/ssh_config" -o ConnectTimeout=2 "$name" true \
                2>/dev/null && break
            [ "$try" = 100 ] && e2e_fail "sshd in $name never answered"
            sleep 0.1
        done
    done
}

# mpirun from the launcher pod over $POD_DIR/hostfile, with the transport
# pinned to the pods' network the way pods_launcher pins it. Ranks on one pod
# talk through Open MPI's shared memory; ranks on different pods through TCP
# over the (shaped) veths. It execs: call it in a subshell.
pods_mpirun() {
    exec nsenter -t "${POD_PID[${POD_NAMES[0]}]}" -n -u -m --wd="$PWD" env \
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        OMPI_MCA_plm_rsh_agent=ssh \
        OMPI_MCA_plm_rsh_args="-F $POD_DIR/ssh_config -o ConnectionAttempts=10" \
        OMPI_MCA_plm_rsh_no_tree_spawn=1 \
        OMPI_MCA_btl=self,vader,tcp \
        OMPI_MCA_btl_tcp_if_include=$E2E_SUBNET.0/24 \
        OMPI_MCA_oob_tcp_if_include=$E2E_SUBNET.0/24 \
        mpirun --hostfile "$POD_DIR/hostfile" "$@"
}
