# shellcheck shell=bash
# MPIJobs in containers, wired the way mpi-operator wires pods (sourced by
# the tests of tests/containers, and by any test that wants a job of real
# containers from the image deploy/Dockerfile builds).
#
# Images. A Debian 12 base made here (debootstrap --variant=minbase bookworm
# from this machine's Debian mirror and apt sources, set up as Debian's own
# container images are: unsafe-io dpkg, no docs) and imported with `podman
# import`; no image registry is needed. deploy/Dockerfile is built on it
# (DEBIAN_IMAGE), both the default root stage and `mpiuser`. The base is
# kept (localhost/ringtrain-test-base:bookworm, rebuilt when the apt sources
# change). A stamp in the build directory records the digest of the files
# the images were built from, so every test may ask for the images and only
# the first of a run builds them (again only when a file changed; podman's
# layer cache then redoes the steps from the first that changed). Builds
# take a lock: tests of other checkouts wait their turn.
#
# A job. mpijob_pods.py reads the manifest and makes what the controller
# makes (ssh Secret, ConfigMap with hostfile and discover_hosts.sh, names,
# environment, podman arguments of each pod); here the workers are started
# on a bridge network of the job's own (--internal: nothing leaves it),
# readiness is their tcpSocket probe (port 2222) from this machine as the
# kubelet probes it, and with launcherCreationPolicy WaitForWorkersReady the
# launcher container starts only when every worker is ready.
#
#   ctr_require                       exit 77 (skip) where podman cannot run
#                                     containers (no root, no namespaces, no
#                                     runc, ...)
#   ctr_images                        make the base, build both stages; sets
#                                     CTR_IMAGE (root) and CTR_IMAGE_MPIUSER
#   ctr_prepare                       both of the above
#   ctr_args USAGE "$@"               a test's MANIFEST [NUMBER] -- PROGRAM...
#                                     into CTR_MANIFEST, CTR_NUMBER, CTR_PROGRAM
#   ctr_job_dir                       the job's temporary directory CTR_DIR
#                                     (removed on exit), for files to --mount
#   ctr_job_create MANIFEST [OPT...]  the controller's objects, network and
#                                     pod arguments (OPT: mpijob_pods.py's
#                                     --pending, --policy, --launcher-args,
#                                     --mount); sets JOB NS SLOTS WORKERS
#                                     SSH_PATH POLICY and CTR_DIR
#   ctr_workers_start                 start every worker container
#   ctr_workers_ready [SECONDS]       wait for every worker's readiness
#                                     probe; fails naming a worker that exited
#                                     or never became ready
#   ctr_launcher_start                start the launcher container
#   ctr_job_up MANIFEST [OPT...]      all of the above, in the controller's
#                                     order (launcherCreationPolicy)
#   ctr_launcher_wait SECONDS         wait for the launcher to exit; sets
#                                     CTR_LAUNCHER_RC (124 on timeout)
#   ctr_launcher_result SECONDS T0    the same, then show its log and exit
#                                     status (CTR_LAUNCHER_LOG, _RC, _MS: ms
#                                     since the $(date +%s%N) stamp T0)
#   ctr_launcher_log_wait REGEX [S]   wait until the launcher's log matches
#   ctr_logs POD                      the container's log (stdout + stderr)
#   ctr_processes POD                 "USER PID ARGS" of its processes
#   ctr_stop GRACE POD...             stop pods at once as the kubelet does
#                                     (SIGTERM, SIGKILL after GRACE seconds)
#   ctr_name POD                      podman's name for the pod's container
#   ctr_running                       pods whose container is running
#   ctr_exit_code POD                 a stopped container's exit code
#   ctr_run_ms POD                    how long it ran, start to exit (ms)
#   ctr_clean_pods [GRACE]            cleanPodPolicy Running: what the
#                                     controller does once the launcher is done
#                                     (running pods are deleted: podman stop
#                                     -t GRACE, default 30)
#   ctr_json WORD...                  the words as a JSON list
#   ctr_job_down                      remove the job's containers, network,
#                                     Secret, ConfigMap and emptyDirs (a job
#                                     deleted); the rest of CTR_DIR stays, and
#                                     the same job can be created again
#   ctr_cleanup                       runs on exit: containers, network and
#                                     temporary files of the job, even on failure
# The podman commands themselves (CTR_PODMAN, CTR_LIMITS, the build and run
# arguments) are echoed as they run, and deploy/README.md shows them.

