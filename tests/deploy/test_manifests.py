#!/usr/bin/python3
"""tests/deploy: every kubeflow.org/v2beta1 manifest in deploy/ against the
openAPIV3Schema of mpi-operator v0.8.2's CRD (the copy vendored in
deploy/crd/) with python3-jsonschema, through deploy/validate_mpijob.py;
broken manifests that the CRD must reject; the rules the operator's
controller adds and the conventions the issue asks for (readiness probe on
the sshd port, WaitForWorkersReady, runPolicy, 16 GPUs). TAP output.
  test_manifests.py SOURCE_ROOT
"""
import contextlib
import copy
import filecmp
import io
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Tap  # noqa: E402

tap = Tap()
src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RINGTRAIN_SOURCE_DIR", ".")
deploy = os.path.join(src, "deploy")
sys.path.insert(0, deploy)
try:
    import validate_mpijob as vm
except SystemExit as e:  # missing python3-jsonschema / python3-yaml: a failure, not a skip
    tap.bail(str(e))

crd_path = os.path.join(deploy, "crd", "kubeflow.org_mpijobs.yaml")
schema, raw = vm.load_crd_schema(crd_path, "v2beta1")


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = vm.load_documents(f.read())
    return docs[0] if len(docs) == 1 else docs


def rel(path):
    return os.path.relpath(path, src)


# --- The vendored CRD is the reference one -----------------------------------
shared = os.path.join(src, "..", "shared", "reference", "mpi-operator", "kubeflow.org_mpijobs.yaml")
if os.path.exists(shared):
    tap.ok(filecmp.cmp(crd_path, shared, shallow=False),
           "deploy/crd/kubeflow.org_mpijobs.yaml is identical to ../shared/reference/mpi-operator's")
else:
    tap.skip("vendored CRD equals ../shared's", "no ../shared/reference/mpi-operator here")
with open(crd_path, encoding="utf-8") as f:
    crd_text = f.read()
tap.ok("name: mpijobs.kubeflow.org" in crd_text and "- name: v2beta1" in crd_text,
       "the vendored CRD is mpijobs.kubeflow.org with a v2beta1 version")
spec_props = schema["properties"]["spec"]["properties"]
tap.ok({"mpiReplicaSpecs", "slotsPerWorker", "runPolicy", "launcherCreationPolicy",
        "sshAuthMountPath", "mpiImplementation"} <= set(spec_props),
       "the translated schema knows the MPIJob spec fields", sorted(spec_props))

# --- The translation's rules, each on a small schema ------------------------------
def accepts(k8s_schema, value):
    return not list(vm.jsonschema.Draft4Validator(vm.translate(k8s_schema)).iter_errors(value))


ios = {"x-kubernetes-int-or-string": True}
tap.ok(accepts(ios, 5) and accepts(ios, "50%") and not accepts(ios, 5.5) and not accepts(ios, [5])
       and not accepts(ios, True), "x-kubernetes-int-or-string: integer or string only")
tap.ok(accepts({"type": "string", "nullable": True}, None) and not accepts({"type": "string"}, None),
       "nullable: true admits null, otherwise null is refused")
obj = {"type": "object", "properties": {"a": {"type": "integer"}}}
tap.ok(not accepts(obj, {"a": 1, "b": 2}) and
       accepts(dict(obj, **{"x-kubernetes-preserve-unknown-fields": True}), {"a": 1, "b": 2}),
       "unknown fields refused unless x-kubernetes-preserve-unknown-fields")
try:
    vm.translate({"type": "object", "x-kubernetes-validations": [{"rule": "self.a > 0"}]})
    tap.ok(False, "an unknown schema keyword (CEL rules) stops the translation")
except vm.SchemaError as e:
    tap.ok("x-kubernetes-validations" in str(e), "an unknown schema keyword (CEL rules) stops the translation",
           str(e))

# --- Every v2beta1 manifest is accepted ---------------------------------------
manifests = sorted(glob.glob(os.path.join(deploy, "mpijob-*.yaml")))
tap.equal([os.path.basename(m) for m in manifests],
          ["mpijob-cpu-elastic.yaml", "mpijob-cpu-mpiuser.yaml", "mpijob-cpu.yaml",
           "mpijob-gpu16-16x1.yaml", "mpijob-gpu16-2x8.yaml"],
          "deploy/mpijob-*.yaml are the five v2beta1 manifests")
