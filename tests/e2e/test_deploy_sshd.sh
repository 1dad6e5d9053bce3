#!/usr/bin/env bash
# End-to-end with deploy/'s own pieces (issue 5): the simulated pods of
# simpods.sh, but each worker's sshd is started by deploy/entrypoint-worker.sh
# with deploy/sshd/sshd_config at the image's path (/etc/ssh/sshd_config,
# bind-mounted in the pod's own mount namespace), every pod has
# deploy/sshd/ssh_config as the image's /etc/ssh/ssh_config.d/ringtrain.conf,
# and the keys come from a per-run "Secret" laid out as the kubelet mounts
# one (..data symlinks, id_rsa 0600, an ECDSA key like the operator's) in a
# group-writable directory, which only `StrictModes no` accepts. The launcher
# pod runs deploy/entrypoint-launcher.sh, which runs ringtrain-launcher: it
# reads the MPIJob, waits for both sshd (one starts late) on 2222 and runs
# PROGRAM over ssh. Then, as controls: the same key is refused by an sshd
# started with StrictModes yes, and a key not in the Secret is refused.
#   test_deploy_sshd.sh SOURCE_ROOT [--expect REGEX]... -- PROGRAM [ARGS...]
set -euo pipefail
# shellcheck source=tests/e2e/simpods.sh
source "$(dirname "$0")/simpods.sh"

src=${1:?usage: $0 SOURCE_ROOT [--expect REGEX]... -- PROGRAM [ARGS...]}
shift
expects=()
while [ $# -gt 0 ]; do
    case "$1" in
    --expect) expects+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) e2e_fail "usage: $0 SOURCE_ROOT [--expect REGEX]... -- PROGRAM [ARGS...]" ;;
    esac
