#!/usr/bin/python3
"""tests/containers: mpijob_pods.py, the model of what mpi-operator's
controller makes for an MPIJob, without podman: the Secret and ConfigMap
files (kubelet layout, modes), the hostfile and discover_hosts.sh, each pod's
podman arguments (names, IPs, Service names, env, limits, /dev/shm, user,
command), the --pending and --policy knobs, and its refusals. TAP output.
  test_mpijob_pods.py SOURCE_ROOT
"""
import copy
import os
import stat
import subprocess
import sys
import tempfile

src = sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: test_mpijob_pods.py SOURCE_ROOT")
sys.path.insert(0, os.path.join(src, "tests", "deploy"))
sys.path.insert(0, os.path.join(src, "deploy"))
from taplib import Tap  # noqa: E402
import validate_mpijob as vm  # noqa: E402
import yaml  # noqa: E402

tap = Tap()
model = os.path.join(src, "tests", "containers", "mpijob_pods.py")
deploy = os.path.join(src, "deploy")


def make(tmp, manifest, *extra):
    out = os.path.join(tmp, f"run{len(os.listdir(tmp))}")
    os.makedirs(out)
    p = subprocess.run([sys.executable, model, manifest, "--dir", out, "--prefix", "rtX",
                        "--subnet", "10.9.8", "--image", "ringtrain:cpu=local/cpu",
                        "--image", "ringtrain:cpu-mpiuser=local/mpiuser"] + list(extra),
                       capture_output=True, text=True, timeout=60)
    return p, out


