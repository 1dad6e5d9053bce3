#!/bin/sh
# ringtrain-entrypoint-launcher: the command of a launcher pod. Checks that
# the job's ssh Secret is mounted, then execs ringtrain-launcher with the
# workers' ssh port (2222, as in deploy/sshd/) and the arguments given:
#   ringtrain-entrypoint-launcher [LAUNCHER OPTIONS] -- PROGRAM [ARGS...]
# Without --mpijob ringtrain-launcher reads the hostfile the operator mounts
# at /etc/mpi/hostfile; it waits until every worker accepts TCP on the port,
# runs mpirun, forwards SIGTERM and exits with the job's status.
#
# Environment (all optional):
#   RINGTRAIN_SSH_AUTH_DIR  where the Secret is mounted, when the MPIJob's
#                           sshAuthMountPath is not the user's ~/.ssh: mpirun's
#                           ssh is then given `-i <dir>/id_rsa`
#   RINGTRAIN_SSH_PORT      the workers' sshd port (default 2222)
#   RINGTRAIN_LAUNCHER      the launcher program (default ringtrain-launcher)
# Exit status: ringtrain-launcher's; 2 when the Secret is missing.
set -eu

me=ringtrain-entrypoint-launcher
launcher=${RINGTRAIN_LAUNCHER:-ringtrain-launcher}
port=${RINGTRAIN_SSH_PORT:-2222}

fail() {
    echo "$me: error: $*" >&2
    exit 2
}

# With --dry-run, --print-*, --help, --version or --local nothing goes over ssh.
needs_ssh=1
for arg in "$@"; do
    case $arg in
    --) break ;;
    --dry-run | --print-hostfile | --print-discover-hosts | -h | --help | --version | --local) needs_ssh=0 ;;
    esac
done

if [ -n "${RINGTRAIN_SSH_AUTH_DIR:-}" ]; then
    auth_dir=$RINGTRAIN_SSH_AUTH_DIR
    case $auth_dir in
    /*) ;;
    *) fail "RINGTRAIN_SSH_AUTH_DIR=$auth_dir is not an absolute path; give the MPIJob's sshAuthMountPath" ;;
    esac
    case $auth_dir in
    *[[:space:]]*) fail "RINGTRAIN_SSH_AUTH_DIR=\"$auth_dir\" contains white space, which mpirun's ssh arguments cannot carry; mount the Secret elsewhere" ;;
    esac
    # Open MPI splits plm_rsh_args at spaces; keep what the operator set.
    OMPI_MCA_plm_rsh_args="${OMPI_MCA_plm_rsh_args:--o ConnectionAttempts=10} -i $auth_dir/id_rsa"
    export OMPI_MCA_plm_rsh_args
else
    auth_dir=${HOME:-/root}/.ssh
fi
if [ "$needs_ssh" = 1 ] && [ ! -r "$auth_dir/id_rsa" ]; then
    fail "$auth_dir/id_rsa is missing or unreadable, so mpirun cannot ssh to the workers; mount the MPIJob's ssh Secret there (spec.sshAuthMountPath, default /root/.ssh; /home/mpiuser/.ssh for the mpiuser image) or set RINGTRAIN_SSH_AUTH_DIR"
fi

exec "$launcher" --ssh-port "$port" "$@"
