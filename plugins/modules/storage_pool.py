#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: storage_pool
short_description: Manage libvirt storage pools
version_added: 0.1.0
description:
  - Defines, builds, starts, stops, autostarts, redefines and removes libvirt storage pools.
  - A pool is described either with O(type), O(target) and O(source), or as a whole libvirt
    pool definition in O(xml).
  - Only the fields that are given are managed; an existing pool whose definition differs
    from them is redefined in place, keeping its UUID and every part of its XML the options
    do not cover (permissions, further hosts, adapter details). An active pool keeps running
    its previous definition until it is restarted, which RV(restart_required) reports.
  - A transient pool (one started without a definition) is made persistent.
  - Building never destroys data unless O(overwrite=true). Removing a pool keeps its
    data unless O(purge=true), which is refused while any volume of the pool is used by a domain.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.STATE_CHANGING
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  name:
    description:
      - Name of the pool. At most 247 bytes in UTF-8 (libvirt stores the definition in a file
        named C(<name>.xml.new), then C(<name>.xml)); no C(/), control characters, or the
        names C(.) and C(..). Any other character, spaces and C(&<>'") included, works.
    type: str
    required: true
  state:
    description:
      - V(present) defines the pool (and, with the defaults, builds, starts and autostarts it).
      - V(absent) stops and undefines the pool, keeping its data unless O(purge=true).
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - The pool type. Required to define a new pool unless O(xml) is given.
      - An existing pool is never converted to another type.
    type: str
    choices: [dir, fs, netfs, logical, disk, iscsi, iscsi-direct, scsi, mpath, rbd, zfs]
  target:
    description:
      - The path on the host where the pool's volumes appear (the mount point of V(fs)
        and V(netfs) pools). Required for V(dir), V(fs) and V(netfs).
      - Defaults for a new pool where libvirt needs one - V(/dev) for V(disk),
        V(/dev/disk/by-path) for V(iscsi) and V(scsi), V(/dev/mapper) for V(mpath).
    type: path
  source:
    description:
      - Where the storage comes from.
    type: dict
    suboptions:
      host:
        description: The storage server (V(netfs), V(iscsi), V(iscsi-direct), V(rbd)).
        type: str
      port:
        description: The server's port, when not the protocol's default.
        type: int
      dir:
        description: The exported directory of a V(netfs) pool.
        type: str
      devices:
        description: Block devices backing the pool (V(fs), V(logical), V(disk), V(zfs)).
        type: list
        elements: path
      name:
        description: The volume group (V(logical)), ceph pool (V(rbd)) or zpool (V(zfs)) name.
        type: str
      format:
        description:
          - The format of the source - a filesystem for V(fs) (V(ext4), V(xfs), V(auto)...),
            V(nfs)/V(glusterfs)/V(cifs) for V(netfs), a partition table for V(disk)
            (V(dos), V(gpt)...), V(lvm2) for V(logical).
        type: str
      iqn:
        description: The IQN of the iSCSI target (V(iscsi), V(iscsi-direct)).
        type: str
      initiator:
        description: The initiator IQN the host presents (required for V(iscsi-direct)).
        type: str
      adapter:
        description: The SCSI host adapter name of a V(scsi) pool, for example V(host0).
        type: str
      auth:
        description:
          - Credentials for the source - CHAP for iSCSI pools, cephx for V(rbd).
          - The password is stored in a private libvirt secret (usage C(virtops-pool/<name>)),
            never inline in the pool definition, and is never returned or shown in a diff
            (the diff says V(stored) or V(updated)).
          - A private secret cannot be read back, so the secret's description holds an
            HMAC-SHA256 of the password under a random key of the host, kept in the
            secret C(virtops.storage/digest-key) that only read-write connections can read.
          - Leaving O(source.auth) out of a pool that has it removes the authentication and the secret.
        type: dict
        suboptions:
          username:
            description: The user name.
            type: str
            required: true
          password:
            description:
              - The CHAP password, or for V(rbd) the cephx key as C(ceph auth get-key) prints it (base64).
              - Required when the pool is first defined.
            type: str
  xml:
    description:
      - A whole libvirt C(<pool>) definition, instead of O(type), O(target) and O(source).
      - Its C(<name>), when present, must equal O(name); a C(<uuid>) must be the existing pool's.
      - The whole definition is managed - the pool is redefined when libvirt's own rendering of
        this XML differs from what libvirt holds, removals included. Sizes, the UUID and the
        permissions libvirt fills in from the target directory are not differences.
      - The XML is checked by libvirt's parser before anything changes; what it refuses fails
        with C(INVALID_ARGUMENT).
    type: str
  active:
    description: Whether the pool is started. Always honoured, together with O(autostart).
    type: bool
    default: true
  autostart:
    description: Whether libvirt starts the pool when the host boots.
    type: bool
    default: true
  build:
    description:
      - Build the storage of a newly defined pool - create its directory, or format its
        device for V(fs), V(logical) and V(disk) pools.
      - A device that already holds the requested format is used as it is, even with
        O(overwrite=true); one that holds anything else is refused with C(FORMAT_MISMATCH)
        unless O(overwrite=true).
      - Directory pools (V(dir), V(netfs)) are also built before every start, which only
        creates a missing directory (a pool redefined onto a new path needs it).
    type: bool
    default: true
  overwrite:
    description:
      - Allow O(build) to format a device that holds data in another format. That data is lost.
    type: bool
    default: false
  purge:
    description:
      - With O(state=absent), also delete every volume of the pool and the pool's storage.
      - Refused with C(POOL_IN_USE) while any volume of the pool is used by a domain, running or not,
        in its live or persistent definition. The check covers inactive pools too (by where the
        pool keeps its volumes) and is made again once an inactive pool is started to list them.
      - Refused with C(INVALID_ARGUMENT) for types whose volumes libvirt cannot delete
        (V(iscsi), V(iscsi-direct), V(scsi), V(mpath)).
    type: bool
    default: false
  refresh:
    description: Refresh the list of volumes of an active pool. This is not counted as a change.
    type: bool
    default: false
