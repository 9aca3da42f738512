# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A domain's disks as libvirt describes them: reading a view (live or persistent), the
boot order (per-device or the legacy <os><boot dev>), target names, and the <disk> XML
this collection writes. Pure functions of XML; no libvirt calls."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses
import hashlib
import re
from typing import Optional, Tuple

from ansible_collections.virtops.storage.plugins.module_utils import _xml

BUSES = ('virtio', 'scsi', 'sata', 'ide', 'usb')
DEVICES = ('disk', 'lun', 'cdrom')
HOTPLUG_BUSES = frozenset(('virtio', 'scsi', 'usb'))  # QEMU: sata/ide buses do not support hotplugging
TARGET_PREFIX = {'virtio': 'vd', 'scsi': 'sd', 'sata': 'sd', 'usb': 'sd', 'ide': 'hd'}
BUS_OF_PREFIX = {'vd': 'virtio', 'sd': 'scsi', 'hd': 'ide'}
TUNABLES = ('readonly', 'shareable', 'serial', 'cache', 'io', 'discard', 'detect_zeroes', 'error_policy')
DRIVER_ATTRS = ('cache', 'io', 'discard', 'detect_zeroes', 'error_policy')
SERIAL_RE = re.compile(r'^[A-Za-z0-9_.+\- ]+$')  # what libvirt's schema accepts
TARGET_RE = re.compile(r'^(vd|sd|hd)([a-z]{1,3})\Z')
SERIAL_LENGTH = 20  # virtio-blk and ATA hand the guest at most 20 bytes
# <os><boot dev> names and the first device of each kind libvirt gives that boot index to
LEGACY_BOOT_DEVICES = {'hd': 'disk', 'cdrom': 'cdrom', 'fd': 'floppy', 'network': 'interface'}
HARD_DISKS = ('disk', 'lun')  # what <boot dev='hd'> and the root role mean


@dataclasses.dataclass(frozen=True)
class NetworkSource:
    """A network disk source (QEMU's own initiator): protocol, name (iqn/lun for iSCSI),
    hosts ((name, port), ...), and the libvirt secret that holds its password."""
    protocol: str
    name: str
    hosts: Tuple[Tuple[str, Optional[str]], ...] = ()
    username: Optional[str] = None
    secret_type: Optional[str] = None
    secret_usage: Optional[str] = None
    initiator: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DiskState:
    """One <disk> of one view of a domain (or the one this collection wants there)."""
    target: str
    bus: Optional[str]
    device: str = 'disk'
    type: Optional[str] = None  # file, block, volume, network
    pool: Optional[str] = None
    volume: Optional[str] = None
    path: Optional[str] = None  # file or device; a volume disk's file when known
    real_path: Optional[str] = None  # `path` with symbolic links resolved (local hosts)
    network: Optional[NetworkSource] = None
    format: Optional[str] = None
    readonly: bool = False
    shareable: bool = False
    serial: Optional[str] = None
    cache: Optional[str] = None
    io: Optional[str] = None
    discard: Optional[str] = None
    detect_zeroes: Optional[str] = None
    error_policy: Optional[str] = None
    boot_order: Optional[int] = None  # the per-device <boot order>
    alias: Optional[str] = None
    xml: str = ''

    @property
    def source_label(self):
        if self.pool and self.volume:
            return '%s/%s' % (self.pool, self.volume)
        if self.path:
            return self.path
        if self.network is not None:
            return '%s://%s' % (self.network.protocol, self.network.name)
        return '(empty)'