done
[ $# -gt 0 ] || e2e_fail "no program given"
deploy=$src/deploy

pods_require
if [ ! -f /etc/ssh/sshd_config ] || [ ! -d /etc/ssh/ssh_config.d ]; then
    e2e_skip "/etc/ssh/sshd_config or /etc/ssh/ssh_config.d is missing (Debian's openssh packages have them)"
fi
grep -Eq '^Include /etc/ssh/ssh_config\.d/\*\.conf' /etc/ssh/ssh_config ||
    e2e_skip "/etc/ssh/ssh_config does not include ssh_config.d/*.conf as Debian's and the image's do"
state_before=$(ls -la /root/.ssh /run/sshd 2>&1 || true; md5sum /etc/ssh/sshd_config /etc/ssh/ssh_config)

job=$(e2e_job_name)
ns=e2e
workers=2
slots=2
pods_up "$job" "$ns" $workers "0 1" # no sshd from the harness: ours below
pods_mpijob "$job" "$ns" $workers $slots >"$POD_DIR/job.yaml"

# The job's ssh Secret as the kubelet mounts it (the operator's keys: id_rsa,
# id_rsa.pub, authorized_keys; DefaultMode 0600 at /root/.ssh).
secret=$POD_DIR/secret
data=..2024_01_01_00_00_00.000000001
mkdir -p "$secret/$data"
ssh-keygen -q -t ecdsa -b 521 -N '' -C ringtrain-e2e-secret -f "$secret/$data/id_rsa"
cp "$secret/$data/id_rsa.pub" "$secret/$data/authorized_keys"
chmod 600 "$secret/$data/id_rsa"
chmod 644 "$secret/$data/id_rsa.pub" "$secret/$data/authorized_keys"
ln -s "$data" "$secret/..data"
for f in id_rsa id_rsa.pub authorized_keys; do ln -s "..data/$f" "$secret/$f"; done
chmod 775 "$secret" "$secret/$data" # group-writable: StrictModes yes refuses this

# The image's files, in each pod's own mount namespace only.
mkdir -p "$POD_DIR/ssh_config.d"
cp "$deploy/sshd/ssh_config" "$POD_DIR/ssh_config.d/ringtrain.conf"
for name in "${POD_NAMES[@]}"; do
    pid=${POD_PID[$name]}
    nsenter -t "$pid" -m mount --bind "$deploy/sshd/sshd_config" /etc/ssh/sshd_config
    nsenter -t "$pid" -m mount --bind "$POD_DIR/ssh_config.d" /etc/ssh/ssh_config.d
    # No ~/.ssh of this machine's root may take part.
    if [ -d /root/.ssh ]; then
        mkdir -p "$POD_DIR/empty"
        nsenter -t "$pid" -m mount --bind "$POD_DIR/empty" /root/.ssh
    fi
    # As in a fresh container: the entry script makes sshd's /run/sshd.
    nsenter -t "$pid" -m rmdir /run/sshd
done

# A worker pod's command: ringtrain-entrypoint-worker [SSHD ARGS...].
entry_worker() {
    local index=$1 log=$2
    shift 2
    local name=${POD_NAMES[$((1 + index))]}
    nsenter -t "${POD_PID[$name]}" -n -u -m timeout "$E2E_MAX_SECONDS" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root RINGTRAIN_SSH_AUTH_DIR="$secret" \
        sh "$deploy/entrypoint-worker.sh" "$@" >>"$POD_DIR/$log" 2>&1 &
}

t0=$(date +%s%N)
entry_worker 0 worker-0.log
( sleep 1.5; entry_worker 1 worker-1.log ) &
rc=0
( exec nsenter -t "${POD_PID[${POD_NAMES[0]}]}" -n -u -m --wd="$PWD" env \
      OMPI_MCA_btl=self,vader,tcp \
      OMPI_MCA_btl_tcp_if_include=$E2E_SUBNET.0/24 \
      OMPI_MCA_oob_tcp_if_include=$E2E_SUBNET.0/24 \
      RINGTRAIN_SSH_AUTH_DIR="$secret" RINGTRAIN_LAUNCHER="$LAUNCHER" \
      sh "$deploy/entrypoint-launcher.sh" --mpijob "$POD_DIR/job.yaml" --wait-timeout 30 \
      --output-dir "$POD_DIR/out" -- "$@" ) >"$POD_DIR/stdout" 2>"$POD_DIR/stderr" || rc=$?
t1=$(date +%s%N)
echo "--- launcher stdout"; cat "$POD_DIR/stdout"
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- worker sshd logs"; cat "$POD_DIR"/worker-*.log 2>/dev/null || true
echo "--- exit $rc after $(ms "$t0" "$t1") ms"

[ $rc = 0 ] || e2e_fail "launcher exited $rc"
grep -q "all $workers hosts ready" "$POD_DIR/stderr" || e2e_fail "the launcher did not report readiness"
for re in "${expects[@]}"; do
    re=${re//@JOB@/$job}
    grep -Eq -- "$re" "$POD_DIR/stdout" || e2e_fail "output does not match: $re"
done
diff <(for ((i = 0; i < workers; i++)); do echo "$job-worker-$i.$job.$ns.svc slots=$slots"; done) \
    "$POD_DIR/out/hostfile" || e2e_fail "hostfile differs"
for i in 0 1; do
    nsenter -t "${POD_PID[${POD_NAMES[$((1 + i))]}]}" -m test -d /run/sshd ||
        e2e_fail "entrypoint-worker.sh did not create /run/sshd in worker $i"
done

# Controls, from the launcher pod with the pods' ssh client configuration.
in_launcher() { nsenter -t "${POD_PID[${POD_NAMES[0]}]}" -n -u -m "$@"; }
host0=$job-worker-0.$job.$ns.svc
out=$(in_launcher ssh -i "$secret/id_rsa" "$host0" hostname 2>&1) ||
    e2e_fail "ssh with the Secret's key to $host0 failed: $out"
[ "$out" = "$job-worker-0" ] || e2e_fail "ssh $host0 hostname printed '$out'"
echo "control: ssh -i Secret/id_rsa $host0 (port 2222 from ssh_config.d/ringtrain.conf) -> $out"

entry_worker 0 strict.log -p 2223 -o StrictModes=yes
for _ in $(seq 100); do
    in_launcher bash -c "exec 3<>/dev/tcp/$host0/2223" 2>/dev/null && break
    sleep 0.05
done
if out=$(in_launcher ssh -p 2223 -i "$secret/id_rsa" "$host0" true 2>&1); then
    e2e_fail "sshd with StrictModes yes accepted the group-writable Secret: the control proves nothing"
fi
echo "control: the same key with StrictModes yes (port 2223) -> refused: $out"

ssh-keygen -q -t ed25519 -N '' -f "$POD_DIR/stranger"
if out=$(in_launcher ssh -i "$POD_DIR/stranger" -o IdentitiesOnly=yes "$host0" true 2>&1); then
    e2e_fail "a key that is not in the Secret was accepted"
fi
echo "control: a key not in the Secret -> refused: $out"

# Cleanup leaves nothing behind; the machine's own ssh files are untouched.
dir=$POD_DIR
pods_cleanup
[ ! -e "$dir" ] || e2e_fail "$dir left behind"
if pgrep -f -- "$dir" >/dev/null; then e2e_fail "processes of the run are left: $(pgrep -af -- "$dir")"; fi
state_after=$(ls -la /root/.ssh /run/sshd 2>&1 || true; md5sum /etc/ssh/sshd_config /etc/ssh/ssh_config)
[ "$state_after" = "$state_before" ] || e2e_fail "/root/.ssh, /run/sshd or /etc/ssh changed on this machine"
echo "PASS"
