#!/usr/bin/python3
"""tests/deploy: runs each manifest's own launcher command with
`ringtrain-launcher --dry-run --mpijob MANIFEST` (v2beta1: through
deploy/entrypoint-launcher.sh, as the launcher pod runs it; the legacy
v1alpha1 one: ringtrain-launcher directly, as its template says) and checks
the hostfile lines, the readiness port, `-np` and the program mpirun gets;
then checks each manifest's ringtrain-worker flags with the worker's own
parser (check_worker_flags). TAP output.
  test_launch.py SOURCE_ROOT RINGTRAIN_LAUNCHER CHECK_WORKER_FLAGS
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

tap = Tap()
if len(sys.argv) != 4:
    tap.bail("usage: test_launch.py SOURCE_ROOT RINGTRAIN_LAUNCHER CHECK_WORKER_FLAGS")
src, launcher, check_flags = sys.argv[1:4]
deploy = os.path.join(src, "deploy")
sys.path.insert(0, deploy)
try:
    import validate_mpijob as vm
except SystemExit as e:
    tap.bail(str(e))
for program in (launcher, check_flags):
    if not os.access(program, os.X_OK):
        tap.bail(f"{program} is not built")

# What each manifest must come to - written out here, not read from the
# manifests, so a manifest that drifts fails: (file, job, workers, slots, -np).
EXPECT = [
    ("mpijob-cpu.yaml", "ringtrain-cpu", 2, 2, 4),
    ("mpijob-cpu-mpiuser.yaml", "ringtrain-cpu-mpiuser", 2, 2, 4),
    ("mpijob-cpu-elastic.yaml", "ringtrain-cpu-elastic", 3, 1, 3),
    ("mpijob-gpu16-2x8.yaml", "ringtrain-gpu16-2x8", 2, 8, 16),
    ("mpijob-gpu16-16x1.yaml", "ringtrain-gpu16-16x1", 16, 1, 16),
    ("legacy/mpijob-v1alpha1-gpus16.yaml", "tensorflow-benchmarks-16", 2, 8, 16),
]


def load(path):
    with open(path, encoding="utf-8") as f:
        return vm.load_documents(f.read())[0]


def launcher_command(doc):
    """The launcher container's command line (v2beta1) or the template's (v1alpha1)."""
    if doc["apiVersion"] == "kubeflow.org/v1alpha1":
        c = doc["spec"]["template"]["spec"]["containers"][0]
    else:
        c = doc["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    return list(c.get("command", [])) + list(c.get("args", []))


def dry_run(path, command, tmp):
    """Runs COMMAND with --mpijob PATH --dry-run put in front of its options."""
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp}
    extra = ["--mpijob", path, "--dry-run"]
    if command[0] == "ringtrain-entrypoint-launcher":
        env["RINGTRAIN_LAUNCHER"] = launcher
        argv = ["sh", os.path.join(deploy, "entrypoint-launcher.sh")] + extra + command[1:]
    elif command[0] == "ringtrain-launcher":
        argv = [launcher] + extra + command[1:]
    else:
        return None
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def section(lines, title_prefix):
    """Lines after the `# <title_prefix>...` line up to the next `#` line."""
    out, inside = [], False
    for line in lines:
        if line.startswith("# " + title_prefix):
            inside = True
            continue
        if inside and line.startswith("#"):
            break
        if inside:
            out.append(line)
    return out


with tempfile.TemporaryDirectory() as tmp:
    for rel, job, workers, slots, np_ in EXPECT:
        path = os.path.join(deploy, rel)
        doc = load(path)
        command = launcher_command(doc)
        proc = dry_run(path, command, tmp)
        if not tap.ok(proc is not None and proc.returncode == 0,
                      f"{rel}: the launcher command {command[:1]} runs with --dry-run",
                      f"command: {command}\n" + (f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
                                                 if proc else "not a ringtrain launcher")):
            continue
        lines = proc.stdout.splitlines()
        tap.ok(f"{workers} worker{'s' if workers > 1 else ''} x {slots} slot{'s' if slots > 1 else ''}"
               f", OpenMPI, {np_} processes" in proc.stdout,
               f"{rel}: {workers} workers x {slots} slots, {np_} processes", proc.stdout)
        want_hosts = [f"{job}-worker-{i}.{job}.default.svc slots={slots}" for i in range(workers)]
        tap.equal(section(lines, "hostfile "), want_hosts, f"{rel}: hostfile as the operator writes it")
        readiness = [l for l in lines if l.startswith("# readiness:")]
        if doc["apiVersion"] == "kubeflow.org/v1alpha1":
            tap.equal(readiness, ["# readiness: not waited for (--no-wait)"],
                      f"{rel}: no ssh readiness wait (v1alpha1 workers run no sshd)")
        else:
            tap.equal(readiness,
                      [f"# readiness: wait up to 300 s for {workers} hosts to accept TCP on port 2222"
                       " (--ssh-port)"],
                      f"{rel}: waits for every worker's sshd on 2222")
        argv = section(lines, "argv")
        mpirun = argv[0].split() if argv else []
        np_given = mpirun[mpirun.index("-np") + 1] if "-np" in mpirun else None
        tap.equal(np_given, str(np_), f"{rel}: mpirun -np {np_}")
        program = command[command.index("--") + 1:]
        tap.equal(mpirun[-len(program):], program, f"{rel}: mpirun runs the manifest's worker command")

        flags = subprocess.run([check_flags] + program, capture_output=True, text=True, timeout=30)
        tap.ok(flags.returncode == 0 and program[0] == "ringtrain-worker",
               f"{rel}: ringtrain-worker accepts the flags {' '.join(program[1:])}",
               flags.stdout + flags.stderr)
        device = "cuda" if "gpu" in rel else "cpu"
        tap.ok(re.search(rf"device={device}\b", flags.stdout), f"{rel}: the worker runs on {device}",
               flags.stdout)

    # The flag check itself can fail.
    for bad in (["--modle=resnet101"], ["--device=tpu"], ["--batch_size=0"], ["--model=resnet102"]):
        flags = subprocess.run([check_flags, "ringtrain-worker"] + bad, capture_output=True,
                               text=True, timeout=30)
        tap.ok(flags.returncode == 2 and "error:" in flags.stderr,
               f"check_worker_flags refuses {bad[0]}", f"exit {flags.returncode}: {flags.stderr}")

    # A manifest whose size is not the expected one is caught (the table above
    # is what the manifests are held to, not a copy of them).
    doc_path = os.path.join(deploy, "mpijob-gpu16-2x8.yaml")
    with open(doc_path, encoding="utf-8") as f:
        text = f.read()
    wrong = os.path.join(tmp, "gpu16-3x8.yaml")
    with open(wrong, "w", encoding="utf-8") as f:
        f.write(text.replace("      replicas: 2\n", "      replicas: 3\n", 1))
    proc = dry_run(wrong, launcher_command(load(wrong)), tmp)
    tap.ok(proc.returncode == 0 and " -np 24 " in proc.stdout,
           "a 3-worker copy of the 2x8 manifest dry-runs to -np 24, not 16", proc.stdout + proc.stderr)

tap.done()
