#!/usr/bin/env bash
# Quick start, command 2: the whole test suite - documentation, lint, sanity, then the
# unit and integration tests (pytest) against the local lab. Every gate runs; the exit
# status is non-zero if any of them failed.
set -uo pipefail
# shellcheck source=_setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
set -e
setup_lab
setup_venv
link_collection
if ! command -v shellcheck >/dev/null; then  # ansible-test sanity checks shell scripts with it
  say "installing shellcheck"
  $SUDO apt-get install -y -qq --no-install-recommends shellcheck >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
fi
set +e
cd "$ROOT"

check_docs() {
  local module failed=0 text
  for module in plugins/modules/*.py; do
    module=$(basename "$module" .py)
    if ! text=$(ansible-doc -t module "virtops.storage.$module" 2>&1); then
      echo "ansible-doc failed for $module:"; echo "$text"; failed=1; continue
    fi
    for section in EXAMPLES: 'RETURN VALUES:' 'OPTIONS'; do
      grep -q "$section" <<<"$text" || { echo "$module: no $section in ansible-doc"; failed=1; }
    done
    echo "ansible-doc virtops.storage.$module: ok"
  done
  return $failed
}

run_lint() {
  ansible-lint --profile production --nocolor
}

run_sanity() {
  # ansible-test wants the collection at .../ansible_collections/virtops/storage, as files.
  local tree version
  tree=$(mktemp -d)/ansible_collections/virtops/storage
  mkdir -p "$tree"
  git ls-files -co --exclude-standard | rsync -a --files-from=- . "$tree/"
  # Its sanity environments bootstrap pip with a script it downloads from its own file
  # host; give it the equivalent that installs from PyPI (see the script's docstring).
  version=$(python - <<'PY'
import os, re, ansible_test
source = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1).replace('.', '_'))
PY
)
  mkdir -p ~/.ansible/test/cache
  cp scripts/ansible_test_get_pip.py ~/.ansible/test/cache/"get_pip_$version.py"
  (cd "$tree" && ansible-test sanity --color no --requirements --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" 2>&1 \
    | grep -v -E '^(Collecting|Requirement already|Downloading|Installing|Successfully|Using cached|Looking in|Processing|  )')
  local status=${PIPESTATUS[0]}
  rm -rf "$(dirname "$(dirname "$(dirname "$tree")")")"
  return "$status"
}

run_pytest() {
  # two workers; the tests that attach loop devices over tgtd LUNs (direct LUNs, the iscsiadm
  # stand-in, direct_lun_host) share one (xdist_group 'lab-iscsi-luns'), the rest spread
  python -m pytest -n 2 --dist loadgroup tests/unit tests/integration
}

results=()
failures=0
for gate in check_docs run_lint run_sanity run_pytest; do
  say "$gate"
  start=$SECONDS
  if "$gate"; then
    results+=("ok      $gate ($((SECONDS - start)) s)")
  else
    results+=("FAILED  $gate ($((SECONDS - start)) s)")
    failures=$((failures + 1))
  fi
done
say "summary"
printf '  %s\n' "${results[@]}"
echo "gates: $((${#results[@]} - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
