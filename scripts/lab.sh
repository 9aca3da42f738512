#!/usr/bin/env bash
# Local test lab: libvirt (qemu:///system) plus tgtd iSCSI targets on 127.0.0.1.
#   scripts/lab.sh up | down | status | missing-packages
# Constants live in tests/lab/lab.env so the test suite and this script agree.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/lab/lab.env
. "${LAB_ENV_FILE:-$ROOT/tests/lab/lab.env}"

SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)   # every privileged call goes through $SUDO
STARTED="$LAB_STATE_DIR/started"   # one file per daemon the lab itself started
TGT_DIR="$LAB_STATE_DIR/tgt"
PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-driver-storage-iscsi-direct
  libvirt-daemon-driver-storage-rbd libvirt-daemon-driver-storage-zfs
  libvirt-clients qemu-system-x86 qemu-utils qemu-block-extra tgt libiscsi-bin libvirt-dev
  pkg-config gcc python3-venv python3-dev e2fsprogs xfsprogs util-linux rsync)
CHANGES=()

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }
changed() { CHANGES+=("$*"); log "$*"; }
virsh_() { $SUDO virsh -q -c qemu:///system "$@"; }
tgt() { $SUDO tgtadm --lld iscsi "$@"; }
has_lab_prefix() { local p; for p in $LAB_OBJECT_PREFIXES; do [[ $1 == "$p"* ]] && return 0; done; return 1; }

# Bounded polling instead of fixed sleeps: returns as soon as "$@" succeeds.
wait_for() { local i; for ((i = 0; i < $1; i++)); do "${@:2}" && return 0; sleep 0.2; done; return 1; }
is_gone() { ! grep -qs '^State:[[:space:]]*[RSDIT]' "/proc/$1/status"; }  # exited or zombie
live_pid() {  # a zombie still matches pgrep, but it is no running daemon
  local p
  for p in $(pgrep -x "$1" || true); do is_gone "$p" || { echo "$p"; return 0; }; done
  return 1
}

# --- step 1: packages -------------------------------------------------------
# Second status letter "i" = installed (covers held "hi"; "rc" = removed with config left).
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ?i* ]] || echo "$p"; done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]})) || return 0
  changed "installing packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- step 2: libvirt prerequisites ------------------------------------------
# libvirtd refuses to start without these. Debian builds libvirt with libvirt-qemu as
# both the default QEMU user and group (swtpm_user/swtpm_group fall back to them even when
# qemu.conf says root), so that group must exist too. Root QEMU with no security driver
# avoids file-permission trouble on lab images.
QEMU_CONF_CHANGED=0
prepare_libvirt() {
  local conf=/etc/libvirt/qemu.conf tmp kv key g
  for g in kvm libvirt-qemu; do
    getent group "$g" >/dev/null || { $SUDO groupadd --system "$g"; changed "created group $g"; }
  done
  getent passwd libvirt-qemu >/dev/null || {
    $SUDO useradd --system -g kvm -d /var/lib/libvirt -s /usr/sbin/nologin -M libvirt-qemu
    changed "created user libvirt-qemu"; }
  [ -d /var/log/libvirt ] || { $SUDO mkdir -p /var/log/libvirt; changed "created /var/log/libvirt"; }
  tmp=$(mktemp)
  if $SUDO test -f "$conf"; then $SUDO cat "$conf" >"$tmp"; fi
  for kv in 'user = "root"' 'group = "root"' 'security_driver = "none"'; do
    key=${kv%% *}   # only live settings are replaced; commented examples stay as they are
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$tmp"; then sed -Ei "s|^[[:space:]]*${key}[[:space:]]*=.*|$kv|" "$tmp"
    else printf '%s\n' "$kv" >>"$tmp"; fi
  done
  if ! $SUDO cmp -s "$tmp" "$conf"; then
    $SUDO mkdir -p /etc/libvirt && $SUDO install -m 0600 "$tmp" "$conf"
    changed "updated $conf"; QEMU_CONF_CHANGED=1
  fi
  rm -f "$tmp"
}

