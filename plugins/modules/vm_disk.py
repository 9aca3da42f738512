#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_disk
short_description: Attach and detach the disks of libvirt domains, hot-plug included, root disk included
version_added: 0.1.0
description:
  - Attaches a pool volume (as C(<disk type='volume'>)) or a file or block device to a domain, changes
    its settings, or detaches it.
  - A disk is identified by its source (the volume, or the path), never by its target, so a re-run
    finds the disk wherever it is and reports no change. The target is chosen automatically unless
    O(target) is given. Asking for another target than the one the source is attached at is refused
    with C(TARGET_MISMATCH); a requested target that holds another source with C(TARGET_IN_USE).
  - The driver format is always the volume's own format as libvirt reports it (for a file outside
    every pool, O(format) or the format its header names; a block device outside pools is raw), so QEMU
    never probes. ISO images are read as raw. A disk attached raw stays raw whatever its header says later
    (a guest can write one).
    An existing disk that names another format is refused with C(FORMAT_MISMATCH), never converted.
  - A source that another domain uses is refused with C(VOLUME_IN_USE) unless it is shareable there
    and here (O(shareable=true)). A volume that another domain reads as a backing file can be attached
    only read-only; an overlay on a file another domain writes to is refused.
  - With O(live=auto) (the default) a running domain is changed now and its definition too, so the
    disk stays after a restart. The definition is changed first; the running domain last, and a
    failure there undoes the definition steps.
  - Hot-plug works on the V(virtio), V(scsi) and V(usb) buses. O(bus=scsi) adds a virtio-scsi
    controller when the domain has no SCSI controller. V(sata) and V(ide) cannot hot-plug, which
    gives C(HOTPLUG_UNSUPPORTED) on a running domain (use O(live=false) to change only the definition).
  - Hot-unplug waits for the guest to let go of the disk (libvirt's device-removed event, confirmed by
    the running domain's XML) for up to O(unplug_timeout) seconds. A guest that does not release it
    gives C(HOTUNPLUG_TIMEOUT) and the definition is left unchanged. A virtio disk is released only by
    a guest OS that handles the unplug request; SCSI and USB disks are released at once.
  - Settings QEMU cannot change on a running disk (cache, io, readonly, serial and the like) are
    changed in the definition; the result says C(restart_required) and a warning names them.
  - "The root disk: O(role=root) is the disk the domain boots from (boot order 1). It is attached only
    to a shut-off domain without a root disk (C(DOMAIN_RUNNING), C(ROOT_DISK_PRESENT)) and detached
    only from a shut-off domain. A definition that uses C(<os><boot dev>) is converted to per-device
    boot order when a boot order has to be set (libvirt cannot mix the two), keeping the order the
    devices booted in; so is one where a new disk would otherwise become the first hard disk and
    silently take over booting."
  - Runs that change the disks of the same domain on one host take turns, so neither loses the other's change;
    runs that attach the same source (or files under it) take turns too, also with M(virtops.storage.storage_volume).
  - libvirt reads a file volume's format from its header, which the guest of a raw volume can write. A header
    that makes QEMU open a file outside every pool (a backing or data file) is followed only when O(format)
    confirms it; O(format=raw) reads such a volume as it is.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.STATE_CHANGING
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  domain:
    description:
      - The domain's name or UUID (C(DOMAIN_NOT_FOUND) when there is none).
    type: str
    required: true
  state:
    description:
      - V(present) attaches the disk (or updates its settings); V(absent) detaches it. Detaching never
        deletes the volume; use M(virtops.storage.storage_volume) for that.
    type: str
    choices: [present, absent]
    default: present
  pool:
    description:
      - The storage pool of the volume to attach (with O(volume)); the pool must be active.
      - The domain gets a C(<disk type='volume'>) that names the pool and volume.
    type: str
  volume:
    description:
      - The volume's name in O(pool).
    type: str
  path:
    description:
      - A file or block device to attach instead of a pool volume, as an absolute path. When it is a
        volume of an active pool, that volume's format and key are used. Otherwise it must exist on
        the managed host (C(VOLUME_NOT_FOUND)).
    type: path
  format:
    description:
      - The format the source must have. For a volume of a pool this is checked (C(FORMAT_MISMATCH) when
        the volume has another) and the disk gets the volume's own format, with one exception - libvirt
        reads a file volume's format from its header, which a guest can write, so V(raw) reads such a
        volume as raw whatever its header says.
      - A header that makes QEMU open a file in no pool (a backing or data file) is followed only when this
        confirms the format. An attached disk keeps the format it is attached with when this is left out.
      - For a file outside every pool, it is the format the disk gets. Left out, the format the file's
        header names is used, except that a header naming a backing file is trusted only when O(format)
        confirms it (a raw disk's guest can write any header). A block device outside pools is raw unless
        this says otherwise. ISO images are read as raw.
    type: str
    choices: [raw, qcow2, qed, vmdk, vdi, vpc, vhdx, iso]
  target:
    description:
      - The device name in the domain (V(vdb), V(sdc), V(hda)). When left out, an existing disk keeps its
        target and a new one gets the first name of its bus family that neither the running domain nor
        its definition uses.
      - Names go with buses, as libvirt names them - C(vdX) virtio, C(sdX) scsi/sata/usb, C(hdX) ide. A
        target given without O(bus) implies its bus (V(sdX) means scsi).
    type: str
  bus:
    description:
      - The bus of a new disk; V(virtio) by default (V(scsi) for O(device=lun)).
      - An attached disk keeps its bus; asking for another is C(TARGET_MISMATCH).
    type: str
    choices: [virtio, scsi, sata, ide, usb]
  device:
    description:
      - What the guest sees; V(disk) by default. V(lun) passes SCSI commands through to a block device
        (bus V(scsi) only). V(cdrom) is read-only media.
      - An attached disk keeps its device type; asking for another is C(TARGET_MISMATCH).
    type: str
    choices: [disk, lun, cdrom]
  role:
    description:
      - V(root) makes this the domain's boot disk (boot order 1); V(data) (the default for a new disk) is
        any other disk. Setting V(data) on the root disk takes its boot order away (shut-off domains only).
      - When left out, an attached disk keeps its role. O(boot_order=1) means V(root), and another
        O(boot_order) on the root disk means V(data), with the same rules.
      - A disk that is the only device the domain can boot from stays its root whatever is asked (libvirt
        boots the first hard disk of a domain without any boot order); a warning says so.
    type: str
    choices: [data, root]
  boot_order:
    description:
      - The disk's per-device boot order (2 or more for a data disk; 1 is the root's). An order that
        another device holds is refused (C(INVALID_ARGUMENT)), except that a new root disk moves every
        other device one place down.
    type: int
  readonly:
    description:
      - Attach read-only. A new disk is writable unless this is set (a cdrom is always read-only).
    type: bool
  shareable:
    description:
      - Mark the disk shareable, so other domains may attach the same source (they must mark it
        shareable too). Only for data that a cluster filesystem or similar coordinates.
    type: bool
  serial:
    description:
      - The serial number the guest sees. A new disk (O(device=disk)) gets a stable default derived from
        the volume's key (or the file's path), 20 hexadecimal characters, so the guest finds the same
        disk under the same name in C(/dev/disk/by-id) (see RV(disk.guest_path)) on every attach.
      - Letters, digits, spaces and C(_ . + -); virtio and ATA disks show the guest at most 20 characters.
      - An empty string means no serial at all (to put back a disk exactly as it was when it had none).
    type: str
  cache:
    description:
      - The host page cache mode of the disk (QEMU's C(cache)).
    type: str
    choices: [default, none, writethrough, writeback, directsync, unsafe]
  io:
    description:
      - The asynchronous I/O mode (V(native) needs O(cache=none) or V(directsync) to start).
    type: str
    choices: [native, threads, io_uring]
  discard:
    description:
      - Whether guest discard (TRIM/UNMAP) requests free space in the image.
    type: str
    choices: [unmap, ignore]
  detect_zeroes:
    description:
      - Whether QEMU turns writes of zeroes into zero-writes (V(unmap) also frees them when O(discard=unmap)).
    type: str
    choices: ['off', 'on', unmap]
  error_policy:
    description:
      - What QEMU does when the host reports an I/O error - pause the guest (V(stop)), pass it to the guest
        (V(report)), drop it (V(ignore)), or pause only on "no space left" (V(enospace)).
    type: str
    choices: [stop, report, ignore, enospace]
  live:
    description:
      - V(auto) (the default) also changes the running domain when it runs; V(true) requires it to run
        (C(INVALID_ARGUMENT) when it is shut off) and changes it; V(false) leaves the running domain alone
        (the disk appears or goes at its next start).
    type: raw
    default: auto
  persistent:
    description:
      - Change the domain's definition, so the change survives a restart. Set V(false) for a running
        domain's disk that must go away when it stops. A transient domain has no definition, so attaching
        to one needs V(false).
    type: bool
    default: true
  unplug_timeout:
    description:
      - How many seconds a hot-unplug waits for the guest to release the disk before C(HOTUNPLUG_TIMEOUT).
        libvirt itself waits about 5 seconds before it returns, so shorter values still take that long.
    type: float
    default: 30
notes:
  - The serial numbers' C(/dev/disk/by-id) names in RV(disk.guest_path) are those a Linux guest's udev
    gives QEMU's virtio, SCSI, ATA and USB disks; other guests name them differently.
seealso:
  - module: virtops.storage.vm_disk_info
  - module: virtops.storage.storage_volume
'''

EXAMPLES = r'''
- name: Attach a data volume to a running VM (hot-plug now, and in its definition)
  virtops.storage.vm_disk:
    domain: web01
    pool: images
    volume: web01-data

- name: The same on the SCSI bus, with guest discard passed through
  virtops.storage.vm_disk:
    domain: web01
    pool: images
    volume: web01-scratch
    bus: scsi
    discard: unmap
    detect_zeroes: unmap

- name: Give a stopped VM a new root disk (it must have none)
  virtops.storage.vm_disk:
    domain: web02
    pool: images
    volume: web02-root
    role: root

- name: Share a volume between two cluster nodes
  virtops.storage.vm_disk:
    domain: "{{ item }}"
    pool: san
    volume: quorum
    shareable: true
    cache: none
  loop: [node1, node2]

- name: Detach a disk, waiting up to a minute for the guest to release it
  virtops.storage.vm_disk:
    domain: web01
    pool: images
    volume: web01-scratch
    state: absent
    unplug_timeout: 60
  register: detached
  failed_when: detached is failed and detached.error_code != 'HOTUNPLUG_TIMEOUT'

- name: Attach an ISO image as a cdrom at the next start only
  virtops.storage.vm_disk:
    domain: web01
    path: /var/lib/libvirt/images/tools.iso
    device: cdrom
    bus: sata
    live: false
'''

RETURN = r'''
actions:
  description: One line per step taken (or that would be taken in check mode).
  returned: always
  type: list
  elements: str
  sample: ["attach disk vdb (images/web01-data) to the definition of web01", "hot-plug disk vdb (images/web01-data) into running domain web01"]
restart_required:
  description: Settings of a running domain's disk were changed in the definition only; they apply at the next start.
  returned: when true
  type: bool
error_code:
  description: Why the module failed (see the collection's error codes), for playbooks to branch on.
  returned: failure
  type: str
  sample: HOTUNPLUG_TIMEOUT
used_by:
  description: With C(VOLUME_IN_USE), the domains that use the source.
  returned: failure with VOLUME_IN_USE
  type: list
  elements: dict
disk:
  description: The disk after the run (predicted in check mode); null after a detach.
  returned: always
  type: dict
  contains:
    target:
      description: The device name in the domain.
      type: str
      sample: vdb
    bus:
      description: The bus.
      type: str
      sample: virtio
    device:
      description: disk, lun or cdrom (vm_disk_info also reports floppy drives).
      type: str
      sample: disk
    source:
      description: What the disk reads - C(pool), C(volume) and C(key) of a volume (null for other files),
        C(path), and C(network) (C(protocol), C(name), C(hosts)) for a network disk.
      type: dict
      sample: {"pool": "images", "volume": "web01-data", "key": "/var/lib/libvirt/images/web01-data",
               "path": "/var/lib/libvirt/images/web01-data", "network": null}
    format:
      description: The driver format (the volume's own).
      type: str
      sample: qcow2
    role:
      description: root when this is the disk the domain boots from first, else data.
      type: str
      sample: data
    bootable:
      description: Whether the disk is in the domain's boot order at all.
      type: bool
    boot_order:
      description: Its place in the boot order (from C(<os><boot dev>) when the domain uses that), or null.
      type: int
    readonly:
      description: Read-only.
      type: bool
    shareable:
      description: Shareable.
      type: bool
    serial:
      description: The serial the guest sees.
      type: str
      sample: 3f2a9c0d4e1b7a6c5d8e
    guest_path:
      description: Where a Linux guest finds the disk by its serial, or null without a serial (and for LUNs).
      type: str
      sample: /dev/disk/by-id/virtio-3f2a9c0d4e1b7a6c5d8e
    cache:
      description: The cache mode, null for QEMU's default.
      type: str
    io:
      description: The I/O mode, or null.
      type: str
    discard:
      description: The discard mode, or null.
      type: str
    detect_zeroes:
      description: The detect_zeroes mode, or null.
      type: str
    error_policy:
      description: The I/O error policy, or null.
      type: str
    live:
      description: Attached to the running domain.
      type: bool
    persistent:
      description: In the domain's definition.
      type: bool
'''

from ansible_collections.virtops.storage.plugins.module_utils._disk import run_vm_disk_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule


def main():
    module = StorageModule(
        argument_spec={
            'domain': {'type': 'str', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'pool': {'type': 'str'},
            'volume': {'type': 'str'},
            'path': {'type': 'path'},
            'format': {'type': 'str', 'choices': ['raw', 'qcow2', 'qed', 'vmdk', 'vdi', 'vpc', 'vhdx', 'iso']},
            'target': {'type': 'str'},
            'bus': {'type': 'str', 'choices': ['virtio', 'scsi', 'sata', 'ide', 'usb']},
            'device': {'type': 'str', 'choices': ['disk', 'lun', 'cdrom']},
            'role': {'type': 'str', 'choices': ['data', 'root']},
            'boot_order': {'type': 'int'},
            'readonly': {'type': 'bool'},
            'shareable': {'type': 'bool'},
            'serial': {'type': 'str'},
            'cache': {'type': 'str', 'choices': ['default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe']},
            'io': {'type': 'str', 'choices': ['native', 'threads', 'io_uring']},
            'discard': {'type': 'str', 'choices': ['unmap', 'ignore']},
            'detect_zeroes': {'type': 'str', 'choices': ['off', 'on', 'unmap']},
            'error_policy': {'type': 'str', 'choices': ['stop', 'report', 'ignore', 'enospace']},
            'live': {'type': 'raw', 'default': 'auto'},
            'persistent': {'type': 'bool', 'default': True},
            'unplug_timeout': {'type': 'float', 'default': 30},
        },
        mutually_exclusive=[('pool', 'path'), ('volume', 'path')],
        required_together=[('pool', 'volume')],
        required_one_of=[('pool', 'path')],
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_vm_disk_module(module)


if __name__ == '__main__':
    main()
