#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: storage_volume
short_description: Manage libvirt storage volumes that live independently of any VM
version_added: 0.1.0
description:
  - Creates, grows, shrinks and deletes volumes of a libvirt storage pool.
  - A new volume is empty (thin by default), a qcow2 overlay on a O(backing_store), a full copy
    of another volume (O(clone_from), sharing extents by reflink where the filesystem allows), or
    the content of an image file on the managed host (O(import_from), streamed through
    libvirt's volume upload, so it also works over a remote O(uri); holes are neither read nor sent).
  - Content is written only when the volume is created; an existing volume keeps its data.
  - A volume belongs to no domain. Who uses it is read from every domain's live and persistent
    definition, including the backing chains of their disks (on a local connection also read from
    the image headers, which a shut-off domain's definition does not list); deleting or shrinking a
    volume that any domain uses, or that is the backing store of another volume, is refused with
    C(VOLUME_IN_USE).
  - A volume is never converted to another format (C(FORMAT_MISMATCH)) and never shrunk unless
    O(allow_shrink=true) (C(SHRINK_REFUSED)).
  - Growing a volume that a running domain uses goes through that domain, so the guest sees the new size.
  - A create that fails half-way (for example C(NO_SPACE)) leaves no volume behind.
author:
  - virtops.storage contributors (@virtops)
extends_documentation_fragment:
  - virtops.storage.connection
  - virtops.storage.attributes
  - virtops.storage.attributes.STATE_CHANGING
  - virtops.storage.attributes.ACTIONGROUP_LIBVIRT
options:
  pool:
    description:
      - The storage pool that holds the volume. It must exist and be active
        (C(POOL_NOT_FOUND), C(POOL_INACTIVE)).
    type: str
    required: true
  name:
    description:
      - The volume's name in the pool (for file pools, its file name). At most 255 bytes;
        no C(/), control characters, C(.) or C(..).
    type: str
    required: true
  state:
    description:
      - V(present) creates the volume if it is missing and grows or shrinks it to O(capacity).
      - V(absent) deletes it (after wiping it when O(wipe) is set).
    type: str
    choices: [present, absent]
    default: present
  capacity:
    description:
      - The size the guest sees, in bytes or with a libvirt unit (V(10G) = V(10GiB) = 10 x 1024^3,
        V(10GB) = 10 x 1000^3, decimals such as V(1.5G) allowed).
      - Required to create a volume unless O(clone_from), O(backing_store) or O(import_from) gives
        the size, in which case a larger value grows the new volume after its content is in place.
      - A larger value grows an existing volume; a smaller one is refused unless O(allow_shrink=true).
        What the backend rounds a size up to is not a shrink (512-byte sectors for qemu-img formats,
        the 4 MiB extents of V(logical) pools, 1 MiB partition alignment of V(disk) pools, whole disk
        geometries of V(vpc)).
      - V(0) makes an empty V(raw) volume; other formats need a size.
    type: raw
  allocation:
    description:
      - Bytes to allocate up front when creating; V(0) (the default) makes a thin, sparse volume.
        For V(qcow2), any other value makes libvirt preallocate the image's metadata only.
      - Not compared on existing volumes, whose allocation changes with use.
    type: raw
  format:
    description:
      - The volume format (V(raw), V(qcow2), V(qed), V(vmdk), V(vdi), ...). A new volume in a
        V(dir), V(fs) or V(netfs) pool is V(raw) unless O(backing_store) (V(qcow2)), O(clone_from)
        (the source's format) or O(import_from) (the image's format) says otherwise.
      - For an existing volume, a different format is refused with C(FORMAT_MISMATCH); when omitted
        the existing format is accepted.
    type: str
  backing_store:
    description:
      - Create the volume as a copy-on-write overlay on this volume (C(qcow2) unless O(format) says V(qed)).
        Only pools of files (V(dir), V(fs), V(netfs)) hold overlays.
      - An existing volume on another backing store is refused; the backing store is never changed.
    type: dict
    suboptions:
      pool:
        description: Pool of the backing volume (with O(backing_store.name)).
        type: str
      name:
        description: Name of the backing volume (with O(backing_store.pool)).
        type: str
      path:
        description: Path of the backing volume; it must be a volume of an active pool.
        type: path
  clone_from:
    description:
      - Create the volume as a full copy of this volume, converting to O(format) when that differs.
        Used only when the volume is created.
    type: dict
    suboptions:
      pool:
        description: Pool of the source volume (with O(clone_from.name)).
        type: str
      name:
        description: Name of the source volume (with O(clone_from.pool)).
        type: str
      path:
        description: Path of the source volume; it must be a volume of an active pool.
        type: path
  import_from:
    description:
      - An image file on the managed host whose content becomes the new volume. Its format is read
        from its header; a requested O(format) that differs is refused with C(FORMAT_MISMATCH), and
        an image that depends on a backing file is refused.
      - Only used when the volume is created; once it exists, the file is not read again (and may be gone).
    type: path
  allow_shrink:
    description:
      - Allow a smaller O(capacity) than the volume has, cutting data off its end. Even then, a volume
        that a running domain uses is not shrunk (C(VOLUME_IN_USE)).
    type: bool
    default: false
  mode:
    description:
      - File mode of the volume, as an octal string such as V('0640'). Set at creation; an existing
        volume's mode is changed on the host when O(uri) is a local connection.
    type: raw
  owner:
    description:
      - Owner of the volume, a numeric uid or a user name of the managed host. Handled like O(mode).
    type: str
  group:
    description:
      - Group of the volume, a numeric gid or a group name of the managed host. Handled like O(mode).
    type: str
  wipe:
    description:
      - With O(state=absent), overwrite the volume's data with this algorithm before deleting it.
        V(trim) discards the blocks instead of writing them; only V(rbd) pools can.
    type: str
    choices: [zero, nnsa, dod, bsi, gutmann, schneier, pfitzner7, pfitzner33, random, trim]
notes:
  - When libvirt does not list a volume but its file is in the pool's directory (put there by other
    means; local connections and V(dir), V(fs), V(netfs), V(logical) pools), the pool is refreshed
    once so the file is found rather than overwritten. Nothing else refreshes a pool (a failed refresh
    makes libvirt stop it).
  - Runs for the same volume on the same managed host take turns (a lock file under
    C(/run/lock/virtops-storage)), so a play never sees another play's half-made volume.
seealso:
  - module: virtops.storage.storage_volume_info
  - module: virtops.storage.storage_pool
'''

EXAMPLES = r'''
- name: A thin 20 GiB data volume
  virtops.storage.storage_volume:
    pool: images
    name: data01.qcow2
    format: qcow2
    capacity: 20G

- name: Import a cloud image once, then keep it
  virtops.storage.storage_volume:
    pool: images
    name: debian-12-base.qcow2
    import_from: /srv/images/debian-12-genericcloud-amd64.qcow2
    format: qcow2
    mode: "0644"

- name: A VM's root disk as an overlay on the base image
  virtops.storage.storage_volume:
    pool: images
    name: web01-root.qcow2
    backing_store:
      pool: images
      name: debian-12-base.qcow2
    capacity: 40G

- name: A full, independent copy (reflinked where the filesystem can)
  virtops.storage.storage_volume:
    pool: images
    name: web02-root.qcow2
    clone_from:
      pool: images
      name: debian-12-base.qcow2

- name: Grow a data disk; a running VM using it sees the new size
  virtops.storage.storage_volume:
    pool: images
    name: data01.qcow2
    capacity: 30G

- name: Delete a volume after zeroing it
  virtops.storage.storage_volume:
    pool: images
    name: old-scratch.img
    state: absent
    wipe: zero
  register: removed
  failed_when: removed.failed and removed.error_code != 'VOLUME_IN_USE'
'''

RETURN = r'''
volume:
  description:
    - The volume after the run (as predicted in check mode; C(null) for V(absent)).
    - In check mode a new volume's C(allocation) is C(null); C(key) and C(path) are predicted for file
      pools only, and C(mode), C(owner) and C(group) only when given.
  returned: always
  type: dict
  contains:
    name:
      description: Volume name.
      type: str
    pool:
      description: Pool name.
      type: str
    key:
      description: libvirt's unique key of the volume (the path, for file volumes).
      type: str
    path:
      description: Path of the volume on the host.
      type: str
    type:
      description: libvirt's volume type (V(file), V(block), V(dir), V(network), ...).
      type: str
    format:
      description: The volume's format as libvirt reads it (V(raw) for block volumes).
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
      description:
        - The domains that use the volume, from their live and persistent definitions.
        - C(via) is the disk source through which the domain reads this volume when it is in
          that disk's backing chain; null when the domain uses the volume directly.
      type: list
      elements: dict
      sample: [{domain: web01, target: vdb, live: true, persistent: true, via: null}]
    ref_count:
      description: Number of domains in RV(volume.used_by).
      type: int
    in_use:
      description: Whether any domain uses the volume.
      type: bool
  sample:
    name: data01.qcow2
    pool: images
    key: /var/lib/libvirt/images/data01.qcow2
    path: /var/lib/libvirt/images/data01.qcow2
    type: file
    format: qcow2
    capacity: 21474836480
    allocation: 200704
    backing_store: null
    mode: "0600"
    owner: 0
    group: 0
    used_by: []
    ref_count: 0
    in_use: false
actions:
  description: The steps taken (or, in check mode, that would be taken), in order.
  returned: always
  type: list
  elements: str
  sample: ["create volume data01.qcow2 in pool images (21474836480 bytes, qcow2)"]
used_by:
  description: With C(VOLUME_IN_USE), the domains that use the volume (shape of RV(volume.used_by)).
  returned: failure
  type: list
  elements: dict
error_code:
  description: On failure, the reason as one of the collection's error codes.
  returned: failure
  type: str
  sample: VOLUME_IN_USE
'''

from ansible_collections.virtops.storage.plugins.module_utils._runner import StorageModule
from ansible_collections.virtops.storage.plugins.module_utils._volume import WIPE_ALGORITHMS, run_volume_module

_VOLUME_REF = dict(type='dict', options=dict(pool=dict(type='str'), name=dict(type='str'), path=dict(type='path')))


def main():
    module = StorageModule(
        argument_spec=dict(
            pool=dict(type='str', required=True),
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            capacity=dict(type='raw'),
            allocation=dict(type='raw'),
            format=dict(type='str'),
            backing_store=_VOLUME_REF,
            clone_from=_VOLUME_REF,
            import_from=dict(type='path'),
            allow_shrink=dict(type='bool', default=False),
            mode=dict(type='raw'),
            owner=dict(type='str'),
            group=dict(type='str'),
            wipe=dict(type='str', choices=list(WIPE_ALGORITHMS)),
        ),
        mutually_exclusive=[('backing_store', 'clone_from', 'import_from')],
        supports_check_mode=True,
    )
    with module.failing_on_errors():
        run_volume_module(module)


if __name__ == '__main__':
    main()
