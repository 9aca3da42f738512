#!/usr/bin/env bash
# Quick start, command 1: set up the local lab and run the demo playbook against it.
set -euo pipefail
# shellcheck source=_setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

setup_lab
setup_venv
link_collection
say "demo: playbooks/demo.yml"
set -a
# shellcheck source=../tests/lab/lab.env
. "$ROOT/tests/lab/lab.env"
set +a
cd "$ROOT"
exec ansible-playbook -i playbooks/inventory/lab.yml playbooks/demo.yml "$@"
