# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""direct_lun and direct_lun_info: iSCSI targets on a host, their LUNs by WWID, and raw
LUNs handed to domains.

Two transports. `kernel`: the host's initiator, driven through the one iscsiadm runner;
LUNs are the SCSI devices sysfs shows for the session, named by their udev links.
`qemu`: no host login; LUNs are read through libiscsi (what QEMU's initiator uses) and
domains get libvirt network disks whose CHAP password is a libvirt secret.

A LUN is attached through vm_disk's own planner (`_disk.change_disk`): one attach path.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses
import os
import re
from typing import Optional

from ansible_collections.virtops.storage.plugins.module_utils import _domain, _libiscsi, _scsi, _secrets, _xml
from ansible_collections.virtops.storage.plugins.module_utils._disk import (
    DesiredDisk, DiskOps, DiskSource, LIVE_CHOICES, MAX_BOOT_ORDER, MAX_UNPLUG_TIMEOUT, change_disk, check_device,
    _uses_text, find_disks, source_lock, views_in_scope)
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._hostscsi import HostTree
from ansible_collections.virtops.storage.plugins.module_utils._iscsiadm import Iscsiadm, normal_portal, portal_addresses
from ansible_collections.virtops.storage.plugins.module_utils._locks import host_lock
from ansible_collections.virtops.storage.plugins.module_utils._pool import parse_definition
from ansible_collections.virtops.storage.plugins.module_utils._names import validate_name
from ansible_collections.virtops.storage.plugins.module_utils._runner import Plan, Action
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex

SECRET_PREFIX = 'virtops.storage/direct_lun/'
QEMU_INITIATOR = 'iqn.2008-11.org.linux-kvm'  # QEMU's own default initiator name
IQN_RE = re.compile(r'(iqn\.\d{4}-\d{2}\.[^\s/]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})\Z')
WWID_RE = re.compile(r'[1238][\x21-\x7e]+\Z')
DEFAULT_DEVICE_TIMEOUT = 30
PASSWORD_KEY = 'node.session.auth.password'


@dataclasses.dataclass
class Lun:
    """One LUN of a target as this host's transport sees it."""
    wwid: Optional[str]
    lun: int
    target: str
    portal: str
    size: Optional[int] = None
    vendor: Optional[str] = None
    model: Optional[str] = None
    serial: Optional[str] = None
    path: Optional[str] = None  # kernel: /dev/mapper/<wwid> or the /dev/disk/by-id link
    source: Optional[str] = None  # qemu: iscsi://host:port/iqn/lun
    block: Optional[str] = None  # kernel: sdX
    multipath: Optional[str] = None  # kernel: dm-N of its multipath map
    real_paths: tuple = ()
    used_by: list = dataclasses.field(default_factory=list)
    uses: list = dataclasses.field(default_factory=list)  # DiskUse records, through either transport
    device_uses: list = dataclasses.field(default_factory=list)  # those through this host's device files
    host_uses: list = dataclasses.field(default_factory=list)  # kernel: mounts, swap, LVM, device-mapper
    pools: list = dataclasses.field(default_factory=list)  # libvirt pools built on it or on its target
    own_session_pools: list = dataclasses.field(default_factory=list)  # those of them (iscsi-direct) with their
    # own iSCSI session, which a host logout does not touch
    gone: bool = False  # named for a detach, no longer visible on the host

    @property
    def in_pool(self):
        """Why the host itself holds the LUN (empty when it does not)."""
        return self.host_uses + self.pools

    def as_dict(self, transport):
        result = {'wwid': self.wwid, 'lun': self.lun, 'target': self.target, 'portal': self.portal,
                  'size': self.size, 'vendor': self.vendor, 'model': self.model, 'serial': self.serial,
                  'used_by': list(self.used_by), 'in_pool': bool(self.in_pool), 'held_by': list(self.in_pool)}
        if transport == 'kernel':
            result['path'] = self.path
        else:
            result['source'] = self.source
        return result


@dataclasses.dataclass
class DesiredLun:
    portal: Optional[str]
    transport: str = 'kernel'
    target: Optional[str] = None
    state: str = 'present'
    username: Optional[str] = None
    password: Optional[str] = None
    discovery_username: Optional[str] = None
    discovery_password: Optional[str] = None
    node_startup: str = 'automatic'
    initiator_name: Optional[str] = None
    wwid: Optional[str] = None
    lun: Optional[int] = None
    domain: Optional[str] = None
    attached: bool = True
    device_timeout: float = DEFAULT_DEVICE_TIMEOUT
    rescan: bool = False
    disk: Optional[DesiredDisk] = None

    @property
    def initiator(self):
        return self.initiator_name or QEMU_INITIATOR


def _auth(params, name):
    auth = params.get(name)
    if not auth:
        return None, None
    username, password = auth.get('username'), auth.get('password')
    if not username or password is None or password == '':
        raise StorageError('INVALID_ARGUMENT', '%s needs both username and password' % name)
    for value, what in ((username, 'username'), (password, 'password')):
        if '\0' in value or '\n' in value:
            raise StorageError('INVALID_ARGUMENT', '%s.%s must not contain NUL or newline characters' % (name, what))
    return username, password


def desired_from_params(params, info=False):
    """DesiredLun from module parameters, with every check that needs no host."""
    desired = DesiredLun(portal=params.get('portal'), transport=params.get('transport') or 'kernel',
                         target=params.get('target'), state=params.get('state') or 'present')
    desired.username, desired.password = _auth(params, 'auth')
    if desired.portal is not None:
        if '\0' in desired.portal:
            raise StorageError('INVALID_ARGUMENT', 'portal must not contain a NUL character')
        _libiscsi.split_portal(desired.portal)
        desired.portal = normal_portal(desired.portal.strip())
    elif not info or desired.transport == 'qemu':
        raise StorageError('INVALID_ARGUMENT', 'portal is required%s' % (
            ' with transport: qemu (there are no host sessions to list)' if info else ''))
    if desired.target is not None and not IQN_RE.match(desired.target):
        raise StorageError('INVALID_ARGUMENT', 'target must be an iSCSI name (iqn.YYYY-MM.domain[:name], eui. or '
                                               'naa.), not %r' % desired.target)
    desired.initiator_name = params.get('initiator_name')
    if desired.initiator_name is not None:
        if desired.transport != 'qemu':
            raise StorageError('INVALID_ARGUMENT', 'initiator_name is the name QEMU presents (transport: qemu); the '
                                                   'kernel initiator keeps its name in /etc/iscsi/initiatorname.iscsi '
                                                   '(the direct_lun_host role sets it)')
        if not IQN_RE.match(desired.initiator_name):
            raise StorageError('INVALID_ARGUMENT', 'initiator_name must be an iSCSI name (iqn.YYYY-MM.domain[:name]), '
                                                   'not %r' % desired.initiator_name)
    desired.discovery_username, desired.discovery_password = _auth(params, 'discovery_auth')
    if info:
        return desired
    desired.node_startup = params.get('node_startup') or 'automatic'
    desired.wwid = params.get('wwid')
    desired.lun = params.get('lun')
    desired.domain = params.get('domain')
    desired.attached = params.get('attached') if params.get('attached') is not None else True
    if params.get('device_timeout') is not None:
        desired.device_timeout = params['device_timeout']
    desired.rescan = bool(params.get('rescan'))
    if not 0 <= desired.device_timeout <= 3600:
        raise StorageError('INVALID_ARGUMENT', 'device_timeout must be from 0 to 3600 seconds')
    if desired.wwid is not None:
        desired.wwid = desired.wwid.strip()
        if desired.wwid[:1] in ('2', '3'):  # hex: udev prints it in lowercase
            desired.wwid = desired.wwid.lower()
        if not WWID_RE.match(desired.wwid):
            raise StorageError('INVALID_ARGUMENT', 'wwid %r is not a WWID as udev and multipath show it ("3" + NAA '
                                                   'hex, "2" + EUI-64, "1" + T10 vendor id, "8" + SCSI name)'
                               % params.get('wwid'))
    if desired.wwid is not None and desired.lun is not None:
        raise StorageError('INVALID_ARGUMENT', 'name the LUN by wwid or by lun, not both')
    if desired.lun is not None and not 0 <= desired.lun <= 0xffff:
        raise StorageError('INVALID_ARGUMENT', 'lun must be a LUN number from 0 to 65535 (as libiscsi, QEMU and Linux '
                                               'number them: flat LUN 256 is 16640)')
    if desired.lun is not None and desired.domain is None:
        raise StorageError('INVALID_ARGUMENT', 'lun names the LUN to attach: it needs domain')
    if desired.domain is not None:
        validate_name(desired.domain, 'domain name')
        if desired.wwid is None and desired.lun is None:
            raise StorageError('INVALID_ARGUMENT', 'domain needs the LUN to attach: wwid or lun')
        if desired.state == 'absent':
            raise StorageError('INVALID_ARGUMENT', 'state: absent logs out of the target; to take a LUN away from a '
                                                   'domain use attached: false with state: present')
        desired.disk = _desired_disk(params, desired)
    elif params.get('attached') is False:
        raise StorageError('INVALID_ARGUMENT', 'attached: false detaches a LUN from a domain: it needs domain')
    return desired


def _desired_disk(params, desired):
    live = LIVE_CHOICES.get(str(params.get('live', 'auto')).lower())
    if live is None:
        raise StorageError('INVALID_ARGUMENT', 'live must be auto, true or false, not %r' % params.get('live'))
    disk = DesiredDisk(domain=desired.domain, state='present' if desired.attached else 'absent',
                       bus=params.get('bus'), device=params.get('device'), readonly=params.get('readonly'),
                       shareable=params.get('shareable'), boot_order=params.get('boot_order'),
                       error_policy=params.get('error_policy'), live=live,
                       persistent=params.get('persistent') if params.get('persistent') is not None else True,
                       unplug_timeout=params.get('unplug_timeout') if params.get('unplug_timeout') is not None
                       else 30)
    if desired.attached:  # the SPEC's defaults for a LUN; a detach keeps whatever is there
        disk.bus = disk.bus or 'scsi'
        disk.device = disk.device or 'lun'
    if disk.boot_order is not None and not 1 <= disk.boot_order <= MAX_BOOT_ORDER:
        raise StorageError('INVALID_ARGUMENT', 'boot_order must be from 1 to %d' % MAX_BOOT_ORDER)
    if not 0 <= disk.unplug_timeout <= MAX_UNPLUG_TIMEOUT:
        raise StorageError('INVALID_ARGUMENT', 'unplug_timeout must be a number of seconds from 0 to %d'
                           % MAX_UNPLUG_TIMEOUT)
    if disk.device == 'cdrom':
        raise StorageError('INVALID_ARGUMENT', 'a LUN is attached as device lun (SCSI passthrough) or disk')
    check_device(disk.device, disk.bus, None, disk.readonly)
    return disk


def secret_usage(target):
    """The usage name of the libvirt secret that holds a target's CHAP password."""
    return SECRET_PREFIX + target


# ---------------------------------------------------------------------------------------
# qemu transport: libiscsi
class QemuTransport(object):
    """Targets and LUNs through user-space iSCSI; nothing on the host changes."""

    name = 'qemu'

    def __init__(self, desired):
        self.desired = desired

    @staticmethod
    def host_tree():
        """The host's own SCSI view: a LUN the host also reaches through its initiator."""
        return HostTree()

    def targets(self):
        desired = self.desired
        if desired.target is not None:
            return [desired.target]
        with _libiscsi.Connection(desired.portal, desired.initiator, username=desired.discovery_username,
                                  password=desired.discovery_password) as connection:
            return [name for name, _portals in connection.discover()]

    def luns(self, target):
        desired = self.desired
        host, port = _libiscsi.split_portal(desired.portal)
        found = []
        with _libiscsi.Connection(desired.portal, desired.initiator, target, desired.username,
                                  desired.password) as connection:
            for number in _scsi.report_luns(connection.report_luns()):
                answer = connection.inquiry(number)
                if answer is None:
                    raise StorageError('ISCSI_LOGIN_FAILED', '%s LUN %d refused INQUIRY' % (target, number))
                kind, vendor, model, _revision = _scsi.standard_inquiry(answer)
                if kind not in _scsi.DISK_TYPES:
                    continue  # the controller LUN and other non-disks are nothing to hand a VM
                page83 = connection.inquiry(number, 0x83) or b''
                page80 = connection.inquiry(number, 0x80) or b''
                address = '[%s]' % host if ':' in host else host
                found.append(Lun(wwid=_scsi.wwid_from_page83(page83), lun=number, target=target,
                                 portal=desired.portal, size=_scsi.capacity16(connection.read_capacity16(number) or b''),
                                 vendor=vendor, model=model, serial=_scsi.serial_from_page80(page80),
                                 source='iscsi://%s:%d/%s/%d' % (address, port, target, number)))
        return found

    def disk_source(self, lun):
        desired = self.desired
        host, port = _libiscsi.split_portal(desired.portal)
        network = _domain.NetworkSource(
            protocol='iscsi', name='%s/%d' % (lun.target, lun.lun), hosts=((host, str(port)),),
            username=desired.username, secret_type='iscsi' if desired.username else None,
            secret_usage=secret_usage(lun.target) if desired.username else None,
            initiator=desired.initiator)  # the name the LUNs were read with: what the target's ACLs saw
        return DiskSource(kind='network', format='raw', network=network, block=True, in_use_code='LUN_IN_USE')


# ---------------------------------------------------------------------------------------
# kernel transport: iscsiadm and sysfs
class KernelTransport(object):
    """The host's initiator (iscsiadm) and the SCSI devices its sessions bring."""

    name = 'kernel'

    def __init__(self, desired, iscsiadm, tree, settle=None):
        self.desired = desired
        self.iscsiadm = iscsiadm
        self.tree = tree
        self.settle = settle
        self.addresses = portal_addresses(desired.portal) if desired.portal else None

    def host_tree(self):
        return self.tree

    def at_portal(self, portal):
        """Whether a record's or session's portal is the one asked for (by name or address)."""
        return self.addresses is None or normal_portal(portal) in self.addresses

    def session_of(self, target, sessions=None):
        for session in sessions if sessions is not None else self.iscsiadm.sessions():
            if session.target == target and self.at_portal(session.portal):
                return session
        return None

    def luns(self, session, wait=False):
        if wait:
            found, complete = self.tree.wait_for_devices(session.sid, self.desired.device_timeout, self.settle)
        else:
            found, complete = self.tree.session_luns(session.sid), True
        luns = []
        for item in found:
            if item.type not in _scsi.DISK_TYPES:
                continue
            lun = Lun(wwid=item.wwid, lun=item.lun, target=session.target, portal=normal_portal(session.portal),
                      size=item.size, vendor=item.vendor, model=item.model, serial=item.serial, path=item.path,
                      block=item.block, multipath=item.multipath, real_paths=tuple(sorted(self.tree.real_paths(item))))
            lun.host_uses = self.tree.host_uses(item)
            luns.append(lun)
        return luns, complete

    def disk_source(self, lun):
        if lun.gone:
            # every name this collection attaches the LUN by; the disk is found by any of them
            naa = _scsi.naa_of(lun.wwid)
            names = [self.tree.path('dev/mapper', lun.wwid), self.tree.path('dev/disk/by-id', 'scsi-' + lun.wwid)]
            names += [name for name in self.tree.maps_of(lun.wwid) if name not in names]  # friendly map names
            if naa:
                names.insert(0, self.tree.path('dev/disk/by-id', 'wwn-0x' + naa))
            return DiskSource(kind='block', format='raw', path=names[0], real_path=names[0], block=True,
                              in_use_code='LUN_IN_USE', aliases=tuple(names[1:]), stable_id='wwid:' + lun.wwid)
        if lun.path is None:
            raise StorageError('LUN_NOT_FOUND', 'LUN %s (%s LUN %d) has no udev name yet (no /dev/disk/by-id or '
                                                '/dev/mapper link); a VM disk never points at /dev/%s. Wait for udev '
                                                'or raise device_timeout' % (lun.wwid, lun.target, lun.lun, lun.block))
        return DiskSource(kind='block', format='raw', path=lun.path, real_path=os.path.realpath(lun.path), block=True,
                          in_use_code='LUN_IN_USE', stable_id='wwid:%s' % lun.wwid if lun.wwid else None)


# ---------------------------------------------------------------------------------------
# who uses a LUN
def annotate(client, luns, index=None, host=None):
    """Fill used_by (domains whose disks read the LUN, through either transport: a network
    disk of its target and number, or any device file of its WWID on this host) and pools
    (libvirt pools built on it or its target). `host` (a HostTree) also lends a qemu LUN the
    host uses of a kernel device with its WWID."""
    index = index or UsageIndex.build(client)
    pools = _pool_sources(client)
    by_wwid = host.devices_by_wwid() if host is not None else {}
    for lun in luns:
        uses = index.network_users('iscsi', '%s/%d' % (lun.target, lun.lun))
        paths = set(lun.real_paths)
        for item in by_wwid.get(lun.wwid, []) if lun.wwid else []:
            paths.update(host.real_paths(item))
            if not lun.real_paths:  # the qemu transport: the host holds the same LUN through its initiator
                lun.host_uses = sorted(set(lun.host_uses) | set(host.host_uses(item)))
        lun.device_uses = [use for path in sorted(paths) for use in index.users(path=path)]
        uses.extend(lun.device_uses)
        seen = set()
        lun.uses = [use for use in uses if not ((use.domain, use.target) in seen or seen.add((use.domain, use.target)))]
        lun.used_by = sorted(set(use.domain for use in lun.uses))
        lun.pools = []
        lun.own_session_pools = []
        for name, kind, devices, iqn in pools:
            if iqn == lun.target and kind in ('iscsi', 'iscsi-direct'):
                lun.pools.append('libvirt pool %s (%s of the whole target)' % (name, kind))
                if kind == 'iscsi-direct':
                    lun.own_session_pools.append(lun.pools[-1])
            elif set(devices) & paths:
                lun.pools.append('libvirt pool %s (%s)' % (name, kind))
    return luns


def _pool_sources(client):
    """(name, type, [resolved source device paths], source IQN) of every defined pool, read
    with storage_pool's own parser."""
    found = []
    for pool in client.list_pools():
        xml = client.pool_xml(pool, inactive=True, missing_ok=True)
        if xml is None:
            continue
        definition = parse_definition(_xml.parse(xml, 'pool XML'))
        devices = [os.path.realpath(path) for path in definition.source.devices
                   if path and path.startswith('/') and client.is_local]
        found.append((pool.name(), definition.type, devices, definition.source.iqn))
    return found


def pick_lun(desired, luns):
    """The LUN the run names (wwid, or lun number of the one target); LUN_NOT_FOUND lists
    the WWIDs that are visible."""
    if desired.wwid is not None:
        match = [lun for lun in luns if lun.wwid == desired.wwid]
    else:
        targets = sorted(set(lun.target for lun in luns))
        if len(targets) > 1:
            raise StorageError('INVALID_ARGUMENT', 'lun %d is ambiguous: the portal has several targets (%s); name the '
                                                   'target, or the LUN by wwid' % (desired.lun, ', '.join(targets)))
        match = [lun for lun in luns if lun.lun == desired.lun]
    if not match:
        visible = ', '.join('%s (%s LUN %d)' % (lun.wwid, lun.target, lun.lun) for lun in luns) or 'none'
        raise StorageError('LUN_NOT_FOUND', '%s is not visible at %s%s; visible LUNs: %s' % (
            'WWID %s' % desired.wwid if desired.wwid else 'LUN %d' % desired.lun, desired.portal,
            ' target %s' % desired.target if desired.target else '', visible),
            visible_wwids=[lun.wwid for lun in luns])
    return match[0]


def refuse_held(luns, what, logout=False):
    """LUN_IN_POOL when the host itself uses one of the LUNs. A logout leaves alone the
    iscsi-direct pools, which reach the target through libvirt's own session."""
    for lun in luns:
        held = [reason for reason in lun.in_pool if not (logout and reason in lun.own_session_pools)]
        if held:
            raise StorageError('LUN_IN_POOL', 'LUN %s (%s LUN %d) is in use on the host: %s; %s would take it away '
                                              'from under it' % (lun.wwid, lun.target, lun.lun,
                                                                 '; '.join(held), what))


# ---------------------------------------------------------------------------------------
# the steps
class LunOps(DiskOps):
    """vm_disk's steps plus the host side of a direct LUN."""

    def __init__(self, client, iscsiadm=None, tree=None, run=None):
        super(LunOps, self).__init__(client)
        self.iscsiadm = iscsiadm
        self.tree = tree
        self._run = run
        self.lun_uses = None

    def users(self, source):
        """The domains that read the LUN through either transport (annotate found them),
        not only those naming this very disk source."""
        if self.lun_uses is None:
            return super(LunOps, self).users(source)
        return list(self.lun_uses), []

    # qemu: the CHAP secret
    def store_chap(self, target, password):
        existing = _secrets.observe_secret(self.client, 'iscsi', secret_usage(target))
        _secrets.store_secret(self.client, 'iscsi', secret_usage(target), 'CHAP password of iSCSI target %s' % target,
                              password, uuid=existing.uuid if existing is not None else None)

    def remove_chap(self, target):
        _secrets.remove_secret(self.client, 'iscsi', secret_usage(target))

    # kernel: iscsiadm and sysfs
    def discover(self, portal, with_record=False):
        self.iscsiadm.discover(portal, with_record=with_record)

    def new_discovery_record(self, portal):
        self.iscsiadm.new_discovery_record(portal)

    def set_discovery(self, portal, name, value):
        self.iscsiadm.update_discovery_record(portal, name, value)

    def set_node(self, target, portal, name, value):
        self.iscsiadm.update_node(target, portal, name, value)

    def login(self, target, portal):
        self.iscsiadm.login(target, portal)

    def logout(self, target, portal):
        self.iscsiadm.logout(target, portal)

    def delete_node(self, target, portal):
        self.iscsiadm.delete_node(target, portal)

    def delete_discovery_record(self, portal):
        self.iscsiadm.delete_discovery_record(portal)

    def rescan(self, sid):
        self.iscsiadm.rescan(sid)

    def flush_multipath(self, name):
        """Flush the multipath map by its own name (a WWID, or a friendly name or alias)."""
        rc, out, err = self._run(['multipath', '-f', name])
        if rc != 0:
            raise StorageError('LUN_IN_USE', 'multipath -f %s exited %d: %s; the map is still open (a holder or '
                                             'a mount uses it)' % (name, rc, (err or out).strip()))

    def delete_device(self, block):
        try:
            self.tree.delete_device(block)
        except (IOError, OSError) as exc:
            raise StorageError('LUN_IN_USE', 'cannot remove SCSI device %s: %s' % (block, exc))


# ---------------------------------------------------------------------------------------
# the module flows
def _command_runner(module):
    def run(args):
        binary = module.get_bin_path(args[0])
        if binary is None:
            raise StorageError('INVALID_ARGUMENT', '%s is not installed on this host (package open-iscsi%s); the '
                                                   'direct_lun_host role installs it' % (
                                                       args[0], ', multipath-tools' if args[0] == 'multipath' else ''))
        return module.run_command([binary] + list(args[1:]), environ_update={'LC_ALL': 'C'})
    return run


def _settler(module):
    udevadm = module.get_bin_path('udevadm')
    if udevadm is None:
        return None

    def settle():
        module.run_command([udevadm, 'settle', '--timeout=5'])
    return settle


def _transport(module, desired):
    if desired.transport == 'qemu':
        return QemuTransport(desired), None
    run = _command_runner(module)
    iscsiadm = Iscsiadm(run)
    return KernelTransport(desired, iscsiadm, HostTree(), _settler(module)), run


def _sessions_result(transport, sessions):
    return [{'target': target, 'portal': portal, 'transport': transport} for target, portal in sessions]


def run_direct_lun_module(module):
    desired = desired_from_params(module.params)
    client = module.client(events=desired.disk is not None)
    transport, run = _transport(module, desired)
    ops = LunOps(client, getattr(transport, 'iscsiadm', None), getattr(transport, 'tree', None), run)
    if desired.disk is not None:
        # what needs no LUN is refused before the host logs in to anything
        views_in_scope(desired.disk, ops.observe(ops.domain(desired.disk.domain)))
    # one lock per portal (by address, however the task names it): logins, logouts, records and
    # secrets of one portal change in one run at a time
    lock = (client.canonical_uri, 'iscsi', sorted(portal_addresses(desired.portal))[0])
    with host_lock('iSCSI portal %s' % desired.portal, lock):
        if desired.transport == 'qemu':
            _run_qemu(module, desired, transport, ops)
        else:
            _run_kernel(module, desired, transport, ops)


def _finish(module, desired, ops, transport, luns, sessions, head, prior=None):
    """Attach/detach the named LUN (when a domain is given) through vm_disk's planner, or
    check that the named WWID is visible; then report. A refusal after steps this run
    already took (a login) still reports them, and that the run changed something."""
    try:
        _finish_steps(module, desired, ops, transport, luns, sessions, head, prior)
    except StorageError as err:
        if prior is not None and prior.actions and 'actions' not in err.details:
            err.details['actions'] = prior.descriptions
            err.details['changed'] = prior.changed
        raise


def _finish_steps(module, desired, ops, transport, luns, sessions, head, prior):
    annotate(ops.client, luns, host=transport.host_tree() if ops.client.is_local else None)
    result = {'sessions': _sessions_result(transport.name, sessions)}
    if desired.wwid is not None and desired.domain is None:
        pick_lun(desired, luns)  # asserting a LUN is visible is a question worth an answer
    if desired.disk is None:
        head.diff = head.diff or []
        module.apply(head, ops, prior=prior)
        plan = _merged(prior, head)
        result['luns'] = [lun.as_dict(transport.name) for lun in luns]
        module.exit_plan(plan, **result)
    lun = _lun_to_change(desired, transport, luns)
    if desired.attached:
        refuse_held([lun], 'attaching it to a domain')
    source = transport.disk_source(lun)
    ops.lun_uses = lun.uses  # every domain that reads this LUN, through either transport
    domain = ops.domain(desired.disk.domain)
    with host_lock('the disks of domain %s' % domain.name(), (ops.client.canonical_uri, 'domain',
                                                              domain.UUIDString())):
        with host_lock(source.label, source_lock(ops.client.canonical_uri, source)):
            if desired.attached:
                _refuse_other_connection(ops.observe(domain), source, lun)
            plan, disk = change_disk(module, desired.disk, ops, domain, source, head=head, prior=prior)
    if plan.changed and not module.check_mode:
        annotate(ops.client, luns, host=transport.host_tree() if ops.client.is_local else None)
    result['luns'] = [item.as_dict(transport.name) for item in luns]
    if disk is not None:
        disk['wwid'] = lun.wwid
    result['disk'] = disk
    module.exit_plan(_merged(prior, plan), **result)


def _lun_to_change(desired, transport, luns):
    """The LUN the run attaches or detaches. A detach by WWID of a LUN that is no longer
    visible (gone from the array, or udev dropped it) still finds its disk by the names the
    kernel transport attaches it by."""
    try:
        lun = pick_lun(desired, luns)
        if not desired.attached and transport.name == 'kernel' and lun.path is None and lun.wwid:
            return dataclasses.replace(lun, gone=True)  # no udev name (yet): find its disk by every name
        return lun
    except StorageError as err:
        if err.code != 'LUN_NOT_FOUND' or desired.attached or desired.wwid is None or transport.name != 'kernel':
            raise
        return Lun(wwid=desired.wwid, lun=-1, target=desired.target or '', portal=desired.portal, gone=True)


def _refuse_other_connection(observed, source, lun):
    """A LUN's network disk already attached with another portal, CHAP user or initiator is
    not silently kept (the VM would keep using the old connection), and a domain that has the
    LUN through the other transport does not get it twice: detach it first."""
    if not find_disks(observed, source):
        other = [use for use in lun.uses if use.domain == observed.name]
        if other:
            raise StorageError('TARGET_MISMATCH', 'domain %s already has LUN %s as disk %s (through the other '
                                                  'transport or another device name); two disks of one LUN in a guest '
                                                  'is no attach: detach that one first'
                               % (observed.name, lun.wwid, other[0].target))
    if source.network is None:
        return
    wanted = source.network
    for name, view in observed.views:
        for disk in view.disks:
            have = disk.network
            if have is None or (have.protocol, have.name) != (wanted.protocol, wanted.name):
                continue
            # a disk without <initiator> connects as QEMU's default name: the same as ours when none is asked
            initiator = have.initiator or (wanted.initiator if wanted.initiator == QEMU_INITIATOR else None)
            differs = [label for label, mine, theirs in (
                ('portal', wanted.hosts, have.hosts), ('CHAP user', wanted.username, have.username),
                ('secret', wanted.secret_usage, have.secret_usage), ('initiator', wanted.initiator, initiator))
                if mine != theirs]
            if differs:
                raise StorageError('TARGET_MISMATCH', 'disk %s of %s already reads %s with another %s; detach it '
                                                      '(attached: false) and attach it again to change how it connects'
                                   % (disk.target, observed.name, wanted.name, ', '.join(differs)))


def _merged(prior, plan):
    if prior is None:
        return plan
    merged = Plan()
    merged.actions = list(prior.actions) + list(plan.actions)
    merged.warnings = list(prior.warnings) + list(plan.warnings)
    merged.diff = list(prior.diff or []) + list(plan.diff or [])
    merged.extra = dict(prior.extra, **plan.extra)
    return merged


def _secret_diff(target, username, state):
    header = 'libvirt secret %s' % secret_usage(target)
    text = 'CHAP password of %s for user %s (%s)\n' % (target, username, state) if username else ''
    return {'before_header': header, 'after_header': header, 'before': '' if state != 'removed' else 'CHAP password\n',
            'after': text}


# qemu ----------------------------------------------------------------------------------
def _run_qemu(module, desired, transport, ops):
    client = ops.client
    head = Plan()
    head.diff = []
    if desired.state == 'absent':
        targets = transport.targets()
        index = UsageIndex.build(client)
        for target in targets:
            users = [use for name, use in index.network_uses('iscsi') if name.startswith(target + '/')]
            if users:
                raise StorageError('LUN_IN_USE', 'LUNs of %s are attached to %s; detach them first (attached: false)'
                                   % (target, ', '.join(sorted(set('%s (%s)' % (use.domain, use.target)
                                                                   for use in users)))),
                                   used_by=sorted(set(use.domain for use in users)))
            if _secrets.observe_secret(client, 'iscsi', secret_usage(target)) is not None:
                head.add('remove the CHAP secret of target %s' % target, 'remove_chap', (target,))
                head.diff.append(_secret_diff(target, None, 'removed'))
        module.apply(head, ops)
        module.exit_plan(head, sessions=[], luns=[])
    targets = transport.targets()
    luns = []
    for target in targets:
        luns.extend(transport.luns(target))  # proves reachability and the CHAP credentials
        if desired.username:
            secret = _secrets.observe_secret(client, 'iscsi', secret_usage(target), desired.password)
            if secret is None or not secret.matches:
                head.add('%s the CHAP secret of target %s' % ('store' if secret is None else 'update', target),
                         'store_chap', (target, desired.password),
                         undo=Action('remove the CHAP secret of target %s' % target, 'remove_chap', (target,))
                         if secret is None else None)
                head.diff.append(_secret_diff(target, desired.username, 'stored' if secret is None else 'updated'))
    _finish(module, desired, ops, transport, luns, [(target, desired.portal) for target in targets], head)


# kernel --------------------------------------------------------------------------------
def _run_kernel(module, desired, transport, ops):
    """The kernel transport; a refusal after steps already taken reports them."""
    taken = Plan()
    try:
        _run_kernel_steps(module, desired, transport, ops, taken)
    except StorageError as err:
        if taken.actions and 'actions' not in err.details:
            err.details['actions'] = taken.descriptions
            err.details['changed'] = taken.changed
        raise


def _run_kernel_steps(module, desired, transport, ops, taken):
    iscsiadm = transport.iscsiadm
    portal = desired.portal
    nodes = [node for node in iscsiadm.nodes() if transport.at_portal(node.portal)]
    known = set(node.target for node in nodes)
    sessions = iscsiadm.sessions()
    if desired.state == 'absent':
        return _kernel_absent(module, desired, transport, ops, nodes, sessions)
    discovery = Plan()
    discovery.diff = []
    targets = [desired.target] if desired.target else sorted(known)
    if desired.discovery_username:
        # discovery CHAP lives in the discoverydb record (plain discovery cannot carry it)
        _plan_discovery_auth(discovery, desired, iscsiadm, portal)
        module.apply(discovery, ops)
        taken.actions = list(discovery.actions)
    if desired.target is None or desired.target not in known:
        pending_auth = module.check_mode and discovery.changed
        if pending_auth:
            discovery.warnings.append('check mode cannot discover with discovery CHAP it has not stored yet; the '
                                      'targets shown are those asked for or already known')
            offered = [desired.target] if desired.target else sorted(known)
            with_record = True
        else:
            # a discovery that writes nothing: the portal answers, and offers what is asked for
            # through the discoverydb record when there is one: it holds the discovery CHAP
            with_record = bool(desired.discovery_username) or iscsiadm.discovery_settings(portal, False) is not None
            offered = [node.target for node in iscsiadm.discover(portal, persistent=False, with_record=with_record)]
        if desired.target is not None and desired.target not in offered:
            raise StorageError('ISCSI_LOGIN_FAILED', 'portal %s does not offer target %s (it offers: %s)'
                               % (portal, desired.target, ', '.join(offered) or 'nothing'))
        targets = [desired.target] if desired.target else sorted(offered)
        new = sorted(set(offered) - known)  # -o new writes a record for every target offered
        if new or pending_auth:
            steps = Plan()
            steps.add('discover the targets of portal %s (new: %s)' % (portal, ', '.join(new) or 'to be seen'),
                      'discover', (portal, with_record))
            steps.diff = [{'before_header': 'node records of %s' % portal, 'after_header': 'node records of %s' % portal,
                           'before': ''.join('%s\n' % name for name in sorted(known)),
                           'after': ''.join('%s\n' % name for name in sorted(known | set(new)))}]
            # the records first: what the node settings and the login below work on
            module.apply(steps, ops, prior=discovery)
            discovery = _merged(discovery, steps)
            taken.actions = list(discovery.actions)
            if not module.check_mode:
                nodes = [node for node in iscsiadm.nodes() if transport.at_portal(node.portal)]
                known = set(node.target for node in nodes)
    if desired.lun is not None and desired.target is None and len(targets) > 1:
        raise StorageError('INVALID_ARGUMENT', 'lun %d is ambiguous: portal %s offers several targets (%s); name the '
                                               'target, or the LUN by wwid' % (desired.lun, portal, ', '.join(targets)))
    # one plan per target: a login that fails puts back only that target's credentials
    per_target = []
    for target in targets:
        step = Plan()
        step.diff = []
        _plan_node(step, desired, iscsiadm, target, portal, target in known, transport.session_of(target, sessions))
        per_target.append(step)
    plan = Plan()
    plan.diff = []
    for step in per_target:
        plan = _merged(plan, step)
    if desired.disk is not None and module.check_mode and any(transport.session_of(t, sessions) is None
                                                              for t in targets):
        plan.warnings.append('check mode cannot see the LUNs of a target before logging in: the attach to %s is not '
                             'planned yet' % desired.disk.domain)
        module.exit_plan(_merged(discovery, plan), sessions=_sessions_result(
            'kernel', [(s.target, normal_portal(s.portal)) for s in sessions]), luns=[])
    # connect first: the LUNs exist on the host only after the login
    done = discovery
    for step in per_target:
        module.apply(step, ops, prior=done)
        done = _merged(done, step)
    taken.actions = list(done.actions)
    sessions = iscsiadm.sessions() if done.changed and not module.check_mode else sessions
    luns, connected = _session_luns(transport, targets, sessions, done)
    missing = (desired.wwid is not None or desired.lun is not None) and not _named(desired, luns)
    if (desired.rescan or missing) and connected:
        # a LUN added (or grown) on the target after the login shows up only after a rescan
        rescan = Plan()
        fresh = set(action.args[0] for action in plan.actions if action.method == 'login')
        for target, _portal in connected:
            session = transport.session_of(target, sessions)
            if target in fresh and not desired.rescan:
                continue  # the login has just scanned it
            rescan.add('rescan session %d of %s' % (session.sid, target), 'rescan', (session.sid,), changes=False)
        if module.check_mode and rescan.actions:
            done.warnings.append('check mode does not rescan sessions; LUNs added since the login are not shown')
        elif rescan.actions:
            module.apply(rescan, ops, prior=done)
            done = _merged(done, rescan)
            luns, connected = _session_luns(transport, targets, sessions, done)
    head = Plan()
    head.diff = []
    _finish(module, desired, ops, transport, luns, connected, head, prior=done)


def _plan_discovery_auth(plan, desired, iscsiadm, portal):
    """The discoverydb record's CHAP settings, compared with what is asked (password read
    with -S, never shown)."""
    settings = iscsiadm.discovery_settings(portal)
    if settings is None:
        plan.add('create the discovery record of %s' % portal, 'new_discovery_record', (portal,))
    for name, value in (('discovery.sendtargets.auth.authmethod', 'CHAP'),
                        ('discovery.sendtargets.auth.username', desired.discovery_username),
                        ('discovery.sendtargets.auth.password', desired.discovery_password)):
        current = (settings or {}).get(name)
        if current == value:
            continue
        secret = 'password' in name
        plan.add('set the discovery CHAP password of %s' % portal if secret else 'set %s = %s on the discovery '
                 'record of %s' % (name, value, portal), 'set_discovery', (portal, name, value))
        plan.diff.append({'before_header': 'discovery record %s' % portal, 'after_header': 'discovery record %s' % portal,
                          'before': '' if secret else '%s = %s\n' % (name, current or ''),
                          'after': 'CHAP password changed\n' if secret else '%s = %s\n' % (name, value)})


def _session_luns(transport, targets, sessions, plan):
    """(LUNs, [(target, portal)]) of the targets' sessions, waiting for udev."""
    luns, connected = [], []
    for target in targets:
        session = transport.session_of(target, sessions)
        if session is None:
            continue
        connected.append((target, normal_portal(session.portal)))
        found, complete = transport.luns(session, wait=True)
        if not complete:
            plan.warnings.append('udev did not name every LUN of %s within %s s; those LUNs show path null'
                                 % (target, transport.desired.device_timeout))
        luns.extend(found)
    return luns, connected


def _named(desired, luns):
    if desired.wwid is not None:
        return any(lun.wwid == desired.wwid for lun in luns)
    return any(lun.lun == desired.lun for lun in luns)


def _plan_node(plan, desired, iscsiadm, target, portal, known, session):
    """CHAP of the node record, the login, then node.startup: credentials that fail the login
    are put back as they were, and a record is made to log in at boot only once it did."""
    settings = iscsiadm.node_settings(target, portal, secrets=bool(desired.username)) if known else None
    credentials = []
    if desired.username:
        credentials = [('node.session.auth.authmethod', 'CHAP'), ('node.session.auth.username', desired.username),
                       (PASSWORD_KEY, desired.password)]
    for name, value in credentials:
        _plan_setting(plan, target, portal, settings, name, value, undo=session is None)
    if session is None:
        plan.add('log in to %s at %s' % (target, portal), 'login', (target, portal))
    elif desired.username and settings is not None and settings.get(PASSWORD_KEY) != desired.password:
        plan.warnings.append('the session to %s stays logged in with its old CHAP credentials; the new ones are used '
                             'at the next login' % target)
    _plan_setting(plan, target, portal, settings, 'node.startup', desired.node_startup)


# what a record without CHAP holds (open-iscsi's own defaults)
NO_CHAP = {'node.session.auth.authmethod': 'None', 'node.session.auth.username': '', PASSWORD_KEY: ''}


def _plan_setting(plan, target, portal, settings, name, value, undo=False):
    current = (settings or {}).get(name)
    if current == value:
        return
    back = None
    if undo:  # a failed login puts the credentials back (the record must not keep retrying them)
        old = current if current not in (None, '<empty>') else NO_CHAP.get(name, '')
        back = Action('put back %s of node %s' % ('the CHAP password' if name == PASSWORD_KEY else name, target),
                      'set_node', (target, portal, name, old))
    if name == PASSWORD_KEY:
        plan.add('set the CHAP password of node %s at %s' % (target, portal), 'set_node', (target, portal, name, value),
                 undo=back)
        plan.diff.append({'before_header': 'node %s' % target, 'after_header': 'node %s' % target,
                          'before': '', 'after': 'CHAP password changed\n'})
        return
    plan.add('set %s = %s on node %s at %s' % (name, value, target, portal), 'set_node', (target, portal, name, value),
             undo=back)
    plan.diff.append({'before_header': 'node %s' % target, 'after_header': 'node %s' % target,
                      'before': '%s = %s\n' % (name, current if current is not None else ''),
                      'after': '%s = %s\n' % (name, value)})


def _kernel_absent(module, desired, transport, ops, nodes, sessions):
    portal = desired.portal
    targets = [desired.target] if desired.target else sorted(set(node.target for node in nodes))
    plan = Plan()
    plan.diff = []
    all_luns = []
    steps = []
    for target in targets:
        session = transport.session_of(target, sessions)
        luns = transport.luns(session)[0] if session is not None else []
        all_luns.extend(luns)
        steps.append((target, session, luns))
    annotate(ops.client, all_luns, host=transport.tree)
    # a logout takes the host's devices away: what reads them (not QEMU's own sessions) stops it
    used = [lun for lun in all_luns if lun.device_uses]
    if used:
        raise StorageError('LUN_IN_USE', 'domains still use LUNs of %s: %s; detach them first (attached: false)' % (
            ', '.join(sorted(set(lun.target for lun in used))),
            '; '.join('%s: %s' % (lun.wwid, _uses_text(lun.device_uses)) for lun in used)),
            used_by=sorted(set(use.domain for lun in used for use in lun.device_uses)))
    refuse_held(all_luns, 'logging out', logout=True)
    if any(lun.multipath for lun in all_luns) and module.get_bin_path('multipath') is None:
        raise StorageError('INVALID_ARGUMENT', 'multipath owns LUNs of the target, and the multipath command that '
                                               'flushes its maps before the logout is not installed (multipath-tools)')
    leaving = set(lun.block for _target, _session, luns in steps for lun in luns if lun.block)
    for target, session, luns in steps:
        for lun in luns:
            if lun.multipath and not transport.tree.map_paths(lun.multipath) <= leaving:
                plan.warnings.append('multipath map %s keeps its paths through other sessions; only %s leaves it'
                                     % (transport.tree.map_name(lun.multipath) or lun.wwid, lun.block))
            elif lun.multipath:
                name = transport.tree.map_name(lun.multipath) or lun.wwid
                plan.add('flush multipath map %s' % (name if name == lun.wwid else '%s (%s)' % (name, lun.wwid)),
                         'flush_multipath', (name,))
            if lun.block:
                plan.add('remove SCSI device %s (%s LUN %d)' % (lun.block, target, lun.lun), 'delete_device',
                         (lun.block,))
        if session is not None:
            plan.add('log out of %s at %s' % (target, portal), 'logout', (target, portal))
        if any(node.target == target for node in nodes):
            plan.add('delete the node record of %s at %s' % (target, portal), 'delete_node', (target, portal))
            plan.diff.append({'before_header': 'node %s' % target, 'after_header': 'node %s' % target,
                              'before': '%s,%s\n' % (portal, target), 'after': ''})
    if desired.target is None and transport.iscsiadm.discovery_settings(portal, secrets=False) is not None:
        # open-iscsi deletes, with a discovery record, every node record found through it
        # (other portals of the same targets too): only when none of those would be left
        staying = _records_found_through(transport, portal, [target for target, _s, _l in steps])
        if staying:
            plan.warnings.append('the discovery record of %s stays: node records found through it remain (%s), and '
                                 'open-iscsi would delete them with it' % (portal, ', '.join(staying)))
        else:
            plan.add('delete the discovery record of %s' % portal, 'delete_discovery_record', (portal,))
    module.apply(plan, ops)
    module.exit_plan(plan, sessions=[], luns=[])


def _records_found_through(transport, portal, leaving):
    """'target at portal' of node records (other than this portal's `leaving` targets)
    whose discovery address is this portal."""
    iscsiadm = transport.iscsiadm
    found = []
    for node in iscsiadm.nodes():
        if node.target in leaving and transport.at_portal(node.portal):
            continue
        settings = iscsiadm.node_settings(node.target, node.portal) or {}
        host = settings.get('node.discovery_address') or ''
        address = '%s:%s' % ('[%s]' % host if ':' in host else host, settings.get('node.discovery_port'))
        if transport.at_portal(address):
            found.append('%s at %s' % (node.target, node.portal))
    return found


# ---------------------------------------------------------------------------------------
# direct_lun_info
def run_direct_lun_info_module(module):
    desired = desired_from_params(module.params, info=True)
    client = module.client()
    transport, _run = _transport(module, desired)
    unreadable = []
    if desired.transport == 'qemu':
        targets = transport.targets()
        luns = []
        sessions = []
        for target in targets:
            try:
                luns.extend(transport.luns(target))
            except StorageError as err:
                if err.code == 'ISCSI_UNREACHABLE':
                    raise  # the portal itself does not answer: that is the answer
                # a target this run cannot log in to (CHAP, not offered to us) is listed, its LUNs are not
                unreadable.append({'target': target, 'error_code': err.code, 'msg': err.msg})
                continue
            sessions.append((target, desired.portal))
    else:
        iscsiadm = transport.iscsiadm
        sessions_found = [session for session in iscsiadm.sessions() if transport.at_portal(session.portal)
                          and (desired.target is None or session.target == desired.target)]
        if desired.portal is not None and desired.target is None:
            with_record = iscsiadm.discovery_settings(desired.portal, secrets=False) is not None
            targets = [node.target for node in iscsiadm.discover(desired.portal, persistent=False,
                                                                 with_record=with_record)]
        elif desired.target is not None:
            targets = [desired.target]
        else:
            targets = sorted(set(node.target for node in iscsiadm.nodes()))
        luns = []
        for session in sessions_found:
            luns.extend(transport.luns(session)[0])
        sessions = [(session.target, normal_portal(session.portal)) for session in sessions_found]
    annotate(client, luns, host=transport.host_tree() if client.is_local else None)
    if module.params.get('unused'):
        luns = [lun for lun in luns if not lun.used_by and not lun.in_pool]
    module.exit_info(targets=targets, luns=[lun.as_dict(desired.transport) for lun in luns],
                     sessions=_sessions_result(desired.transport, sessions), unreadable=unreadable)
