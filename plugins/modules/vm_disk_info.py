#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_disk_info
short_description: List the disks of a libvirt domain, running and defined, with drift flagged
version_added: 0.1.0
description:
  - Lists every disk of a domain in the shape M(virtops.storage.vm_disk) returns, with the running
    domain's disks and its definition's merged by source.
  - A disk that is only in the running domain, only in the definition, or whose settings differ between
    the two (hot-plugged with O(virtops.storage.vm_disk#module:live=true) only, or changed in the definition while it runs)
    is flagged in the C(drift) field of its entry in RV(disks).
  - RV(root) names the disk the domain boots from first.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.INFO_MODULE
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  domain:
    description:
      - The domain's name or UUID (C(DOMAIN_NOT_FOUND) when there is none).
    type: str
    required: true
seealso:
  - module: virtops.storage.vm_disk
'''

EXAMPLES = r'''
- name: Read the disks of a VM
  virtops.storage.vm_disk_info:
    domain: web01
  register: web01_disks

- name: Fail when the running VM and its definition disagree
  ansible.builtin.assert:
    that: web01_disks.disks | selectattr('drift') | list | length == 0
    fail_msg: "{{ web01_disks.disks | selectattr('drift') | map(attribute='target') | list }} drifted"

- name: Show the root disk's volume
  ansible.builtin.debug:
    msg: "{{ (web01_disks.disks | selectattr('role', 'equalto', 'root') | first).source }}"
'''

RETURN = r'''
actions:
  description: Always empty (this module changes nothing).
  returned: always
  type: list
  elements: str
  sample: []
root:
  description: The target of the root disk (boot order 1) of the definition (of the running domain for a
    transient one), or null.
  returned: always
  type: str
  sample: vda
domain:
  description:
    - C(name), C(uuid), C(running) and C(persistent) of the domain.
    - C(legacy_boot) is the definition's C(<os><boot dev>) list (C(hd), C(cdrom), C(network), C(fd)) in order,
      empty when the domain boots by per-device boot order. With it, a disk's C(boot_order) is the
      index libvirt gives the first device of each kind, not one written on the disk - libvirt falls back to
      C(<boot dev='hd'/>) when a definition has no boot order at all, e.g. after its root disk was detached.
  returned: always
  type: dict
  sample: {"name": "web01", "uuid": "2f0d3c1e-8f4a-4d8e-9b1c-0a6e5d4c3b2a", "running": true, "persistent": true,
           "legacy_boot": []}
disks:
  description:
    - Every disk, sorted by target, in the shape of M(virtops.storage.vm_disk)'s RV(virtops.storage.vm_disk#module:disk)
      (C(target), C(bus), C(device), C(source), C(format), C(role), C(bootable), C(boot_order), C(readonly),
      C(shareable), C(serial), C(guest_path), C(cache), C(io), C(discard), C(detect_zeroes), C(error_policy),
      C(live), C(persistent)), the definition's values first.
    - C(drift) lists what differs between the running domain and the definition - field names such as
      C(cache) or C(boot_order), or C(only in the running domain) / C(only in the definition); empty when
      they agree or the domain is not running.
  returned: always
  type: list
  elements: dict
  sample:
    - target: vda
      bus: virtio
      device: disk
      source: {"pool": "images", "volume": "web01-root", "key": "/var/lib/libvirt/images/web01-root",
               "path": "/var/lib/libvirt/images/web01-root", "network": null}
      format: qcow2
      role: root
      bootable: true
      boot_order: 1
      readonly: false
      shareable: false
      serial: null
      guest_path: null
      cache: null
      io: null
      discard: null
      detect_zeroes: null
      error_policy: null
      live: true
      persistent: true
      drift: []
'''

from ansible_collections.virtops.storage.plugins.module_utils._disk import run_vm_disk_info_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule


def main():
    module = StorageModule(
        argument_spec={'domain': {'type': 'str', 'required': True}},
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_vm_disk_info_module(module)


if __name__ == '__main__':
    main()
