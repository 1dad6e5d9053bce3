#!/usr/bin/env bash
# The images deploy/Dockerfile builds (root stage and mpiuser), checked from
# the inside: every program and entry script is there and finds its
# libraries, sshd (openssh-server), ssh (openssh-client), mpirun and orted
# (openmpi-bin) are installed, no ssh host key is baked in, the image's sshd
# and ssh configuration listen and connect on 2222, PID 1 of a worker is
# ringtrain-init, and the mpiuser image runs as uid 1000 with its home. Each
# failure names what is missing and the package or step that provides it.
# This is also the test that builds the images (the suite's first).
#   test_image.sh
#
# The scripts run in the image are in single quotes on purpose:
# shellcheck disable=SC2016
set -euo pipefail
source "$(dirname "$0")/pods.sh"
ctr_prepare

# Runs a shell script in a fresh container of IMAGE (no network).
in_image() {
    local image=$1
    shift
    "${CTR_PODMAN[@]}" run --rm --pull never --network none "${CTR_LIMITS[@]}" \
        --entrypoint '["sh", "-c"]' "$image" "$@"
}

# Each line the script prints is one problem.
problems=$(in_image "$CTR_IMAGE" '
need() { [ -x "$1" ] || echo "$1 is missing: $2"; }
for p in worker launcher init entrypoint-worker entrypoint-launcher; do
    need /usr/local/bin/ringtrain-$p "the build stage installs it (meson install, deploy/)"
done
need /usr/sbin/sshd "the runtime stage must install Debian'\''s openssh-server"
need /usr/bin/ssh "the runtime stage must install openssh-client"
need /usr/bin/mpirun "the runtime stage must install openmpi-bin"
need /usr/bin/orted "the runtime stage must install openmpi-bin"
for p in /usr/local/bin/ringtrain-*; do
    if ldd "$p" 2>/dev/null | grep -q "not found"; then
        echo "$p: $(ldd "$p" | grep "not found" | tr -s " \t" " " | tr "\n" ";") the runtime stage installs runtime-deps.sh'\''s packages"
    fi
done
for k in /etc/ssh/ssh_host_*key; do
    [ -e "$k" ] && echo "$k: a private host key is baked into the image"
done
grep -qx "Port 2222" /etc/ssh/sshd_config 2>/dev/null || echo "/etc/ssh/sshd_config does not say Port 2222 (deploy/sshd/sshd_config)"
grep -q "Port 2222" /etc/ssh/ssh_config.d/ringtrain.conf 2>/dev/null || echo "/etc/ssh/ssh_config.d/ringtrain.conf does not say Port 2222 (deploy/sshd/ssh_config)"
[ -d /run/sshd ] || echo "/run/sshd is missing (sshd as root needs it)"
ringtrain-worker --help >/dev/null 2>&1 || echo "ringtrain-worker --help fails: $(ringtrain-worker --help 2>&1 | head -n 1)"
ringtrain-launcher --version >/dev/null 2>&1 || echo "ringtrain-launcher --version fails"
' 2>&1) || true
image_cmd=$("${CTR_PODMAN[@]}" image inspect --format '{{json .Config.Cmd}}' "$CTR_IMAGE")
[ "$image_cmd" = '["ringtrain-entrypoint-worker"]' ] ||
    problems+=$'\n'"the image's CMD is $image_cmd, not [\"ringtrain-entrypoint-worker\"]"

# PID 1 of a worker: ringtrain-init in front of sshd (keys of this test;
# without an id_rsa the entry script makes an ephemeral host key).
ctr_job_dir
name=$(ctr_name pid1)
ssh-keygen -q -t ed25519 -N '' -f "$CTR_DIR/key" && cp "$CTR_DIR/key.pub" "$CTR_DIR/authorized_keys"
chmod 644 "$CTR_DIR"/*
"${CTR_PODMAN[@]}" run -d --name "$name" --label "ringtrain-test=$CTR_PREFIX" --pull never \
    --network none "${CTR_LIMITS[@]}" -v "$CTR_DIR:/ringtrain-test:ro" \
    --env RINGTRAIN_SSH_AUTH_DIR=/ringtrain-test "$CTR_IMAGE" >/dev/null
pid1=
for _ in $(seq 50); do
    [ "$(ctr_state pid1)" = running ] || break
    procs=$("${CTR_PODMAN[@]}" top "$name" pid args 2>/dev/null || true)
    pid1=$(awk '$1 == 1 { $1 = ""; print }' <<<"$procs")
    [ -n "$pid1" ] && [ "$(grep -c sshd <<<"$procs")" -ge 2 ] && break
    sleep 0.2
done
echo "worker PID 1:$pid1"
case "$pid1" in
" ringtrain-init -- /usr/sbin/sshd -D -e "*) ;;
*) problems+=$'\n'"a worker's PID 1 is '$pid1', not ringtrain-init -- /usr/sbin/sshd ...; its log: $(
       "${CTR_PODMAN[@]}" logs "$name" 2>&1 | tail -n 3 | tr '\n' ' ')" ;;
esac

user=$("${CTR_PODMAN[@]}" image inspect --format '{{.Config.User}}' "$CTR_IMAGE_MPIUSER")
[ "$user" = 1000:1000 ] || problems+=$'\n'"the mpiuser image's USER is '$user', not 1000:1000"
who=$(in_image "$CTR_IMAGE_MPIUSER" 'echo "$(id -u):$(id -g) $(id -un) $HOME $(stat -c %u "$HOME") $(pwd)"' 2>&1)
[ "$who" = "1000:1000 mpiuser /home/mpiuser 1000 /home/mpiuser" ] ||
    problems+=$'\n'"the mpiuser image runs as '$who', not '1000:1000 mpiuser /home/mpiuser 1000 /home/mpiuser'"

problems=$(sed '/^$/d' <<<"$problems")
if [ -n "$problems" ]; then
    echo "FAIL: the image built from deploy/Dockerfile:" >&2
    while IFS= read -r line; do echo "  $line"; done <<<"$problems" >&2
    exit 1
fi
echo "image checks passed: programs, libraries, sshd, ssh, Open MPI, no host keys, port 2222, ringtrain-init as PID 1, mpiuser 1000"
echo "PASS"
