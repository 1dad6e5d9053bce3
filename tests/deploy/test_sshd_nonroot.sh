#!/usr/bin/env bash
# The mpiuser image's sshd: in a private mount namespace, /etc/passwd and
# /etc/shadow get a user `mpiuser` as deploy/Dockerfile's `useradd ...
# --password '*'` makes it (a free uid here; 1000 in the image) and
# /etc/ssh/sshd_config is deploy/sshd/sshd_config; deploy/entrypoint-worker.sh
# then runs sshd as mpiuser on port 2222 with the Secret as the operator
# mounts it for a non-root sshAuthMountPath: the user's ~/.ssh, files owned
# by root, mode 0644 (no DefaultMode), the ECDSA id_rsa as host key. A client
# with the Secret's key must log in as mpiuser and run a command; a foreign
# key must be refused. Own network namespace (loopback only); nothing of
# this machine changes. Needs root to switch users; skips (77) otherwise.
#   test_sshd_nonroot.sh SOURCE_ROOT
set -euo pipefail
src=${1:?usage: $0 SOURCE_ROOT}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root (to run sshd as another user)"
for tool in unshare setpriv ssh ssh-keygen timeout; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done
[ -x /usr/sbin/sshd ] || skip "/usr/sbin/sshd is not installed (Debian: openssh-server)"
[ -f /etc/ssh/sshd_config ] || skip "/etc/ssh/sshd_config is missing (the bind-mount target)"
unshare --net --mount true 2>/dev/null || skip "cannot create network/mount namespaces here"
user=mpiuser
uid=1000
while getent passwd $uid >/dev/null || getent group $uid >/dev/null; do uid=$((uid + 1)); done

tmp=$(mktemp -d /tmp/ringtrain-sshd-nonroot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir -p "$tmp/home/.ssh"
ssh-keygen -q -t ecdsa -b 521 -N '' -C ringtrain-test -f "$tmp/home/.ssh/id_rsa"
cp "$tmp/home/.ssh/id_rsa.pub" "$tmp/home/.ssh/authorized_keys"
chmod 644 "$tmp/home/.ssh/"* # root-owned, readable: a Secret mounted for a non-root user
chmod 755 "$tmp/home" "$tmp/home/.ssh"
install -m 600 "$tmp/home/.ssh/id_rsa" "$tmp/client_key" # the client side runs as root here
ssh-keygen -q -t ed25519 -N '' -f "$tmp/stranger"
{ cat /etc/passwd; echo "$user:x:$uid:$uid::$tmp/home:/bin/sh"; } >"$tmp/passwd"
{ cat /etc/shadow; echo "$user:*:20000:0:99999:7:::"; } >"$tmp/shadow"
{ cat /etc/group; echo "$user:x:$uid:"; } >"$tmp/group"
chmod 644 "$tmp/passwd" "$tmp/group"
chmod 640 "$tmp/shadow"

# Inside one private network + mount namespace: the image's sshd_config, sshd
# as nobody through the entry script, then the two clients.
timeout 60 unshare --net --mount bash -s "$src" "$tmp" "$uid" "$user" <<'EOF' >"$tmp/out" 2>&1 || true
set -u
src=$1 tmp=$2 uid=$3 user=$4
ip link set lo up
mount --bind "$src/deploy/sshd/sshd_config" /etc/ssh/sshd_config
for f in passwd shadow group; do mount --bind "$tmp/$f" "/etc/$f"; done
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$tmp/home" TMPDIR="$tmp" \
    setpriv --reuid="$uid" --regid="$uid" --clear-groups \
    sh "$src/deploy/entrypoint-worker.sh" >"$tmp/sshd.log" 2>&1 &
sshd_pid=$! # env, setpriv and sh exec: this is sshd's own pid
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/2222) 2>/dev/null && break
    sleep 0.05
done
echo "sshd uid: $(ps -o comm=,uid= -p "$sshd_pid" | tr -s ' ')"
common=(-n -p 2222 -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR)
echo "--- secret key"
ssh "${common[@]}" -i "$tmp/client_key" "$user@127.0.0.1" 'echo "login: $(id -un) $(id -u) $HOME"' 2>&1
echo "exit $?"
echo "--- stranger key"
ssh "${common[@]}" -i "$tmp/stranger" "$user@127.0.0.1" true 2>&1; echo "exit $?"
kill %1 2>/dev/null
EOF
echo "--- clients"; cat "$tmp/out"
echo "--- sshd (as $user)"; cat "$tmp/sshd.log"

grep -q "^sshd uid: sshd $uid\$" "$tmp/out" || fail "sshd did not run as $user (uid $uid)"
secret_part=$(sed -n '/^--- secret key/,/^--- stranger key/p' "$tmp/out")
stranger_part=$(sed -n '/^--- stranger key/,$p' "$tmp/out")
grep -q "Accepted publickey for $user" "$tmp/sshd.log" ||
    fail "the Secret's key was not accepted by sshd running as $user"
grep -qx "login: $user $uid $tmp/home" <<<"$secret_part" || fail "no session as $user"
grep -qx "exit 0" <<<"$secret_part" || fail "the session as $user did not exit 0"
grep -q "Permission denied (publickey)" <<<"$stranger_part" || fail "a foreign key was not refused"
[ "$(grep -c "Accepted publickey" "$tmp/sshd.log")" = 1 ] || fail "more than one login was accepted"
echo "PASS"