@dataclasses.dataclass(frozen=True)
class DomainView:
    """The disks of one view (live or persistent) and what decides its boot order."""
    disks: Tuple[DiskState, ...] = ()
    legacy_boot: Tuple[str, ...] = ()  # <os><boot dev=...> in order
    device_boot: Tuple[Tuple[str, int], ...] = ()  # (label, order) of non-disk devices with <boot order>
    first_of_kind: Tuple[Tuple[str, str], ...] = ()  # (kind, label) of the first floppy/interface
    scsi_controllers: Tuple[str, ...] = ()  # models ('' when libvirt will pick)
    xml: str = ''

    def disk_at(self, target):
        return next((disk for disk in self.disks if disk.target == target), None)

    def boot_orders(self):
        """{label: order} of every device that boots, labels being disk targets or
        'interface <mac>'; the legacy <os><boot dev> list becomes the indexes libvirt gives
        the first device of each kind (measured: boot dev cdrom, hd -> cdrom 1, first disk 2)."""
        if self.legacy_boot:
            firsts = dict(self.first_of_kind)
            for kind, devices in (('disk', HARD_DISKS), ('cdrom', ('cdrom',)), ('floppy', ('floppy',))):
                first = next((disk for disk in self.disks if disk.device in devices), None)
                if first is not None:
                    firsts[kind] = first.target
            orders = {}
            for position, dev in enumerate(self.legacy_boot, 1):
                label = firsts.get(LEGACY_BOOT_DEVICES.get(dev, ''))
                if label is not None and label not in orders:
                    orders[label] = position
            return orders
        orders = dict((disk.target, disk.boot_order) for disk in self.disks if disk.boot_order is not None)
        orders.update(self.device_boot)
        return orders

    def root(self):
        """The root disk: the disk (not a cdrom) that boots first, with boot order 1."""
        orders = self.boot_orders()
        return next((disk for disk in self.disks
                     if disk.device in HARD_DISKS and orders.get(disk.target) == 1), None)


def parse_disk(element):
    source = element.find('source')
    driver = element.find('driver')
    disk_type = element.get('type')
    network = None
    path = pool = volume = None
    if source is not None:
        if disk_type == 'volume':
            pool, volume = source.get('pool'), source.get('volume')
        elif disk_type == 'network':
            auth = source.find('auth')
            secret = auth.find('secret') if auth is not None else None
            network = NetworkSource(
                protocol=source.get('protocol'), name=source.get('name'),
                hosts=tuple((host.get('name') or host.get('socket'), host.get('port')) for host in source.findall('host')),
                username=auth.get('username') if auth is not None else None,
                secret_type=secret.get('type') if secret is not None else None,
                secret_usage=secret.get('usage') if secret is not None else None,
                initiator=_xml.attr_of(source, 'initiator/iqn', 'name'))
        else:
            path = source.get('file') or source.get('dev') or source.get('dir')
    boot = element.find('boot')
    return DiskState(
        target=_xml.attr_of(element, 'target', 'dev'), bus=_xml.attr_of(element, 'target', 'bus'),
        device=element.get('device') or 'disk', type=disk_type, pool=pool, volume=volume, path=path,
        network=network, format=driver.get('type') if driver is not None else None,
        readonly=element.find('readonly') is not None, shareable=element.find('shareable') is not None,
        serial=_xml.text_of(element, 'serial'),
        boot_order=int(boot.get('order')) if boot is not None and (boot.get('order') or '').isdigit() else None,
        alias=_xml.attr_of(element, 'alias', 'name'), xml=pretty(element),
        **dict((name, driver.get(name) if driver is not None else None) for name in DRIVER_ATTRS))


def parse_view(xml):
    root = _xml.parse(xml, 'domain XML')
    devices = root.find('devices')
    devices = devices if devices is not None else _xml.element('devices')
    device_boot, first_of_kind = [], []
    for label, element in _other_devices(devices):
        boot = element.find('boot')
        if boot is not None and (boot.get('order') or '').isdigit():
            device_boot.append((label, int(boot.get('order'))))
        if element.tag == 'interface' and not any(kind == 'interface' for kind, _label in first_of_kind):
            first_of_kind.append(('interface', label))
    return DomainView(
        disks=tuple(parse_disk(element) for element in devices.findall('disk')),
        legacy_boot=tuple(boot.get('dev') for boot in root.findall('os/boot') if boot.get('dev')),
        device_boot=tuple(device_boot), first_of_kind=tuple(first_of_kind),
        scsi_controllers=tuple(controller.get('model') or '' for controller in devices.findall('controller')
                               if controller.get('type') == 'scsi'),
        xml=xml)


