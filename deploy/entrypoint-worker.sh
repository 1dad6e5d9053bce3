#!/bin/sh
# ringtrain-entrypoint-worker: the command of a worker pod. Runs sshd in the
# foreground (the pod lives as long as sshd) the way mpi-operator's images do:
# port 2222 and StrictModes no from the shipped sshd_config, and the keys of
# the job's ssh Secret, which the operator mounts at the MPIJob's
# sshAuthMountPath (default /root/.ssh; the mpiuser image's is
# /home/mpiuser/.ssh). The Secret's id_rsa is also the host key, so nothing
# secret is baked into the image; without one an ephemeral host key is made.
#
# sshd runs under ringtrain-init (deploy/init.c) when it is installed: as PID
# 1 it reaps, and when the pod is stopped it sends the SIGTERM to every
# process (sshd, orted and the ranks, which sshd alone would take down with
# it at once) and waits for them to end within the pod's grace period.
#
# Environment (all optional):
#   RINGTRAIN_SSH_AUTH_DIR  where the Secret is mounted: set it when
#                           sshAuthMountPath is not the user's ~/.ssh
#   RINGTRAIN_SSHD_CONFIG   sshd configuration (default /etc/ssh/sshd_config)
#   RINGTRAIN_SSHD          sshd program (default /usr/sbin/sshd)
#   RINGTRAIN_INIT          the init (default ringtrain-init; empty: none, sshd
#                           is then the container's PID 1)
# Arguments are passed on to sshd (e.g. -o LogLevel=DEBUG).
# Exit status: sshd's; 2 when the Secret or the configuration is missing.
set -eu

me=ringtrain-entrypoint-worker
auth_dir=${RINGTRAIN_SSH_AUTH_DIR:-${HOME:-/root}/.ssh}
config=${RINGTRAIN_SSHD_CONFIG:-/etc/ssh/sshd_config}
sshd=${RINGTRAIN_SSHD:-/usr/sbin/sshd}
init=${RINGTRAIN_INIT-ringtrain-init}

fail() {
    echo "$me: error: $*" >&2
    exit 2
}

case $auth_dir in
/*) ;;
*) fail "RINGTRAIN_SSH_AUTH_DIR=$auth_dir is not an absolute path; give the MPIJob's sshAuthMountPath" ;;
esac
[ -r "$config" ] || fail "$config is missing or unreadable; the image installs deploy/sshd/sshd_config there (or set RINGTRAIN_SSHD_CONFIG)"
[ -x "$sshd" ] || fail "$sshd is not installed; the image needs Debian's openssh-server"
[ -r "$auth_dir/authorized_keys" ] ||
    fail "$auth_dir/authorized_keys is missing or unreadable; mount the MPIJob's ssh Secret there (spec.sshAuthMountPath, default /root/.ssh; /home/mpiuser/.ssh for the mpiuser image) or set RINGTRAIN_SSH_AUTH_DIR to where it is"

if [ -r "$auth_dir/id_rsa" ]; then
    host_key=$auth_dir/id_rsa
else
    # No private key in the Secret (not one the operator made): a host key of
    # this pod's own; clients do not check it (StrictHostKeyChecking no).
    key_dir=$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-sshd.XXXXXX")
    ssh-keygen -q -t ed25519 -N '' -C "$me" -f "$key_dir/ssh_host_ed25519_key" ||
        fail "cannot make a host key in $key_dir; mount the job's ssh Secret (it has id_rsa)"
    host_key=$key_dir/ssh_host_ed25519_key
fi

# sshd running as root checks for its privilege separation directory.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
    mkdir -m 0755 /run/sshd
fi

set -- -D -e -f "$config" -h "$host_key" -o "AuthorizedKeysFile=$auth_dir/authorized_keys" "$@"
if [ -n "$init" ]; then
    if command -v "$init" >/dev/null 2>&1; then
        exec "$init" -- "$sshd" "$@"
    fi
    echo "$me: note: $init is not installed: sshd is PID 1, and a stopped pod's processes are killed without SIGTERM" >&2
fi
exec "$sshd" "$@"