# --- step 3: daemons ----------------------------------------------------------
# Debian ships the libvirt units in libvirt-daemon-system, which the lab does not
# install, so systemd is used only when it is PID 1 *and* knows the unit.
systemd_unit() { [[ $(cat /proc/1/comm 2>/dev/null) == systemd && -d /run/systemd/system ]] && systemctl cat "$1" >/dev/null 2>&1; }
tgtd_ok() { tgt --mode target --op show >/dev/null 2>&1; }
libvirt_ok() { virsh_ version >/dev/null 2>&1; }
# Fails fast when the daemon died during start-up instead of polling out the whole budget.
ready() {
  "$2" && return 0
  live_pid "$1" >/dev/null || die "$1 exited during start-up; last log lines:
$(tail -n 8 "$LAB_STATE_DIR/$1.log" 2>/dev/null)"
  return 1
}

start_daemon() {  # name unit
  local name=$1 unit=$2 log="$LAB_STATE_DIR/$1.log" pid
  if systemd_unit "$unit"; then
    systemctl is-active -q "$unit" && return 0
    $SUDO systemctl start "$unit"
    echo "systemd $unit" | $SUDO tee "$STARTED/$name" >/dev/null
    changed "started $unit (systemd)"; return 0
  fi
  # An external daemon is used as it is (an external tgtd keeps its own portal, often 0.0.0.0).
  if pid=$(live_pid "$name"); then $SUDO test -f "$STARTED/$name" || log "note: using external $name ($pid)"; return 0; fi
  if [ "$name" = tgtd ]; then
    # tgtd -f logs to stderr; setsid detaches it from this shell's session and signals.
    # shellcheck disable=SC2016  # $1 and $2 are the inner shell's arguments
    pid=$($SUDO sh -c 'setsid tgtd -f --iscsi portal="$1" >>"$2" 2>&1 </dev/null & echo $!' \
      sh "$LAB_ISCSI_PORTAL" "$log")
  else
    # A daemonized libvirtd/virtlogd points stdio at /dev/null: only this keeps its errors.
    $SUDO env LIBVIRT_LOG_OUTPUTS="3:file:$log" "$name" -d </dev/null >/dev/null \
      || die "$name failed to start: $(tail -n 8 "$log")"
    pid=$($SUDO cat "/run/$name.pid" 2>/dev/null || live_pid "$name")
  fi
  echo "pid $pid" | $SUDO tee "$STARTED/$name" >/dev/null
  changed "started $name (pid $pid)"
}

start_daemons() {
  local pid
  # libvirtd reads qemu.conf only at start-up. Restarting an external one makes it the lab's.
  if ((QEMU_CONF_CHANGED)) && systemd_unit libvirtd.service; then
    ! systemctl is-active -q libvirtd.service || $SUDO systemctl restart libvirtd.service
  elif ((QEMU_CONF_CHANGED)) && pid=$(live_pid libvirtd); then
    log "restarting libvirtd (pid $pid) to apply qemu.conf"
    $SUDO kill -TERM "$pid"
    wait_for 50 is_gone "$pid" || die "libvirtd pid $pid did not stop"
  fi
  start_daemon virtlogd virtlogd.service
  start_daemon libvirtd libvirtd.service
  start_daemon tgtd tgt.service
  wait_for 300 ready libvirtd libvirt_ok || die "libvirtd not answering on qemu:///system after 60s"
  wait_for 150 ready tgtd tgtd_ok || die "tgtd not answering on its control socket after 30s"
}

# --- step 4: iSCSI targets ----------------------------------------------------
# Prints the "Target N:" block of `tgtadm --op show`, whose layout tgt has kept for years.
target_block() { tgt --mode target --op show | awk -v h="Target $1:" 'index($0, h) == 1 {p = 1; print; next} /^Target [0-9]+:/ {p = 0} p'; }

# Value of a "Field: value" line inside LUN n of a target block.
lun_field() {
  target_block "$1" | awk -v lun="$2" -v f="$3" '
    $1 == "LUN:" {cur = $2; next}
    cur == lun && index($0, f ": ") {sub(/^[^:]*: /, ""); print; exit}'
}

ensure_target() {  # tid iqn
  local tid=$1 iqn=$2 head
  head=$(target_block "$tid" | sed -n 1p)
  if [ -z "$head" ]; then
    tgt --mode target --op show | grep "^Target [0-9]*: $iqn\$" >/dev/null && die "$iqn exists under another tid than $tid"
    tgt --mode target --op new --tid "$tid" -T "$iqn"; changed "created target $tid $iqn"
  elif [ "$head" != "Target $tid: $iqn" ]; then
    die "tid $tid is taken by a foreign target ($head); refusing to touch it"
  fi
  if ! target_block "$tid" | sed -n '/ACL information:/,$p' | grep -x '[[:space:]]*ALL' >/dev/null; then
    tgt --mode target --op bind --tid "$tid" -I ALL; changed "bound target $tid to ALL initiators"
  fi
}