def _other_devices(devices):
    """(label, element) of every device but the disks: 'interface <mac>', else the tag and
    its position among its kind ('hostdev 2'), which the live and persistent views share."""
    counts = {}
    for element in devices:
        if not isinstance(element.tag, str) or element.tag == 'disk':
            continue
        counts[element.tag] = counts.get(element.tag, 0) + 1
        mac = _xml.attr_of(element, 'mac', 'address')
        if element.tag == 'interface' and mac:
            yield 'interface %s' % mac, element
        else:
            yield '%s %d' % (element.tag, counts[element.tag]), element


def pretty(element):
    return _xml.to_string(element).strip() + '\n'


# ---------------------------------------------------------------------------------------
# Target names: libvirt's vda..vdz, vdaa.. (index 0, 1, .. 25, 26 ..)
def target_index(name):
    match = TARGET_RE.match(name or '')
    if not match:
        return None
    index = 0
    for char in match.group(2):
        index = index * 26 + (ord(char) - ord('a') + 1)
    return index - 1


def target_name(prefix, index):
    letters = ''
    index += 1
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord('a') + rest) + letters
    return prefix + letters


def free_target(views, bus):
    """The first target name of the bus's family that no view uses."""
    prefix = TARGET_PREFIX[bus]
    taken = set(disk.target for view in views for disk in view.disks)
    index = 0
    while target_name(prefix, index) in taken:
        index += 1
    return target_name(prefix, index)


def insert_position(view, bus, target):
    """Where libvirt puts a disk attached to a definition: before the first disk of the same
    bus with a higher index, else after the last disk of that bus, else at the end."""
    new_index = target_index(target)
    position = None
    for index in range(len(view.disks) - 1, -1, -1):
        disk = view.disks[index]
        if disk.bus != bus:
            continue
        other = target_index(disk.target)
        if other is not None and new_index is not None and other > new_index:
            position = index
        elif position is None:
            position = index + 1
    return len(view.disks) if position is None else position


def default_serial(identity):
    """A serial the guest will see (/dev/disk/by-id), the same every time for one source."""
    return hashlib.sha256(identity.encode('utf-8', 'surrogatepass')).hexdigest()[:SERIAL_LENGTH]


def guest_path(disk):
    """Where a Linux guest's udev lists the disk by its serial, or None without one."""
    if not disk.serial or disk.device == 'lun':
        return None
    serial = disk.serial.replace(' ', '_')
    cdrom = disk.device == 'cdrom'
    if disk.bus == 'virtio':
        return '/dev/disk/by-id/virtio-%s' % serial[:SERIAL_LENGTH]
    if disk.bus == 'scsi':
        return '/dev/disk/by-id/scsi-0QEMU_QEMU_%s_%s' % ('CD-ROM' if cdrom else 'HARDDISK', serial)
    if disk.bus in ('sata', 'ide'):
        return '/dev/disk/by-id/ata-QEMU_%s_%s' % ('DVD-ROM' if cdrom else 'HARDDISK', serial[:SERIAL_LENGTH])
    if disk.bus == 'usb':
        return '/dev/disk/by-id/usb-QEMU_QEMU_%s_%s-0:0' % ('CD-ROM' if cdrom else 'HARDDISK', serial)
    return None


