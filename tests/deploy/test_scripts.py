#!/usr/bin/python3
"""tests/deploy: what can be checked of the images without a Docker engine.

- deploy/'s shell scripts and every RUN of both Dockerfiles parse as POSIX
  sh (dash -n, bash --posix -n) and pass shellcheck (a missing dash, bash or
  shellcheck fails the test: tools/setup --tests installs them);
- the Dockerfiles' structure: stages (build, runtime, mpiuser, root last),
  -Dcuda=disabled / enabled, apt lists cleaned in the RUN that fills them,
  every repository file they use exists, the build stage installs every
  build package tools/setup installs;
- deploy/runtime-deps.sh on programs built here finds the runtime packages
  (libfyaml0, libopenmpi3, libopenblas0-*, zlib1g), all installed, no -dev;
- the entry scripts with stand-in sshd and launcher programs: the exact sshd
  and ringtrain-launcher command lines, the Secret checks and their messages.
TAP output.
  test_scripts.py SOURCE_ROOT PROGRAM...   (PROGRAMs: built binaries for runtime-deps.sh)
"""
import difflib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

tap = Tap()
if len(sys.argv) < 3:
    tap.bail("usage: test_scripts.py SOURCE_ROOT PROGRAM...")
# Every tool a check below runs (a missing one fails here, by name, instead
# of passing its checks by skipping them or stopping in a traceback).
tools = {tool: tap.need(tool, package) for tool, package in
         [("dash", "dash"), ("bash", "bash"), ("shellcheck", "shellcheck"),
          ("ssh-keygen", "openssh-client"), ("dpkg-query", "dpkg"),
          ("setpriv", "util-linux")]}
src, programs = sys.argv[1], sys.argv[2:]
deploy = os.path.join(src, "deploy")
scripts = sorted(os.path.join(deploy, f) for f in os.listdir(deploy) if f.endswith(".sh"))
dockerfiles = [os.path.join(deploy, "Dockerfile"), os.path.join(deploy, "Dockerfile.cuda")]


def run(argv, env=None, timeout=60):
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:  # a missing tool: its checks fail (need() named it)
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found\n")


def dockerfile_instructions(path):
    """[(INSTRUCTION, text)] with continuation lines joined and comments dropped,
    as Docker reads them (a # line inside a continued RUN is removed)."""
    out, current = [], None
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or (not stripped and current is None):
                continue
            current = line if current is None else current + line
            if current.endswith("\\"):
                current = current[:-1]
                continue
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = None
    return out


# --- Shell syntax and shellcheck ------------------------------------------------
tap.equal([os.path.basename(s) for s in scripts],
          ["dockerfile-cuda.sh", "entrypoint-launcher.sh", "entrypoint-worker.sh", "runtime-deps.sh"],
          "deploy/*.sh")
