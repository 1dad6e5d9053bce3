#!/usr/bin/python3
"""What mpi-operator's v2beta1 controller creates for an MPIJob, as files and
`podman run` arguments (tests/containers/pods.sh runs them).

  mpijob_pods.py MANIFEST --dir DIR --prefix P --subnet A.B.C
                 [--image NAME=LOCAL]... [--mount SRC:DST[:ro]]...
                 [--claim NAME=DIR]... [--launcher-args JSON]
                 [--pending I]... [--policy AtStartup]

The manifest is read the way the API server stores it (YAML 1.1, no duplicate
keys, validated against deploy/crd/ and the CRD's defaults filled in), then
the controller's objects are made the way pkg/controller/mpi_job_controller.go
makes them:

- Secret `<job>-ssh`: an ECDSA P-521 key in PEM (`ssh-keygen -m PEM`), items
  id_rsa, id_rsa.pub and authorized_keys, mounted read-only at
  sshAuthMountPath in every pod, mode 0600 when that is /root/.ssh, else the
  Secret volume's default 0644; laid out as the kubelet mounts a Secret
  (files are links into `..data`, owned by root).
- ConfigMap `<job>-config`: hostfile (0444) with
  `<job>-worker-<i>.<job>.<ns>.svc slots=<slotsPerWorker>` per worker and
  discover_hosts.sh (0555) echoing the running workers sorted by pod name,
  mounted read-only at /etc/mpi in the launcher only.
- Worker pods `<job>-worker-<i>` (hostname = pod name), each with its own IP
  A.B.C.(11+i) on the job's network and every worker's Service name in
  /etc/hosts (the headless Service `<job>`); env K_MPI_JOB_ROLE=worker; the
  template's command, or `/usr/sbin/sshd -De` when it has neither command
  nor args. The launcher pod `<job>-launcher` (A.B.C.10) with
  K_MPI_JOB_ROLE=launcher, the Open MPI variables
  (OMPI_MCA_orte_keep_fqdn_hostnames=true,
  OMPI_MCA_orte_default_hostfile=/etc/mpi/hostfile,
  OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10,
  OMPI_MCA_orte_set_default_slots=<slots>) and NVIDIA_VISIBLE_DEVICES,
  NVIDIA_DRIVER_CAPABILITIES emptied.
- From each pod template: image (through --image NAME=LOCAL, as a node that
  has the image loaded), command and args (ENTRYPOINT and CMD), env values,
  resources.limits cpu and memory (--cpus, --memory), securityContext
  runAsUser/runAsGroup (pod or container level; runAsNonRoot is refused for
  an image that would run as root, as the kubelet refuses it), an emptyDir of
  medium Memory at /dev/shm (--shm-size = its sizeLimit), other emptyDirs
  (tmpfs for medium Memory, a fresh world-writable directory otherwise), the
  readiness probe's tcpSocket port; a persistentVolumeClaim given with
  --claim NAME=DIR (a ReadWriteMany claim bound to DIR: every pod that
  mounts it sees the same files, and they outlive the job).

Not modelled (a test that needs them says so): restart policies and the
launcher Job's backoffLimit (one attempt of every pod), Services other than
the workers' names, volumes other than emptyDir and claims given with
--claim, valueFrom env, probes other than tcpSocket, hostNetwork,
runLauncherAsWorker, Intel MPI and MPICH.

Test knobs: --pending I leaves worker I without a container or an IP (a pod
that was never scheduled: its name does not resolve); --policy overrides
launcherCreationPolicy; --launcher-args replaces the launcher's args (a JSON
list); --mount adds a bind mount to every pod.

Writes into DIR: secret/, config/, vol/, and pods/: one `<pod>.args` per pod
(NUL-separated `podman run` arguments after `run`, the image's command last),
`pods/list` (lines `role pod ip probe_port`, workers first, the launcher last)
and `job.env` (shell assignments JOB NS SLOTS WORKERS SSH_PATH POLICY).
Exit status 0; 2 for a manifest the controller or the API server would refuse
or this model does not cover (one line naming the field).
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy"))
import validate_mpijob as vm  # noqa: E402

ME = "mpijob_pods.py"
ROOT_SSH = "/root/.ssh"
CONFIG_PATH = "/etc/mpi"
LAUNCHER_IP, FIRST_WORKER_IP = 10, 11
# The controller's launcher environment for Open MPI (ompiEnvVars, then the
# slots; the NVIDIA variables emptied so the launcher never takes a GPU).
LAUNCHER_ENV = [("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
                ("OMPI_MCA_orte_default_hostfile", f"{CONFIG_PATH}/hostfile"),
                ("OMPI_MCA_plm_rsh_args", "-o ConnectionAttempts=10"),
                ("NVIDIA_VISIBLE_DEVICES", ""), ("NVIDIA_DRIVER_CAPABILITIES", "")]
SLOTS_ENV = "OMPI_MCA_orte_set_default_slots"
# The kubelet's atomic writer: the files are links into a timestamped directory.
DATA_DIR = "..2024_01_01_00_00_00.000000001"


class Refused(Exception):
    """The manifest cannot run here; the message names the field."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog=ME)
    p.add_argument("manifest")
    p.add_argument("--dir", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--subnet", required=True)
    p.add_argument("--image", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--claim", action="append", default=[])
    p.add_argument("--launcher-args")
    p.add_argument("--pending", action="append", type=int, default=[])
    p.add_argument("--policy", choices=["AtStartup", "WaitForWorkersReady"])
    return p.parse_args(argv)


def load_job(path):
    """The MPIJob as the API server stores it: validated, defaults filled in."""
    with open(path, encoding="utf-8") as f:
        docs = vm.load_documents(f.read())
    if len(docs) != 1:
        raise Refused(f"{path}: expected one MPIJob document, found {len(docs)}")
    schema, raw = vm.load_crd_schema()
    errors = vm.validate(docs[0], schema, raw)
    if errors:
        raise Refused(f"{path}: the API server would refuse it: {errors[0][0]}: {errors[0][1]}")
    job = vm.with_defaults(docs[0], raw)
    if job.get("apiVersion") != "kubeflow.org/v2beta1":
        raise Refused(f"{path}: apiVersion {job.get('apiVersion')}: only kubeflow.org/v2beta1")
    spec = job["spec"]
    if spec.get("mpiImplementation", "OpenMPI") != "OpenMPI":
        raise Refused("spec.mpiImplementation: only OpenMPI is modelled")
    if spec.get("runLauncherAsWorker"):
        raise Refused("spec.runLauncherAsWorker: not modelled")
    return job


def quantity_bytes(text, where):
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    if not m:
        raise Refused(f"{where}: quantity {text!r} is not modelled")
    scale = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[m.group(2)]
    return int(float(m.group(1)) * scale)


def quantity_cpus(text, where):
    m = re.fullmatch(r"([0-9.]+)(m)?", str(text))
    if not m:
        raise Refused(f"{where}: cpu {text!r} is not modelled")
    return float(m.group(1)) / (1000 if m.group(2) else 1)


def kubelet_volume(path, files):
    """A Secret or ConfigMap volume as the kubelet writes it: {name: (bytes, mode)}."""
    data = os.path.join(path, DATA_DIR)
    os.makedirs(data)
    for name, (content, mode) in files.items():
        with open(os.path.join(data, name), "wb") as f:
            f.write(content)
        os.chmod(os.path.join(data, name), mode)
        os.symlink(os.path.join("..data", name), os.path.join(path, name))
    os.symlink(DATA_DIR, os.path.join(path, "..data"))
    os.chmod(data, 0o755)
    os.chmod(path, 0o755)


def make_secret(path, ssh_path):
    """The operator's Secret: an ECDSA P-521 key pair in PEM."""
    key = os.path.join(os.path.dirname(path), "ssh-key")
    subprocess.run(["ssh-keygen", "-q", "-m", "PEM", "-t", "ecdsa", "-b", "521", "-N", "",
                    "-C", "", "-f", key], check=True)
    with open(key, "rb") as f:
        private = f.read()
    with open(key + ".pub", "rb") as f:
        public = f.read()
    os.unlink(key)
    os.unlink(key + ".pub")
    mode = 0o600 if ssh_path == ROOT_SSH else 0o644
    kubelet_volume(path, {"id_rsa": (private, mode), "id_rsa.pub": (public, mode),
                          "authorized_keys": (public, mode)})


def make_config(path, hosts, slots, running):
    hostfile = "".join(f"{h} slots={slots}\n" for h in hosts)
    discover = "#!/bin/sh\n" + "".join(f"echo {h}\n" for h in sorted(running))
    kubelet_volume(path, {"hostfile": (hostfile.encode(), 0o444),
                          "discover_hosts.sh": (discover.encode(), 0o555)})


def image_user(image):
    """The user an image runs as (its USER; empty is root)."""
    p = subprocess.run(["podman", "image", "inspect", "--format", "{{.Config.User}}", image],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Refused(f"image {image}: {p.stderr.strip()}")
    return p.stdout.strip()


def run_as(pod_spec, container, image, where):
    """--user for securityContext, and the kubelet's runAsNonRoot check."""
    ctx = dict(pod_spec.get("securityContext") or {})
    ctx.update(container.get("securityContext") or {})
    uid, gid = ctx.get("runAsUser"), ctx.get("runAsGroup")
    if ctx.get("runAsNonRoot"):
        user = str(uid) if uid is not None else image_user(image).split(":")[0]
        if user in ("", "0", "root"):
            raise Refused(f"{where}: runAsNonRoot, but image {image} would run as root "
                          "(the kubelet refuses to start it)")
    if uid is None:
        return []
    return ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]


def volume_args(pod_spec, container, pod, vol_dir, claims, where):
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    args = []
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m["name"])
        if v is not None and "persistentVolumeClaim" in v:
            args += ["-v", f"{claim_dir(v, claims, where)}:{m['mountPath']}"]
            continue
        if v is None or set(v) - {"name", "emptyDir"}:
            raise Refused(f"{where}.volumeMounts: volume {m['name']!r}: only emptyDir and "
                          "persistentVolumeClaim (with --claim) are modelled")
        empty = v.get("emptyDir") or {}
        limit = empty.get("sizeLimit")
        if empty.get("medium") == "Memory" and m["mountPath"] == "/dev/shm":
            args += ["--shm-size", str(quantity_bytes(limit, where) if limit else 64 * 2**20)]
        elif empty.get("medium") == "Memory":
            size = f",size={quantity_bytes(limit, where)}" if limit else ""
            args += ["--tmpfs", f"{m['mountPath']}:rw,mode=1777{size}"]
        else:
            host = os.path.join(vol_dir, f"{pod}-{m['name']}")
            os.makedirs(host, exist_ok=True)
            os.chmod(host, 0o777)
            args += ["-v", f"{host}:{m['mountPath']}"]
    return args


def claim_dir(volume, claims, where):
    """The directory a claim is bound to (--claim NAME=DIR), which must exist."""
    name = (volume["persistentVolumeClaim"] or {}).get("claimName")
    if name not in claims:
        raise Refused(f"{where}: volume {volume['name']!r}: persistentVolumeClaim {name!r} "
                      f"is not bound here (pass --claim {name}=DIR)")
    if not os.path.isdir(claims[name]):
        raise Refused(f"--claim {name}={claims[name]}: not a directory")
    return os.path.abspath(claims[name])


class Pod:
    """One pod template read for podman: run arguments, image, command (the
    container's args, after the image), readiness port, spec."""

    def __init__(self, template, image_map, where):
        self.spec = template["spec"]
        self.container = c = self.spec["containers"][0]
        self.image = image_map.get(c["image"], c["image"])
        self.args = []
        for e in c.get("env") or []:
            if "valueFrom" in e:
                raise Refused(f"{where}.env[{e['name']}]: valueFrom is not modelled")
            self.args += ["--env", f"{e['name']}={e.get('value', '')}"]
        limits = (c.get("resources") or {}).get("limits") or {}
        if "cpu" in limits:
            self.args += ["--cpus", f"{quantity_cpus(limits['cpu'], where):g}"]
        if "memory" in limits:
            self.args += ["--memory", str(quantity_bytes(limits["memory"], where))]
        self.args += run_as(self.spec, c, self.image, where)
        if c.get("command"):
            self.args += ["--entrypoint", json.dumps(c["command"])]
        self.command = [str(a) for a in c.get("args") or []]
        self.probe = readiness_port(c, where)


def readiness_port(c, where):
    """The tcpSocket readiness probe's port (a number or a named port), or 0."""
    probe = c.get("readinessProbe")
    if not probe:
        return 0
    port = (probe.get("tcpSocket") or {}).get("port")
    if port is None:
        raise Refused(f"{where}.readinessProbe: only tcpSocket is modelled")
    if isinstance(port, str):
        named = [p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port]
        if not named:
            raise Refused(f"{where}.readinessProbe.tcpSocket.port: no port named {port!r}")
        port = named[0]
    return port


def write_pod(path, args):
    with open(path, "wb") as f:
        f.write(b"\0".join(a.encode() for a in args) + b"\0")


def main(argv):
    o = parse_args(argv)
    job = load_job(o.manifest)
    spec, meta = job["spec"], job["metadata"]
    name, ns = meta["name"], meta.get("namespace", "default")
    slots = spec["slotsPerWorker"]
    ssh_path = spec["sshAuthMountPath"]
    policy = o.policy or spec["launcherCreationPolicy"]
    workers = spec["mpiReplicaSpecs"]["Worker"].get("replicas", 1)
    image_map = dict(i.split("=", 1) for i in o.image)
    claims = dict(c.split("=", 1) for c in o.claim)
    hosts = [f"{name}-worker-{i}.{name}.{ns}.svc" for i in range(workers)]
    ips = {i: f"{o.subnet}.{FIRST_WORKER_IP + i}" for i in range(workers) if i not in o.pending}
    for sub in ("secret", "config", "vol", "pods"):
        os.makedirs(os.path.join(o.dir, sub), exist_ok=True)
    make_secret(os.path.join(o.dir, "secret"), ssh_path)
    make_config(os.path.join(o.dir, "config"), hosts, slots, [hosts[i] for i in ips])

    common = ["--detach", "--pull", "never", "--network", f"{o.prefix}-net",
              "--label", f"ringtrain-test={o.prefix}",
              "-v", f"{os.path.join(o.dir, 'secret')}:{ssh_path}:ro"]
    for i, ip in ips.items():
        common += ["--add-host", f"{hosts[i]}:{ip}"]
    for m in o.mount:
        common += ["-v", m]
    listing = []
    roles = [("worker", i) for i in range(workers)] + [("launcher", None)]
    for role, i in roles:
        pod = f"{name}-{role}" + (f"-{i}" if role == "worker" else "")
        if role == "worker" and i in o.pending:
            continue
        where = f"spec.mpiReplicaSpecs.{role.capitalize()}.template.spec.containers[0]"
        p = Pod(spec["mpiReplicaSpecs"][role.capitalize()]["template"], image_map, where)
        ip = ips[i] if role == "worker" else f"{o.subnet}.{LAUNCHER_IP}"
        run = ["--name", f"{o.prefix}-{pod}", "--hostname", pod, "--ip", ip] + common
        run += volume_args(p.spec, p.container, pod, os.path.join(o.dir, "vol"), claims, where)
        run += ["--env", f"K_MPI_JOB_ROLE={role}"]
        if role == "launcher":
            if o.launcher_args is not None:
                p.command = json.loads(o.launcher_args)
            run += ["-v", f"{os.path.join(o.dir, 'config')}:{CONFIG_PATH}:ro"]
            run += [a for k, v in LAUNCHER_ENV + [(SLOTS_ENV, str(slots))]
                    for a in ("--env", f"{k}={v}")]
        elif not p.container.get("command") and not p.container.get("args"):
            run += ["--entrypoint", json.dumps(["/usr/sbin/sshd", "-De"])]
        write_pod(os.path.join(o.dir, "pods", f"{pod}.args"), run + p.args + [p.image] + p.command)
        listing.append(f"{role} {pod} {ip} {p.probe}")
    with open(os.path.join(o.dir, "pods", "list"), "w", encoding="utf-8") as f:
        f.write("\n".join(listing) + "\n")
    env = {"JOB": name, "NS": ns, "SLOTS": slots, "WORKERS": workers, "SSH_PATH": ssh_path,
           "POLICY": policy}
    with open(os.path.join(o.dir, "job.env"), "w", encoding="utf-8") as f:
        f.write("".join(f"{k}={shlex.quote(str(v))}\n" for k, v in env.items()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Refused as e:
        print(f"{ME}: error: {e}", file=sys.stderr)
        sys.exit(2)