# ---------------------------------------------------------------------------------------
# Writing XML
def disk_element(disk, with_boot=True):
    """The <disk> element for `disk` (a DiskState), built with lxml."""
    element = _xml.element('disk', {'type': disk.type, 'device': disk.device})
    driver = _xml.sub(element, 'driver', {'name': 'qemu'})
    if disk.format:
        driver.set('type', disk.format)
    for name in DRIVER_ATTRS:
        if getattr(disk, name):
            driver.set(name, getattr(disk, name))
    if disk.type == 'volume':
        _xml.sub(element, 'source', {'pool': disk.pool, 'volume': disk.volume})
    elif disk.type == 'network':
        network = disk.network
        source = _xml.sub(element, 'source', {'protocol': network.protocol, 'name': network.name})
        for host, port in network.hosts:
            _xml.sub(source, 'host', {'name': host, 'port': port})
        if network.username:
            auth = _xml.sub(source, 'auth', {'username': network.username})
            _xml.sub(auth, 'secret', {'type': network.secret_type, 'usage': network.secret_usage})
        if network.initiator:
            _xml.sub(_xml.sub(source, 'initiator'), 'iqn', {'name': network.initiator})
    elif disk.path:
        _xml.sub(element, 'source', {'dev' if disk.type == 'block' else 'file': disk.path})
    _xml.sub(element, 'target', {'dev': disk.target, 'bus': disk.bus})
    if disk.readonly:
        _xml.sub(element, 'readonly')
    if disk.shareable:
        _xml.sub(element, 'shareable')
    if disk.serial:
        _xml.sub(element, 'serial', text=disk.serial)
    if with_boot and disk.boot_order is not None:
        _xml.sub(element, 'boot', {'order': disk.boot_order})
    return element


def disk_xml(disk, with_boot=True):
    return pretty(disk_element(disk, with_boot))


def scsi_controller_xml():
    """The controller added to a domain without any SCSI controller (so it is index 0)."""
    return pretty(_xml.element('controller', {'type': 'scsi', 'index': '0', 'model': 'virtio-scsi'}))


def _disk_element_at(devices, target):
    return next((disk for disk in devices.findall('disk') if _xml.attr_of(disk, 'target', 'dev') == target), None)


def _set_boot(element, order):
    boot = element.find('boot')
    if order is None:
        if boot is not None:
            element.remove(boot)
        return
    if boot is None:
        boot = _xml.sub(element, 'boot')
    boot.attrib.clear()
    boot.set('order', str(order))


def rewrite_boot_order(domain_xml, orders, new_disk_xml=None):
    """The definition with <os><boot dev> removed and exactly `orders` ({label: order},
    labels as DomainView.boot_orders() gives them) as per-device boot orders; with
    `new_disk_xml`, that disk added after the others in the same change (a definition left
    with no boot order at all would get <boot dev='hd'/> back from libvirt)."""
    root = _xml.parse(domain_xml, 'domain XML')
    for boot in root.findall('os/boot'):
        boot.getparent().remove(boot)
    devices = root.find('devices')
    if devices is None:
        devices = _xml.sub(root, 'devices')
    if new_disk_xml is not None:
        disks = devices.findall('disk')
        new_disk = _xml.parse(new_disk_xml, 'disk XML')
        if disks:
            disks[-1].addnext(new_disk)
        else:
            devices.insert(len(devices.findall('emulator')), new_disk)
    labelled = [(_xml.attr_of(disk, 'target', 'dev'), disk) for disk in devices.findall('disk')]
    for label, element in labelled + list(_other_devices(devices)):
        if label in orders or element.find('boot') is not None:
            _set_boot(element, orders.get(label))
    return _xml.to_string(root)


def update_disk_xml(disk, changes):
    """The <disk> element of `disk` (as libvirt showed it) with `changes` ({field: value})."""
    element = _xml.parse(disk.xml, 'disk XML')
    driver = element.find('driver')
    if driver is None:
        driver = _xml.element('driver', {'name': 'qemu'})
        element.insert(0, driver)
    for name, value in changes.items():
        if name in DRIVER_ATTRS or name == 'format':
            attr = 'type' if name == 'format' else name
            if value is None:
                driver.attrib.pop(attr, None)
            else:
                driver.set(attr, value)
        elif name in ('readonly', 'shareable'):
            present = element.find(name)
            if value and present is None:
                _xml.sub(element, name)
            elif not value and present is not None:
                element.remove(present)
        elif name == 'serial':
            present = element.find('serial')
            if present is not None:
                element.remove(present)
            if value:
                _xml.sub(element, 'serial', text=value)
        elif name == 'boot_order':
            _set_boot(element, value)
    for alias in element.findall('alias'):
        element.remove(alias)
    return pretty(element)