tap.equal(sorted(os.path.basename(m) for m in glob.glob(os.path.join(deploy, "*.yaml"))),
          ["mpijob-cpu-elastic.yaml", "mpijob-cpu-mpiuser.yaml", "mpijob-cpu.yaml",
           "mpijob-gpu16-16x1.yaml", "mpijob-gpu16-2x8.yaml", "pvc-checkpoints.yaml"],
          "deploy/*.yaml: the manifests and the checkpoints' claim")
jobs = {}
for path in manifests:
    doc = load(path)
    jobs[os.path.basename(path)] = doc
    tap.equal((doc.get("apiVersion"), doc.get("kind")), ("kubeflow.org/v2beta1", "MPIJob"),
              f"{rel(path)} is a kubeflow.org/v2beta1 MPIJob")
    errors = vm.validate(doc, schema, raw)
    tap.ok(not errors, f"{rel(path)} validates against the CRD's v2beta1 openAPIV3Schema",
           "\n".join(f"{p}: {m}" for p, m in errors))

legacy = sorted(glob.glob(os.path.join(deploy, "legacy", "*.yaml")))
tap.equal([rel(p) for p in legacy], ["deploy/legacy/mpijob-v1alpha1-gpus16.yaml"],
          "deploy/legacy/ holds the v1alpha1 manifest")
for path in legacy:
    doc = load(path)
    tap.equal((doc.get("apiVersion"), doc["metadata"]["name"], doc["spec"].get("gpus")),
              ("kubeflow.org/v1alpha1", "tensorflow-benchmarks-16", 16),
              f"{rel(path)} is the seed's v1alpha1 `gpus: 16` form (not in the v2beta1 CRD: "
              "dry-run only)")
    tap.ok(vm.validate(doc, schema, raw),
           f"{rel(path)} would not pass as v2beta1 (v1alpha1 fields), as expected")

# --- Broken manifests are rejected, at the right field -------------------------
base = jobs["mpijob-cpu.yaml"]


def worker(d):
    return d["spec"]["mpiReplicaSpecs"]["Worker"]


def container(d):
    return worker(d)["template"]["spec"]["containers"][0]


broken = [
    ("Worker replicas: \"two\"", lambda d: worker(d).update(replicas="two"),
     "spec.mpiReplicaSpecs.Worker.replicas", "is not of type 'integer'"),
    ("unknown mpiImplementation OpenMPII", lambda d: d["spec"].update(mpiImplementation="OpenMPII"),
     "spec.mpiImplementation", "is not one of"),
    ("missing spec.mpiReplicaSpecs", lambda d: d["spec"].pop("mpiReplicaSpecs"),
     "spec", "'mpiReplicaSpecs' is a required property"),
    ("container without a name", lambda d: container(d).pop("name"),
     "spec.mpiReplicaSpecs.Worker.template.spec.containers[0]", "'name' is a required property"),
    ("misspelt field slotPerWorker", lambda d: d["spec"].update(slotPerWorker=2),
     "spec", "'slotPerWorker' was unexpected"),
    ("runPolicy.backoffLimit: \"1\"", lambda d: d["spec"]["runPolicy"].update(backoffLimit="1"),
     "spec.runPolicy.backoffLimit", "is not of type 'integer'"),
    ("slotsPerWorker beyond int32", lambda d: d["spec"].update(slotsPerWorker=2**31),
     "spec.slotsPerWorker", "int32"),
    ("probe port a list (int-or-string)",
     lambda d: container(d)["readinessProbe"]["tcpSocket"].update(port=[2222]),
     "spec.mpiReplicaSpecs.Worker.template.spec.containers[0].readinessProbe.tcpSocket.port",
     "is not valid under any of the given schemas"),
    ("cpu limit \"two\" (quantity pattern)",
     lambda d: container(d)["resources"]["limits"].update(cpu="two"),
     "spec.mpiReplicaSpecs.Worker.template.spec.containers[0].resources.limits.cpu", "does not match"),
    ("a second port 2222/TCP (list-map keys, protocol defaulted)",
     lambda d: container(d)["ports"].append({"name": "ssh2", "containerPort": 2222}),
     "spec.mpiReplicaSpecs.Worker.template.spec.containers[0].ports[1]", "Duplicate value"),
    ("runLauncherAsWorker: \"yes\" (a string)", lambda d: d["spec"].update(runLauncherAsWorker="yes"),
     "spec.runLauncherAsWorker", "is not of type 'boolean'"),
    ("metadata.name with capitals", lambda d: d["metadata"].update(name="Ringtrain_CPU"),
     "metadata.name", "does not match"),
]
for desc, mutate, path, fragment in broken:
    doc = copy.deepcopy(base)
    mutate(doc)
    errors = vm.validate(doc, schema, raw)
    hit = [m for p, m in errors if p == path and fragment in m]
    tap.ok(hit, f"rejected: {desc} ({path})",
           "errors: " + ("; ".join(f"{p}: {m}" for p, m in errors) or "none"))

