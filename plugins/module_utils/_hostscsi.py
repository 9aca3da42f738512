# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel transport's view of a host: iSCSI sessions' SCSI devices in sysfs, their
udev names, multipath maps, and whether the host itself uses a device.

Everything is read under one root ("/" on a real host). The test suite points the root
at a fake sysfs/dev tree (environment variable VIRTOPS_STORAGE_SYSROOT), which an
`iscsiadm` stand-in fills as the kernel would; nothing else changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses
import errno
import glob
import os
import stat
import time
from typing import Optional

from ansible_collections.virtops.storage.plugins.module_utils import _scsi

SYSROOT_ENV = 'VIRTOPS_STORAGE_SYSROOT'
LVM_LABEL = b'LABELONE'
STABLE_LOOK = 0.1  # seconds between the two looks that must agree
MAX_POLL = 0.5  # longest pause between looks while udev works


@dataclasses.dataclass
class HostLun:
    """One SCSI device of an iSCSI session, as sysfs shows it."""
    hctl: str
    lun: int
    type: Optional[int]
    vendor: Optional[str]
    model: Optional[str]
    revision: Optional[str]
    wwid: Optional[str]
    serial: Optional[str]
    block: Optional[str] = None  # sdX, for disks the kernel has probed
    size: Optional[int] = None
    path: Optional[str] = None  # /dev/mapper/<wwid> or the /dev/disk/by-id link, once udev made it
    multipath: Optional[str] = None  # dm-N of the multipath map that owns the disk