seealso:
  - module: virtops.storage.storage_pool_info
  - name: libvirt storage pool XML format
    description: The elements O(xml) may use.
    link: https://libvirt.org/formatstorage.html
'''

EXAMPLES = r'''
- name: A directory pool for VM images
  virtops.storage.storage_pool:
    name: images
    type: dir
    target: /var/lib/libvirt/images

- name: A pool on a dedicated disk, formatted only if it is empty
  virtops.storage.storage_pool:
    name: fastdisk
    type: fs
    source:
      devices: [/dev/vdb]
      format: ext4
    target: /srv/fastdisk

- name: LUNs of an iSCSI target reached by libvirt's own initiator, with CHAP
  virtops.storage.storage_pool:
    name: san
    type: iscsi-direct
    source:
      host: 192.0.2.10
      iqn: iqn.2026-01.example:storage.target1
      initiator: iqn.2026-01.example:hypervisor1
      auth:
        username: hv1
        password: "{{ vault_chap_password }}"

- name: A pool given as libvirt XML
  virtops.storage.storage_pool:
    name: scratch
    xml: |
      <pool type='dir'>
        <name>scratch</name>
        <target><path>/srv/scratch</path></target>
      </pool>

- name: Keep a pool defined but stopped
  virtops.storage.storage_pool:
    name: scratch
    active: false
    autostart: false

- name: Remove a pool, keeping its data
  virtops.storage.storage_pool:
    name: scratch
    state: absent

- name: Remove a pool with every volume in it
  virtops.storage.storage_pool:
    name: scratch
    state: absent
    purge: true
  register: removal
  failed_when: removal is failed and removal.error_code != 'POOL_IN_USE'
'''

RETURN = r'''
pool:
  description:
    - The pool as libvirt reports it after the run; null when it does not exist.
    - Its definition fields (O(target), O(source)) are the stored definition, which an active
      pool runs only after a restart when RV(restart_required) is true.
    - In check mode, the predicted pool (values libvirt has not assigned yet are null).
  returned: always
  type: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID.
      type: str
      sample: 6ce6a3c4-8e2d-4a3c-9d9f-2f8c1a2b3c4d
    type:
      description: Pool type.
      type: str
      sample: dir
    state:
      description: V(active) or V(inactive).
      type: str
      sample: active
    persistent:
      description: Whether the pool has a persistent definition.
      type: bool
    autostart:
      description: Whether the pool starts with the host.
      type: bool
    capacity:
      description: Size of the pool in bytes (0 while inactive).
      type: int
      sample: 107374182400
    allocation:
      description: Bytes allocated to volumes.
      type: int
    available:
      description: Free bytes.
      type: int
    target_path:
      description: The pool's target path.
      type: str
      sample: /var/lib/libvirt/images
    source:
      description: The pool's source, in the shape of the O(source) option; passwords are never returned.
      type: dict
    volume_count:
      description: Number of volumes in the pool; null while the pool is inactive.
      type: int
actions:
  description: One short description per step taken, or that would be taken in check mode.
  returned: always
  type: list
  elements: str
  sample: ["define pool images", "build pool images", "start pool images", "enable autostart of pool images"]
restart_required:
  description:
    - True when an active pool was redefined (or its password changed) and keeps running its
      previous definition until it is stopped and started.
  returned: when O(state=present)
  type: bool
diff:
  description: The managed fields before and after, with O(ignore:--diff).
  returned: when diff mode is on
  type: dict
error_code:
  description: On failure, the reason as one of the collection's error codes.
  returned: failure
  type: str
  sample: POOL_IN_USE
'''

from ansible_collections.virtops.storage.plugins.module_utils._pool import POOL_TYPES, run_pool_module
from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule


def main():
    module = StorageModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            type=dict(type='str', choices=list(POOL_TYPES)),
            target=dict(type='path'),
            source=dict(type='dict', options=dict(
                host=dict(type='str'),
                port=dict(type='int'),
                dir=dict(type='str'),
                devices=dict(type='list', elements='path'),
                name=dict(type='str'),
                format=dict(type='str'),
                iqn=dict(type='str'),
                initiator=dict(type='str'),
                adapter=dict(type='str'),
                auth=dict(type='dict', options=dict(
                    username=dict(type='str', required=True),
                    password=dict(type='str', no_log=True),
                )),
            )),
            xml=dict(type='str'),
            active=dict(type='bool', default=True),
            autostart=dict(type='bool', default=True),
            build=dict(type='bool', default=True),
            overwrite=dict(type='bool', default=False),
            purge=dict(type='bool', default=False),
            refresh=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('xml', 'type'), ('xml', 'target'), ('xml', 'source')],
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_pool_module(module)


if __name__ == '__main__':
    main()
