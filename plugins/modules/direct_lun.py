#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: direct_lun
short_description: Connect a host to iSCSI targets and hand whole LUNs, named by WWID, to libvirt domains
version_added: 0.1.0
description:
  - A direct LUN is a whole SAN volume given to a VM. This module connects the host to the targets of an
    iSCSI portal, lists their LUNs by WWID, and (with O(domain)) attaches one LUN to a domain as SCSI
    passthrough (O(device=lun), the default) or as a plain disk, hot-plugged when the domain runs.
  - "Two transports. V(kernel) (the default) uses the host's initiator through C(iscsiadm): SendTargets
    discovery (always with C(-o new), so existing node records keep their C(node.startup) and CHAP
    settings), C(node.startup), CHAP for sessions and for discovery, login. After a login it waits
    (bounded) for udev to name the LUNs, and the VM disk points at C(/dev/mapper/<wwid>) when multipath owns
    the LUN, else at its C(/dev/disk/by-id/wwn-0x...) or C(scsi-<wwid>) link, never at C(/dev/sdX)."
  - V(qemu) logs the host in to nothing. The LUNs are read through libiscsi (the library QEMU's own
    initiator uses); the domain gets a libvirt network disk, and the CHAP password goes into a private libvirt
    secret (usage type iscsi, usage name C(virtops.storage/direct_lun/<target>)) that the disk names.
  - A LUN is named by its WWID, the string udev and multipath show for it on a Linux host, taken from the
    VPD page 0x83 designators by multipath's preference (NAA as C(3) + lowercase hex, EUI-64 as C(2) + hex,
    SCSI name string as C(8) + the name, T10 vendor id as C(1) + the id). Both transports compute it from
    the same bytes, so a LUN keeps one identity; on the kernel transport the serial udev recorded for the device
    (C(ID_SERIAL)) wins when the host's udev rules name it otherwise. Sizes are exact (READ CAPACITY).
  - Attaching uses the same planner as M(virtops.storage.vm_disk) (targets, hot-plug, boot order, the
    root disk rules, unplug wait). A LUN another domain uses is refused with C(LUN_IN_USE) unless it is
    shareable there and here. A LUN the host itself uses (a libvirt pool is built on it, or it is an LVM
    physical volume, mounted, swap, or held by device-mapper) is refused with C(LUN_IN_POOL).
  - O(state=absent) logs out and removes the node record (kernel; the SCSI devices are removed and
    multipath maps flushed first, unless a map keeps paths through other sessions), or removes the CHAP
    secret (qemu). It is refused with C(LUN_IN_USE) while a domain uses a LUN of the target through what
    goes away (the host's device files on the kernel transport, network disks on the qemu transport), and
    with C(LUN_IN_POOL) while the host uses one.
  - A domain that already has the LUN through the other transport (or another device name) is not given it
    a second time (C(TARGET_MISMATCH)).
  - CHAP passwords never appear in results, diffs, domain XML or logs. With the kernel transport they are
    handed to C(iscsiadm) on its command line (the only way it takes them), where other local users could
    see them for the moment the command runs.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.STATE_CHANGING
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  portal:
    description:
      - The iSCSI portal, C(host[:port]) (port 3260 when left out; C([v6address]:port) for IPv6).
    type: str
    required: true
  target:
    description:
      - The target's IQN. Left out, every target the portal reports (SendTargets).
    type: str
  transport:
    description:
      - V(kernel) logs the host in through C(iscsiadm); VMs get the LUN as a block device.
      - V(qemu) does not log the host in; VMs reach the LUN through QEMU's own iSCSI initiator.
    type: str
    choices: [kernel, qemu]
    default: kernel
  state:
    description:
      - V(present) discovers and connects (kernel), or checks the targets can be reached and their LUNs read (qemu).
      - V(absent) logs out and removes the node record (kernel), or removes the CHAP secret (qemu).
    type: str
    choices: [present, absent]
    default: present
  auth:
    description:
      - CHAP credentials of the target's sessions.
    type: dict
    suboptions:
      username:
        description: The CHAP user name.
        type: str
        required: true
      password:
        description: The CHAP secret. Never shown.
        type: str
        required: true
  discovery_auth:
    description:
      - CHAP credentials of the portal's SendTargets discovery session (same shape as O(auth)).
    type: dict
    suboptions:
      username:
        description: The CHAP user name.
        type: str
        required: true
      password:
        description: The CHAP secret. Never shown.
        type: str
        required: true
  node_startup:
    description:
      - C(node.startup) of the node records (kernel) - V(automatic) logs in again at boot.
    type: str
    choices: [automatic, manual]
    default: automatic
  initiator_name:
    description:
      - The initiator IQN the qemu transport presents (in the domain's disk and when reading LUNs).
        Left out, QEMU's own default name C(iqn.2008-11.org.linux-kvm) is used to read LUNs and the disk
        names none.
    type: str
  wwid:
    description:
      - The LUN to attach (with O(domain)). Without O(domain), the run fails with C(LUN_NOT_FOUND) unless the
        WWID is visible, which asserts a LUN is there.
    type: str
  lun:
    description:
      - The LUN number to attach (with O(domain)), when the portal or O(target) names one target.
    type: int
  domain:
    description:
      - The domain (name or UUID) to attach the LUN to, or detach it from with O(attached=false).
    type: str
  attached:
    description:
      - With O(domain), V(false) detaches the LUN from the domain (the target stays connected).
    type: bool
    default: true
  bus:
    description: The bus of the VM disk, as in M(virtops.storage.vm_disk). V(scsi) for a new disk when left out.
    type: str
    choices: [virtio, scsi, sata, ide, usb]
  device:
    description:
      - V(lun) passes SCSI commands through (needs O(bus=scsi)); V(disk) is a plain disk. V(lun) for a new disk
        when left out.
    type: str
    choices: [disk, lun]
  readonly:
    description: Attach read-only.
    type: bool
  shareable:
    description: Let several domains use the LUN at once (each of them must say so).
    type: bool
  boot_order:
    description: Boot order of the disk (1 makes it the root disk, with vm_disk's root rules).
    type: int
  error_policy:
    description: What the VM does on an I/O error.
    type: str
    choices: [stop, report, ignore, enospace]
  live:
    description: As in M(virtops.storage.vm_disk) - V(auto), V(true) or V(false).
    type: raw
    default: auto
  persistent:
    description: Change the domain's definition too.
    type: bool
    default: true
  unplug_timeout:
    description: Seconds to wait for the guest to release the disk on detach.
    type: float
    default: 30
  device_timeout:
    description:
      - Seconds to wait after a login (kernel) for udev to name every LUN; backs off between checks, never a
        fixed sleep.
    type: float
    default: 30
  rescan:
    description:
      - Rescan the sessions of the targets (kernel), so LUNs added or grown on the target since the login show.
        A session is rescanned anyway when the LUN named by O(wwid) or O(lun) is not visible. Rescans are not
        counted as changes; check mode does not rescan.
    type: bool
    default: false
notes:
  - The kernel transport needs C(iscsiadm) (open-iscsi) and a running iscsid; the
    M(virtops.storage.direct_lun_info) module and the C(virtops.storage.direct_lun_host) role help prepare
    hosts. The qemu transport needs the libiscsi library on the host and QEMU's iSCSI block driver
    (Debian C(qemu-block-extra)).
seealso:
  - module: virtops.storage.direct_lun_info
  - module: virtops.storage.vm_disk
'''

EXAMPLES = r'''
- name: Log the host in to every target of a portal (kernel initiator, back after reboots)
  virtops.storage.direct_lun:
    portal: 192.0.2.10
    auth:
      username: "{{ chap_user }}"
      password: "{{ chap_password }}"

- name: Hand a LUN, named by WWID, to a running VM as SCSI passthrough
  virtops.storage.direct_lun:
    portal: 192.0.2.10
    target: iqn.2026-11.com.example:db
    wwid: 36001405f3b7a1c9e8d2b4a6c8e0f1a2b
    domain: db01

- name: The same LUN through QEMU's own initiator, no host login, CHAP in a libvirt secret
  virtops.storage.direct_lun:
    portal: 192.0.2.10:3260
    target: iqn.2026-11.com.example:db
    transport: qemu
    initiator_name: iqn.2026-11.com.example:db01
    auth:
      username: "{{ chap_user }}"
      password: "{{ chap_password }}"
    wwid: 36001405f3b7a1c9e8d2b4a6c8e0f1a2b
    domain: db01

- name: Share a LUN between two cluster nodes
  virtops.storage.direct_lun:
    portal: 192.0.2.10
    target: iqn.2026-11.com.example:quorum
    lun: 1
    domain: "{{ item }}"
    shareable: true
  loop: [node1, node2]

- name: Take the LUN away from the VM again
  virtops.storage.direct_lun:
    portal: 192.0.2.10
    target: iqn.2026-11.com.example:db
    wwid: 36001405f3b7a1c9e8d2b4a6c8e0f1a2b
    domain: db01
    attached: false

- name: Log out of the target and forget it (refused while a VM uses one of its LUNs)
  virtops.storage.direct_lun:
    portal: 192.0.2.10
    target: iqn.2026-11.com.example:db
    state: absent
'''

RETURN = r'''
actions:
  description: One line per step taken (or that would be taken in check mode).
  returned: always
  type: list
  elements: str
  sample: ["discover the targets of portal 192.0.2.10:3260", "log in to iqn.2026-11.com.example:db at 192.0.2.10:3260"]
error_code:
  description: Why the module failed (see the collection's error codes), for playbooks to branch on.
  returned: failure
  type: str
  sample: LUN_IN_USE
visible_wwids:
  description: With C(LUN_NOT_FOUND), the WWIDs that are visible.
  returned: failure with LUN_NOT_FOUND
  type: list
  elements: str
used_by:
  description: With C(LUN_IN_USE), the domains that use the LUN (or the target's LUNs).
  returned: failure with LUN_IN_USE
  type: list
sessions:
  description: The targets this host is connected to at the portal after the run (qemu - the targets that
    were reached; there are no host sessions).
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The target IQN.
      type: str
    portal:
      description: The portal, C(host:port).
      type: str
    transport:
      description: kernel or qemu.
      type: str
luns:
  description: The disk LUNs of the connected targets.
  returned: always
  type: list
  elements: dict
  contains:
    wwid:
      description: The WWID udev and multipath show for the LUN.
      type: str
      sample: 36001405f3b7a1c9e8d2b4a6c8e0f1a2b
    lun:
      description: The LUN number.
      type: int
    target:
      description: The target IQN.
      type: str
    portal:
      description: The portal.
      type: str
    size:
      description: Exact size in bytes (READ CAPACITY).
      type: int
    vendor:
      description: The vendor (standard INQUIRY).
      type: str
    model:
      description: The model (standard INQUIRY).
      type: str
    serial:
      description: The unit serial number (VPD page 0x80), or null.
      type: str
    path:
      description: Kernel transport - the device a VM disk points at (C(/dev/mapper/<wwid>) or a
        C(/dev/disk/by-id) link), null while udev has not named it.
      type: str
    source:
      description: Qemu transport - C(iscsi://host:port/target/lun).
      type: str
    used_by:
      description: Domains whose disks use the LUN.
      type: list
      elements: str
    in_pool:
      description: The host itself uses the LUN (see C(held_by)).
      type: bool
    held_by:
      description: What on the host uses the LUN (libvirt pools, mounts, swap, LVM, device-mapper).
      type: list
      elements: str
disk:
  description: With O(domain), the VM disk after the run (the shape M(virtops.storage.vm_disk) returns);
    null after a detach.
  returned: when domain is given
  type: dict
'''

from ansible_collections.virtops.storage.plugins.module_utils._lun import run_direct_lun_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule

AUTH = {'type': 'dict', 'options': {'username': {'type': 'str', 'required': True},
                                    'password': {'type': 'str', 'required': True, 'no_log': True}}}


def main():
    module = StorageModule(
        argument_spec={
            'portal': {'type': 'str', 'required': True},
            'target': {'type': 'str'},
            'transport': {'type': 'str', 'default': 'kernel', 'choices': ['kernel', 'qemu']},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'auth': AUTH,
            'discovery_auth': AUTH,
            'node_startup': {'type': 'str', 'default': 'automatic', 'choices': ['automatic', 'manual']},
            'initiator_name': {'type': 'str'},
            'wwid': {'type': 'str'},
            'lun': {'type': 'int'},
            'domain': {'type': 'str'},
            'attached': {'type': 'bool', 'default': True},
            'bus': {'type': 'str', 'choices': ['virtio', 'scsi', 'sata', 'ide', 'usb']},
            'device': {'type': 'str', 'choices': ['disk', 'lun']},
            'readonly': {'type': 'bool'},
            'shareable': {'type': 'bool'},
            'boot_order': {'type': 'int'},
            'error_policy': {'type': 'str', 'choices': ['stop', 'report', 'ignore', 'enospace']},
            'live': {'type': 'raw', 'default': 'auto'},
            'persistent': {'type': 'bool', 'default': True},
            'unplug_timeout': {'type': 'float', 'default': 30},
            'device_timeout': {'type': 'float', 'default': 30},
            'rescan': {'type': 'bool', 'default': False},
        },
        mutually_exclusive=[('wwid', 'lun')],
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_direct_lun_module(module)


if __name__ == '__main__':
    main()