CTR_PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# The default OCI runtime (crun) and larger rlimits are refused on the
# machines this runs on; pods get these limits on most clusters anyway.
CTR_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
CTR_BASE=localhost/ringtrain-test-base:bookworm
CTR_LOCK=/tmp/ringtrain-containers.lock
# A container outlives a test that was SIGKILLed by no more than this.
CTR_MAX_SECONDS=900

ctr_skip() { echo "SKIP: $*"; exit 77; }
ctr_fail() { echo "FAIL: $*" >&2; exit 1; }
ctr_say() { echo "containers: $*"; }

# The tests' command line, MANIFEST [NUMBER] -- PROGRAM...: sets
# CTR_MANIFEST, CTR_NUMBER (empty when not given) and CTR_PROGRAM; $1 is the
# usage line shown when it is wrong.
# shellcheck disable=SC2034 # the variables are the caller's
ctr_args() {
    local usage=$1
    shift
    CTR_MANIFEST=${1:-}
    [ $# -gt 0 ] && shift
    CTR_NUMBER=
    if [ $# -gt 0 ] && [ "$1" != -- ]; then
        CTR_NUMBER=$1
        shift
    fi
    [ "${1:-}" = -- ] && shift
    CTR_PROGRAM=("$@")
    if [ -z "$CTR_MANIFEST" ] || [ ${#CTR_PROGRAM[@]} = 0 ]; then
        ctr_fail "usage: $usage"
    fi
}

# ctr_require and ctr_images: what every test of a job starts with.
ctr_prepare() {
    ctr_require
    ctr_images
}

ctr_require() {
    [ "$(id -u)" = 0 ] || ctr_skip "needs root (podman with runc, bridge networks)"
    local tool
    for tool in podman runc debootstrap python3 ssh-keygen flock unshare timeout; do
        command -v "$tool" >/dev/null 2>&1 ||
            ctr_skip "$tool is not installed (tools/setup --tests installs podman, runc and debootstrap)"
    done
    unshare --pid --fork --mount --net --uts --ipc true 2>/dev/null ||
        ctr_skip "cannot create namespaces here (a chroot or a container without them): no containers"
    "${CTR_PODMAN[@]}" info >/dev/null 2>&1 ||
        ctr_skip "podman cannot run here: $("${CTR_PODMAN[@]}" info 2>&1 | tail -n 1)"
    CTR_SRC=${RINGTRAIN_SOURCE_DIR:?}
    CTR_HERE=$CTR_SRC/tests/containers
}

# ---- images -------------------------------------------------------------------

# The Debian mirror and the apt sources files of this machine (deb822
# .sources or one-line .list, disabled ones left out).
ctr_apt_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        if [ -f "$f" ]; then printf '%s\n' "$f"; fi
    done
}

ctr_debian_mirror() {
    # shellcheck disable=SC2046
    awk '/^deb / && $3 ~ /^bookworm$/ { print $2; exit }
         /^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ && uri { print uri; exit }' \
        $(ctr_apt_sources) /dev/null
}

# debootstrap into a temporary directory, apt sources and dpkg set up as in
# Debian's images, then `podman import` as $CTR_BASE labelled with $1.
ctr_make_base() {
    local key=$1 mirror root rc=0 f
    mirror=$(ctr_debian_mirror)
    [ -n "$mirror" ] || ctr_fail "no bookworm mirror in this machine's apt sources ($(ctr_apt_sources | tr '\n' ' '))"
    root=$(mktemp -d /tmp/ringtrain-base.XXXXXX)
    # shellcheck disable=SC2064 # $root now: it is local
    trap "rm -rf '$root' '$root.log'" EXIT
    ctr_say "base image: debootstrap --variant=minbase bookworm $root $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
        tail -n 20 "$root.log" >&2
        rm -rf "$root" "$root.log"
        ctr_fail "debootstrap of Debian 12 from $mirror failed (exit $rc); see above"
    fi
    rm -f "$root/etc/apt/sources.list" "$root.log"
    for f in $(ctr_apt_sources); do
        cp "$f" "$root/etc/apt/${f#/etc/apt/}"
    done
    # As in Debian's official images: dpkg without fsync, no documentation.
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    printf 'path-exclude %s\n' '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' \
        '/usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/docker"
    printf 'path-include %s\n' '/usr/share/doc/*/copyright' >>"$root/etc/dpkg/dpkg.cfg.d/docker"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | "${CTR_PODMAN[@]}" import --change 'CMD ["bash"]' \
        --change "LABEL ringtrain.base=$key" - "$CTR_BASE" >/dev/null || rc=$?
    rm -rf "$root"
    trap - EXIT
    [ $rc = 0 ] || ctr_fail "podman import of the Debian 12 root failed (exit $rc)"
}

# Makes the base image unless it is there, made from the same apt sources;
# prints its ID. Call it in a subshell ($(...)): its EXIT trap is its own.
ctr_base_image() {
    local key have sources
    mapfile -t sources < <(ctr_apt_sources)
    key=$(cat "${sources[@]}" /dev/null | sha256sum | cut -c1-16)
    have=$("${CTR_PODMAN[@]}" image inspect --format '{{index .Labels "ringtrain.base"}}' \
        "$CTR_BASE" 2>/dev/null || true)
    if [ "$have" != "$key" ]; then
        ctr_make_base "$key" >&2
    fi
    "${CTR_PODMAN[@]}" image inspect --format '{{.Id}}' "$CTR_BASE"
}

# A digest of the build context (the checkout as deploy/Dockerfile.dockerignore
# leaves it: no .git, build*, __pycache__, top-level *.o) and of the base
# image ($1, its ID).
ctr_context_key() {
    python3 - "$CTR_SRC" "$1" <<'PY'
import hashlib, os, stat, sys
root, h = sys.argv[1], hashlib.sha256(sys.argv[2].encode())
for d, dirs, files in os.walk(root):
    rel = os.path.relpath(d, root)
    if rel == ".":
        dirs[:] = [x for x in dirs if x != ".git" and x != "build" and not x.startswith("build-")]
        files = [f for f in files if f != ".git" and not f.endswith(".o")]
    dirs[:] = sorted(x for x in dirs if x != "__pycache__")
    for f in sorted(files):
        path = os.path.join(d, f)
        st = os.lstat(path)
        h.update(f"{os.path.join(rel, f)}\0{st.st_mode:o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
print(h.hexdigest()[:24])
PY
}

# One target of deploy/Dockerfile on the base. The build log is shown when
# it fails; its last lines name the failing step.
ctr_build() {
    local target=$1 tag=$2 log rc=0
    log=$(mktemp /tmp/ringtrain-build.XXXXXX)
    local cmd=("${CTR_PODMAN[@]}" build --isolation chroot --network host --jobs 2
               -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore
               --build-arg "DEBIAN_IMAGE=$CTR_BASE" --target "$target" -t "$tag" .)
    ctr_say "${cmd[*]}"
    (cd "$CTR_SRC" && "${cmd[@]}") >"$log" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        ctr_fail "podman build of deploy/Dockerfile (stage $target) failed (exit $rc); see above"
    fi
    rm -f "$log"
}

# The IDs of the two images (empty when one is missing).
ctr_image_ids() {
    "${CTR_PODMAN[@]}" image inspect --format '{{.Id}}' "$CTR_IMAGE" "$CTR_IMAGE_MPIUSER" \
        2>/dev/null | tr '\n' ' ' || true
}

# Builds both images unless the stamp says they were built from these very
# files (the context's digest) and are still the images built then: every
# test of a run asks, the first one builds (again only what changed: podman's
# layer cache redoes the steps from the first that changed).
ctr_images() {
    local id t0 base key stamp
    # One tag per checkout: tests of other checkouts build their own.
    id=$(printf '%s' "$CTR_SRC" | sha256sum | cut -c1-12)
    CTR_IMAGE=localhost/ringtrain-test:$id
    CTR_IMAGE_MPIUSER=localhost/ringtrain-test:$id-mpiuser
    stamp=${RINGTRAIN_BUILD_DIR:-/tmp}/ringtrain-containers-$id.stamp
    t0=$(date +%s)
    exec 8>"$CTR_LOCK"
    flock -w "$CTR_MAX_SECONDS" 8 || ctr_fail "another run held $CTR_LOCK for $CTR_MAX_SECONDS s"
    base=$(ctr_base_image)
    key=$(ctr_context_key "$base")
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key $(ctr_image_ids)" ]; then
        ctr_say "images built from this checkout already: $CTR_IMAGE, $CTR_IMAGE_MPIUSER"
    else
        ctr_build root "$CTR_IMAGE"
        ctr_build mpiuser "$CTR_IMAGE_MPIUSER"
        echo "$key $(ctr_image_ids)" >"$stamp"
        ctr_say "images ready after $(($(date +%s) - t0)) s: $CTR_IMAGE, $CTR_IMAGE_MPIUSER"
    fi
    exec 8>&-
}

# ---- a job ----------------------------------------------------------------------

CTR_DIR=
CTR_PREFIX=
CTR_NET=
CTR_PODS=()
declare -A CTR_IP=()
declare -A CTR_PROBE=()

ctr_name() { echo "$CTR_PREFIX-$1"; }

ctr_cleanup() {
    local rc=$?
    set +e
    trap - EXIT
    trap '' INT TERM
    ctr_job_down
    [ -n "$CTR_DIR" ] && [ -d "$CTR_DIR" ] && rm -rf "$CTR_DIR"
    CTR_DIR=
    return $rc
}

ctr_job_down() {
    [ -n "$CTR_PREFIX" ] || return 0
    "${CTR_PODMAN[@]}" ps -aq --filter "label=ringtrain-test=$CTR_PREFIX" |
        xargs -r "${CTR_PODMAN[@]}" rm -f -t 0 >/dev/null 2>&1 || true
    [ -z "$CTR_NET" ] || "${CTR_PODMAN[@]}" network rm -f "$CTR_NET" >/dev/null 2>&1
    # Its Secret, ConfigMap and emptyDirs go with it; --mount and --claim
    # directories stay.
    [ -z "$CTR_DIR" ] || rm -rf "$CTR_DIR"/{secret,config,vol,pods,job.env}
    return 0
}

# Containers and networks of earlier runs that were killed before their
# cleanup (label ringtrain-test.expires in the past).
ctr_sweep() {
    local now id expires
    now=$(date +%s)
    while read -r id expires; do
        [ -n "$expires" ] && [ "$expires" -lt "$now" ] &&
            "${CTR_PODMAN[@]}" rm -f -t 0 "$id" >/dev/null 2>&1
    done < <("${CTR_PODMAN[@]}" ps -a --filter label=ringtrain-test \
        --format '{{.ID}} {{index .Labels "ringtrain-test.expires"}}' 2>/dev/null)
    while read -r id expires; do
        [ -n "$expires" ] && [ "$expires" -lt "$now" ] &&
            "${CTR_PODMAN[@]}" network rm -f "$id" >/dev/null 2>&1
    done < <("${CTR_PODMAN[@]}" network ls --filter label=ringtrain-test \
        --format '{{.Name}} {{index .Labels "ringtrain-test.expires"}}' 2>/dev/null)
}

# A bridge network of the job's own on a free /24; sets CTR_SUBNET (A.B.C).
ctr_network() {
    local expires
    expires=$(($(date +%s) + CTR_MAX_SECONDS))
    CTR_NET=$CTR_PREFIX-net
    for _ in $(seq 20); do
        CTR_SUBNET=10.$((200 + RANDOM % 40)).$((RANDOM % 256))
        "${CTR_PODMAN[@]}" network create --internal --subnet "$CTR_SUBNET.0/24" \
            --label ringtrain-test="$CTR_PREFIX" --label ringtrain-test.expires=$expires \
            "$CTR_NET" >/dev/null 2>&1 && return 0
    done
    ctr_fail "podman network create --internal --subnet 10.x.y.0/24 failed 20 times: $("${CTR_PODMAN[@]}" \
        network create --internal --subnet "$CTR_SUBNET.0/24" "$CTR_NET" 2>&1)"
}

# The job's temporary directory (CTR_DIR) and its cleanup on exit; a test
# may call it first to put files there for --mount.
ctr_job_dir() {
    [ -n "$CTR_DIR" ] && return 0
    CTR_PREFIX=$(printf 'rt%04x%04x' $RANDOM $RANDOM)
    CTR_DIR=$(mktemp -d /tmp/ringtrain-containers.XXXXXX)
    chmod 755 "$CTR_DIR"
    trap ctr_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

ctr_job_create() {
    local manifest=$1 role pod ip probe
    shift
    ctr_job_dir
    ctr_sweep
    ctr_network
    python3 "$CTR_HERE/mpijob_pods.py" "$manifest" --dir "$CTR_DIR" --prefix "$CTR_PREFIX" \
        --subnet "$CTR_SUBNET" --image "ringtrain:cpu=$CTR_IMAGE" \
        --image "ringtrain:cpu-mpiuser=$CTR_IMAGE_MPIUSER" "$@" ||
        ctr_fail "mpijob_pods.py could not make the pods of $manifest"
    # shellcheck disable=SC1091
    source "$CTR_DIR/job.env"
    CTR_PODS=()
    while read -r role pod ip probe; do
        CTR_PODS+=("$pod")
        CTR_IP[$pod]=$ip
        CTR_PROBE[$pod]=$probe
        [ "$role" = launcher ] && CTR_LAUNCHER=$pod
    done <"$CTR_DIR/pods/list"
}

ctr_start() {
    local pod=$1 args=()
    mapfile -d '' -t args <"$CTR_DIR/pods/$pod.args"
    local cmd=("${CTR_PODMAN[@]}" run "${CTR_LIMITS[@]}" --timeout "$CTR_MAX_SECONDS"
               --label "ringtrain-test.expires=$(($(date +%s) + CTR_MAX_SECONDS))" "${args[@]}")
    ctr_say "$(printf '%q ' "${cmd[@]}")"
    "${cmd[@]}" >/dev/null || ctr_fail "podman run of $pod failed"
}

# Side by side, as the controller creates the worker pods.
ctr_workers_start() {
    local pod pids=() rc=0
    for pod in "${CTR_PODS[@]}"; do
        [ "$pod" = "$CTR_LAUNCHER" ] && continue
        ctr_start "$pod" &
        pids+=($!)
    done
    for pod in "${pids[@]}"; do wait "$pod" || rc=1; done
    [ $rc = 0 ] || ctr_fail "a worker container did not start"
}

ctr_state() {
    "${CTR_PODMAN[@]}" inspect --format '{{.State.Status}}' "$(ctr_name "$1")" 2>/dev/null
}

ctr_exit_code() {
    "${CTR_PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$(ctr_name "$1")"
}

ctr_logs() { "${CTR_PODMAN[@]}" logs "$(ctr_name "$1")" 2>&1; }

# Milliseconds a stopped pod's container ran (its own start to its exit, as
# the runtime recorded them: no podman start-up time in it).
ctr_run_ms() {
    local t
    t=$("${CTR_PODMAN[@]}" inspect --format '{{.State.StartedAt.UnixNano}} {{.State.FinishedAt.UnixNano}}' \
        "$(ctr_name "$1")")
    echo $(((${t#* } - ${t% *}) / 1000000))
}

ctr_running() {
    local pod
    for pod in "${CTR_PODS[@]}"; do
        [ "$(ctr_state "$pod")" = running ] && echo "$pod"
    done
    return 0
}

# The kubelet's tcpSocket probe: a TCP connect from this machine to the
# pod's IP. A worker whose container has exited fails the wait at once.
ctr_workers_ready() {
    local deadline=$(($(date +%s) + ${1:-60})) pod waiting state
    while :; do
        waiting=()
        for pod in "${CTR_PODS[@]}"; do
            [ "$pod" = "$CTR_LAUNCHER" ] && continue
            state=$(ctr_state "$pod")
            if [ "$state" != running ]; then
                ctr_logs "$pod" | tail -n 20 >&2
                ctr_fail "worker $pod's container is not running ($state, exit status $(ctr_exit_code "$pod")) before it was ready; its log is above"
            fi
            [ "${CTR_PROBE[$pod]}" = 0 ] && continue
            timeout 2 bash -c "exec 3<>/dev/tcp/${CTR_IP[$pod]}/${CTR_PROBE[$pod]}" 2>/dev/null ||
                waiting+=("$pod")
        done
        [ ${#waiting[@]} = 0 ] && return 0
        if [ "$(date +%s)" -ge "$deadline" ]; then
            for pod in "${waiting[@]}"; do ctr_logs "$pod" | tail -n 20 >&2; done
            ctr_fail "worker(s) never ready (tcpSocket ${CTR_PROBE[${waiting[0]}]}): ${waiting[*]}; logs above"
        fi
        sleep 0.2
    done
}

ctr_launcher_start() { ctr_start "$CTR_LAUNCHER"; }

ctr_job_up() {
    ctr_job_create "$@"
    ctr_workers_start
    [ "$POLICY" = WaitForWorkersReady ] && ctr_workers_ready 60
    ctr_launcher_start
}

ctr_launcher_wait() {
    # shellcheck disable=SC2034 # for the caller
    CTR_LAUNCHER_RC=$(timeout "$1" "${CTR_PODMAN[@]}" wait "$(ctr_name "$CTR_LAUNCHER")") ||
        CTR_LAUNCHER_RC=124
}

# ctr_launcher_wait, then the launcher's log (in CTR_LAUNCHER_LOG, and shown
# without Open MPI's backtrace lines) and its exit status and time since T0
# (a $(date +%s%N) stamp; in CTR_LAUNCHER_MS).
ctr_launcher_result() {
    local t1
    ctr_launcher_wait "$1"
    t1=$(date +%s%N)
    CTR_LAUNCHER_MS=$(ctr_ms "$2" "$t1")
    CTR_LAUNCHER_LOG=$(ctr_logs "$CTR_LAUNCHER")
    echo "--- launcher log"
    grep -v '^\[[^]]*\] \[ *[0-9]*\] ' <<<"$CTR_LAUNCHER_LOG" || true
    echo "--- launcher exit $CTR_LAUNCHER_RC after $CTR_LAUNCHER_MS ms"
}

# cleanPodPolicy: Running, once the launcher has finished: every running pod
# is deleted (SIGTERM, SIGKILL after the grace period), all at once.
ctr_clean_pods() {
    local grace=${1:-30} pods
    mapfile -t pods < <(ctr_running)
    [ ${#pods[@]} = 0 ] && return 0
    ctr_say "cleanPodPolicy Running: podman stop -t $grace ${pods[*]}"
    ctr_stop "$grace" "${pods[@]}"
}

# Milliseconds between two $(date +%s%N) stamps.
ctr_ms() { echo $((($2 - $1) / 1000000)); }

# Words as a JSON list (a pod's args for mpijob_pods.py --launcher-args).
ctr_json() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# Waits until the launcher's log matches REGEX (SECONDS, default 120);
# fails when the launcher exits first.
ctr_launcher_log_wait() {
    local re=$1 deadline=$(($(date +%s) + ${2:-120}))
    until ctr_logs "$CTR_LAUNCHER" | grep -Eq -- "$re"; do
        if [ "$(ctr_state "$CTR_LAUNCHER")" != running ]; then
            ctr_logs "$CTR_LAUNCHER" | tail -n 30 >&2
            ctr_fail "the launcher exited ($(ctr_exit_code "$CTR_LAUNCHER")) before its log said /$re/"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || ctr_fail "the launcher's log never said /$re/"
        sleep 0.2
    done
}

# Every process of a pod's container as "USER PID ARGS" lines (podman top).
ctr_processes() { "${CTR_PODMAN[@]}" top "$(ctr_name "$1")" user pid args | tail -n +2; }

# Stops the given pods at once, as the kubelets of their nodes delete them:
# SIGTERM, then SIGKILL after GRACE seconds (one `podman stop` each, side by
# side, so none waits for another).
ctr_stop() {
    local grace=$1 pod pids=() rc=0
    shift
    for pod in "$@"; do
        "${CTR_PODMAN[@]}" stop -t "$grace" "$(ctr_name "$pod")" >/dev/null &
        pids+=($!)
    done
    for pod in "${pids[@]}"; do wait "$pod" || rc=$?; done
    return $rc
}
