# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_disk and vm_disk_info: a domain's disks, identified by their source.

The planner is a pure function of (desired disk, observed domain, resolved source, who
else uses it). DiskOps reads libvirt and carries out the steps: definition first (each
step undoable), the running domain last; a hot-unplug is done only when the guest has
let go of the device (libvirt's device-removed event, confirmed by the live XML).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import dataclasses
import os
import stat
import time
from typing import Optional

from ansible_collections.virtops.storage.plugins.module_utils import _domain
from ansible_collections.virtops.storage.plugins.module_utils._domain import DiskState
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._images import image_dependencies, inspect_image
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.storage.plugins.module_utils._locks import host_lock
from ansible_collections.virtops.storage.plugins.module_utils._names import validate_name
from ansible_collections.virtops.storage.plugins.module_utils._runner import Action, Plan
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex, file_pool_directory
from ansible_collections.virtops.storage.plugins.module_utils._volume import (
    _by_path, _pool_of, parse_volume, require_active, volume_behind, volume_lock)

VIEWS = ('config', 'live')
DRIVER_FORMATS = ('raw', 'qcow2', 'qed', 'vmdk', 'vdi', 'vpc', 'vhdx')
MAX_UNPLUG_TIMEOUT = 24 * 3600  # NaN and infinity fail this too
MAX_BOOT_ORDER = 65535
VIEW_WORDS = {'config': 'the definition of', 'live': 'the running domain'}


@dataclasses.dataclass(frozen=True)
class DiskSource:
    """What a disk reads: a pool volume, a file or block device, or a network LUN."""
    kind: str  # 'volume' (pool+volume asked for), 'file', 'block', 'network'
    format: Optional[str]  # None only for a detach whose volume is gone
    pool: Optional[str] = None
    volume: Optional[str] = None
    key: Optional[str] = None
    path: Optional[str] = None
    real_path: Optional[str] = None
    network: Optional[_domain.NetworkSource] = None
    chain: tuple = ()  # the backing files under it (read from the image headers)
    block: bool = False  # a block device (or a LUN volume): what device: lun needs
    guessed: bool = False  # the format was read from the file's own header (libvirt's or ours)
    outside: Optional[str] = None  # a file that header makes QEMU open outside every pool
    in_use_code: str = 'VOLUME_IN_USE'  # what another domain's use is refused with (LUN_IN_USE for a LUN)
    aliases: tuple = ()  # other paths the same disk may be attached by (a LUN's udev names)
    stable_id: Optional[str] = None  # what the default serial derives from when paths are not stable (a LUN's WWID)

    @property
    def identity(self):
        if self.network is not None:
            return '%s:%s' % (self.network.protocol, self.network.name)
        return self.stable_id or self.key or self.real_path or self.path

    @property
    def label(self):
        if self.pool and self.volume:
            return 'volume %s of pool %s' % (self.volume, self.pool)
        if self.network is not None:
            return '%s LUN %s' % (self.network.protocol, self.network.name)
        return self.path

    def matches(self, disk):
        if self.network is not None:
            return disk.network is not None and (disk.network.protocol, disk.network.name) == (
                self.network.protocol, self.network.name)
        if self.pool and self.volume and (disk.pool, disk.volume) == (self.pool, self.volume):
            return True
        mine = set(path for path in (self.path, self.real_path) + self.aliases if path)
        return bool(mine & set(path for path in (disk.path, disk.real_path) if path))


@dataclasses.dataclass(frozen=True)
class ObservedDomain:
    name: str
    uuid: str
    running: bool
    persistent: bool
    config: Optional[_domain.DomainView] = None
    live: Optional[_domain.DomainView] = None

    def view(self, name):
        return self.config if name == 'config' else self.live

    def root(self):
        """The root disk as the definition says (what the next boot uses); the running
        domain's own XML only for a transient domain. A legacy running view is no guide:
        libvirt inserts hot-plugged disks into it by bus and index, not by boot order."""
        view = self.config if self.config is not None else self.live
        return view.root() if view is not None else None

    def is_root(self, disks):
        """Whether the disk found as {view: DiskState} is the root disk."""
        root = self.root()
        mine = disks.get('config') if self.config is not None else disks.get('live')
        return root is not None and mine is not None and mine.target == root.target

    @property
    def views(self):
        return [(name, self.view(name)) for name in VIEWS if self.view(name) is not None]


@dataclasses.dataclass
class DesiredDisk:
    domain: str
    state: str = 'present'
    pool: Optional[str] = None
    volume: Optional[str] = None
    path: Optional[str] = None
    target: Optional[str] = None
    bus: Optional[str] = None
    device: Optional[str] = None
    role: Optional[str] = None
    boot_order: Optional[int] = None
    readonly: Optional[bool] = None
    shareable: Optional[bool] = None
    serial: Optional[str] = None
    cache: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None
    detect_zeroes: Optional[str] = None
    error_policy: Optional[str] = None
    format: Optional[str] = None
    live: str = 'auto'
    persistent: bool = True
    unplug_timeout: float = 30


LIVE_CHOICES = {'auto': 'auto', 'true': 'true', 'yes': 'true', 'on': 'true', '1': 'true',
                'false': 'false', 'no': 'false', 'off': 'false', '0': 'false'}


def driver_format(volume_format):
    """The driver type QEMU opens a volume format with: an ISO image is read as raw."""
    return 'raw' if volume_format == 'iso' else volume_format


def desired_from_params(params):
    """DesiredDisk from module parameters, with every check that needs no libvirt."""
    live = LIVE_CHOICES.get(str(params.get('live', 'auto')).lower())
    if live is None:
        raise StorageError('INVALID_ARGUMENT', 'live must be auto, true or false, not %r' % params.get('live'))
    fields = dict((field.name, params.get(field.name)) for field in dataclasses.fields(DesiredDisk)
                  if field.name in params and params.get(field.name) is not None)
    fields['live'] = live
    desired = DesiredDisk(**fields)
    validate_name(desired.domain, 'domain name')
    if desired.pool is not None:
        validate_name(desired.pool, 'pool name')
        validate_name(desired.volume, 'volume name')
    if desired.target is not None:
        if not _domain.TARGET_RE.match(desired.target):
            raise StorageError('INVALID_ARGUMENT', 'target %r is not a disk name libvirt gives a bus (vdX for virtio, '
                                                   'sdX for scsi/sata/usb, hdX for ide)' % desired.target)
        prefix = desired.target[:2]
        if desired.bus is not None and _domain.TARGET_PREFIX[desired.bus] != prefix:
            raise StorageError('INVALID_ARGUMENT', 'target %s does not fit bus %s (whose disks are named %sX)'
                               % (desired.target, desired.bus, _domain.TARGET_PREFIX[desired.bus]))
    if desired.serial and (not _domain.SERIAL_RE.match(desired.serial)
                           or desired.serial != desired.serial.strip()):
        raise StorageError('INVALID_ARGUMENT', 'serial %r may hold only letters, digits, inner spaces and _ . + -'
                           % desired.serial)
    if desired.boot_order is not None and not 1 <= desired.boot_order <= MAX_BOOT_ORDER:
        raise StorageError('INVALID_ARGUMENT', 'boot_order must be from 1 to %d' % MAX_BOOT_ORDER)
    if desired.path is not None and '\0' in desired.path:
        raise StorageError('INVALID_ARGUMENT', 'path must not contain a NUL character')
    if desired.role == 'root' and desired.boot_order not in (None, 1):
        raise StorageError('INVALID_ARGUMENT', 'the root disk boots first: boot_order must be 1 (or left out) '
                                               'with role: root')
    if desired.role == 'data' and desired.boot_order == 1:
        raise StorageError('INVALID_ARGUMENT', 'boot_order 1 belongs to the root disk; use role: root')
    check_device(desired.device, desired.bus, desired.role, desired.readonly)
    if desired.unplug_timeout is not None and not 0 <= desired.unplug_timeout <= MAX_UNPLUG_TIMEOUT:
        raise StorageError('INVALID_ARGUMENT', 'unplug_timeout must be a number of seconds from 0 to %d'
                           % MAX_UNPLUG_TIMEOUT)
    return desired


# ---------------------------------------------------------------------------------------
# Planning
def check_device(device, bus, role, readonly):
    """What each device type allows (None: not known yet); INVALID_ARGUMENT otherwise."""
    if device == 'lun' and bus not in (None, 'scsi'):
        raise StorageError('INVALID_ARGUMENT', "device: lun passes SCSI commands through and needs bus: scsi")
    if device == 'cdrom' and bus == 'virtio':
        raise StorageError('INVALID_ARGUMENT', 'a cdrom cannot sit on the virtio bus; use sata, scsi, ide or usb')
    if device == 'cdrom' and (role == 'root' or readonly is False):
        raise StorageError('INVALID_ARGUMENT', 'a cdrom is read-only media and never the root disk (role: root and '
                                               'readonly: false do not apply to it)')


def views_in_scope(desired, domain):
    """The views this run changes ('config', 'live'), or an INVALID_ARGUMENT that says why none."""
    scope = []
    present = desired.state == 'present'
    if desired.live == 'true' and not domain.running:
        raise StorageError('INVALID_ARGUMENT', 'live: true asks to change the running domain, but %s is shut off'
                           % domain.name)
    if desired.persistent:
        if domain.persistent:
            scope.append('config')
        elif present:
            raise StorageError('INVALID_ARGUMENT', 'domain %s is transient (it has no definition to add the disk to); '
                                                   'set persistent: false to change only the running domain'
                               % domain.name)
    if desired.live in ('auto', 'true'):
        if domain.running:
            scope.append('live')
    if not scope:
        raise StorageError('INVALID_ARGUMENT', 'nothing to change: %s' % (
            'live and persistent are both false' if not desired.persistent and desired.live == 'false'
            else 'domain %s is shut off and persistent is false' % domain.name))
    return scope


def find_disks(domain, source):
    """{view: DiskState} of the disk reading `source` in each view that has it."""
    found = {}
    for name, view in domain.views:
        disk = next((disk for disk in view.disks if source.matches(disk)), None)
        if disk is not None:
            found[name] = disk
    return found


def plan_disk(desired, domain, source, users=(), chain_users=()):
    """The steps that bring the domain's disk of `source` to `desired`. `users` are the
    DiskUse records of the source (every domain), `chain_users` those of the files under it.
    The returned Plan carries `predicted` ({view: DiskState or None}) and `boot` (diff lines)."""
    scope = views_in_scope(desired, domain)
    found = find_disks(domain, source)
    plan = Plan()
    plan.predicted = dict((name, found.get(name)) for name, _view in domain.views)
    plan.boot = plan.rewrite = plan.controller = None
    if desired.state == 'absent':
        _plan_detach(plan, desired, domain, scope, found)
    else:
        _plan_attach(plan, desired, domain, source, scope, found, users, chain_users)
    return plan


def _plan_detach(plan, desired, domain, scope, found):
    leaving = [name for name in scope if name in found]
    if not leaving:
        return
    disk = found[leaving[0]]
    check_same_slot(desired, domain, found, 'nothing was detached')
    is_root = domain.is_root(found)
    if is_root and domain.running:
        raise StorageError('DOMAIN_RUNNING', 'disk %s (%s) is the root disk of %s, which is running: shut the domain '
                                             'down before detaching its root disk'
                           % (disk.target, disk.source_label, domain.name))
    if 'live' in leaving and found['live'].bus not in _domain.HOTPLUG_BUSES:
        raise StorageError('HOTPLUG_UNSUPPORTED', 'disk %s of running domain %s sits on the %s bus, which cannot '
                                                  'hot-unplug; shut the domain down or set live: false'
                           % (found['live'].target, domain.name, found['live'].bus))
    if 'live' in leaving:
        live_disk = found['live']
        plan.add('detach disk %s (%s) from running domain %s'
                 % (live_disk.target, live_disk.source_label, domain.name),
                 'detach_live', (domain.name, live_disk.xml, live_disk.target, live_disk.alias, desired.unplug_timeout))
        plan.predicted['live'] = None
    if 'config' in leaving and is_root and domain.config is not None:
        remaining = [other for other in domain.config.disks
                     if other.device in _domain.HARD_DISKS and other.target != found['config'].target]
        others_boot = [label for label in domain.config.boot_orders() if label != found['config'].target]
        # libvirt boots the first hard disk of a definition left without any boot order
        if remaining and ('hd' in domain.config.legacy_boot or not (domain.config.legacy_boot or others_boot)):
            plan.warnings.append('domain %s boots from its first hard disk (<os><boot dev=\'hd\'>): once %s is '
                                 'detached, that is %s' % (domain.name, found['config'].target, remaining[0].target))
    if 'config' in leaving:
        config_disk = found['config']
        plan.add('detach disk %s (%s) from the definition of %s'
                 % (config_disk.target, config_disk.source_label, domain.name),
                 'detach_config', (domain.name, config_disk.xml),
                 undo=_undo('restore the definition of %s' % domain.name, 'define', (domain.name, domain.config.xml)))
        plan.predicted['config'] = None


def _undo(description, method, args):
    return Action(description, method, args)


def check_same_slot(desired, domain, found, remedy):
    """TARGET_MISMATCH when a target, bus or device asked for is not the one the source has."""
    for name, disk in found.items():
        for option, have in (('target', disk.target), ('bus', disk.bus), ('device', disk.device)):
            wanted = getattr(desired, option)
            if wanted is not None and wanted != have:
                raise StorageError('TARGET_MISMATCH', '%s is attached to %s as %s (%s %s, bus %s, device %s), not with '
                                                      '%s %s; %s' % (disk.source_label, domain.name, disk.target,
                                                                     VIEW_WORDS[name], domain.name, disk.bus,
                                                                     disk.device, option, wanted, remedy))


def _identity_checks(desired, domain, source, found):
    """Target, bus and device of the disk: from what is there, else asked for, else defaults."""
    check_same_slot(desired, domain, found, 'detach it first to move it')
    existing = next(iter(found.values()), None)
    device = desired.device or (existing.device if existing else 'disk')
    bus = desired.bus or (existing.bus if existing else None)
    if bus is None:
        if desired.target:
            bus = _domain.BUS_OF_PREFIX[desired.target[:2]]
        bus = bus or ('scsi' if device == 'lun' else 'virtio')
    check_device(device, bus, desired.role, desired.readonly)
    if device == 'lun' and not (source.block or source.network is not None):
        raise StorageError('INVALID_ARGUMENT', 'device: lun needs a block device or an iSCSI LUN; %s is a file'
                           % source.label)
    target = desired.target or (existing.target if existing else _domain.free_target(
        [view for _name, view in domain.views], bus))
    for name, view in domain.views:
        other = view.disk_at(target)
        if other is not None and not source.matches(other):
            raise StorageError('TARGET_IN_USE', 'target %s of %s %s already holds %s' % (
                target, VIEW_WORDS[name], domain.name, other.source_label))
    return target, bus, device


def _use_checks(desired, domain, source, users, chain_users, existing):
    """VOLUME_IN_USE: another domain uses the source (unless shareable there and here), or
    reads it through a backing chain (unless it is attached read-only here), or writes a
    file this source is an overlay on."""
    shareable = desired.shareable if desired.shareable is not None else bool(existing and existing.shareable)
    readonly = desired.readonly if desired.readonly is not None else bool(existing and existing.readonly)
    direct = [use for use in users if use.domain != domain.name and use.via is None]
    chained = [use for use in users if use.via is not None and (use.domain != domain.name or not readonly)]
    if direct and not (shareable and all(use.shareable for use in direct)):
        raise StorageError(source.in_use_code, '%s is already used by %s; a disk can be attached to several domains '
                                               'only when it is shareable on all of them (shareable: true here and '
                                               '<shareable/> there)' % (source.label, _uses_text(direct)),
                           used_by=[use.as_dict() for use in direct])
    if chained and not readonly:
        raise StorageError('VOLUME_IN_USE', '%s is the backing file that %s read through their disks; attaching it '
                                            'writable would corrupt them (readonly: true is safe)'
                           % (source.label, _uses_text(chained)), used_by=[use.as_dict() for use in chained])
    writers = [use for use in chain_users if use.via is None and not use.readonly]
    if writers:
        raise StorageError('VOLUME_IN_USE', '%s is an overlay on a file that %s write to; its content would change '
                                            'under this disk' % (source.label, _uses_text(writers)),
                           used_by=[use.as_dict() for use in writers])


def _uses_text(uses):
    return ', '.join('%s (%s)' % (use.domain, use.target) for use in uses)


def _plan_attach(plan, desired, domain, source, scope, found, users, chain_users):
    target, bus, device = _identity_checks(desired, domain, source, found)
    existing = found.get('config') or found.get('live')
    missing = [name for name in scope if name not in found]
    attached_format = next((disk.format for disk in found.values() if disk.format), None)
    if source.guessed and attached_format == 'raw' and source.format != 'raw':
        # a header read now, which the guest of a raw disk may have written, does not turn the disk
        # into an image whose header QEMU would follow: attached raw, it stays raw
        source = dataclasses.replace(source, format='raw', guessed=False, outside=None, chain=())
    if missing and source.outside:
        raise StorageError('INVALID_ARGUMENT', 'the %s header of %s makes QEMU open %s, which is in no storage pool; if '
                                               'that is right, say so with format: %s (or format: raw to read the file '
                                               'as it is)' % (source.format, source.label, source.outside,
                                                              source.format))
    if missing and source.format not in DRIVER_FORMATS:
        raise StorageError('INVALID_ARGUMENT', '%s is in %s format, which this module does not attach (it attaches %s)'
                           % (source.label, source.format, ', '.join(DRIVER_FORMATS)))
    for name, disk in found.items():
        if disk.format and disk.format != source.format:
            raise StorageError('FORMAT_MISMATCH', 'disk %s of %s %s reads %s as %s, but it is %s; detach and attach '
                                                  'it again deliberately (a disk is never converted silently)'
                               % (disk.target, VIEW_WORDS[name], domain.name, source.label, disk.format,
                                  source.format))
    if 'live' in missing and bus not in _domain.HOTPLUG_BUSES:
        raise StorageError('HOTPLUG_UNSUPPORTED', 'the %s bus cannot hot-plug a disk into running domain %s; use '
                                                  'virtio or scsi, or set live: false and attach it at the next start'
                           % (bus, domain.name))
    if desired.role is None and desired.boot_order == 1 and device in _domain.HARD_DISKS:
        desired = dataclasses.replace(desired, role='root')  # boot order 1 is the root's, with all its rules
    root = domain.root()
    is_root = domain.is_root(found)
    # a boot_order other than 1 on the root takes its role as surely as role: data does
    demote = is_root and (desired.role == 'data' or desired.boot_order not in (None, 1))
    if demote and not _can_boot_otherwise(domain, found):
        # libvirt boots the first hard disk of a definition without any boot order: this one
        demote = False
        if desired.boot_order is not None:
            raise StorageError('INVALID_ARGUMENT', 'disk %s is the only device %s can boot from, and libvirt boots '
                                                   'the first hard disk when no boot order is set; it keeps boot '
                                                   'order 1' % (existing.target, domain.name))
        plan.warnings.append('disk %s stays the boot disk of %s: no other device boots, and libvirt boots the first '
                             'hard disk then' % (existing.target, domain.name))
    promote = desired.role == 'root' and not is_root
    if desired.role == 'root' and root is not None and not is_root:
        raise StorageError('ROOT_DISK_PRESENT', 'domain %s already has a root disk: %s (%s); detach it first'
                           % (domain.name, root.target, root.source_label))
    if (promote or demote) and domain.running:
        raise StorageError('DOMAIN_RUNNING', 'domain %s is running: %s its root disk only while it is shut off'
                           % (domain.name, 'attach' if promote else 'detach'))
    loosened = existing is not None and ((desired.shareable is False and existing.shareable)
                                         or (desired.readonly is False and existing.readonly))
    if missing or loosened:
        _use_checks(desired, domain, source, users, chain_users, existing)
    shareable = _pick(desired.shareable, existing, 'shareable', False)
    readonly = _pick(desired.readonly, existing, 'readonly', device == 'cdrom')
    if readonly and device == 'disk' and bus in ('sata', 'ide') and (missing or not existing.readonly):
        raise StorageError('INVALID_ARGUMENT', 'QEMU has no read-only %s hard disks; use virtio or scsi for a read-only '
                                               'disk' % bus)
    becomes_shared = shareable and not readonly and (missing or not existing.shareable or existing.readonly)
    if becomes_shared and source.format not in (None, 'raw'):
        raise StorageError('INVALID_ARGUMENT', 'QEMU shares a writable disk between domains only in raw format; '
                                               '%s is %s (attach it readonly, or use a raw volume)'
                           % (source.label, source.format))
    boot_order = 1 if desired.role == 'root' else desired.boot_order
    if boot_order is None and existing is not None and not demote:
        boot_order = existing.boot_order
    wanted = DiskState(
        target=target, bus=bus, device=device, type=source.kind, pool=source.pool, volume=source.volume,
        path=source.path, real_path=source.real_path, network=source.network, format=source.format,
        readonly=readonly, shareable=shareable,
        serial=_pick(desired.serial, existing, 'serial',  # serial: '' asks for none at all
                     _domain.default_serial(source.identity) if device == 'disk' and source.identity else None) or None,
        boot_order=boot_order,
        **dict((name, _unset_default(_pick(getattr(desired, name), existing, name, None)))
               for name in _domain.DRIVER_ATTRS))
    if wanted.io == 'native' and wanted.cache not in ('none', 'directsync') and (missing or _changes(existing, wanted)):
        raise StorageError('INVALID_ARGUMENT', "QEMU opens a disk with io: native only with cache: none or directsync "
                                               "(disk %s has cache %s)" % (target, wanted.cache or 'unset'))
    if 'config' in scope:
        _plan_config(plan, desired, domain, found.get('config'), wanted, missing, demote)
    if 'live' in scope:
        _plan_live(plan, domain, found.get('live'), wanted, 'config' in scope)


def _can_boot_otherwise(domain, found):
    """Whether the definition still boots something once this disk gives up its order."""
    view = domain.config or domain.live
    disk = found.get('config') or found.get('live')
    orders = view.boot_orders()
    return any(label != disk.target for label in orders)


def _unset_default(value):
    return None if value == 'default' else value  # libvirt drops cache='default': it is the unset value


def _pick(asked, existing, name, default):
    if asked is not None:
        return asked
    if existing is not None:
        return getattr(existing, name)
    return default


def running_cache(disk):
    """The cache mode libvirt runs a disk of this definition with: a writable shareable disk
    whose definition names none runs with cache='none'."""
    if disk.cache is None and disk.shareable and not disk.readonly:
        return 'none'
    return disk.cache


def _live_changes(live_disk, wanted):
    """What the running disk lacks of `wanted`, as libvirt would run `wanted`."""
    changes = _changes(live_disk, dataclasses.replace(wanted, cache=running_cache(wanted)))
    changes.pop('boot_order', None)
    return changes


def _changes(disk, wanted):
    fields = _domain.TUNABLES + ('format', 'boot_order')
    return dict((name, getattr(wanted, name)) for name in fields if getattr(disk, name) != getattr(wanted, name))


def _plan_config(plan, desired, domain, disk, wanted, missing, demote):
    view = domain.config
    orders = view.boot_orders()
    want = None if demote and desired.boot_order is None else wanted.boot_order
    wanted = dataclasses.replace(wanted, boot_order=want)
    others = dict((label, order) for label, order in orders.items() if disk is None or label != disk.target)
    if want is not None and want in others.values():
        if desired.role != 'root':
            holder = next(label for label, order in others.items() if order == want)
            raise StorageError('INVALID_ARGUMENT', 'boot order %d of domain %s is already %s\'s; choose another '
                                                   'boot_order' % (want, domain.name, holder))
        others = dict((label, order + 1) for label, order in others.items())  # the root boots first
    rewrite = dict(others)
    if disk is not None and want is not None:
        rewrite[disk.target] = want
    if view.legacy_boot:
        # a new first disk would silently become the <boot dev='hd'> disk: pin the order first
        moves_root = disk is None and _takes_a_legacy_slot(view, wanted)
        current = orders.get(disk.target) if disk is not None else None
        needed = moves_root or demote or (want is not None and want != current)
    else:
        needed = rewrite != orders
    if disk is None and want is None and view.legacy_boot and _fills_the_legacy_root_slot(view, wanted):
        if domain.running:
            raise StorageError('DOMAIN_RUNNING', 'domain %s boots from its first hard disk (<os><boot dev=\'hd\'>) and '
                                                 'has none, so disk %s would become its root disk, which is attached '
                                                 'only while the domain is shut off' % (domain.name, wanted.target))
        plan.warnings.append('domain %s has no disk yet and boots from its first hard disk (<os><boot dev=\'hd\'>): '
                             'disk %s becomes its boot disk' % (domain.name, wanted.target))
    restore = _undo('restore the definition of %s' % domain.name, 'define', (domain.name, view.xml))
    after = dict(rewrite)
    if want is not None:
        after[wanted.target] = want
    if needed and domain.running:
        plan.warnings.append('the boot order of %s changes in its definition; the running domain keeps its own '
                             'until it restarts' % domain.name)
        plan.extra['restart_required'] = True
    if needed:
        how = 'converting its <os><boot dev> to per-device boot order' if view.legacy_boot else \
            'renumbering its boot order'
        plan.boot = (_boot_lines(orders, view.legacy_boot), _boot_lines(after, ()))
        plan.rewrite = rewrite
    if 'config' in missing and wanted.bus == 'scsi' and not view.scsi_controllers:
        controller = plan.controller = _domain.scsi_controller_xml()
        plan.add('add a virtio-scsi controller to the definition of %s' % domain.name, 'attach_config',
                 (domain.name, controller),
                 undo=restore)
    if 'config' in missing and needed:
        # one change: libvirt would put <boot dev='hd'/> back into a definition left without any boot order
        plan.add('attach disk %s (%s) to the definition of %s, %s'
                 % (wanted.target, wanted.source_label, domain.name, how),
                 'rewrite_boot_order', (domain.name, after, _domain.disk_xml(wanted)), undo=restore)
    elif needed:
        plan.add(('convert <os><boot dev> of %s to per-device boot order' if view.legacy_boot
                  else 'renumber the boot order of %s') % domain.name,
                 'rewrite_boot_order', (domain.name, rewrite), undo=restore)
    if 'config' in missing:
        if not needed:
            plan.add('attach disk %s (%s) to the definition of %s' % (wanted.target, wanted.source_label, domain.name),
                     'attach_config', (domain.name, _domain.disk_xml(wanted)),
                     undo=restore)
        plan.predicted['config'] = wanted
        return
    changes = _changes(disk, wanted)
    changes.pop('boot_order', None)  # the boot order step above does that
    if changes:
        plan.add('update disk %s of the definition of %s (%s)' % (disk.target, domain.name, _changes_text(disk, changes)),
                 'update_config', (domain.name, disk.target, changes),
                 undo=restore)
    plan.predicted['config'] = dataclasses.replace(disk, xml=_domain.update_disk_xml(disk, changes), **dict(
        (name, getattr(wanted, name)) for name in _domain.TUNABLES + ('format', 'boot_order')))


def _takes_a_legacy_slot(view, wanted):
    """Whether a new disk would land first among the devices of a kind <os><boot dev> boots
    (hard disks for 'hd', cdroms for 'cdrom', floppies for 'fd'), and so take over its boot."""
    kinds = {'hd': _domain.HARD_DISKS, 'cdrom': ('cdrom',), 'fd': ('floppy',)}
    for dev in view.legacy_boot:
        devices = kinds.get(dev)
        if devices and wanted.device in devices:
            first = next((index for index, disk in enumerate(view.disks) if disk.device in devices), None)
            # an empty slot is nobody's: the new device simply takes it, as libvirt would boot it
            return first is not None and _domain.insert_position(view, wanted.bus, wanted.target) <= first
    return False


def _fills_the_legacy_root_slot(view, wanted):
    """Whether a new hard disk becomes the root of a legacy definition that boots 'hd' first
    and has no hard disk yet."""
    return (view.legacy_boot[:1] == ('hd',) and wanted.device in _domain.HARD_DISKS
            and not any(disk.device in _domain.HARD_DISKS for disk in view.disks))


def _boot_lines(orders, legacy):
    lines = ['%s: %d' % (label, order) for label, order in sorted(orders.items(), key=lambda item: item[1])]
    if legacy:
        lines.insert(0, '<os><boot dev>: %s' % ', '.join(legacy))
    return '\n'.join(lines) + '\n'


def _changes_text(disk, changes):
    return ', '.join('%s: %s -> %s' % (name, _shown(getattr(disk, name)), _shown(value))
                     for name, value in sorted(changes.items()))


def _shown(value):
    return 'unset' if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _plan_live(plan, domain, disk, wanted, config_in_scope):
    view = domain.live
    if disk is None:
        if wanted.bus == 'scsi' and not view.scsi_controllers:
            plan.add('add a virtio-scsi controller to running domain %s' % domain.name, 'attach_live',
                     (domain.name, _domain.scsi_controller_xml()))
        # a boot order only counts at the next boot, from the definition; the running domain
        # takes one only where it has per-device boot order and that index is free
        with_boot = (wanted.boot_order is not None and not view.legacy_boot
                     and wanted.boot_order not in view.boot_orders().values())
        plan.add('hot-plug disk %s (%s) into running domain %s' % (wanted.target, wanted.source_label, domain.name),
                 'attach_live', (domain.name, _domain.disk_xml(wanted, with_boot=with_boot)))
        plan.predicted['live'] = dataclasses.replace(wanted, boot_order=wanted.boot_order if with_boot else None,
                                                     cache=running_cache(wanted))
        return
    changes = _live_changes(disk, wanted)
    if not changes:
        return
    if not config_in_scope:
        raise StorageError('INVALID_ARGUMENT', 'disk %s of running domain %s cannot change %s while it runs, and '
                                               'persistent is false; change the definition (persistent: true) and '
                                               'restart the domain' % (disk.target, domain.name,
                                                                       ', '.join(sorted(changes))))
    plan.warnings.append('disk %s of running domain %s keeps %s until the domain restarts (QEMU cannot change them '
                         'on a running disk); the definition has the new values'
                         % (disk.target, domain.name, _changes_text(disk, changes)))
    plan.extra['restart_required'] = True


# ---------------------------------------------------------------------------------------
# Results
def describe_disk(domain, disks, source=None):
    """The SPEC's `disk` shape from {view: DiskState} (persistent view first)."""
    disk = disks.get('config') or disks.get('live')
    if disk is None:
        return None
    from_config = disks.get('config') is not None
    if from_config or domain.config is None:
        order = (domain.config if from_config else domain.live).boot_orders().get(disk.target)
    else:
        order = disk.boot_order  # only in the running domain: what it was plugged in with
    key = source.key if source is not None else None
    pool = disk.pool or (source.pool if source is not None else None)
    volume = disk.volume or (source.volume if source is not None else None)
    network = None
    if disk.network is not None:
        network = {'protocol': disk.network.protocol, 'name': disk.network.name,
                   'hosts': [{'name': name, 'port': int(port) if port else None} for name, port in disk.network.hosts]}
    return {
        'target': disk.target, 'bus': disk.bus, 'device': disk.device,
        'source': {'pool': pool, 'volume': volume, 'key': key, 'path': disk.path, 'network': network},
        'format': disk.format, 'role': 'root' if domain.is_root(disks) else 'data',
        'bootable': order is not None, 'boot_order': order, 'readonly': disk.readonly, 'shareable': disk.shareable,
        'serial': disk.serial, 'guest_path': _domain.guest_path(disk),
        'cache': disk.cache, 'io': disk.io, 'discard': disk.discard, 'detect_zeroes': disk.detect_zeroes,
        'error_policy': disk.error_policy,
        'live': disks.get('live') is not None, 'persistent': disks.get('config') is not None,
    }


def _diff_entries(domain_name, before, after, boot=None, controller=None):
    entries = []
    if controller is not None:
        header = '%s (definition): controller' % domain_name
        entries.append({'before_header': header, 'after_header': header, 'before': '', 'after': controller})
    if boot is not None:
        entries.append({'before_header': '%s: boot order' % domain_name, 'after_header': '%s: boot order' % domain_name,
                        'before': boot[0], 'after': boot[1]})
    for name in VIEWS:
        old, new = before.get(name), after.get(name)
        if old is None and new is None:
            continue
        old_xml = _clean_xml(old) if old is not None else ''
        new_xml = _clean_xml(new) if new is not None else ''
        header = '%s (%s): disk %s' % (domain_name, 'definition' if name == 'config' else 'running',
                                       (new or old).target)
        entries.append({'before_header': header, 'after_header': header, 'before': old_xml, 'after': new_xml})
    return entries


def _clean_xml(disk):
    """A disk's XML as diff text: libvirt's own when it has shown it, else the one planned."""
    if disk.xml:
        return disk.xml
    return _domain.disk_xml(disk)


# ---------------------------------------------------------------------------------------
# Observing and applying
class DiskOps(object):
    """Reads the domain and its disk sources from libvirt and carries out the planned steps."""

    def __init__(self, client):
        self.client = client
        self._domains = {}
        self._volume_files = {}

    def domain(self, name_or_uuid):
        found = self.client.get_domain(name_or_uuid)
        self._domains[found.name()] = found
        return found

    def observe(self, domain, secure=False):
        """Both views of the domain; `secure` keeps secrets in the definition's XML (vm_disk
        needs it complete to restore it; vm_disk_info never asks)."""
        running, persistent, uuid = self.client.domain_state(domain)
        views = {}
        config_flags = libvirt.VIR_DOMAIN_XML_INACTIVE | (libvirt.VIR_DOMAIN_XML_SECURE if secure else 0)
        for name, wanted, flags in (('config', persistent, config_flags), ('live', running, 0)):
            xml = self.client.domain_xml(domain, flags) if wanted else None
            if wanted and xml is None:
                raise StorageError('DOMAIN_NOT_FOUND', 'domain %s went away while it was read' % domain.name())
            views[name] = self._with_paths(_domain.parse_view(xml)) if xml is not None else None
        return ObservedDomain(name=domain.name(), uuid=uuid, running=running, persistent=persistent, **views)

    def _with_paths(self, view):
        disks = []
        for disk in view.disks:
            path = disk.path
            if disk.type == 'volume' and disk.pool and disk.volume:
                path = self._volume_file(disk.pool, disk.volume)
            real = os.path.realpath(path) if path and self.client.is_local and path.startswith('/') else path
            disks.append(dataclasses.replace(disk, path=path, real_path=real))
        return dataclasses.replace(view, disks=tuple(disks))

    def _volume_file(self, pool_name, name):
        if (pool_name, name) not in self._volume_files:
            path = None
            found = volume_behind(self.client, pool_name=pool_name, name=name)
            if found is not None:
                with self.client.errors('read volume %s of pool %s' % (name, pool_name)):
                    path = found[1].path()
            else:
                # a stopped file pool still says where its volumes are: a disk named by path is found
                pool = self.client.lookup_pool(pool_name)
                directory = file_pool_directory(self.client, pool) if pool is not None else None
                path = os.path.join(directory, name) if directory else None
            self._volume_files[(pool_name, name)] = path
        return self._volume_files[(pool_name, name)]

    def source(self, desired):
        """The DiskSource of `desired`: the volume's own format, key and path. A detach needs
        only the disk's identity: it also finds disks whose volume, pool or file is gone (by the
        names they are attached by), and never depends on what a header says."""
        if desired.path is not None and not desired.path.startswith('/'):
            raise StorageError('INVALID_ARGUMENT', 'path must be absolute, not %r' % desired.path)
        if desired.state == 'absent':
            try:
                return self._located(desired, read_headers=False)
            except StorageError as err:
                if err.code not in ('VOLUME_NOT_FOUND', 'POOL_NOT_FOUND', 'POOL_INACTIVE', 'INVALID_ARGUMENT'):
                    raise
            path = desired.path
            real = os.path.realpath(path) if path and self.client.is_local else path
            return DiskSource(kind='volume' if desired.pool else 'file', format=None, pool=desired.pool,
                              volume=desired.volume, path=path, real_path=real)
        source = self._located(desired)
        if desired.format is not None and source.format != driver_format(desired.format):
            if desired.format == 'raw' and source.guessed:
                # the format was read from the file's own header; raw never opens another file
                return dataclasses.replace(source, format='raw', chain=(), outside=None, guessed=False)
            raise StorageError('FORMAT_MISMATCH', '%s is %s, not %s' % (source.label, source.format, desired.format))
        if desired.format is not None:
            return dataclasses.replace(source, guessed=False, outside=None)  # confirmed by the user
        return source

    def _located(self, desired, read_headers=True):
        if desired.pool is not None:
            pool = self.client.lookup_pool(desired.pool)
            require_active(desired.pool, self.client.pool_is_active(pool) if pool is not None else None, 'pool')
            volume = self.client.lookup_volume(pool, desired.volume)
            if volume is None:
                raise StorageError('VOLUME_NOT_FOUND', 'volume %r does not exist in pool %r'
                                   % (desired.volume, desired.pool))
            return self._volume_source(volume, desired.pool, kind='volume')
        path = desired.path
        volume = _by_path(self.client, path)
        if volume is not None:
            source = self._volume_source(volume, _pool_of(self.client, volume))
            return dataclasses.replace(source, path=path, kind='block' if source.kind == 'block' else 'file')
        if not self.client.is_local:
            raise StorageError('VOLUME_NOT_FOUND', '%s is not a volume of any active pool of %s, and a file on another '
                                                   'host cannot be looked at from here' % (path, self.client.uri))
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise StorageError('VOLUME_NOT_FOUND', 'path %s cannot be used as a disk: %s' % (path, exc.strerror))
        real = os.path.realpath(path)
        if stat.S_ISBLK(mode):
            return DiskSource(kind='block', format=driver_format(desired.format or 'raw'), path=path, real_path=real,
                              block=True)
        if not stat.S_ISREG(mode):
            raise StorageError('INVALID_ARGUMENT', 'path %s is neither a file nor a block device' % path)
        if not read_headers:
            return DiskSource(kind='file', format=None, path=path, real_path=real)
        if desired.format == 'raw':
            return DiskSource(kind='file', format='raw', path=path, real_path=real)
        image = inspect_image(path, 'path')
        chain = self._chain(path)
        # outside every pool, any file the header names needs the user's word (a guest may have written it)
        outside = (chain[0] if chain else 'the files its header names') if image.backing_file else None
        return DiskSource(kind='file', format=driver_format(desired.format or image.format), path=path,
                          real_path=real, chain=chain, guessed=True, outside=outside)

    def _volume_source(self, volume, pool_name, kind=None):
        observed = parse_volume(self.client.volume_xml(volume), pool_name)
        block = observed.type == 'block'
        real = os.path.realpath(observed.path) if observed.path and self.client.is_local else observed.path
        reads_header = observed.type == 'file' and observed.format not in (None, 'raw')
        chain = self._chain(observed.path) if reads_header else ()
        outside = next((path for path in chain if _by_path(self.client, path) is None), None)
        if reads_header and outside is None and not self.client.is_local and observed.backing_path:
            if _by_path(self.client, observed.backing_path) is None:
                outside = observed.backing_path
        return DiskSource(kind=kind or ('block' if block else 'file'),
                          format=driver_format(observed.effective_format or 'raw'), pool=pool_name,
                          volume=observed.name, key=observed.key, path=observed.path, real_path=real,
                          chain=chain, block=observed.type in ('block', 'network'), guessed=reads_header,
                          outside=outside)

    def _chain(self, path):
        """Every other file QEMU opens for this image: its backing files and external data
        files, read from the headers on this host."""
        return tuple(image_dependencies(path)) if self.client.is_local else ()

    def users(self, source):
        """(users of the source, users of the files under it), from one pass over every domain."""
        index = UsageIndex.build(self.client)
        if source.network is not None:
            return index.network_users(source.network.protocol, source.network.name), []
        users = index.users(path=source.path, pool=source.pool, volume=source.volume)  # every name of the file
        chain_users = [use for path in source.chain for use in index.users(path=path)]
        return users, chain_users

    # the steps ---------------------------------------------------------------------------
    def _dom(self, name):
        return self._domains[name]

    def attach_config(self, domain_name, xml):
        self.client.attach_device(self._dom(domain_name), xml, live=False)

    def detach_config(self, domain_name, xml):
        self.client.detach_device(self._dom(domain_name), xml, live=False)

    def update_config(self, domain_name, target, changes):
        """Change settings of the disk at `target`, as the definition holds it now (a boot
        order rewrite earlier in the run is kept)."""
        domain = self._dom(domain_name)
        view = _domain.parse_view(self._definition(domain))
        self.client.update_device(domain, _domain.update_disk_xml(view.disk_at(target), changes), live=False)

    def _definition(self, domain):
        """The persistent XML with its secrets (graphics passwords): what defineXML needs to
        give them back."""
        xml = self.client.domain_xml(domain, libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        if xml is None:
            raise StorageError('DOMAIN_NOT_FOUND', 'domain %s went away during the run' % domain.name())
        return xml

    def attach_live(self, domain_name, xml):
        self.client.attach_device(self._dom(domain_name), xml, live=True)

    def define(self, domain_name, xml):
        """Put the definition back as it was read (an undo); a domain that someone undefined
        meanwhile is not brought back."""
        domain = self._dom(domain_name)
        if self.client.lookup_domain(domain.UUIDString()) is None:
            raise StorageError('DOMAIN_NOT_FOUND', 'domain %s was undefined during the run; its definition is not '
                                                   'restored' % domain_name)
        self.client.define_domain(xml)

    def rewrite_boot_order(self, domain_name, orders, new_disk_xml=None):
        domain = self._dom(domain_name)
        self.client.define_domain(_domain.rewrite_boot_order(self._definition(domain), orders, new_disk_xml))

    def detach_live(self, domain_name, xml, target, alias, timeout, poll=0.2):
        """Ask the guest to release the disk and wait for the device-removed event (checked
        against the live XML) up to `timeout` seconds; HOTUNPLUG_TIMEOUT when it does not."""
        domain = self._dom(domain_name)
        deadline = time.monotonic() + timeout
        watch = self.client.watch_device_removal(domain)
        try:
            self.client.detach_device(domain, xml, live=True)
            while True:
                # the event wakes this at once; the slices catch a removal whose event was missed
                outcome = watch.wait(alias, min(deadline, time.monotonic() + 0.5)) if alias else None
                live = self.client.domain_xml(domain, 0)
                if live is None or _domain.parse_view(live).disk_at(target) is None:
                    return
                if outcome == 'failed' or time.monotonic() >= deadline:
                    break
                if outcome == 'removed' or not alias:
                    time.sleep(poll)  # the event came before the XML caught up
        finally:
            watch.close()
        raise StorageError('HOTUNPLUG_TIMEOUT', 'the guest of %s did not release disk %s within %s s%s; the disk is '
                                                'still attached to the running domain (the unplug request stays pending: a guest that handles '
                                                'it later releases the disk) and its definition is unchanged. '
                                                'A virtio disk is released only by a guest OS that handles the unplug '
                                                'request: retry later, raise unplug_timeout, or shut the domain down'
                           % (domain_name, target, _seconds(timeout),
                              ' (the guest refused the removal)' if outcome == 'failed' else ''))


def _seconds(value):
    return ('%g' % value) if isinstance(value, float) else str(value)


def run_vm_disk_module(module):
    """vm_disk's main flow: observe, plan, apply (unless check mode), report. Runs that
    change the disks of one domain take turns on this host."""
    desired = desired_from_params(module.params)
    client = module.client(events=True)
    ops = DiskOps(client)
    domain = ops.domain(desired.domain)
    uri = client.canonical_uri
    with host_lock('the disks of domain %s' % domain.name(), (uri, 'domain', domain.UUIDString())):
        source = ops.source(desired)
        # then the source's own lock (the one storage_volume takes) and those of the files under
        # it: two domains attaching one volume at once, or a delete racing an attach, take turns.
        # Always domain, then source, then its chain in order: no two runs wait for each other.
        with contextlib.ExitStack() as locks:
            locks.enter_context(host_lock(source.label, source_lock(uri, source)))
            for path in sorted(source.chain):
                locks.enter_context(host_lock(path, (uri, 'path', path)))
            _run_locked(module, desired, ops, domain, ops.source(desired))


def source_lock(uri, source):
    if source.pool and source.volume:
        return volume_lock(uri, source.pool, source.volume)
    if source.network is not None:
        return (uri, 'network', source.network.protocol, source.network.name)
    return (uri, 'path', source.real_path or source.path)


def _run_locked(module, desired, ops, domain, source):
    """Observe, plan, apply (unless check mode) and report, holding the locks."""
    plan, disk = change_disk(module, desired, ops, domain, source)
    module.exit_plan(plan, disk=disk)


def change_disk(module, desired, ops, domain, source, head=None, prior=None):
    """Observe, plan and apply (unless check mode) the disk of `source`; returns (plan,
    disk). `head` is a plan of steps that must run first, in the same run and rollback
    (direct_lun's CHAP secret); `prior` one already applied, named in a failure's actions."""
    observed = ops.observe(domain, secure=True)
    users, chain_users = ops.users(source) if desired.state == 'present' else ([], [])
    plan = plan_disk(desired, observed, source, users, chain_users)
    if head is not None:
        plan.actions[:0] = head.actions
        plan.warnings[:0] = head.warnings
    before = find_disks(observed, source)
    module.apply(plan, ops, prior=prior)
    if module.check_mode:
        after, view_domain = plan.predicted, _predicted_domain(observed, before, plan)
    else:
        view_domain = ops.observe(domain) if plan.changed else observed
        after = find_disks(view_domain, source)
    plan.diff = []
    if plan.changed:
        plan.diff = list((head.diff or []) if head is not None else []) + _diff_entries(
            observed.name, before, after, plan.boot, plan.controller)
    return plan, describe_disk(view_domain, after, source)


def _predicted_domain(observed, before, plan):
    """The observed domain as check mode expects it after the plan: the disk in its place in
    each view, and the definition's boot order rewritten when the plan does that."""
    views = {}
    for name, view in observed.views:
        old, new = before.get(name), plan.predicted.get(name)
        disks = list(view.disks)
        if old is not None:
            index = disks.index(old)
            disks[index:index + 1] = [new] if new is not None else []
        elif new is not None:
            disks.insert(_domain.insert_position(view, new.bus, new.target), new)  # where libvirt puts it
        legacy, device_boot = view.legacy_boot, view.device_boot
        if name == 'config' and plan.rewrite is not None:
            targets = set(disk.target for disk in disks)
            disks = [disk if disk is new else dataclasses.replace(disk, boot_order=plan.rewrite.get(disk.target))
                     for disk in disks]
            legacy = ()
            device_boot = tuple((label, order) for label, order in plan.rewrite.items() if label not in targets)
        views[name] = dataclasses.replace(view, disks=tuple(disks), legacy_boot=legacy, device_boot=device_boot)
    return dataclasses.replace(observed, **views)


# ---------------------------------------------------------------------------------------
# vm_disk_info
def list_disks(client, domain_name):
    """(disks, root, domain facts) of vm_disk_info: both views merged by source."""
    ops = DiskOps(client)
    domain = ops.domain(domain_name)
    observed = ops.observe(domain)
    merged = []
    for name, view in observed.views:
        for disk in view.disks:
            # the same source may be attached twice: pair it with an entry still lacking this view,
            # at the same target when there is one
            free = [item for item in merged if name not in item and _same_disk(item.get(_other(name)), disk)]
            entry = next((item for item in free if item[_other(name)].target == disk.target), None) or \
                next(iter(free), None)
            if entry is None:
                entry = {}
                merged.append(entry)
            entry[name] = disk
    disks = []
    for entry in merged:
        source = _known_source(client, entry.get('config') or entry.get('live'))
        described = describe_disk(observed, entry, source)
        described['drift'] = _drift(observed, entry)
        disks.append(described)
    disks.sort(key=lambda item: (item['target'] or ''))
    root = observed.root()
    view = observed.config if observed.config is not None else observed.live
    facts = {'name': observed.name, 'uuid': observed.uuid, 'running': observed.running,
             'persistent': observed.persistent, 'legacy_boot': list(view.legacy_boot) if view is not None else []}
    return disks, root.target if root is not None else None, facts


def _other(name):
    return 'live' if name == 'config' else 'config'


def _same_disk(one, other):
    if one is None:
        return False
    if one.network is not None or other.network is not None:
        return one.network is not None and other.network is not None and (
            one.network.protocol, one.network.name) == (other.network.protocol, other.network.name)
    if one.pool and one.volume and (one.pool, one.volume) == (other.pool, other.volume):
        return True
    if one.real_path or other.real_path:
        return bool(one.real_path) and one.real_path == other.real_path
    return one.target == other.target  # empty cdroms and the like: the same slot


def _known_source(client, disk):
    """The volume behind a disk, when it is one: key and pool/name for the result."""
    if disk.type == 'volume' and disk.pool and disk.volume:
        found = volume_behind(client, pool_name=disk.pool, name=disk.volume)
    else:
        found = volume_behind(client, path=disk.path)
    if found is None:
        return None
    pool_name, volume = found
    observed = parse_volume(client.volume_xml(volume), pool_name)
    return DiskSource(kind='volume', format=observed.effective_format or 'raw', pool=pool_name, volume=observed.name,
                      key=observed.key, path=observed.path)


def _drift(observed, entry):
    """The fields in which the running domain differs from its definition."""
    if not observed.running or not observed.persistent:
        return []
    config, live = entry.get('config'), entry.get('live')
    if config is None:
        return ['only in the running domain']
    if live is None:
        return ['only in the definition']
    fields = ('target', 'bus', 'device', 'format') + _domain.TUNABLES
    drift = [name for name in fields
             if (running_cache(config) if name == 'cache' else getattr(config, name)) != getattr(live, name)]
    if 'format' in drift and (not config.format or not live.format or not (config.path or config.pool or config.network)):
        drift.remove('format')  # an empty drive's running view names no driver type
    if not observed.config.legacy_boot and not observed.live.legacy_boot:
        # a running view under <os><boot dev> lists hot-plugged disks by bus, not boot order: no guide
        if observed.config.boot_orders().get(config.target) != observed.live.boot_orders().get(live.target):
            drift.append('boot_order')
    return drift


def run_vm_disk_info_module(module):
    disks, root, facts = list_disks(module.client(), validate_name(module.params['domain'], 'domain name'))
    module.exit_info(disks=disks, root=root, domain=facts)