snippets = []
tmp = tempfile.mkdtemp(prefix="ringtrain-deploy-test.")
made_run_sshd = False
try:
    for df in dockerfiles:
        for i, (word, text) in enumerate(dockerfile_instructions(df)):
            if word == "RUN":
                path = os.path.join(tmp, f"{os.path.basename(df)}.run{i}.sh")
                with open(path, "w", encoding="utf-8") as f:
                    f.write("#!/bin/sh\n" + text + "\n")
                snippets.append((f"{os.path.basename(df)} RUN {len(snippets) + 1}", path))
    tap.ok(len(snippets) >= 6, f"found the Dockerfiles' RUN instructions ({len(snippets)})")

    shells = [["dash", "-n"], ["bash", "--posix", "-n"]]
    for name, path in [(os.path.relpath(s, src), s) for s in scripts] + snippets:
        for shell in shells:
            if tools[shell[0]]:
                p = run(shell + [path])
                tap.ok(p.returncode == 0, f"{name}: {' '.join(shell)}", p.stderr)
    if tools["shellcheck"]:
        for name, path in [(os.path.relpath(s, src), s) for s in scripts] + snippets:
            p = run(["shellcheck", "--shell=sh", "--severity=style", path])
            tap.ok(p.returncode == 0, f"{name}: shellcheck", p.stdout + p.stderr)
    for s in scripts:
        tap.ok(os.stat(s).st_mode & stat.S_IXUSR, f"{os.path.relpath(s, src)} is executable")
        with open(s, encoding="utf-8") as f:
            tap.equal(f.readline().rstrip("\n"), "#!/bin/sh", f"{os.path.relpath(s, src)} is a plain sh script")

    # --- Dockerfile structure ------------------------------------------------------
    with open(os.path.join(src, "tools", "setup"), encoding="utf-8") as f:
        setup = f.read()
    m = re.search(r"^packages=\(([^)]*)\)", setup, re.M)
    setup_packages = set(m.group(1).split()) if m else set()
    tap.ok("meson" in setup_packages and "libfyaml-dev" in setup_packages,
           "read tools/setup's build package list", sorted(setup_packages))
    for df in dockerfiles:
        name = os.path.basename(df)
        ins = dockerfile_instructions(df)
        stages = [re.sub(r".* AS ", "", t, flags=re.I) for w, t in ins if w == "FROM"]
        tap.equal(stages, ["build", "runtime", "mpiuser", "root"],
                  f"{name}: stages build, runtime, mpiuser, root (root is the default: last)")
        runs = [t for w, t in ins if w == "RUN"]
        for t in runs:
            if "apt-get install" in t:
                tap.ok("--no-install-recommends" in t and "rm -rf /var/lib/apt/lists/*" in t
                       and "apt-get update" in t,
                       f"{name}: apt-get update, install --no-install-recommends and list cleanup "
                       "in one RUN", t)
        build_run = next((t for t in runs if "apt-get install" in t), "")
        build_pkgs = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", build_run.split("--no-install-recommends", 1)[-1]))
        missing = setup_packages - {"dataset-fashion-mnist"} - build_pkgs
        tap.ok(not missing, f"{name}: the build stage installs tools/setup's build packages",
               f"missing: {sorted(missing)}")
        if not name.endswith(".cuda"):
            named = set()
            for t in runs:
                if "apt-get install" in t:
                    words = t.split("--no-install-recommends", 1)[-1].split("&&")[0].replace("\\", " ")
                    named |= {w for w in words.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)}
            named |= {"dataset-fashion-mnist"} if "dataset-fashion-mnist" in "\n".join(runs) else set()
            q = run(["dpkg-query", "-W", "-f=${Package} ${Status}\n"] + sorted(named))
            not_here = [l for l in q.stdout.splitlines() if "install ok installed" not in l]
            tap.ok(len(named) >= 15 and q.returncode == 0 and not not_here,
                   f"{name}: the {len(named)} Debian packages it names are installed packages here",
                   f"{sorted(named)}\n{q.stdout}{q.stderr}")
        cuda = "enabled" if name.endswith(".cuda") else "disabled"
        tap.ok(("ARG", f"CUDA={cuda}") in ins and ("ARG", "CUDA") in ins and
               any('-Dcuda="$CUDA" -Dnccl="$CUDA"' in t for t in runs),
               f"{name}: meson setup -Dcuda={cuda} -Dnccl={cuda} (ARG CUDA)")
        used = set(re.findall(r"\b(deploy/[A-Za-z0-9_./-]+)", "\n".join(runs)))
        absent = [u for u in sorted(used) if not os.path.exists(os.path.join(src, u))]
        tap.ok(used and not absent, f"{name}: the repository files it installs exist ({len(used)})",
               f"absent: {absent}")
        tap.ok("runtime-deps.sh /staging/usr/local/bin/ringtrain-*" in "\n".join(runs) and
               any("apt-get install" in t and "runtime-packages" in t for t in runs) and
               any("apt-get install" in t and "openssh-server" in t for t in runs),
               f"{name}: the runtime stage installs runtime-deps.sh's list and openssh-server")
        tap.ok(any("rm -f /etc/ssh/ssh_host_" in t for t in runs),
               f"{name}: no host private keys are left in the image")
        copies = [t for w, t in ins if w == "COPY"]
        tap.ok(any(t.startswith("--from=build /staging/ /") for t in copies),
               f"{name}: the runtime stage takes the build stage's install tree")
        users = [t for w, t in ins if w == "USER"]
        tap.equal(users, ["1000:1000"], f"{name}: only the mpiuser stage changes user (numeric, runAsNonRoot)")
        tap.ok(os.path.exists(df + ".dockerignore"), f"{name}.dockerignore keeps build/ and .git out")

    # One source of the stages: Dockerfile.cuda is deploy/dockerfile-cuda.sh's
    # output, i.e. Dockerfile from its first FROM on, behind its own header.
    p = run([os.path.join(deploy, "dockerfile-cuda.sh")])
    with open(dockerfiles[1], encoding="utf-8") as f:
        cuda_text = f.read()
    tap.ok(p.returncode == 0 and p.stdout == cuda_text,
           "deploy/Dockerfile.cuda is what deploy/dockerfile-cuda.sh writes from deploy/Dockerfile "
           "(after editing deploy/Dockerfile: deploy/dockerfile-cuda.sh >deploy/Dockerfile.cuda)",
           p.stderr + "".join(difflib.unified_diff(cuda_text.splitlines(True), p.stdout.splitlines(True),
                                                   "deploy/Dockerfile.cuda", "dockerfile-cuda.sh")))
    bodies = []
    for df in dockerfiles:
        with open(df, encoding="utf-8") as f:
            text = f.read()
        bodies.append(text[text.find("\nFROM "):])
    tap.ok(bodies[0] == bodies[1] and bodies[0].count("\nFROM ") == 4,
           "both Dockerfiles have the same stages and steps, byte for byte from the first FROM on")

    # --- runtime-deps.sh on what was built here -------------------------------------
    p = run([os.path.join(deploy, "runtime-deps.sh")] + programs)
    pkgs = p.stdout.split()
    tap.ok(p.returncode == 0 and pkgs, f"runtime-deps.sh on {len(programs)} built programs",
           p.stdout + p.stderr)
    want = {"libfyaml0", "libopenmpi3", "zlib1g"}
    tap.ok(want <= set(pkgs) and any(x.startswith("libopenblas0") for x in pkgs),
           "runtime-deps.sh finds libfyaml0, libopenmpi3, libopenblas0-*, zlib1g", pkgs)
    tap.ok(not [x for x in pkgs if x.endswith("-dev")], "runtime-deps.sh lists no -dev package", pkgs)
    q = run(["dpkg-query", "-W", "-f=${Status}\n"] + pkgs)
    tap.ok(q.returncode == 0 and q.stdout.count("install ok installed") == len(pkgs),
           "every package runtime-deps.sh names is an installed package", q.stdout + q.stderr)
    p = run([os.path.join(deploy, "runtime-deps.sh"), os.path.join(deploy, "entrypoint-worker.sh")])
    tap.ok(p.returncode == 0 and p.stdout == "", "runtime-deps.sh skips scripts", p.stdout + p.stderr)
    p = run([os.path.join(deploy, "runtime-deps.sh"), os.path.join(tmp, "absent")])
    tap.ok(p.returncode == 1 and "does not exist" in p.stderr, "runtime-deps.sh fails on a missing program",
           p.stderr)

    # --- Entry scripts with stand-ins for sshd and ringtrain-launcher ---------------
    stub = os.path.join(tmp, "print-args")
    with open(stub, "w", encoding="utf-8") as f:
        f.write('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n'
                'printf "rsh_args=%s\\n" "${OMPI_MCA_plm_rsh_args:-}"\n')
    os.chmod(stub, 0o755)
    secret = os.path.join(tmp, "secret")
    os.makedirs(secret)
    kg = run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", "", "-f", os.path.join(secret, "id_rsa")])
    if kg.returncode != 0:
        tap.bail(f"ssh-keygen failed: {kg.stderr}")
    shutil.copy(os.path.join(secret, "id_rsa.pub"), os.path.join(secret, "authorized_keys"))
    config = os.path.join(deploy, "sshd", "sshd_config")
    worker_sh = os.path.join(deploy, "entrypoint-worker.sh")
    launcher_sh = os.path.join(deploy, "entrypoint-launcher.sh")
    # /run/sshd exists for these runs, so the root path creates nothing on this machine.
    base_env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(tmp, "home"), "TMPDIR": tmp,
                "RINGTRAIN_SSHD": stub, "RINGTRAIN_SSHD_CONFIG": config}
    os.makedirs(os.path.join(tmp, "home"))
    has_run_sshd = os.path.isdir("/run/sshd")
    as_user = [] if os.getuid() != 0 or has_run_sshd else \
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if as_user and run(as_user + ["sh", "-c", 'test -r "$0"', worker_sh]).returncode != 0:
        # The unprivileged user cannot reach the checkout (e.g. a chroot
        # whose root directory is mode 0700): run as root, and remove the
        # /run/sshd the script then creates.
        print("# nobody cannot read the entry script here: running it as root", flush=True)
        as_user = []
        made_run_sshd = True
    if as_user:
        os.chmod(tmp, 0o1777)
        for root, dirs, files in os.walk(tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for fl in files:
                os.chmod(os.path.join(root, fl), 0o755 if fl == "print-args" else 0o644)

    def worker_run(extra_env, *args):
        env = dict(base_env, **extra_env)
        return run(as_user + ["sh", worker_sh] + list(args), env=env)

    p = worker_run({"RINGTRAIN_SSH_AUTH_DIR": secret}, "-o", "LogLevel=DEBUG")
    tap.equal((p.returncode, p.stdout.splitlines()[:-1]),
              (0, ["-D", "-e", "-f", config, "-h", f"{secret}/id_rsa",
                   "-o", f"AuthorizedKeysFile={secret}/authorized_keys", "-o", "LogLevel=DEBUG"]),
              "entrypoint-worker.sh: sshd -D -e -f CONFIG -h SECRET/id_rsa -o AuthorizedKeysFile=SECRET/... ARGS")
    tap.ok("ringtrain-init is not installed" in p.stderr,
           "entrypoint-worker.sh: without ringtrain-init sshd runs alone, and says so", p.stderr)
    p = worker_run({"RINGTRAIN_SSH_AUTH_DIR": secret, "RINGTRAIN_INIT": stub})
    tap.equal((p.returncode, p.stdout.splitlines()[:3], p.stderr),
              (0, ["--", stub, "-D"], ""),
              "entrypoint-worker.sh: sshd runs under ringtrain-init (ringtrain-init -- SSHD -D ...)")
    os.rename(os.path.join(secret, "id_rsa"), os.path.join(secret, "id_rsa.away"))
    p = worker_run({"RINGTRAIN_SSH_AUTH_DIR": secret})
    lines = p.stdout.splitlines()
    host_key = lines[lines.index("-h") + 1] if "-h" in lines else ""
    tap.ok(p.returncode == 0 and host_key.startswith(tmp + "/ringtrain-sshd.") and
           run(["ssh-keygen", "-l", "-f", host_key]).returncode == 0,
           "entrypoint-worker.sh: without the Secret's id_rsa an ephemeral host key is made", p.stdout + p.stderr)
    os.rename(os.path.join(secret, "id_rsa.away"), os.path.join(secret, "id_rsa"))
    p = worker_run({})
    tap.ok(p.returncode == 2 and "/home/.ssh/authorized_keys is missing" in p.stderr and
           "sshAuthMountPath" in p.stderr and p.stdout == "",
           "entrypoint-worker.sh: no Secret at $HOME/.ssh -> exit 2 naming sshAuthMountPath", p.stderr)
    p = worker_run({"RINGTRAIN_SSH_AUTH_DIR": "secret"})
    tap.ok(p.returncode == 2 and "not an absolute path" in p.stderr,
           "entrypoint-worker.sh: a relative RINGTRAIN_SSH_AUTH_DIR -> exit 2", p.stderr)
    p = worker_run({"RINGTRAIN_SSH_AUTH_DIR": secret, "RINGTRAIN_SSHD_CONFIG": os.path.join(tmp, "none")})
    tap.ok(p.returncode == 2 and "sshd_config" in p.stderr,
           "entrypoint-worker.sh: a missing sshd_config -> exit 2", p.stderr)

    lenv = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(tmp, "home"), "RINGTRAIN_LAUNCHER": stub}
    p = run(["sh", launcher_sh, "--", "ringtrain-worker", "--model=lenet"],
            env=dict(lenv, RINGTRAIN_SSH_AUTH_DIR=secret))
    tap.equal((p.returncode, p.stdout.splitlines()),
              (0, ["--ssh-port", "2222", "--", "ringtrain-worker", "--model=lenet",
                   f"rsh_args=-o ConnectionAttempts=10 -i {secret}/id_rsa"]),
              "entrypoint-launcher.sh: ringtrain-launcher --ssh-port 2222 ARGS, mpirun's ssh gets -i SECRET/id_rsa")
    p = run(["sh", launcher_sh, "--", "x"],
            env=dict(lenv, RINGTRAIN_SSH_AUTH_DIR=secret, OMPI_MCA_plm_rsh_args="-o ConnectTimeout=5",
                     RINGTRAIN_SSH_PORT="2022"))
    tap.equal(p.stdout.splitlines(),
              ["--ssh-port", "2022", "--", "x", f"rsh_args=-o ConnectTimeout=5 -i {secret}/id_rsa"],
              "entrypoint-launcher.sh: keeps the operator's rsh args, RINGTRAIN_SSH_PORT overrides the port")
    p = run(["sh", launcher_sh, "--", "x"], env=lenv)
    tap.ok(p.returncode == 2 and "id_rsa is missing" in p.stderr and "sshAuthMountPath" in p.stderr,
           "entrypoint-launcher.sh: no Secret -> exit 2 naming sshAuthMountPath", p.stderr)
    p = run(["sh", launcher_sh, "--dry-run", "--", "x"], env=lenv)
    tap.equal((p.returncode, p.stdout.splitlines()[:2]), (0, ["--ssh-port", "2222"]),
              "entrypoint-launcher.sh: --dry-run needs no Secret")
    p = run(["sh", launcher_sh, "--", "x"], env=dict(lenv, RINGTRAIN_SSH_AUTH_DIR=tmp + "/a b"))
    tap.ok(p.returncode == 2 and "white space" in p.stderr,
           "entrypoint-launcher.sh: a Secret path with a space -> exit 2", p.stderr)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
    if made_run_sshd and os.path.isdir("/run/sshd") and not os.listdir("/run/sshd"):
        os.rmdir("/run/sshd")

tap.done()
