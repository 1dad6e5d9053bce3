#!/usr/bin/python3
"""Checks MPIJob manifests against mpi-operator's CRD without a cluster.

  deploy/validate_mpijob.py [--crd FILE] [--version v2beta1] MANIFEST...

Exit 0 when every document of every file is accepted, 1 when one is rejected
(each problem printed as `FILE: doc N: PATH: message`), 2 for bad usage.

The schema is the CRD's own `openAPIV3Schema` (default: deploy/crd/, the
vendored copy of mpi-operator v0.8.2's manifests/base/kubeflow.org_mpijobs.yaml),
checked by a real JSON Schema validator (python3-jsonschema, draft 4, the
draft OpenAPI 3.0 schemas follow). Nothing about MPIJobs is written by hand
here; what differs between a Kubernetes structural schema and plain JSON
Schema is translated, one rule each, the way the API server reads it:

- `x-kubernetes-int-or-string: true` -> `anyOf: [integer, string]` (the CRD
  already spells it out; it is added where missing).
- `nullable: true` -> `null` is also accepted.
- `x-kubernetes-preserve-unknown-fields: true` -> unknown fields are kept.
  Everywhere else an object accepts only its declared properties
  (`additionalProperties: false`): `kubectl apply` validates fields Strictly
  by default (Kubernetes 1.27+) and rejects unknown ones; an older server
  would drop them silently, which hides typos just the same.
- `default` values are filled in before validating, as the API server does
  (it matters for required fields and list-map keys such as a port's
  `protocol: TCP`).
- `x-kubernetes-list-type: set` -> items unique; `map` -> items unique by
  `x-kubernetes-list-map-keys` (the API server's "Duplicate value").
  `x-kubernetes-map-type` only changes how updates merge: nothing to check.
- `format: int32` / `int64` -> the integer must fit (the operator decodes
  into Go int32/int64).
- The root `metadata` (ObjectMeta) is validated by the API server itself, not
  by the CRD; here it must be a mapping with a DNS-1123 `name`.
- A keyword this translation does not know (e.g. `x-kubernetes-validations`,
  CEL rules) stops the program rather than being ignored.

YAML is read as Kubernetes reads it (sigs.k8s.io/yaml, YAML 1.1): `"2"` is a
string, `yes` a boolean; dates stay strings; a key given twice is an error.
"""
import copy
import os
import re
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"validate_mpijob.py: error: {e}; install Debian's python3-jsonschema "
             "and python3-yaml (tools/setup --tests does)")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CRD = os.path.join(HERE, "crd", "kubeflow.org_mpijobs.yaml")

