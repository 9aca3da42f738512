#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: direct_lun_info
short_description: List iSCSI targets and their LUNs by WWID, with who uses each
version_added: 0.1.0
description:
  - Lists the targets a portal reports and the disk LUNs of the targets that are reachable (O(transport=qemu),
    read through libiscsi) or that the host is logged in to (O(transport=kernel), read from sysfs), with size,
    vendor, model, serial, WWID, the domains that use each LUN and whether the host itself holds it.
  - O(unused=true) lists only the LUNs that are free to hand out - no domain uses them and the host does not
    hold them.
  - Changes nothing - the kernel transport's discovery is C(-o nonpersistent), which writes no records.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.INFO_MODULE
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  portal:
    description:
      - The iSCSI portal, C(host[:port]). Required with O(transport=qemu). Left out with the kernel
        transport, every session of the host is listed and C(targets) are those of the node records.
    type: str
  target:
    description: Only this target.
    type: str
  transport:
    description: kernel (the host's sessions) or qemu (user-space iSCSI, no host login).
    type: str
    choices: [kernel, qemu]
    default: kernel
  auth:
    description: CHAP credentials to read the LUNs with (qemu).
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
      - CHAP credentials of the portal's SendTargets discovery (qemu). The kernel transport discovers through the
        host's discoverydb record when there is one (M(virtops.storage.direct_lun) stores discovery CHAP there).
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
  initiator_name:
    description: The initiator IQN the qemu transport presents when reading LUNs.
    type: str
  unused:
    description: Only LUNs no domain uses and the host does not hold.
    type: bool
    default: false
seealso:
  - module: virtops.storage.direct_lun
'''

EXAMPLES = r'''
- name: LUNs of a portal, read through QEMU's initiator library
  virtops.storage.direct_lun_info:
    portal: 192.0.2.10
    transport: qemu
  register: san

- name: LUNs free to hand out from the host's sessions
  virtops.storage.direct_lun_info:
    unused: true
  register: free

- name: Fail early when an expected LUN is missing
  ansible.builtin.assert:
    that: "'36001405f3b7a1c9e8d2b4a6c8e0f1a2b' in (free.luns | map(attribute='wwid'))"
'''

RETURN = r'''
actions:
  description: Always empty (an info module changes nothing).
  returned: always
  type: list
  elements: str
targets:
  description: The IQNs the portal reports (kernel without portal - the targets of the node records).
  returned: always
  type: list
  elements: str
sessions:
  description: Targets whose LUNs are listed (kernel - logged-in sessions; qemu - reached targets).
  returned: always
  type: list
  elements: dict
luns:
  description: The disk LUNs, in the shape M(virtops.storage.direct_lun) returns (wwid, lun, target, portal, size,
    vendor, model, serial, path or source, used_by, in_pool, held_by).
  returned: always
  type: list
  elements: dict
unreadable:
  description: Qemu transport - targets the portal reports whose LUNs could not be read (CHAP refused, or the
    target not offered to this initiator), each with C(target), C(error_code) and C(msg). An unreachable portal
    fails the run instead.
  returned: always
  type: list
  elements: dict
'''

from ansible_collections.virtops.storage.plugins.module_utils._lun import run_direct_lun_info_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule

AUTH = {'type': 'dict', 'options': {'username': {'type': 'str', 'required': True},
                                    'password': {'type': 'str', 'required': True, 'no_log': True}}}


def main():
    module = StorageModule(
        argument_spec={
            'portal': {'type': 'str'},
            'target': {'type': 'str'},
            'transport': {'type': 'str', 'default': 'kernel', 'choices': ['kernel', 'qemu']},
            'auth': AUTH,
            'discovery_auth': AUTH,
            'initiator_name': {'type': 'str'},
            'unused': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_direct_lun_info_module(module)


if __name__ == '__main__':
    main()
