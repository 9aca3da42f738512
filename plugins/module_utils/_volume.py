# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage volumes: desired and observed state, the planner, and the steps that apply it.

A volume lives independently of every domain. Who uses it comes from the UsageIndex
(every domain's live and persistent XML, read once per run); that is what guards
deletion, shrinking and what `used_by` reports.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses
import grp
import os
import posixpath
import pwd
import re
import time
from typing import Optional

from ansible_collections.virtops.storage.plugins.module_utils import _xml
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._images import SparseReader, inspect_image
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.storage.plugins.module_utils._locks import host_lock
from ansible_collections.virtops.storage.plugins.module_utils._names import validate_name
from ansible_collections.virtops.storage.plugins.module_utils._pool import VOLUME_DELETE_TYPES, parse_definition
from ansible_collections.virtops.storage.plugins.module_utils._runner import Action, Plan
from ansible_collections.virtops.storage.plugins.module_utils._sizes import parse_size
from ansible_collections.virtops.storage.plugins.module_utils._usage import FILE_POOL_TYPES, UsageIndex

WIPE_ALGORITHMS = ('zero', 'nnsa', 'dod', 'bsi', 'gutmann', 'schneier', 'pfitzner7', 'pfitzner33', 'random', 'trim')
# Pools whose backend can create volumes (the others list what the SAN or host offers).
CREATE_TYPES = frozenset(('dir', 'fs', 'netfs', 'logical', 'disk', 'rbd', 'zfs'))
# Pools whose volumes are <target>/<name> on the host, so a stray one can be seen there.
REFRESH_TYPES = frozenset(('dir', 'fs', 'netfs', 'logical'))
# What the backends round a new volume's capacity up to: a request within one step below
# the observed capacity is what was asked for, not a shrink (qemu-img rounds to sectors,
# LVM to its default 4 MiB extent, parted to 1 MiB alignment, a zvol to its block size).
CAPACITY_STEP = {'logical': 4 * 1024 ** 2, 'disk': 1024 ** 2, 'zfs': 128 * 1024}
QEMU_IMG_STEP = 512
SECTOR_FORMATS = frozenset(('qcow2', 'qed'))
# vpc sizes are whole disk geometries (cylinders x heads x sectors): 1000 MiB became
# 1000.125 MiB when measured; 8 MiB is a margin chosen for that, not measured at every size
FORMAT_STEP = {'vpc': 8 * 1024 ** 2}
MAX_ID = 2 ** 32 - 2  # uid_t/gid_t; -1 (2^32 - 1) means "unchanged" to chown
_OCTAL_RE = re.compile(r'^(?:0o?)?([0-7]{1,4})$')


@dataclasses.dataclass(frozen=True)
class VolumeRef:
    """A volume named by pool+name or by path (backing_store, clone_from)."""
    pool: Optional[str] = None
    name: Optional[str] = None
    path: Optional[str] = None


@dataclasses.dataclass
class DesiredVolume:
    pool: str
    name: str
    state: str = 'present'
    capacity: Optional[int] = None
    allocation: Optional[int] = None
    format: Optional[str] = None
    backing_store: Optional[VolumeRef] = None
    clone_from: Optional[VolumeRef] = None
    import_from: Optional[str] = None
    allow_shrink: bool = False
    mode: Optional[int] = None
    owner: Optional[int] = None
    group: Optional[int] = None
    wipe: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ObservedVolume:
    name: str
    pool: str
    key: Optional[str]
    path: Optional[str]
    type: Optional[str]
    format: Optional[str]
    capacity: int
    allocation: int
    backing_path: Optional[str] = None
    backing_format: Optional[str] = None
    mode: Optional[int] = None
    owner: Optional[int] = None
    group: Optional[int] = None

    @property
    def effective_format(self):
        """Block volumes (LVs, partitions) carry no format element: they hold raw data."""
        if self.format is None and self.type in ('block', 'network'):
            return 'raw'
        return self.format


@dataclasses.dataclass(frozen=True)
class PoolFacts:
    name: str
    type: str
    active: bool
    target_path: Optional[str] = None
    source_name: Optional[str] = None  # the ceph pool of an rbd pool


def pool_facts(client, pool, active):
    definition = parse_definition(_xml.parse(client.pool_xml(pool), 'pool XML'))
    return PoolFacts(name=pool.name(), type=definition.type, active=active, target_path=definition.target_path,
                     source_name=definition.source.name)


def volume_users(index, observed, pool_type=None, source_name=None):
    """Who uses a volume: by its path, by pool+name, and for rbd by "ceph-pool/image"."""
    users = index.users(path=observed.path, pool=observed.pool, volume=observed.name)
    if pool_type == 'rbd' and source_name:
        known = set(use.domain for use in users)
        users += [use for use in index.network_users('rbd', '%s/%s' % (source_name, observed.name))
                  if use.domain not in known]
    return users


@dataclasses.dataclass(frozen=True)
class Content:
    """Where a new volume's data comes from: a volume (clone/backing store) or an image file."""
    kind: str  # 'empty', 'clone', 'backing', 'import'
    source: Optional[ObservedVolume] = None
    image: Optional[object] = None  # _images.ImageInfo


# ---------------------------------------------------------------------------------------
# Reading libvirt's volume XML
def _int_or_none(text, base=10):
    try:
        return int(text, base) if text not in (None, '') else None
    except ValueError:
        return None


def mode_text(mode):
    return '%04o' % mode if mode is not None else None


def _pool_of(client, volume):
    with client.errors('find the pool of volume %s' % volume.name()):
        return volume.storagePoolLookupByVolume().name()


def volume_behind(client, pool_name=None, name=None, path=None):
    """(pool name, volume object) of the volume a disk source names - pool+name of an active
    pool, or a path (symbolic links followed on this host) - or None."""
    if pool_name is not None:
        pool = client.lookup_pool(pool_name)
        volume = client.lookup_volume(pool, name) if pool is not None and client.pool_is_active(pool) else None
        return (pool_name, volume) if volume is not None else None
    volume = _by_path(client, path) if path else None
    return (_pool_of(client, volume), volume) if volume is not None else None


def _by_path(client, path):
    """The volume behind a path (a guest disk's source), following symlinks on this host."""
    volume = client.lookup_volume_by_path(path)
    if volume is None and client.is_local and os.path.realpath(path) != path:
        volume = client.lookup_volume_by_path(os.path.realpath(path))
    return volume


def parse_volume(xml, pool_name):
    root = _xml.parse(xml, 'volume XML')
    backing = root.find('backingStore')
    return ObservedVolume(
        name=_xml.text_of(root, 'name'), pool=pool_name, key=_xml.text_of(root, 'key'),
        path=_xml.text_of(root, 'target/path'), type=root.get('type'),
        format=_xml.attr_of(root, 'target/format', 'type'),
        capacity=int(_xml.text_of(root, 'capacity', '0')), allocation=int(_xml.text_of(root, 'allocation', '0')),
        backing_path=_xml.text_of(backing, 'path'), backing_format=_xml.attr_of(backing, 'format', 'type'),
        mode=_int_or_none(_xml.text_of(root, 'target/permissions/mode'), 8),
        owner=_int_or_none(_xml.text_of(root, 'target/permissions/owner')),
        group=_int_or_none(_xml.text_of(root, 'target/permissions/group')))


def build_volume_xml(name, capacity, allocation, volume_format=None, mode=None, owner=None, group=None,
                     backing=None):
    """The <volume> definition of a new volume; `backing` is an ObservedVolume."""
    root = _xml.element('volume')
    _xml.sub(root, 'name', text=name)
    _xml.sub(root, 'capacity', {'unit': 'bytes'}, capacity)
    _xml.sub(root, 'allocation', {'unit': 'bytes'}, allocation)
    target = _xml.sub(root, 'target')
    if volume_format:
        _xml.sub(target, 'format', {'type': volume_format})
    if (mode, owner, group) != (None, None, None):
        permissions = _xml.sub(target, 'permissions')
        if mode is not None:
            _xml.sub(permissions, 'mode', text=mode_text(mode))
        if owner is not None:
            _xml.sub(permissions, 'owner', text=owner)
        if group is not None:
            _xml.sub(permissions, 'group', text=group)
    if backing is not None:
        store = _xml.sub(root, 'backingStore')
        _xml.sub(store, 'path', text=backing.path)
        _xml.sub(store, 'format', {'type': backing.effective_format or 'raw'})
    return _xml.to_string(root)


# ---------------------------------------------------------------------------------------
# Options
def parse_mode(value):
    """`mode` as an int: an int is taken as is (YAML's 0640 arrives as 416), a string is octal."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o7777:
            return value
    elif isinstance(value, str):
        match = _OCTAL_RE.match(value.strip())
        if match:
            return int(match.group(1), 8)
    raise StorageError('INVALID_ARGUMENT', 'mode: %r is not an octal file mode such as "0640"' % (value,))


def parse_id(value, option):
    """`owner`/`group` as a numeric id; names are looked up on the managed host."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        if int(text) > MAX_ID:
            raise StorageError('INVALID_ARGUMENT', '%s: %s is larger than any %s id (%d)'
                               % (option, text, 'user' if option == 'owner' else 'group', MAX_ID))
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid if option == 'owner' else grp.getgrnam(text).gr_gid
    except KeyError:
        raise StorageError('INVALID_ARGUMENT', '%s: no %s named %r on this host; give a numeric id'
                           % (option, 'user' if option == 'owner' else 'group', text))


def _ref(value, option):
    if value is None:
        return None
    path = value.get('path')
    pool, name = value.get('pool'), value.get('name')
    if path:
        if pool or name:
            raise StorageError('INVALID_ARGUMENT', '%s: give either path or pool and name, not both' % option)
        if not path.startswith('/'):
            raise StorageError('INVALID_ARGUMENT', '%s: path %r must be absolute' % (option, path))
        return VolumeRef(path=os.path.normpath(path))
    if not (pool and name):
        raise StorageError('INVALID_ARGUMENT', '%s: give pool and name, or path' % option)
    return VolumeRef(pool=validate_name(pool, '%s.pool' % option), name=validate_name(name, '%s.name' % option))


def desired_from_params(params):
    desired = DesiredVolume(
        pool=validate_name(params['pool'], 'pool name'), name=validate_name(params['name'], 'volume name'),
        state=params['state'], capacity=parse_size(params.get('capacity'), 'capacity'),
        allocation=parse_size(params.get('allocation'), 'allocation'), format=params.get('format'),
        backing_store=_ref(params.get('backing_store'), 'backing_store'),
        clone_from=_ref(params.get('clone_from'), 'clone_from'), import_from=params.get('import_from'),
        allow_shrink=bool(params.get('allow_shrink')), mode=parse_mode(params.get('mode')),
        owner=parse_id(params.get('owner'), 'owner'), group=parse_id(params.get('group'), 'group'),
        wipe=params.get('wipe'))
    if desired.import_from is not None and not desired.import_from.startswith('/'):
        raise StorageError('INVALID_ARGUMENT', 'import_from: %r must be an absolute path' % desired.import_from)
    if desired.wipe is not None and desired.state != 'absent':
        raise StorageError('INVALID_ARGUMENT', 'wipe applies to state=absent only')
    if desired.backing_store is not None and desired.format not in (None, 'qcow2', 'qed'):
        raise StorageError('INVALID_ARGUMENT', 'backing_store makes a qcow2 overlay; format %r cannot have one'
                           % desired.format)
    return desired


# ---------------------------------------------------------------------------------------
# Planning: pure functions of (desired, pool, observed, users, content, overlays)
def volume_view(volume):
    """The managed fields of a volume, for the diff."""
    if volume is None:
        return {'state': 'absent'}
    return {'state': 'present', 'pool': volume.pool, 'name': volume.name, 'format': volume.effective_format,
            'capacity': volume.capacity, 'backing_store': volume.backing_path, 'mode': mode_text(volume.mode),
            'owner': volume.owner, 'group': volume.group}


def _users_text(users):
    return ', '.join('%s (%s%s)' % (use.domain, use.target or '?', ', through %s' % use.via if use.via else '')
                     for use in users)


def in_use_error(pool, name, users, overlays=(), doing='delete'):
    parts = []
    if users:
        parts.append('used by domain(s) %s' % _users_text(users))
    if overlays:
        parts.append('the backing store of volume(s) %s' % ', '.join(overlays))
    return StorageError('VOLUME_IN_USE', 'refusing to %s volume %s of pool %s: it is %s; detach it (or remove '
                                         'the overlays) first' % (doing, name, pool, ' and '.join(parts)),
                        used_by=[use.as_dict() for use in users])


def capacity_step(pool_type, volume_format):
    if pool_type in CAPACITY_STEP:
        return CAPACITY_STEP[pool_type]
    if volume_format in FORMAT_STEP:
        return FORMAT_STEP[volume_format]
    return 1 if volume_format in (None, 'raw') else QEMU_IMG_STEP


def require_active(name, active, option=None):
    """The one refusal of a pool that is missing (`active` None) or stopped."""
    prefix = '%s: ' % option if option else ''
    if active is None:
        raise StorageError('POOL_NOT_FOUND', '%sstorage pool %r does not exist' % (prefix, name))
    if not active:
        raise StorageError('POOL_INACTIVE', '%sstorage pool %r is not active; start it (storage_pool active=true) '
                                            'to manage its volumes' % (prefix, name))


def _check_pool(desired, pool):
    require_active(desired.pool, pool.active if pool is not None else None)


def plan_volume(desired, pool, observed, users=(), content=None, overlays=()):
    """The steps that bring the volume to `desired`; refusals raise StorageError before
    anything is planned, so a refused run changes nothing."""
    _check_pool(desired, pool)
    plan = Plan()
    if desired.state == 'absent':
        _plan_absent(plan, desired, pool, observed, users, overlays)
    elif observed is None:
        _plan_create(plan, desired, pool, content or Content('empty'))
    else:
        _plan_existing(plan, desired, pool, observed, users, content, overlays)
    return plan


def _plan_absent(plan, desired, pool, observed, users, overlays):
    plan.before = volume_view(observed)
    plan.after = {'state': 'absent'}
    if observed is None:
        return
    if users or overlays:
        raise in_use_error(desired.pool, desired.name, users, overlays)
    if pool.type not in VOLUME_DELETE_TYPES:
        raise StorageError('INVALID_ARGUMENT', 'pool %s of type %s cannot delete volumes: they are what the %s '
                                               'source offers' % (pool.name, pool.type, pool.type))
    label = 'volume %s of pool %s' % (desired.name, desired.pool)
    if desired.wipe == 'trim' and pool.type != 'rbd':
        raise StorageError('INVALID_ARGUMENT', 'wipe=trim is done by rbd pools only; pool %s is of type %s (choose '
                                               'another algorithm)' % (pool.name, pool.type))
    if desired.wipe:
        plan.add('wipe %s (%s)' % (label, desired.wipe), 'wipe', (desired.pool, desired.name, desired.wipe))
    plan.add('delete %s' % label, 'delete', (desired.pool, desired.name))


def _plan_create(plan, desired, pool, content):
    if pool.type not in CREATE_TYPES:
        raise StorageError('INVALID_ARGUMENT', 'pool %s of type %s cannot create volumes: its volumes are what the '
                                               '%s source offers' % (pool.name, pool.type, pool.type))
    label = 'volume %s in pool %s' % (desired.name, desired.pool)
    delete = Action('delete %s' % label, 'delete', (desired.pool, desired.name))
    allocation = desired.allocation or 0
    default_format = 'raw' if pool.type in FILE_POOL_TYPES else None
    grow_to = None
    if content.kind == 'import':
        image = content.image
        volume_format, capacity, grow_to, description = _import_shape(desired, pool, image)
        # the new volume first holds the file as it is (libvirt then reads its format)
        xml = build_volume_xml(desired.name, image.file_size, 0, default_format, desired.mode, desired.owner,
                               desired.group)
        plan.add('create %s to hold %s (%d bytes)' % (label, image.path, image.file_size), 'create',
                 (desired.pool, xml), undo=delete)
        plan.add(description, 'upload', (desired.pool, desired.name, image.path, volume_format))
        content_text = 'import of %s' % image.path
    elif content.kind == 'clone':
        source = content.source
        if pool.type in FILE_POOL_TYPES:
            volume_format = desired.format or source.effective_format or default_format
        else:  # libvirt copies into block volumes as raw data
            volume_format = desired.format or 'raw'
        capacity = _at_least(desired, source.capacity, 'a copy of %s/%s' % (source.pool, source.name))
        grow_to = capacity if capacity > source.capacity else None
        xml = build_volume_xml(desired.name, source.capacity, min(allocation, source.capacity),
                               volume_format if pool.type in FILE_POOL_TYPES or desired.format else None,
                               desired.mode, desired.owner, desired.group)
        # only libvirt's raw-to-raw copy can share extents (qemu-img converts the others)
        reflink = volume_format in (None, 'raw') and source.effective_format in (None, 'raw')
        plan.add('create %s as a copy of %s/%s' % (label, source.pool, source.name), 'clone',
                 (desired.pool, xml, source.pool, source.name, reflink), undo=delete)
        content_text = 'copy of %s/%s' % (source.pool, source.name)
    elif content.kind == 'backing':
        if pool.type not in FILE_POOL_TYPES:
            raise StorageError('INVALID_ARGUMENT', 'backing_store makes a qcow2 overlay, which only pools of files hold; '
                                                   'pool %s is of type %s' % (pool.name, pool.type))
        source = content.source
        volume_format = desired.format or 'qcow2'
        capacity = _at_least(desired, source.capacity, 'an overlay on %s' % source.path)
        xml = build_volume_xml(desired.name, capacity, allocation, volume_format, desired.mode, desired.owner,
                               desired.group, backing=source)
        plan.add('create %s as a %s overlay on %s' % (label, volume_format, source.path), 'create',
                 (desired.pool, xml), undo=delete)
        content_text = 'overlay on %s' % source.path
    else:
        if desired.capacity is None:
            raise StorageError('INVALID_ARGUMENT', 'capacity is required to create volume %s (or give clone_from '
                                                   'or import_from)' % desired.name)
        volume_format = desired.format or default_format
        capacity = desired.capacity
        if capacity == 0 and volume_format not in (None, 'raw'):
            raise StorageError('INVALID_SIZE', 'capacity 0 cannot make a %s volume (libvirt would report the size of '
                                               'its header instead); give a size' % volume_format)
        if allocation > capacity:
            raise StorageError('INVALID_ARGUMENT', 'allocation (%d bytes) is larger than capacity (%d bytes)'
                               % (allocation, capacity))
        xml = build_volume_xml(desired.name, capacity, allocation, volume_format, desired.mode, desired.owner,
                               desired.group)
        if volume_format in SECTOR_FORMATS:  # qemu-img makes it whole sectors: that is what will be there
            capacity = -(-capacity // QEMU_IMG_STEP) * QEMU_IMG_STEP
        plan.add('create %s (%d bytes%s)' % (label, capacity, ', %s' % volume_format if volume_format else ''),
                 'create', (desired.pool, xml), undo=delete)
        content_text = None
    if grow_to is not None:
        plan.add('grow volume %s of pool %s to %d bytes' % (desired.name, desired.pool, grow_to), 'resize',
                 (desired.pool, desired.name, grow_to, False))
    plan.before = {'state': 'absent'}
    plan.after = {'state': 'present', 'pool': desired.pool, 'name': desired.name, 'format': volume_format,
                  'capacity': capacity, 'backing_store': content.source.path if content.kind == 'backing' else None,
                  'mode': mode_text(desired.mode),
                  'owner': desired.owner, 'group': desired.group}
    if content_text:
        plan.after['content'] = content_text


def _at_least(desired, source_capacity, what):
    if desired.capacity is None:
        return source_capacity
    if desired.capacity < source_capacity:
        raise StorageError('SHRINK_REFUSED', 'capacity %d bytes is smaller than %s (%d bytes): the new volume '
                                             'would lose data' % (desired.capacity, what, source_capacity))
    return desired.capacity


def _import_shape(desired, pool, image):
    """(format, capacity, grow_to, action text) of an import, or a refusal."""
    if image.backing_file:
        raise StorageError('INVALID_ARGUMENT', 'import_from: %s is an overlay on another file; flatten it first '
                                               '(qemu-img convert) so the volume holds all of its data' % image.path)
    if desired.format and desired.format != image.format:
        raise StorageError('FORMAT_MISMATCH', 'import_from: %s holds a %s image, not %s; formats are never '
                                              'converted silently (convert it first, or ask for format=%s)'
                           % (image.path, image.format, desired.format, image.format))
    if image.format != 'raw' and pool.type not in FILE_POOL_TYPES:
        raise StorageError('FORMAT_MISMATCH', 'import_from: %s holds a %s image but volumes of %s pools hold raw '
                                              'data only; convert it to raw first'
                           % (image.path, image.format, pool.type))
    size = image.virtual_size
    if size is None and desired.capacity is not None:
        raise StorageError('INVALID_ARGUMENT', 'import_from: the virtual size of %s image %s is unknown here; omit '
                                               'capacity and grow the volume afterwards' % (image.format, image.path))
    capacity = _at_least(desired, size, 'the image %s' % image.path) if size is not None else None
    grow_to = capacity if capacity is not None and capacity > size else None
    text = 'upload %s (%s, %d bytes) into volume %s of pool %s' % (image.path, image.format, image.file_size,
                                                                   desired.name, desired.pool)
    return image.format, capacity, grow_to, text


def _plan_existing(plan, desired, pool, observed, users, content=None, overlays=()):
    label = 'volume %s of pool %s' % (desired.name, desired.pool)
    if content is not None and content.kind == 'backing' and content.source.path != observed.backing_path:
        raise StorageError('INVALID_ARGUMENT', '%s exists as an overlay on %s, not on %s; a volume\'s backing store '
                                               'is never changed' % (label, observed.backing_path or 'nothing',
                                                                     content.source.path))
    wanted_format = desired.format or ('qcow2' if desired.backing_store is not None else None)
    if wanted_format and observed.effective_format != wanted_format:
        raise StorageError('FORMAT_MISMATCH', '%s exists as %s, not %s; formats are never converted silently '
                                              '(clone it into a new volume with format=%s)'
                           % (label, observed.effective_format, wanted_format, wanted_format))
    after = volume_view(observed)
    plan.before = volume_view(observed)
    if desired.capacity is not None:
        step = capacity_step(pool.type, observed.effective_format)
        if desired.capacity > observed.capacity:
            _plan_grow(plan, desired, observed, users)
            after['capacity'] = desired.capacity
        elif observed.capacity - desired.capacity >= step:  # less is what the backend rounded up
            if not desired.allow_shrink:
                raise StorageError('SHRINK_REFUSED', '%s is %d bytes; shrinking it to %d bytes would cut data off '
                                                     'its end; set allow_shrink=true if that is meant'
                                   % (label, observed.capacity, desired.capacity))
            live = [use for use in users if use.live]
            if live or overlays:
                raise in_use_error(desired.pool, desired.name, live, overlays, doing='shrink')
            plan.add('shrink %s from %d to %d bytes' % (label, observed.capacity, desired.capacity), 'resize',
                     (desired.pool, desired.name, desired.capacity, True))
            after['capacity'] = desired.capacity
    changes = [(field, getattr(desired, field)) for field in ('mode', 'owner', 'group')
               if getattr(desired, field) is not None and getattr(desired, field) != getattr(observed, field)]
    if changes:
        if not observed.path:
            raise StorageError('INVALID_ARGUMENT', '%s has no path whose permissions could be set' % label)
        shown = [(field, mode_text(value) if field == 'mode' else value) for field, value in changes]
        plan.add('set %s of %s' % (', '.join('%s %s' % pair for pair in shown), label), 'set_permissions',
                 (observed.path, desired.mode, desired.owner, desired.group))
        after.update(shown)
    plan.after = after


def _plan_grow(plan, desired, observed, users):
    label = 'volume %s of pool %s' % (desired.name, desired.pool)
    chained = [use for use in users if use.live and use.via is not None]
    if chained:  # QEMU holds it read-only under a running disk: only that disk could be resized
        raise in_use_error(desired.pool, desired.name, chained, doing='grow')
    live = [use for use in users if use.live and use.via is None]
    if not live:
        plan.add('grow %s from %d to %d bytes' % (label, observed.capacity, desired.capacity), 'resize',
                 (desired.pool, desired.name, desired.capacity, False))
        return
    # The running domains' QEMU has the image open: only it may resize, and the guest is told.
    for use in live:
        plan.add('grow %s from %d to %d bytes live through domain %s (%s)'
                 % (label, observed.capacity, desired.capacity, use.domain, use.target),
                 'resize_live', (use.domain, use.target, desired.capacity))


# ---------------------------------------------------------------------------------------
# Observing and applying
class VolumeOps(object):
    """Reads volumes from libvirt and carries out the planned steps."""

    def __init__(self, client):
        self.client = client
        self._usage = None

    def usage(self):
        if self._usage is None:
            self._usage = UsageIndex.build(self.client)
        return self._usage

    def pool_facts(self, name):
        pool = self.client.lookup_pool(name)
        active = self.client.pool_is_active(pool) if pool is not None else None
        return pool_facts(self.client, pool, active) if active is not None else None

    def find(self, pool, name, refresh=True):
        """The volume of `pool` (PoolFacts), or None. When libvirt does not list it but its
        file is there (put in by other means), the pool is refreshed once and looked at
        again: such a file is not "absent". Nothing else triggers a refresh, since a failed
        refresh makes libvirt stop the pool."""
        libvirt_pool = self.client.get_pool(pool.name)
        volume = self.client.lookup_volume(libvirt_pool, name)
        if volume is None and refresh and self._file_is_there(pool, name):
            with self.client.errors('refresh pool %s (it holds a file %s that libvirt does not list)'
                                    % (pool.name, name)):
                libvirt_pool.refresh(0)
            volume = self.client.lookup_volume(libvirt_pool, name)
        if volume is None:
            return None
        return parse_volume(self.client.volume_xml(volume), pool.name)

    def _file_is_there(self, pool, name):
        if not self.client.is_local or not pool.target_path or pool.type not in REFRESH_TYPES:
            return False
        return os.path.lexists(posixpath.join(pool.target_path, name))

    def resolve(self, ref, option):
        """The volume a VolumeRef names, or VOLUME_NOT_FOUND."""
        if ref.path:
            volume = _by_path(self.client, ref.path) or self._refreshed_lookup(ref.path)
            if volume is None:
                raise StorageError('VOLUME_NOT_FOUND', '%s: %s is not a volume of any active pool (refresh its pool '
                                                       'if the file is new)' % (option, ref.path))
            return parse_volume(self.client.volume_xml(volume), _pool_of(self.client, volume))
        facts = self.pool_facts(ref.pool)
        require_active(ref.pool, facts.active if facts is not None else None, option)
        found = self.find(facts, ref.name)
        if found is None:
            raise StorageError('VOLUME_NOT_FOUND', '%s: volume %r does not exist in pool %r'
                               % (option, ref.name, ref.pool))
        return found

    def _refreshed_lookup(self, path):
        """A file put into a pool's directory by other means: refresh that pool, look again."""
        if not self.client.is_local or not os.path.lexists(path):
            return None
        directory = posixpath.dirname(path)
        for pool in self.client.active_pools():
            xml = self.client.pool_xml(pool, missing_ok=True)
            if xml is not None and parse_definition(_xml.parse(xml, 'pool XML')).target_path == directory:
                with self.client.errors('refresh pool %s' % pool.name()):
                    pool.refresh(0)
                return self.client.lookup_volume_by_path(path)
        return None

    def content(self, desired):
        if desired.clone_from is not None:
            return Content('clone', source=self.resolve(desired.clone_from, 'clone_from'))
        if desired.backing_store is not None:
            return Content('backing', source=self.resolve(desired.backing_store, 'backing_store'))
        if desired.import_from is not None:
            return Content('import', image=inspect_image(desired.import_from))
        return Content('empty')

    def users(self, observed, pool):
        if observed is None:
            return []
        return volume_users(self.usage(), observed, pool.type, pool.source_name)

    def same_file(self, path, other):
        if path == other:
            return True
        return self.client.is_local and os.path.realpath(path) == os.path.realpath(other)

    def overlays(self, observed):
        """'pool/name' of every volume of an active pool whose backing store is this one."""
        if observed is None or not observed.path:
            return []
        found = []
        for pool in self.client.active_pools():
            for volume in self.client.pool_volumes(pool):
                xml = self.client.volume_xml(volume, missing_ok=True)
                if xml is None:
                    continue
                other = parse_volume(xml, pool.name())
                if other.backing_path and self.same_file(other.backing_path, observed.path):
                    found.append('%s/%s' % (other.pool, other.name))
        return found

    # steps -------------------------------------------------------------------------------
    # A failed createXML/createXMLFrom leaves nothing: libvirt removes what its own build
    # made (measured with ENOSPC while allocating and while copying). Nothing is deleted
    # here after such a failure, since a volume found then could be one that someone else
    # made meanwhile. A failed upload is undone by the plan (the create step's undo).
    def create(self, pool_name, xml):
        pool = self.client.get_pool(pool_name)
        name = _xml.text_of(_xml.parse(xml), 'name')
        with self.client.errors('create volume %s in pool %s' % (name, pool_name)):
            pool.createXML(xml, 0)

    def clone(self, pool_name, xml, source_pool, source_name, reflink):
        pool = self.client.get_pool(pool_name)
        source = self.client.get_volume(source_pool, source_name)
        name = _xml.text_of(_xml.parse(xml), 'name')
        with self.client.errors('copy volume %s/%s to %s in pool %s' % (source_pool, source_name, name, pool_name)):
            try:
                pool.createXMLFrom(xml, source, libvirt.VIR_STORAGE_VOL_CREATE_REFLINK if reflink else 0)
            except libvirt.libvirtError as err:
                # with the reflink flag libvirt makes no plain copy where the filesystem
                # cannot share extents (or the backend cannot): that copy is made here
                message = err.get_error_message() or ''
                if not reflink or ('failed to clone files' not in message and 'unsupported flags' not in message):
                    raise
                pool.createXMLFrom(xml, source, 0)

    def upload(self, pool_name, name, path, expected_format):
        volume = self.client.get_volume(pool_name, name)
        try:
            with SparseReader(path) as reader:
                self.client.upload(volume, reader)
        except (IOError, OSError) as exc:
            raise StorageError('INVALID_ARGUMENT', 'import_from: reading %s failed: %s' % (path, exc.strerror or exc))
        # libvirt learns what the upload wrote (its format, a backing file) only when it
        # refreshes the pool, which it starts by itself once the stream has closed
        self._refresh_after_upload(pool_name)
        uploaded = parse_volume(self.client.volume_xml(self.client.get_volume(pool_name, name)), pool_name)
        if uploaded.backing_path:
            raise StorageError('INVALID_ARGUMENT', 'import_from: %s refers to a backing file (%s); flatten it first'
                               % (path, uploaded.backing_path))
        if uploaded.format is not None and uploaded.effective_format != expected_format:
            raise StorageError('FORMAT_MISMATCH', 'import_from: libvirt reads %s as %s, not %s'
                               % (path, uploaded.effective_format, expected_format))

    def _refresh_after_upload(self, pool_name, attempts=100, pause=0.05):
        pool = self.client.get_pool(pool_name)
        for _attempt in range(attempts):
            try:
                pool.refresh(0)
                return
            except libvirt.libvirtError as err:
                if 'asynchronous jobs running' not in (err.get_error_message() or ''):
                    with self.client.errors('refresh pool %s' % pool_name):
                        raise
            time.sleep(pause)  # the upload's own refresh is still running: it ends by itself
        raise StorageError('LIBVIRT_ERROR', 'pool %s stayed busy after the upload for %.0f seconds'
                           % (pool_name, attempts * pause))

    def resize(self, pool_name, name, capacity, shrink):
        volume = self.client.get_volume(pool_name, name)
        with self.client.errors('resize volume %s of pool %s' % (name, pool_name)):
            volume.resize(capacity, libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if shrink else 0)

    def resize_live(self, domain_name, target, capacity):
        domain = self.client.lookup_domain(domain_name)
        if domain is None:
            raise StorageError('DOMAIN_NOT_FOUND', 'domain %s went away during the run' % domain_name)
        with self.client.errors('resize disk %s of domain %s' % (target, domain_name)):
            domain.blockResize(target, capacity, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    def set_permissions(self, path, mode, owner, group):
        """chmod/chown on this host: run_volume_module refuses it for a remote libvirt."""
        try:
            if owner is not None or group is not None:
                os.chown(path, -1 if owner is None else owner, -1 if group is None else group)
            if mode is not None:
                os.chmod(path, mode)
        except (OSError, OverflowError) as exc:
            raise StorageError('LIBVIRT_ERROR', 'set permissions of %s failed: %s'
                               % (path, getattr(exc, 'strerror', None) or exc))

    def wipe(self, pool_name, name, algorithm):
        volume = self.client.get_volume(pool_name, name)
        flag = getattr(libvirt, 'VIR_STORAGE_VOL_WIPE_ALG_%s' % algorithm.upper())
        with self.client.errors('wipe volume %s of pool %s (%s)' % (name, pool_name, algorithm)):
            volume.wipePattern(flag, 0)

    def delete(self, pool_name, name):
        self.client.delete_volume(pool_name, name)


# ---------------------------------------------------------------------------------------
# Results
def describe_volume(observed, users):
    """The SPEC's `volume` return shape."""
    return {
        'name': observed.name, 'pool': observed.pool, 'key': observed.key, 'path': observed.path,
        'type': observed.type, 'format': observed.effective_format, 'capacity': observed.capacity,
        'allocation': observed.allocation,
        'backing_store': ({'path': observed.backing_path, 'format': observed.backing_format}
                          if observed.backing_path else None),
        'mode': mode_text(observed.mode),
        'owner': observed.owner, 'group': observed.group,
        'used_by': [use.as_dict() for use in sorted(users, key=lambda use: (use.domain, use.target or ''))],
        'ref_count': len(users), 'in_use': bool(users),
    }


# The volume type libvirt reports for each pool type's volumes.
VOLUME_TYPES = {'dir': 'file', 'fs': 'file', 'netfs': 'file', 'logical': 'block', 'disk': 'block', 'zfs': 'block',
                'rbd': 'network'}


def predict_volume(desired, pool, observed, plan, users, content=None):
    """The `volume` a check-mode run would leave."""
    if desired.state == 'absent':
        return None
    if observed is not None:
        described = describe_volume(observed, users)
        after = plan.after
        described.update(capacity=after.get('capacity', observed.capacity),
                         mode=after.get('mode'), owner=after.get('owner'), group=after.get('group'))
        return described
    after = plan.after
    path = posixpath.join(pool.target_path, desired.name) if pool.type in FILE_POOL_TYPES else None
    backing = None
    if content is not None and content.kind == 'backing':
        backing = {'path': content.source.path, 'format': content.source.effective_format}
    return {
        'name': desired.name, 'pool': desired.pool, 'key': path, 'path': path,
        'type': VOLUME_TYPES.get(pool.type), 'format': after['format'] or 'raw',
        'capacity': after['capacity'], 'allocation': None, 'backing_store': backing,
        'mode': mode_text(desired.mode),
        'owner': desired.owner, 'group': desired.group, 'used_by': [], 'ref_count': 0, 'in_use': False,
    }


def volume_lock(uri, pool, name):
    """The host lock of one volume: storage_volume and vm_disk (attaching it) share it."""
    return (uri, 'volume', pool, name)


def run_volume_module(module):
    """storage_volume's main flow: observe, plan, apply (unless check mode), report; runs
    for the same volume on this host take turns, so none sees another's half-done work."""
    client = module.client()
    desired = desired_from_params(module.params)
    what = 'volume %s of pool %s' % (desired.name, desired.pool)
    with host_lock(what, volume_lock(client.canonical_uri, desired.pool, desired.name)):
        _run_volume_module(module, client, desired)


def _run_volume_module(module, client, desired):
    ops = VolumeOps(client)
    pool = ops.pool_facts(desired.pool)
    _check_pool(desired, pool)
    observed = ops.find(pool, desired.name)
    content = None
    if desired.state == 'present' and (observed is None or desired.backing_store is not None):
        content = ops.content(desired)
        if observed is not None and observed.backing_path and ops.same_file(content.source.path, observed.backing_path):
            # the same base under another name (a symbolic link): not a different backing store
            content = Content('backing', source=dataclasses.replace(content.source, path=observed.backing_path))
    users = ops.users(observed, pool)
    shrinking = observed is not None and desired.capacity is not None and desired.capacity < observed.capacity
    overlays = ops.overlays(observed) if (desired.state == 'absent' or shrinking) and not users else ()
    plan = plan_volume(desired, pool, observed, users, content, overlays)
    if not client.is_local and any(action.method == 'set_permissions' for action in plan.actions):
        raise StorageError('INVALID_ARGUMENT', 'libvirt cannot change the permissions of an existing volume, and %s '
                                               'is on another host; set them there' % observed.path)
    module.apply(plan, ops)
    if module.check_mode:
        result = predict_volume(desired, pool, observed, plan, users, content)
    else:
        after = ops.find(pool, desired.name, refresh=False) if desired.state == 'present' else None
        result = describe_volume(after, ops.users(after, pool)) if after is not None else None
    module.exit_plan(plan, volume=result)


# ---------------------------------------------------------------------------------------
# storage_volume_info
def _active_pool(client, name):
    pool = client.lookup_pool(validate_name(name, 'pool name'))
    require_active(name, client.pool_is_active(pool) if pool is not None else None)
    return pool


def _candidates(client, params):
    """(pool name, volume object) pairs the filters allow, asking libvirt as little as possible."""
    if params.get('path') or params.get('key'):
        if params.get('pool'):
            _active_pool(client, params['pool'])  # missing or inactive is an error, as without path/key
        volume = _by_path(client, params['path']) if params.get('path') else client.lookup_volume_by_key(params['key'])
        return [(_pool_of(client, volume), volume)] if volume is not None else []
    pools = [_active_pool(client, params['pool'])] if params.get('pool') else client.active_pools()
    found = []
    for pool in pools:
        if params.get('name'):
            volume = client.lookup_volume(pool, validate_name(params['name'], 'volume name'))
            found.extend([(pool.name(), volume)] if volume is not None else [])
        else:
            found.extend((pool.name(), volume) for volume in client.pool_volumes(pool))
    return found


def _sources_of(client, index, domain_name):
    """(pool name, volume object) for each volume the domain's disks name: a lookup per disk
    rather than a read of every volume of every pool."""
    found = []
    for key, _use in index.domains_using(domain_name):
        if key[0] == 'path':
            found.append(volume_behind(client, path=key[1]))
        elif key[0] == 'volume':
            found.append(volume_behind(client, pool_name=key[1], name=key[2]))
    found = [pair for pair in found if pair is not None]
    unique = dict(((pool_name, volume.name()), (pool_name, volume)) for pool_name, volume in found)
    return list(unique.values())


def list_volumes(client, params):
    """The `volumes` of storage_volume_info: one pass over the domains, one XML read per volume."""
    attached_to = None
    if params.get('attached_to'):
        attached_to = client.get_domain(params['attached_to']).name()
    if attached_to is not None and not (params.get('path') or params.get('key')):
        if params.get('pool'):
            _active_pool(client, params['pool'])  # missing or inactive is an error, as without attached_to
        index = UsageIndex.build(client)
        candidates = _sources_of(client, index, attached_to)
    else:
        candidates = _candidates(client, params)
        index = UsageIndex.build(client) if candidates else UsageIndex()
    volumes, rbd_pools = {}, {}
    for pool_name, volume in candidates:
        if params.get('pool') and pool_name != params['pool']:
            continue
        xml = client.volume_xml(volume, missing_ok=True)
        if xml is None:  # deleted since it was listed
            continue
        observed = parse_volume(xml, pool_name)
        if params.get('name') and observed.name != params['name']:
            continue
        if index.network_uses('rbd') and pool_name not in rbd_pools:  # only then is the pool's type needed
            facts = pool_facts(client, client.get_pool(pool_name), True)
            rbd_pools[pool_name] = facts.source_name if facts.type == 'rbd' else None
        users = volume_users(index, observed, 'rbd' if rbd_pools.get(pool_name) else None, rbd_pools.get(pool_name))
        if params.get('unused') and users:
            continue
        if attached_to is not None and not any(use.domain == attached_to for use in users):
            continue
        volumes[(pool_name, observed.name)] = describe_volume(observed, users)
    return [volumes[key] for key in sorted(volumes)]


def run_volume_info_module(module):
    module.exit_info(volumes=list_volumes(module.client(), module.params))