# Keywords with the same meaning in OpenAPI 3.0 schemas and JSON Schema draft 4.
SAME_MEANING = {
    "type", "properties", "required", "items", "additionalProperties", "enum",
    "pattern", "format", "anyOf", "allOf", "oneOf", "not", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
    "maxItems", "uniqueItems", "multipleOf", "minProperties", "maxProperties",
}
# Keywords that document or steer merging and constrain nothing.
NO_CONSTRAINT = {"description", "title", "example", "externalDocs", "x-kubernetes-map-type"}
# Translated below.
TRANSLATED = {
    "default", "nullable", "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}

INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SchemaError(Exception):
    """The CRD uses something this translation cannot check honestly."""


def translate(node, path="openAPIV3Schema"):
    """Kubernetes structural schema -> JSON Schema draft 4 (a new tree)."""
    if not isinstance(node, dict):
        raise SchemaError(f"{path}: a schema must be a mapping")
    unknown = set(node) - SAME_MEANING - NO_CONSTRAINT - TRANSLATED
    if unknown:
        raise SchemaError(f"{path}: unsupported schema keyword(s) {sorted(unknown)}; "
                          "extend deploy/validate_mpijob.py before trusting it with this CRD")
    out = {}
    for key, value in node.items():
        if key in NO_CONSTRAINT or key in TRANSLATED:
            continue
        if key == "properties":
            out[key] = {name: translate(sub, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = translate(value, f"{path}[]")
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = translate(value, f"{path}.*")
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [translate(sub, f"{path}.{key}[{i}]") for i, sub in enumerate(value)]
        elif key == "not":
            out[key] = translate(value, f"{path}.not")
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crd_schema(crd_path=DEFAULT_CRD, version="v2beta1"):
    """(translated JSON Schema, original structural schema) of one CRD version."""
    with open(crd_path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    if crd.get("kind") != "CustomResourceDefinition":
        raise SchemaError(f"{crd_path}: not a CustomResourceDefinition")
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            raw = v["schema"]["openAPIV3Schema"]
            schema = translate(raw)
            # ObjectMeta is the API server's business (see the module comment).
            schema["properties"]["metadata"] = {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "maxLength": 253,
                                        "pattern": DNS1123_SUBDOMAIN.pattern}}}
            jsonschema.Draft4Validator.check_schema(schema)
            return schema, raw
    raise SchemaError(f"{crd_path}: no version {version}")


class _K8sLoader(yaml.SafeLoader):
    """YAML 1.1 as sigs.k8s.io/yaml reads it: dates stay strings, no duplicate keys."""


_K8sLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping_no_duplicates(loader, node):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node)


_K8sLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def load_documents(text):
    """Every non-empty document of a YAML stream."""
    return [d for d in yaml.load_all(text, Loader=_K8sLoader) if d is not None]


def _apply_defaults(value, raw):
    """Fills in `default`s of absent properties, recursively (API server order)."""
    if isinstance(value, dict):
        props = raw.get("properties", {})
        for name, sub in props.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            if name in props:
                _apply_defaults(item, props[name])
            elif isinstance(raw.get("additionalProperties"), dict):
                _apply_defaults(item, raw["additionalProperties"])
    elif isinstance(value, list) and isinstance(raw.get("items"), dict):
        for item in value:
            _apply_defaults(item, raw["items"])


def _list_type_errors(value, raw, path):
    """Duplicates in `x-kubernetes-list-type: set|map` lists."""
    errors = []
    if isinstance(value, dict):
        props = raw.get("properties", {})
        for name, item in value.items():
            sub = props.get(name, raw.get("additionalProperties"))
            if isinstance(sub, dict):
                errors += _list_type_errors(item, sub, path + [name])
    elif isinstance(value, list):
        kind = raw.get("x-kubernetes-list-type")
        keys = raw.get("x-kubernetes-list-map-keys", [])
        seen = {}
        for i, item in enumerate(value):
            if kind == "set":
                ident = repr(item)
            elif kind == "map" and isinstance(item, dict):
                ident = repr(tuple(item.get(k) for k in keys))
            else:
                ident = None
            if ident is not None:
                if ident in seen:
                    what = f"keys {keys} = {ident}" if kind == "map" else f"value {ident}"
                    errors.append((path + [i], f"Duplicate value: {what} also at index {seen[ident]}"))
                seen.setdefault(ident, i)
            if isinstance(raw.get("items"), dict):
                errors += _list_type_errors(item, raw["items"], path + [i])
    return errors


_format_checker = jsonschema.FormatChecker()


def _int_format(name):
    low, high = INT_RANGES[name]

    @_format_checker.checks(name)
    def check(value):
        return not isinstance(value, int) or isinstance(value, bool) or low <= value <= high
    return check


for _name in INT_RANGES:
    _int_format(_name)


def format_path(path):
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(document)"


def with_defaults(doc, raw):
    """A copy of doc with the CRD's defaults filled in, as the API server
    stores it (sshAuthMountPath, slotsPerWorker, launcherCreationPolicy, ...)."""
    doc = copy.deepcopy(doc)
    _apply_defaults(doc, raw)
    return doc


def validate(doc, schema, raw):
    """[(path, message)] for one document; empty when the CRD accepts it."""
    if not isinstance(doc, dict):
        return [("(document)", "not a mapping")]
    doc = with_defaults(doc, raw)
    validator = jsonschema.Draft4Validator(schema, format_checker=_format_checker)
    errors = [(format_path(e.absolute_path), e.message)
              for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    errors += [(format_path(p), m) for p, m in _list_type_errors(doc, raw, [])]
    return errors


def main(argv):
    args = argv[1:]
    crd, version = DEFAULT_CRD, "v2beta1"
    while args and args[0].startswith("--"):
        if args[0] == "--crd" and len(args) > 1:
            crd, args = args[1], args[2:]
        elif args[0] == "--version" and len(args) > 1:
            version, args = args[1], args[2:]
        else:
            break
    if not args or args[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        schema, raw = load_crd_schema(crd, version)
    except (OSError, SchemaError, yaml.YAMLError) as e:
        print(f"validate_mpijob.py: error: {e}", file=sys.stderr)
        return 2
    bad = 0
    for path in args:
        try:
            with open(path, encoding="utf-8") as f:
                docs = load_documents(f.read())
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: {e}".replace("\n", " "))
            bad += 1
            continue
        for n, doc in enumerate(docs, 1):
            errors = validate(doc, schema, raw)
            want = f"kubeflow.org/{version}"
            if isinstance(doc, dict) and (doc.get("apiVersion") != want or doc.get("kind") != "MPIJob"):
                errors.insert(0, ("apiVersion", f"expected {want} MPIJob, found "
                                  f"{doc.get('apiVersion')!r} {doc.get('kind')!r}"))
            for where, message in errors:
                print(f"{path}: doc {n}: {where}: {message}")
            bad += bool(errors)
            if not errors:
                print(f"{path}: doc {n}: ok ({want} MPIJob {doc['metadata']['name']})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
