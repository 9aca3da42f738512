#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: storage_pool_info
short_description: List libvirt storage pools
version_added: 0.1.0
description:
  - Returns the libvirt storage pools of a host, optionally filtered by name, type and state.
  - Sizes are integers in bytes.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.INFO_MODULE
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  name:
    description: Only the pool of this name (an empty list when there is none).
    type: str
  type:
    description: Only pools of this type.
    type: str
    choices: [dir, fs, netfs, logical, disk, iscsi, iscsi-direct, scsi, mpath, rbd, zfs]
  state:
    description: Only pools in this state.
    type: str
    choices: [active, inactive]
seealso:
  - module: virtops.storage.storage_pool
'''

EXAMPLES = r'''
- name: Every pool of the host
  virtops.storage.storage_pool_info:
  register: all_pools

- name: Fail when a pool is short of space
  ansible.builtin.assert:
    that: item.available > 10 * 1024 ** 3
    fail_msg: "pool {{ item.name }} has less than 10 GiB free"
  loop: "{{ all_pools.pools | selectattr('state', 'eq', 'active') }}"
  loop_control:
    label: "{{ item.name }}"

- name: Inactive directory pools
  virtops.storage.storage_pool_info:
    type: dir
    state: inactive
  register: stopped_dir_pools
'''

RETURN = r'''
pools:
  description: The pools that match, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pool name.
      type: str
    uuid:
      description: Pool UUID.
      type: str
    type:
      description: Pool type.
      type: str
    state:
      description: V(active) or V(inactive).
      type: str
    persistent:
      description: Whether the pool has a persistent definition.
      type: bool
    autostart:
      description: Whether the pool starts with the host.
      type: bool
    capacity:
      description: Size in bytes (0 while inactive).
      type: int
    allocation:
      description: Bytes allocated to volumes.
      type: int
    available:
      description: Free bytes.
      type: int
    target_path:
      description: The pool's target path.
      type: str
    source:
      description: The pool's source, in the shape of the storage_pool O(virtops.storage.storage_pool#module:source) option.
      type: dict
    volume_count:
      description: Number of volumes; null while inactive.
      type: int
actions:
  description: Always empty - this module changes nothing.
  returned: always
  type: list
  elements: str
  sample: []
error_code:
  description: On failure, the reason as one of the collection's error codes.
  returned: failure
  type: str
  sample: LIBVIRT_UNREACHABLE
'''

from ansible_collections.virtops.storage.plugins.module_utils._pool import POOL_TYPES, run_pool_info_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule


def main():
    module = StorageModule(
        argument_spec=dict(
            name=dict(type='str'),
            type=dict(type='str', choices=list(POOL_TYPES)),
            state=dict(type='str', choices=['active', 'inactive']),
        ),
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_pool_info_module(module)


if __name__ == '__main__':
    main()