def _listdir(path):
    """Entries of a sysfs directory, sorted; none when it is gone (a device that went away)."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _read(path, binary=False):
    try:
        with open(path, 'rb' if binary else 'r') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _text(path):
    value = _read(path)
    return value.strip() if value is not None else None


class HostTree(object):
    """sysfs and /dev of this host (or of the fake tree the tests use)."""

    def __init__(self, root=None):
        self.root = root or os.environ.get(SYSROOT_ENV) or '/'

    def path(self, *parts):
        return os.path.join(self.root, *[part.lstrip('/') for part in parts])

    # sessions and their devices ----------------------------------------------------
    def session_luns(self, sid):
        """HostLun of every SCSI device of session `sid`, LUN order."""
        base = self.path('sys/class/iscsi_session/session%d/device' % sid)
        found = []
        for directory in sorted(glob.glob(os.path.join(base, 'target*', '*:*:*:*'))):
            hctl = os.path.basename(directory)
            try:
                lun = int(hctl.split(':')[3])  # Linux numbers LUNs as libiscsi and QEMU do
            except (IndexError, ValueError):
                continue
            kind = _text(os.path.join(directory, 'type'))
            page83 = _read(os.path.join(directory, 'vpd_pg83'), binary=True)
            page80 = _read(os.path.join(directory, 'vpd_pg80'), binary=True)
            blocks = _listdir(os.path.join(directory, 'block'))
            item = HostLun(hctl=hctl, lun=lun, type=int(kind) if kind and kind.isdigit() else None,
                           vendor=_text(os.path.join(directory, 'vendor')) or None,
                           model=_text(os.path.join(directory, 'model')) or None,
                           revision=_text(os.path.join(directory, 'rev')) or None,
                           wwid=_scsi.wwid_from_page83(page83) if page83 else None,
                           serial=_scsi.serial_from_page80(page80) if page80 else None,
                           block=blocks[0] if blocks else None)
            if item.block:
                serial, _links = self.udev_data(item.block)
                if serial and serial != item.wwid:
                    # what this host's udev calls it (its rules may rank designators differently)
                    item.wwid = serial
                sectors = _text(self.path('sys/block', item.block, 'size'))
                item.size = int(sectors) * 512 if sectors and sectors.isdigit() else None
                item.multipath = self.multipath_of(item.block)
                item.path = self.device_path(item)
            found.append(item)
        found.sort(key=lambda item: item.lun)
        return found

    def sessions(self):
        """Session numbers sysfs shows (every iSCSI session of the host)."""
        found = []
        for directory in glob.glob(self.path('sys/class/iscsi_session/session*')):
            number = os.path.basename(directory)[len('session'):]
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    def devices_by_wwid(self):
        """{wwid: [HostLun]} of every disk of every iSCSI session of the host."""
        found = {}
        for sid in self.sessions():
            for item in self.session_luns(sid):
                if item.wwid and item.block:
                    found.setdefault(item.wwid, []).append(item)
        return found

    def multipath_of(self, block):
        """dm-N of the multipath map holding `block`, or None."""
        for holder in _listdir(self.path('sys/block', block, 'holders')):
            uuid = _text(self.path('sys/block', holder, 'dm/uuid')) or ''
            if uuid.startswith('mpath-'):
                return holder
        return None

    def udev_data(self, block):
        """(ID_SERIAL, [by-id link names]) udev recorded for the device, or (None, [])."""
        number = _text(self.path('sys/block', block, 'dev'))
        data = _read(self.path('run/udev/data', 'b' + number)) if number else None
        serial, links = None, []
        for line in (data or '').splitlines():
            if line.startswith('E:ID_SERIAL='):
                serial = line[len('E:ID_SERIAL='):].strip() or None
            elif line.startswith('S:disk/by-id/'):
                links.append(line[len('S:disk/by-id/'):].strip())
        return serial, links

    def map_paths(self, dm):
        """The path devices (sdX) of a multipath map."""
        return set(_listdir(self.path('sys/block', dm, 'slaves')))

    def map_name(self, dm):
        """The device-mapper name of dm-N (a WWID, or a friendly name such as mpatha)."""
        return _text(self.path('sys/block', dm, 'dm/name')) or None

    def device_path(self, item):
        """Where a VM disk should point: /dev/mapper/<wwid> when multipath owns the LUN,
        else its /dev/disk/by-id WWN or SCSI link; None while udev has not made it."""
        if item.multipath:
            name = _text(self.path('sys/block', item.multipath, 'dm/name'))
            candidate = self.path('dev/mapper', name) if name else None
            if candidate and os.path.exists(candidate):
                return candidate
            return None  # the map exists but its name is not there yet: never a path of the map
        naa = _scsi.naa_of(item.wwid)
        names = (['wwn-0x' + naa] if naa else []) + (['scsi-' + item.wwid] if item.wwid else [])
        _serial, links = self.udev_data(item.block)
        names += [name for prefix in ('wwn-', 'scsi-') for name in links
                  if name.startswith(prefix) and '-part' not in name and name not in names]
        device = os.path.realpath(self.path('dev', item.block))
        for name in names:
            candidate = self.path('dev/disk/by-id', name)
            if os.path.exists(candidate) and os.path.realpath(candidate) == device:
                return candidate
        return None

    def settled(self, sid):
        """(luns, done): done when every disk of the session has a block device and a path."""
        luns = self.session_luns(sid)
        # a disk without any WWID never gets a by-id name: its block device is all there is to wait for
        pending = [item for item in luns if item.type in _scsi.DISK_TYPES and (
            item.block is None or (item.path is None and item.wwid is not None))]
        return luns, not pending

    def wait_for_devices(self, sid, timeout, settle=None, clock=time.monotonic, sleep=time.sleep):
        """Wait (bounded, backing off) until every disk of the session has its udev name and
        a second look a moment later shows the same LUNs; returns (luns, complete).
        `settle` runs `udevadm settle` first."""
        deadline = clock() + timeout
        delay = 0.05
        previous = None
        if settle is not None:
            settle()  # once: udev's queue after the login; then bounded looks
        while True:
            luns, done = self.settled(sid)
            shape = [(item.hctl, item.block, item.path) for item in luns]
            if done and shape == previous:
                return luns, True
            if clock() >= deadline:
                return luns, done
            # all named: one quick second look (a LUN still being scanned shows up);
            # otherwise back off, up to half a second between looks
            pause = STABLE_LOOK if done else delay
            previous = shape
            sleep(min(pause, max(0.0, deadline - clock())))
            if not done:
                delay = min(delay * 2, MAX_POLL)

    # removal --------------------------------------------------------------------------
    def delete_device(self, block):
        """Ask the kernel to drop the SCSI device (what a logout would leave half-alive)."""
        with open(self.path('sys/block', block, 'device/delete'), 'w') as handle:
            handle.write('1')

    # what the host itself does with a device -----------------------------------------
    def _stack(self, block):
        """(name, sysfs directory) of the device, its partitions and everything device-mapper
        stacks on any of them (holders, recursively)."""
        found = []
        seen = set()
        todo = [(block, self.path('sys/block', block))]
        while todo:
            name, directory = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            found.append((name, directory))
            for entry in _listdir(directory):
                if entry.startswith(name) and os.path.isfile(os.path.join(directory, entry, 'dev')):
                    todo.append((entry, os.path.join(directory, entry)))  # a partition lives under its disk
            for holder in _listdir(os.path.join(directory, 'holders')):
                todo.append((holder, self.path('sys/block', holder)))
        return found

    def dev_numbers(self, block):
        """"major:minor" of the device, its partitions and whatever device-mapper stacks on them."""
        numbers = set()
        for _name, directory in self._stack(block):
            number = _text(os.path.join(directory, 'dev'))
            if number:
                numbers.add(number)
        return numbers

    def host_uses(self, item, proc='/proc'):
        """Why the host itself holds this LUN's device: mounts, swap, LVM, holders (device-
        mapper, md, bcache), or the kernel's exclusive claim. Empty when nothing does."""
        if not item.block:
            return []
        stack = self._stack(item.block)
        numbers = self.dev_numbers(item.block)
        names = set(os.path.realpath(self.path('dev', name)) for name, _directory in stack)
        reasons = []
        mounts = _read(os.path.join(proc, 'self/mountinfo')) or ''
        for line in mounts.splitlines():
            fields = line.split()
            source = fields[fields.index('-') + 2] if '-' in fields and len(fields) > fields.index('-') + 2 else ''
            # btrfs and the like show an anonymous 0:N there: their source names the device
            by_source = source.startswith('/') and os.path.realpath(source) in names
            if len(fields) > 4 and (fields[2] in numbers or by_source):
                reasons.append('mounted at %s' % fields[4])
        swaps = _read(os.path.join(proc, 'swaps')) or ''
        for line in swaps.splitlines()[1:]:
            name = line.split()[0] if line.split() else ''
            try:
                mode = os.stat(name)
            except OSError:
                continue
            if stat.S_ISBLK(mode.st_mode) and '%d:%d' % (os.major(mode.st_rdev), os.minor(mode.st_rdev)) in numbers:
                reasons.append('swap space (%s)' % name)
        # the label is read only from a SCSI disk that answers (a read of a failed path or a
        # queueing map could block the run)
        running = _text(self.path('sys/block', item.block, 'device/state')) in (None, 'running')
        if running and any(
                self._lvm_label(self.path('dev', name)) for name, _directory in stack
                if name == item.block or name.startswith(item.block)):
            reasons.append('an LVM physical volume')
        own = 'mpath-' + (item.wwid or '')
        for name, directory in stack:
            if name == item.multipath or name.startswith(item.block) or \
                    _text(os.path.join(directory, 'dm/uuid')) == own:
                continue  # the LUN's own multipath map (even one made after the first look), the disk, its partitions
            reasons.append('held by %s (%s)' % (name, _text(os.path.join(directory, 'dm/name')) or 'the kernel'))
        # the exclusive-open probe only on a disk that answers (the open waits out SCSI error handling)
        if not reasons and running and self._claimed(self.path('dev', item.multipath or item.block)):
            reasons.append('claimed by the kernel (an exclusive open: a mount, RAID or swap)')
        return reasons

    @staticmethod
    def _claimed(device):
        """Whether the kernel holds the block device exclusively (EBUSY on an O_EXCL open)."""
        try:
            handle = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK)
        except OSError as exc:
            return exc.errno == errno.EBUSY
        os.close(handle)
        return False

    @staticmethod
    def _lvm_label(device):
        """An LVM2 label sits in one of the first four sectors: "LABELONE" ... "LVM2 001"."""
        try:
            with open(device, 'rb') as handle:
                head = handle.read(4 * 512)
        except (IOError, OSError):
            return False
        for sector in range(4):
            chunk = head[sector * 512:(sector + 1) * 512]
            if chunk[:8] == LVM_LABEL and chunk[24:32] == b'LVM2 001':
                return True
        return False

    def real_paths(self, item):
        """Every device file name a disk reading this LUN may be attached by, resolved: the
        disk, its multipath map, and whatever stacks on them (partitions, kpartx maps, LVs),
        and its udev name."""
        paths = set()
        for name in (item.block, item.multipath):
            if name:
                for part, _directory in self._stack(name):
                    paths.add(os.path.realpath(self.path('dev', part)))
        if item.path:
            paths.add(os.path.realpath(item.path))
        return paths

    def maps_of(self, wwid):
        """/dev/mapper names of the multipath maps of a WWID (friendly names included)."""
        found = []
        for directory in sorted(glob.glob(self.path('sys/block/dm-*'))):
            if _text(os.path.join(directory, 'dm/uuid')) == 'mpath-' + wwid:
                name = _text(os.path.join(directory, 'dm/name'))
                if name:
                    found.append(self.path('dev/mapper', name))
        return found
