#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: storage_volume_info
short_description: List libvirt storage volumes and the domains that use them
version_added: 0.1.0
description:
  - Returns the volumes of the active pools of a host (or of one pool), each with the domains
    that use it, read from every domain's live and persistent definition.
  - The domains are read once per call, whatever the number of volumes, and each volume once.
  - Filters combine; an empty list is returned when nothing matches.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.INFO_MODULE
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  pool:
    description:
      - Only volumes of this pool, which must exist (C(POOL_NOT_FOUND)) and be active (C(POOL_INACTIVE)).
      - When omitted, every active pool.
    type: str
  name:
    description: Only volumes of this name.
    type: str
  key:
    description: Only the volume with this libvirt key.
    type: str
  path:
    description:
      - Only the volume at this path, for example the source of a guest's disk. A symbolic link
        is followed on the managed host when the connection is local.
    type: path
  unused:
    description:
      - Only volumes that no domain uses (V(true)), directly or through the backing chain of a
        running domain's disk; these are the ones free to hand out.
      - A volume that is the backing store of another volume is listed here but its deletion is
        still refused (C(VOLUME_IN_USE)), since the overlays need it.
    type: bool
    default: false
  attached_to:
    description:
      - Only volumes used by this domain (name or UUID), which must exist (C(DOMAIN_NOT_FOUND)).
    type: str
seealso:
  - module: virtops.storage.storage_volume
'''

EXAMPLES = r'''
- name: Volumes nobody uses, in every active pool
  virtops.storage.storage_volume_info:
    unused: true
  register: free_volumes

- name: The volume behind a guest disk
  virtops.storage.storage_volume_info:
    path: /var/lib/libvirt/images/web01-root.qcow2
  register: behind

- name: Everything web01 uses
  virtops.storage.storage_volume_info:
    attached_to: web01
  register: web01_volumes

- name: Report the space a pool's unused volumes hold
  ansible.builtin.debug:
    msg: "{{ free_volumes.volumes | map(attribute='allocation') | sum }} bytes in unused volumes"
'''

RETURN = r'''
volumes:
  description:
    - The volumes that match, sorted by pool and name, in the shape of the M(virtops.storage.storage_volume)
      module's RV(virtops.storage.storage_volume#module:volume) result.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    pool:
      description: Pool name.
      type: str
    key:
      description: libvirt's unique key of the volume.
      type: str
    path:
      description: Path of the volume on the host.
      type: str
    type:
      description: libvirt's volume type.
      type: str
    format:
      description: The volume's format.
      type: str
    capacity:
      description: Size the guest sees, in bytes.
      type: int
    allocation:
      description: Bytes allocated on the host.
      type: int
    backing_store:
      description: C(path) and C(format) of the backing volume of an overlay, else null.
      type: dict
    mode:
      description: File mode as an octal string.
      type: str
    owner:
      description: Owner uid.
      type: int
    group:
      description: Group gid.
      type: int
    used_by:
      description: The domains that use the volume ({domain, target, live, persistent, via}).
      type: list
      elements: dict
    ref_count:
      description: Number of domains in C(used_by).
      type: int
    in_use:
      description: Whether any domain uses the volume.
      type: bool
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
  sample: POOL_INACTIVE
'''

from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule
from ansible_collections.virtops.storage.plugins.module_utils._volume import run_volume_info_module


def main():
    module = StorageModule(
        argument_spec=dict(
            pool=dict(type='str'),
            name=dict(type='str'),
            key=dict(type='str', no_log=False),
            path=dict(type='path'),
            unused=dict(type='bool', default=False),
            attached_to=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_volume_info_module(module)


if __name__ == '__main__':
    main()