def pod_args(out, pod):
    with open(os.path.join(out, "pods", f"{pod}.args"), "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def pairs(args, flag):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


with tempfile.TemporaryDirectory() as tmp:
    cpu = os.path.join(deploy, "mpijob-cpu.yaml")
    p, out = make(tmp, cpu)
    tap.ok(p.returncode == 0, "mpijob-cpu.yaml: the controller's objects are made", p.stderr)
    hosts = [f"ringtrain-cpu-worker-{i}.ringtrain-cpu.default.svc" for i in (0, 1)]
    tap.equal(read(os.path.join(out, "config", "hostfile")), "".join(f"{h} slots=2\n" for h in hosts),
              "hostfile: <job>-worker-<i>.<job>.<ns>.svc slots=<slotsPerWorker>")
    tap.equal(read(os.path.join(out, "config", "discover_hosts.sh")),
              "#!/bin/sh\n" + "".join(f"echo {h}\n" for h in hosts), "discover_hosts.sh: every running worker")
    modes = {f: stat.S_IMODE(os.stat(os.path.join(out, d, f)).st_mode)
             for d, fs in (("config", ("hostfile", "discover_hosts.sh")),
                           ("secret", ("id_rsa", "id_rsa.pub", "authorized_keys"))) for f in fs}
    tap.equal(modes, {"hostfile": 0o444, "discover_hosts.sh": 0o555, "id_rsa": 0o600,
                      "id_rsa.pub": 0o600, "authorized_keys": 0o600},
              "modes: ConfigMap items 0444/0555, Secret 0600 at /root/.ssh")
    tap.ok(all(os.readlink(os.path.join(out, "secret", f)) == f"..data/{f}"
               for f in ("id_rsa", "id_rsa.pub", "authorized_keys")) and
           os.path.islink(os.path.join(out, "secret", "..data")),
           "the Secret is laid out as the kubelet mounts it (links into ..data)")
    key = read(os.path.join(out, "secret", "id_rsa"))
    tap.ok(key.startswith("-----BEGIN EC PRIVATE KEY-----"), "the Secret's key is ECDSA in PEM, as the operator's")
    tap.equal(read(os.path.join(out, "secret", "authorized_keys")), read(os.path.join(out, "secret", "id_rsa.pub")),
              "authorized_keys is the public key")
    tap.equal(read(os.path.join(out, "pods", "list")).splitlines(),
              ["worker ringtrain-cpu-worker-0 10.9.8.11 2222", "worker ringtrain-cpu-worker-1 10.9.8.12 2222",
               "launcher ringtrain-cpu-launcher 10.9.8.10 0"], "pods: workers first, IPs, readiness port")
    w = pod_args(out, "ringtrain-cpu-worker-1")
    tap.equal((pairs(w, "--name"), pairs(w, "--hostname"), pairs(w, "--ip"), pairs(w, "--network")),
              (["rtX-ringtrain-cpu-worker-1"], ["ringtrain-cpu-worker-1"], ["10.9.8.12"], ["rtX-net"]),
              "worker: container name, hostname = pod name, IP, the job's network")
    tap.equal(pairs(w, "--add-host"), [f"{h}:10.9.8.1{i + 1}" for i, h in enumerate(hosts)],
              "worker: every worker's Service name resolves")
    tap.equal((pairs(w, "--shm-size"), pairs(w, "--cpus"), pairs(w, "--memory"), pairs(w, "--env"),
               pairs(w, "--entrypoint"), w[-1:]),
              (["1073741824"], ["2"], [str(2 * 2**30)], ["K_MPI_JOB_ROLE=worker"],
               ['["ringtrain-entrypoint-worker"]'], ["local/cpu"]),
              "worker: /dev/shm 1Gi, limits, K_MPI_JOB_ROLE, command, the local image")
    tap.ok(f"{out}/secret:/root/.ssh:ro" in pairs(w, "-v") and not [v for v in pairs(w, "-v") if "/etc/mpi" in v],
           "worker: the Secret at sshAuthMountPath, no ConfigMap")
    la = pod_args(out, "ringtrain-cpu-launcher")
    tap.equal(pairs(la, "--env"),
              ["K_MPI_JOB_ROLE=launcher", "OMPI_MCA_orte_keep_fqdn_hostnames=true",
               "OMPI_MCA_orte_default_hostfile=/etc/mpi/hostfile",
               "OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10", "NVIDIA_VISIBLE_DEVICES=",
               "NVIDIA_DRIVER_CAPABILITIES=", "OMPI_MCA_orte_set_default_slots=2"],
              "launcher: the controller's environment")
    tap.ok(f"{out}/config:/etc/mpi:ro" in pairs(la, "-v") and pairs(la, "--memory") == [str(512 * 2**20)],
           "launcher: the ConfigMap at /etc/mpi, its memory limit")
    with open(cpu, encoding="utf-8") as f:
        doc = vm.load_documents(f.read())[0]
    want_args = doc["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["args"]
    tap.equal(la[la.index("local/cpu") + 1:], want_args, "launcher: the manifest's args after the image")
    tap.equal(read(os.path.join(out, "job.env")).splitlines(),
              ["JOB=ringtrain-cpu", "NS=default", "SLOTS=2", "WORKERS=2", "SSH_PATH=/root/.ssh",
               "POLICY=WaitForWorkersReady"], "job.env")

    p, out = make(tmp, os.path.join(deploy, "mpijob-cpu-mpiuser.yaml"))
    tap.ok(p.returncode == 0, "mpijob-cpu-mpiuser.yaml: made", p.stderr)
    users = [pairs(pod_args(out, pod), "--user") for pod in
             ("ringtrain-cpu-mpiuser-worker-0", "ringtrain-cpu-mpiuser-launcher")]
    tap.equal(users, [["1000:1000"], ["1000:1000"]], "mpiuser: every pod runs as 1000:1000")
    tap.equal(stat.S_IMODE(os.stat(os.path.join(out, "secret", "id_rsa")).st_mode), 0o644,
              "mpiuser: the Secret's files are 0644 (no defaultMode off /root/.ssh)")
    tap.ok(f"{out}/secret:/home/mpiuser/.ssh:ro" in pairs(pod_args(out, "ringtrain-cpu-mpiuser-launcher"), "-v"),
           "mpiuser: the Secret at /home/mpiuser/.ssh")

    p, out = make(tmp, cpu, "--pending", "1", "--policy", "AtStartup",
                  "--launcher-args", '["--wait-timeout", "5", "--", "x"]')
    la = pod_args(out, "ringtrain-cpu-launcher")
    tap.ok(p.returncode == 0 and not os.path.exists(os.path.join(out, "pods", "ringtrain-cpu-worker-1.args")) and
           pairs(la, "--add-host") == [f"{hosts[0]}:10.9.8.11"] and la[-4:] == ["--wait-timeout", "5", "--", "x"],
           "--pending 1: no container and no name for worker 1; --launcher-args replaces the args", p.stderr)
    tap.equal(read(os.path.join(out, "config", "discover_hosts.sh")), f"#!/bin/sh\necho {hosts[0]}\n",
              "--pending 1: discover_hosts.sh lists the running worker only")
    tap.ok("POLICY=AtStartup" in read(os.path.join(out, "job.env")), "--policy AtStartup")

    # A persistentVolumeClaim: bound to a directory with --claim, the same in every pod that mounts it.
    elastic = os.path.join(deploy, "mpijob-cpu-elastic.yaml")
    claim = os.path.join(tmp, "claim")
    os.makedirs(claim)
    p, out = make(tmp, elastic, "--claim", f"ringtrain-checkpoints={claim}")
    mounts = {pod: [m for m in pairs(pod_args(out, pod), "-v") if m.endswith(":/checkpoints")]
              for pod in [f"ringtrain-cpu-elastic-worker-{i}" for i in range(3)] + ["ringtrain-cpu-elastic-launcher"]}
    tap.equal((p.returncode, mounts), (0, {**{f"ringtrain-cpu-elastic-worker-{i}": [f"{claim}:/checkpoints"]
                                             for i in range(3)}, "ringtrain-cpu-elastic-launcher": []}),
              "mpijob-cpu-elastic.yaml --claim: the claim's directory at /checkpoints in every worker")
    p, _ = make(tmp, elastic)
    tap.ok(p.returncode == 2 and "persistentVolumeClaim 'ringtrain-checkpoints' is not bound here "
           "(pass --claim ringtrain-checkpoints=DIR)" in p.stderr, "refused: a claim without --claim", p.stderr)
    p, _ = make(tmp, elastic, "--claim", f"ringtrain-checkpoints={claim}/none")
    tap.ok(p.returncode == 2 and f"--claim ringtrain-checkpoints={claim}/none: not a directory" in p.stderr,
           "refused: --claim to a directory that does not exist", p.stderr)

    # Refused, naming the field: what the model does not cover, what the API server refuses.
    def variant(name, mutate):
        d = copy.deepcopy(doc)
        mutate(d)
        path = os.path.join(tmp, name + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(d, f)
        return path

    def worker_c(d):
        return d["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]

    for name, mutate, fragment in [
        ("valuefrom", lambda d: worker_c(d).setdefault("env", []).append(
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}), "valueFrom"),
        ("hostpath", lambda d: d["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"].update(
            volumes=[{"name": "dshm", "hostPath": {"path": "/dev/shm"}}]), "only emptyDir"),
        ("badcrd", lambda d: d["spec"].update(slotsPerWorker="two"), "slotsPerWorker"),
        ("intel", lambda d: d["spec"].update(mpiImplementation="Intel"), "only OpenMPI"),
    ]:
        p, _ = make(tmp, variant(name, mutate))
        tap.ok(p.returncode == 2 and fragment in p.stderr and "mpijob_pods.py: error:" in p.stderr,
               f"refused: {name} ({fragment})", f"exit {p.returncode}: {p.stderr}")

tap.done()