# The same through YAML text, read as Kubernetes reads it.
with open(os.path.join(deploy, "mpijob-cpu.yaml"), encoding="utf-8") as f:
    cpu_text = f.read()
quoted = cpu_text.replace("      replicas: 2\n", '      replicas: "2"\n', 1)
tap.ok(quoted != cpu_text and vm.validate(vm.load_documents(quoted)[0], schema, raw),
       "rejected: YAML `replicas: \"2\"` is a string, not a number")
twice = cpu_text.replace("  slotsPerWorker: 2\n", "  slotsPerWorker: 2\n  slotsPerWorker: 4\n", 1)
try:
    vm.load_documents(twice)
    tap.ok(False, "rejected: a key given twice")
except vm.yaml.YAMLError as e:
    tap.ok("duplicate key 'slotsPerWorker'" in str(e), "rejected: a key given twice", str(e))

# The command-line tool agrees (exit 1 on a bad file, 0 on the good ones).
bad_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ringtrain-bad-{os.getpid()}.yaml")
with open(bad_file, "w", encoding="utf-8") as f:
    f.write(cpu_text.replace("mpiImplementation: OpenMPI", "mpiImplementation: LAM", 1))


def run_cli(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = vm.main(["validate_mpijob.py"] + args)
    return rc, out.getvalue()


try:
    rc, out = run_cli([bad_file])
    tap.ok(rc == 1 and "spec.mpiImplementation: 'LAM' is not one of" in out,
           "validate_mpijob.py exits 1 for mpiImplementation: LAM and names the field", f"{rc}: {out}")
finally:
    os.unlink(bad_file)
rc, out = run_cli(manifests)
tap.ok(rc == 0 and out.count(": ok (") == 5, "validate_mpijob.py exits 0 for deploy/mpijob-*.yaml",
       f"{rc}: {out}")

# --- What the CRD does not check: the controller's rules and our conventions ----
# mpi-operator's controller also validates (pkg/apis/kubeflow/validation):
# cleanPodPolicy None|Running|All, restartPolicy Never|OnFailure, exactly one
# launcher, at least one worker, <name>-worker-<n-1> a DNS-1123 label,
# non-negative runPolicy numbers; launcherCreationPolicy is
# AtStartup|WaitForWorkersReady. The CRD itself lets a typo through:
typo = copy.deepcopy(base)
typo["spec"]["launcherCreationPolicy"] = "WaitForWorkerReady"
tap.ok(not vm.validate(typo, schema, raw),
       "the CRD alone accepts launcherCreationPolicy: WaitForWorkerReady (so it is checked below)")

dns1123_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def sshd_port(path):
    with open(path, encoding="utf-8") as f:
        ports = re.findall(r"^\s*Port\s+(\d+)\s*$", f.read(), re.M)
    return [int(p) for p in ports]


port = sshd_port(os.path.join(deploy, "sshd", "sshd_config"))
tap.equal(port, [2222], "deploy/sshd/sshd_config listens on 2222 only")
tap.equal(sshd_port(os.path.join(deploy, "sshd", "ssh_config")), [2222],
          "deploy/sshd/ssh_config connects to 2222")
with open(os.path.join(deploy, "sshd", "sshd_config"), encoding="utf-8") as f:
    tap.ok(re.search(r"^StrictModes no$", f.read(), re.M), "sshd_config has StrictModes no")
with open(os.path.join(deploy, "sshd", "ssh_config"), encoding="utf-8") as f:
    client = f.read()
tap.ok(re.search(r"^\s+StrictHostKeyChecking no$", client, re.M) and
       re.search(r"^\s+UserKnownHostsFile /dev/null$", client, re.M),
       "ssh_config has StrictHostKeyChecking no and UserKnownHostsFile /dev/null")
with open(os.path.join(deploy, "entrypoint-launcher.sh"), encoding="utf-8") as f:
    tap.ok("port=${RINGTRAIN_SSH_PORT:-2222}" in f.read(),
           "entrypoint-launcher.sh waits for port 2222 by default")

gpu_expect = {"mpijob-gpu16-2x8.yaml": (2, 8), "mpijob-gpu16-16x1.yaml": (16, 1)}
def controller_problems(doc):
    """What the operator's controller or this project's conventions refuse."""
    spec = doc["spec"]
    reps = spec["mpiReplicaSpecs"]
    launcher, work = reps.get("Launcher", {}), reps.get("Worker", {})
    nworkers = work.get("replicas")
    problems = []
    if spec.get("launcherCreationPolicy") != "WaitForWorkersReady":
        problems.append(f"launcherCreationPolicy {spec.get('launcherCreationPolicy')!r}")
    rp = spec.get("runPolicy", {})
    if rp.get("cleanPodPolicy") != "Running":
        problems.append(f"cleanPodPolicy {rp.get('cleanPodPolicy')!r}")
    for key in ("backoffLimit", "ttlSecondsAfterFinished"):
        if not isinstance(rp.get(key), int) or rp[key] < 0:
            problems.append(f"runPolicy.{key} {rp.get(key)!r}")
    for role, rs in (("Launcher", launcher), ("Worker", work)):
        if rs.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(f"{role}.restartPolicy {rs.get('restartPolicy')!r}")
        if not rs.get("template", {}).get("spec", {}).get("containers"):
            problems.append(f"{role} has no containers")
    if launcher.get("replicas") != 1:
        problems.append(f"Launcher.replicas {launcher.get('replicas')!r}")
    if not isinstance(nworkers, int) or nworkers < 1:
        problems.append(f"Worker.replicas {nworkers!r}")
    else:
        last = f"{doc['metadata']['name']}-worker-{nworkers - 1}"
        if not dns1123_label.match(last) or len(last) > 63:
            problems.append(f"pod name {last} is not a DNS-1123 label")
    # The mpiuser image (tag ...-mpiuser) runs as uid 1000 with the Secret in
    # its home; every other image as root with it at /root/.ssh.
    image = work.get("template", {}).get("spec", {}).get("containers", [{}])[0].get("image", "")
    ssh_path = "/home/mpiuser/.ssh" if image.endswith("-mpiuser") else "/root/.ssh"
    if spec.get("sshAuthMountPath") != ssh_path:
        problems.append(f"sshAuthMountPath {spec.get('sshAuthMountPath')!r} (image {image}: {ssh_path})")
    if image.endswith("-mpiuser"):
        for role, rs in (("Launcher", launcher), ("Worker", work)):
            ctx = rs.get("template", {}).get("spec", {}).get("securityContext", {})
            if ctx.get("runAsUser") != 1000 or not ctx.get("runAsNonRoot"):
                problems.append(f"{role}: the mpiuser image needs securityContext runAsUser 1000, "
                                "runAsNonRoot")
    return problems


rules_broken = [
    ("launcherCreationPolicy: WaitForWorkerReady",
     lambda d: d["spec"].update(launcherCreationPolicy="WaitForWorkerReady")),
    ("cleanPodPolicy: Sometimes", lambda d: d["spec"]["runPolicy"].update(cleanPodPolicy="Sometimes")),
    ("no backoffLimit", lambda d: d["spec"]["runPolicy"].pop("backoffLimit")),
    ("Worker restartPolicy: Always", lambda d: worker(d).update(restartPolicy="Always")),
    ("Launcher replicas: 2", lambda d: d["spec"]["mpiReplicaSpecs"]["Launcher"].update(replicas=2)),
    ("Worker replicas: 0", lambda d: worker(d).update(replicas=0)),
    ("a 60-character name (pod names over 63)", lambda d: d["metadata"].update(name="r" * 60)),
]
for desc, mutate in rules_broken:
    doc = copy.deepcopy(base)
    mutate(doc)
    tap.ok(controller_problems(doc), f"refused by the controller rules: {desc}")

for name, doc in sorted(jobs.items()):
    spec = doc["spec"]
    reps = spec["mpiReplicaSpecs"]
    launcher, work = reps.get("Launcher", {}), reps.get("Worker", {})
    nworkers = work.get("replicas")
    problems = controller_problems(doc)
    tap.ok(not problems, f"{name}: controller rules, WaitForWorkersReady, runPolicy "
           "(cleanPodPolicy Running, backoffLimit, ttlSecondsAfterFinished)", "; ".join(problems))

    wc = work["template"]["spec"]["containers"][0]
    lc = launcher["template"]["spec"]["containers"][0]
    tap.equal(wc.get("command"), ["ringtrain-entrypoint-worker"],
              f"{name}: workers run ringtrain-entrypoint-worker (sshd)")
    tap.equal((wc.get("readinessProbe", {}).get("tcpSocket", {}).get("port"),
               [p.get("containerPort") for p in wc.get("ports", [])]), (2222, [2222]),
              f"{name}: workers' readiness probe is tcpSocket on the sshd port 2222")
    tap.equal(lc.get("command"), ["ringtrain-entrypoint-launcher"],
              f"{name}: the launcher runs ringtrain-entrypoint-launcher (ringtrain-launcher)")
    args = lc.get("args", [])
    program = args[args.index("--") + 1:] if "--" in args else []
    tap.ok(program[:1] == ["ringtrain-worker"], f"{name}: the launcher's program is ringtrain-worker",
           f"args: {args}")
    tap.equal(lc.get("image"), wc.get("image"), f"{name}: launcher and workers use one image")

    limits = wc.get("resources", {}).get("limits", {})
    if name in gpu_expect:
        workers, slots = gpu_expect[name]
        tap.equal((nworkers, spec.get("slotsPerWorker"), limits.get("nvidia.com/gpu")),
                  (workers, slots, slots),
                  f"{name}: {workers} workers x {slots} slots, nvidia.com/gpu: {slots} per worker "
                  "(16 GPUs, one rank per GPU)")
        tap.ok({"--model=resnet101", "--batch_size=64", "--device=cuda"} <= set(program),
               f"{name}: resnet101, batch 64 per GPU, --device=cuda", f"program: {program}")
        tap.equal(wc.get("image"), "ringtrain:cuda", f"{name}: the CUDA image")
    else:
        shape = (3, 1) if "elastic" in name else (2, 2)
        tap.equal((nworkers, spec.get("slotsPerWorker")), shape,
                  f"{name}: {shape[0]} workers x {shape[1]} slots")
        tap.ok(any(a in program for a in ("--model=resnet20", "--model=lenet")) and
               "--device=cuda" not in program and "nvidia.com/gpu" not in limits,
               f"{name}: resnet20 or lenet on CPUs", f"program: {program}")
        want = "ringtrain:cpu-mpiuser" if "mpiuser" in name else "ringtrain:cpu"
        tap.equal(wc.get("image"), want, f"{name}: the CPU image ({want})")

# --- The elastic job: checkpoints on the claim every worker mounts ---------
def elastic_checks(doc, claim):
    spec = doc["spec"]["mpiReplicaSpecs"]
    wspec = spec["Worker"]["template"]["spec"]
    lspec = spec["Launcher"]["template"]["spec"]
    args = lspec["containers"][0]["args"]
    launcher_opts, program = args[:args.index("--")], args[args.index("--") + 1:]
    vols = {v["name"]: v for v in wspec.get("volumes", [])}
    mounts = {m["name"]: m["mountPath"] for m in wspec["containers"][0].get("volumeMounts", [])}
    pvc = [n for n, v in vols.items() if "persistentVolumeClaim" in v]
    tap.ok(len(pvc) == 1 and vols[pvc[0]]["persistentVolumeClaim"]["claimName"] ==
           claim["metadata"]["name"] and pvc[0] in mounts,
           "mpijob-cpu-elastic.yaml: every worker mounts deploy/pvc-checkpoints.yaml's claim",
           f"volumes {vols}, mounts {mounts}")
    ckpt = [a.split("=", 1)[1] for a in program if a.startswith("--checkpoint_dir=")]
    tap.ok(len(ckpt) == 1 and pvc and ckpt[0].startswith(mounts.get(pvc[0], "?") + "/"),
           "mpijob-cpu-elastic.yaml: --checkpoint_dir is on the claim", f"program: {program}")
    tap.ok({"--max-restarts=3", "--min-np=2"} <= set(launcher_opts),
           "mpijob-cpu-elastic.yaml: the launcher relaunches (--max-restarts) on 2 pods or more",
           f"launcher options: {launcher_opts}")
    tap.ok(wspec.get("terminationGracePeriodSeconds", 30) >= 30 and
           lspec.get("terminationGracePeriodSeconds", 30) >= 25,
           "mpijob-cpu-elastic.yaml: grace periods hold a checkpoint (workers) and the "
           "launcher's --stop-grace 20 + --kill-grace 5")
    tap.equal(claim["spec"]["accessModes"], ["ReadWriteMany"],
              "pvc-checkpoints.yaml: ReadWriteMany (any worker may hold rank 0)")


with open(os.path.join(deploy, "pvc-checkpoints.yaml"), encoding="utf-8") as f:
    elastic_checks(jobs["mpijob-cpu-elastic.yaml"], vm.load_documents(f.read())[0])

tap.done()