ensure_lun() {  # tid lun size_mib scsi_id scsi_sn short
  local tid=$1 lun=$2 size=$3 id=$4 sn=$5 file="$TGT_DIR/$6-lun$2.img" path
  $SUDO test -f "$file" || { $SUDO truncate -s "${size}M" "$file"; changed "created sparse $file"; }
  path=$(lun_field "$tid" "$lun" "Backing store path")
  if [ -z "$path" ]; then
    tgt --mode logicalunit --op new --tid "$tid" --lun "$lun" -b "$file"
    changed "created LUN $tid/$lun"
  elif [ "$path" != "$file" ]; then
    die "LUN $tid/$lun is backed by $path, expected $file; run '$0 down' first"
  fi
  if [ "$(lun_field "$tid" "$lun" "SCSI ID")" != "$id" ] || [ "$(lun_field "$tid" "$lun" "SCSI SN")" != "$sn" ]; then
    tgt --mode logicalunit --op update --tid "$tid" --lun "$lun" \
      --params "scsi_id=$id,scsi_sn=$sn,vendor_id=VIRTOPS,product_id=LABDISK"
    changed "set identity of LUN $tid/$lun ($id, $sn)"
  fi
}

ensure_chap() {
  if ! tgt --mode account --op show | grep -x "[[:space:]]*$LAB_CHAP_USER" >/dev/null; then
    tgt --mode account --op new --user "$LAB_CHAP_USER" --password "$LAB_CHAP_PASSWORD"
    changed "created CHAP account $LAB_CHAP_USER"
  fi
  if ! target_block "$LAB_CHAP_TID" | sed -n '/Account information:/,/ACL information:/p' \
      | grep -x "[[:space:]]*$LAB_CHAP_USER" >/dev/null; then
    tgt --mode account --op bind --tid "$LAB_CHAP_TID" --user "$LAB_CHAP_USER"
    changed "bound CHAP account to target $LAB_CHAP_TID"
  fi
}

serve_targets() {
  $SUDO mkdir -p "$TGT_DIR"
  ensure_target "$LAB_OPEN_TID" "$LAB_OPEN_IQN"
  ensure_lun "$LAB_OPEN_TID" 1 "$LAB_OPEN_LUN1_SIZE_MIB" "$LAB_OPEN_LUN1_SCSI_ID" "$LAB_OPEN_LUN1_SCSI_SN" open
  ensure_lun "$LAB_OPEN_TID" 2 "$LAB_OPEN_LUN2_SIZE_MIB" "$LAB_OPEN_LUN2_SCSI_ID" "$LAB_OPEN_LUN2_SCSI_SN" open
  ensure_target "$LAB_CHAP_TID" "$LAB_CHAP_IQN"
  ensure_lun "$LAB_CHAP_TID" 1 "$LAB_CHAP_LUN1_SIZE_MIB" "$LAB_CHAP_LUN1_SCSI_ID" "$LAB_CHAP_LUN1_SCSI_SN" chap
  ensure_chap
}

# --- step 5: verification -----------------------------------------------------
port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}" 2>/dev/null; }

