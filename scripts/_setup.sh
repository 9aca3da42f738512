# shellcheck shell=bash
# Shared by scripts/demo.sh and scripts/test.sh: the lab, the Python environment and the
# collection's place on ANSIBLE_COLLECTIONS_PATH. Everything is idempotent and quick when
# already done, so both commands work on a fresh machine and on the tenth run alike.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VIRTOPS_VENV:-$ROOT/.venv}
COLLECTIONS_ROOT=${VIRTOPS_COLLECTIONS_ROOT:-${TMPDIR:-/tmp}/virtops-storage-collections-$(id -u)}
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
export VIRTOPS_VENV=$VENV VIRTOPS_COLLECTIONS_ROOT=$COLLECTIONS_ROOT SUDO

say() { printf '\n==> %s\n' "$*"; }

setup_lab() {
  say "lab: libvirtd, QEMU and tgtd on this machine"
  bash "$ROOT/scripts/lab.sh" up
}

setup_venv() {
  # libvirt-python compiles against libvirt-dev, which setup_lab installs first.
  local stamp want
  want=$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)
  stamp="$VENV/.requirements.sha256"
  if [ ! -x "$VENV/bin/python" ]; then
    say "python: creating $VENV"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "python: installing requirements-dev.txt"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements-dev.txt"
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_PYTHON_INTERPRETER="$VENV/bin/python"
}

link_collection() {
  # Ansible finds collections as ansible_collections/<namespace>/<name>: a link to this
  # checkout, so what runs is always the working tree.
  local parent="$COLLECTIONS_ROOT/ansible_collections/virtops"
  mkdir -p "$parent"
  if [ "$(readlink "$parent/storage" 2>/dev/null)" != "$ROOT" ]; then
    rm -f "$parent/storage"
    ln -s "$ROOT" "$parent/storage"
  fi
  export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_ROOT"
}