verify() {
  local p=$LAB_ISCSI_PORTAL auth="$LAB_CHAP_USER%$LAB_CHAP_PASSWORD" ls out url
  local -a ini=(-i "$LAB_INITIATOR_IQN")
  local -A serial=(["iscsi://$p/$LAB_OPEN_IQN/1"]=$LAB_OPEN_LUN1_SCSI_SN
    ["iscsi://$p/$LAB_OPEN_IQN/2"]=$LAB_OPEN_LUN2_SCSI_SN ["iscsi://$auth@$p/$LAB_CHAP_IQN/1"]=$LAB_CHAP_LUN1_SCSI_SN)
  virsh_ list --all >/dev/null || die "verify: 'virsh -c qemu:///system list --all' failed"
  # Unauthenticated discovery stops at the first CHAP target it meets, so list with credentials
  # (a target without CHAP accepts an initiator that offers it) and probe each side separately.
  ls=$(iscsi-ls "${ini[@]}" -s "iscsi://$auth@$p/" 2>&1) || die "verify: iscsi-ls failed: $ls"
  grep -q "Target:$LAB_OPEN_IQN " <<<"$ls" || die "verify: $LAB_OPEN_IQN missing from iscsi-ls: $ls"
  grep -q "Target:$LAB_CHAP_IQN " <<<"$ls" || die "verify: $LAB_CHAP_IQN missing from iscsi-ls: $ls"
  VERIFY_LS=$ls
  # Unit serial (VPD 0x80) proves the stable identities; iscsi-inq wants the page in decimal.
  for url in "${!serial[@]}"; do
    out=$(iscsi-inq "${ini[@]}" -e 1 -c 128 "$url" 2>&1) || die "verify: INQUIRY failed on ${url/$auth@/}: $out"
    [[ $out == *"${serial[$url]}]"* ]] || die "verify: ${url/$auth@/} reports '$out', expected serial ${serial[$url]}"
  done
  ! out=$(iscsi-inq "${ini[@]}" "iscsi://$p/$LAB_CHAP_IQN/1" 2>&1) || die "verify: $LAB_CHAP_IQN let us in WITHOUT CHAP"
  grep -qi 'authentication failure' <<<"$out" || die "verify: CHAP target refused for an unexpected reason: $out"
  ! port_open "$LAB_ISCSI_CLOSED_PORTAL" || die "verify: something listens on $LAB_ISCSI_CLOSED_PORTAL (must stay closed)"
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

cmd_up() {
  local t0 ms
  t0=$(now_ms)
  install_packages
  $SUDO mkdir -p "$STARTED" "$TGT_DIR"
  prepare_libvirt
  start_daemons
  serve_targets
  verify
  ms=$(($(now_ms) - t0))
  printf 'lab up in %d.%02ds, %d change(s); daemons: %s\n%s\n' $((ms / 1000)) $((ms % 1000 / 10)) \
    ${#CHANGES[@]} "$(daemon_summary)" "$(while IFS= read -r line; do printf '  %s\n' "$line"; done <<<"$VERIFY_LS")"
}

daemon_summary() {
  local d pid
  for d in virtlogd libvirtd tgtd; do
    pid=$(live_pid "$d") || { printf '%s=stopped ' "$d"; continue; }
    printf '%s=%s(%s) ' "$d" "$pid" "$($SUDO test -f "$STARTED/$d" && echo lab || echo external)"
  done
}

# --- down ---------------------------------------------------------------------
lab_secrets() {  # uuids of secrets whose usage id (past a "virtops-*/" namespace) or description carries a lab prefix
  local u
  for u in $(virsh_ secret-list 2>/dev/null | awk '{print $1}'); do
    virsh_ secret-dumpxml "$u" 2>/dev/null | sed -n 's:.*<\(description\|target\|name\|volume\)>\(.*\)</\1>.*:\2:p' \
      | while read -r v; do
          # the collection's password-digest key exists only because tests stored passwords
          if has_lab_prefix "${v#virtops-*/}" || [ "$v" = virtops.storage/digest-key ]; then echo "$u"; break; fi
        done
  done
  return 0
}
lab_names() {  # lab-prefixed names from "virsh list" or "virsh pool-list"
  virsh_ "$1" --all --name 2>/dev/null | while read -r n; do if has_lab_prefix "$n"; then echo "$n"; fi; done
  return 0
}

clean_libvirt() {
  local n left
  libvirt_ok >/dev/null 2>&1 || { log "libvirtd not reachable: skipping libvirt objects"; return 0; }
  for n in $(lab_names list); do
    virsh_ destroy "$n" >/dev/null 2>&1 || true
    virsh_ undefine --managed-save --snapshots-metadata --checkpoints-metadata --nvram "$n" >/dev/null 2>&1 \
      || virsh_ undefine "$n" >/dev/null 2>&1 || true
    log "removed domain $n"
  done
  # pool-destroy unmounts fs pools; their data goes only with $LAB_STATE_DIR below.
  for n in $(lab_names pool-list); do
    virsh_ pool-destroy "$n" >/dev/null 2>&1 || true
    virsh_ pool-undefine "$n" >/dev/null 2>&1 || true
    log "removed pool $n"
  done
  for n in $(lab_secrets); do virsh_ secret-undefine "$n" >/dev/null && log "removed secret $n"; done
  left=$(lab_names list; lab_names pool-list; lab_secrets)
  [ -z "$left" ] || die "down: lab libvirt objects survived: $left"
}

clean_mounts_and_loops() {
  local m dev file
  # Deepest first, so nested mounts come off before their parents.
  # /proc/mounts writes a space as \040 (octal): printf %b turns it back into the path.
  awk -v d="$LAB_STATE_DIR" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while IFS= read -r m; do
    m=$(printf '%b' "$m")
    $SUDO umount "$m" 2>/dev/null || $SUDO umount -l "$m"; log "unmounted $m"
  done
  while read -r dev file; do
    [[ $file == "$LAB_STATE_DIR"/* ]] || continue
    awk -v d="$dev" '$1 == d {print $2}' /proc/mounts | sort -r | while IFS= read -r m; do
      m=$(printf '%b' "$m")
      $SUDO umount "$m" 2>/dev/null || $SUDO umount -l "$m"; log "unmounted $m ($dev)"
    done
    $SUDO losetup -d "$dev" && log "detached $dev ($file)"
  done < <($SUDO losetup -nl -O NAME,BACK-FILE 2>/dev/null || true)
}

clean_tgt() {
  local iqn tid
  tgtd_ok >/dev/null 2>&1 || return 0
  for iqn in "$LAB_OPEN_IQN" "$LAB_CHAP_IQN"; do
    tid=$(tgt --mode target --op show | awk -v q="$iqn" '$1 == "Target" && $3 == q {sub(":", "", $2); print $2}')
    [ -z "$tid" ] || { tgt --mode target --op delete --force --tid "$tid"; log "deleted target $tid $iqn"; }
  done
  if tgt --mode account --op show | grep -x "[[:space:]]*$LAB_CHAP_USER" >/dev/null; then
    tgt --mode account --op delete --user "$LAB_CHAP_USER"; log "deleted CHAP account $LAB_CHAP_USER"
  fi
}

stop_daemon() {
  local name=$1 how id
  $SUDO test -f "$STARTED/$name" || return 0
  read -r how id < <($SUDO cat "$STARTED/$name")
  if [ "$how" = systemd ]; then $SUDO systemctl stop "$id"; log "stopped $id"; return 0; fi
  # The pid may have been recycled since `up`: only signal the daemon we recorded.
  [[ $(cat "/proc/$id/comm" 2>/dev/null) == "$name" ]] && ! is_gone "$id" || return 0
  case $name in
    tgtd) $SUDO tgtadm --op delete --mode system || true ;;   # tgtd ignores SIGTERM
    *) $SUDO kill -TERM "$id" ;;
  esac
  wait_for 75 is_gone "$id" || { log "$name ($id) ignored shutdown, killing"; $SUDO kill -KILL "$id" || true; }
  log "stopped $name (pid $id)"
}

cmd_down() {
  [[ $LAB_STATE_DIR == /*/* && $LAB_STATE_DIR != *..* ]] || die "refusing odd LAB_STATE_DIR '$LAB_STATE_DIR'"
  clean_libvirt
  clean_mounts_and_loops
  clean_tgt
  stop_daemon libvirtd; stop_daemon virtlogd; stop_daemon tgtd
  $SUDO rm -rf --one-file-system "$LAB_STATE_DIR"
  echo "lab down: daemons now: $(daemon_summary)"
}

cmd_status() {
  echo "daemons: $(daemon_summary)"
  if tgtd_ok >/dev/null 2>&1; then
    echo "targets:"; tgt --mode target --op show | awk '/^Target /{print "  " $0} /^ *LUN: [1-9]/{l = $2} /Backing store path: \//{print "    lun " l ": " $4}'
    echo "accounts: $(tgt --mode account --op show | awk 'NR > 1 {print $1}' | xargs)"
  else echo "targets: (tgtd not reachable)"; fi
  if libvirt_ok >/dev/null 2>&1; then
    echo "lab domains: $(lab_names list | xargs)"
    echo "lab pools:   $(lab_names pool-list | xargs)"
    echo "lab secrets: $(lab_secrets | xargs)"
  else echo "libvirt: (not reachable)"; fi
  echo "mounts under $LAB_STATE_DIR: $(awk -v d="$LAB_STATE_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | xargs)"
  echo "loops under $LAB_STATE_DIR: $($SUDO losetup -nl -O NAME,BACK-FILE 2>/dev/null | awk -v d="$LAB_STATE_DIR/" 'index($2, d) == 1 {print $1}' | xargs)"
}

main() {
  case ${1:-} in
    up | down | status) "cmd_$1" ;;
    missing-packages) missing_packages ;;   # dry run of step 1's package check
    *) echo "usage: $0 up|down|status|missing-packages" >&2; exit 2 ;;
  esac
}

# Sourcing (e.g. from a test) only defines the functions.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
