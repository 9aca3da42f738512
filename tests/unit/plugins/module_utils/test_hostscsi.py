# -*- coding: utf-8 -*-
"""HostTree over a fake sysfs and /dev under tmp_path, laid out as Linux lays them out.

An iSCSI session on a real host:

    /sys/class/iscsi_session/session1/device -> /sys/devices/platform/host2/session1
    /sys/devices/platform/host2/session1/target2:0:0/2:0:0:1/{type,vendor,model,rev,vpd_pg83,vpd_pg80,delete}
    .../2:0:0:1/block/sdb/{size,dev,holders/,sdb1/{dev,holders/}}   and .../block/sdb/device -> ../../../2:0:0:1
    /sys/block/sdb -> .../2:0:0:1/block/sdb        /sys/class/block/sdb1 -> .../block/sdb/sdb1
    /dev/sdb, /dev/disk/by-id/{wwn-0x<naa>,scsi-<wwid>} -> ../../sdb

and multipath:

    /sys/devices/virtual/block/dm-0/{dev,dm/uuid=mpath-<wwid>,dm/name,holders/,slaves/sdb}
    /sys/block/dm-0 -> ../devices/virtual/block/dm-0, .../block/sdb/holders/dm-0 -> dm-0's directory
    /dev/dm-0, /dev/mapper/<wwid> -> ../dm-0

Device nodes are plain files: HostTree only reads them (LVM label) and resolves links.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat
import struct

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _hostscsi
from ansible_collections.virtops.storage.plugins.module_utils._hostscsi import HostLun, HostTree

NAA1 = '6001405a1b2c3d4e5f60718293a4b5c6'
NAA2 = '6001405ffeeddccbbaa9988776655443'
WWID1 = '3' + NAA1
WWID2 = '3' + NAA2
T10_WWID = '1IET_VIRTUAL-DISK_beaf12'


def page83_naa(naa_hex):
    """VPD 0x83 with a T10 vendor id, then the NAA designator (association 0)."""
    t10 = b'IET     VIRTUAL-DISK    beaf11'
    naa = bytes.fromhex(naa_hex)
    body = bytes([2, 1, 0, len(t10)]) + t10 + bytes([1, 3, 0, len(naa)]) + naa
    return bytes([0, 0x83]) + struct.pack('>H', len(body)) + body


def page83_t10(text):
    body = bytes([2, 1, 0, len(text)]) + text
    return bytes([0, 0x83]) + struct.pack('>H', len(body)) + body


def page80(serial):
    return bytes([0, 0x80, 0, len(serial)]) + serial


class FakeHost(object):
    """Builds the tree; every link is relative, as the kernel's and udev's are."""

    def __init__(self, root):
        self.root = str(root)
        self.scsi = {}  # hctl -> scsi device directory (relative)

    def p(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, data):
        path = self.p(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb' if isinstance(data, bytes) else 'w') as handle:
            handle.write(data)

    def mkdir(self, rel):
        os.makedirs(self.p(rel), exist_ok=True)

    def link(self, rel, target_rel):
        path = self.p(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(os.path.relpath(self.p(target_rel), os.path.dirname(path)), path)

    def read(self, rel):
        with open(self.p(rel)) as handle:
            return handle.read()

    def session(self, sid, host):
        directory = 'sys/devices/platform/host%d/session%d' % (host, sid)
        self.mkdir(directory + '/iscsi_session/session%d' % sid)
        self.mkdir('sys/class/iscsi_session/session%d' % sid)
        self.link('sys/class/iscsi_session/session%d/device' % sid, directory)
        return directory

    def scsi_device(self, sid, host, lun, kind=0, vendor='IET', model='VIRTUAL-DISK', rev='0001', pg83=None,
                    pg80=None):
        hctl = '%d:0:0:%d' % (host, lun)
        directory = 'sys/devices/platform/host%d/session%d/target%d:0:0/%s' % (host, sid, host, hctl)
        self.write(directory + '/type', '%d\n' % kind)
        self.write(directory + '/vendor', vendor.ljust(8) + '\n')
        self.write(directory + '/model', model.ljust(16) + '\n')
        self.write(directory + '/rev', rev.ljust(4) + '\n')
        if pg83 is not None:
            self.write(directory + '/vpd_pg83', pg83)
        if pg80 is not None:
            self.write(directory + '/vpd_pg80', pg80)
        self.write(directory + '/delete', '')
        self.scsi[hctl] = directory
        return hctl

    def disk(self, hctl, block, number, sectors, partitions=()):
        """The sd block device of a SCSI device; partitions are (name, number)."""
        directory = '%s/block/%s' % (self.scsi[hctl], block)
        self.write(directory + '/size', '%d\n' % sectors)
        self.write(directory + '/dev', number + '\n')
        self.mkdir(directory + '/holders')
        self.link(directory + '/device', self.scsi[hctl])
        self.link('sys/block/%s' % block, directory)
        self.link('sys/class/block/%s' % block, directory)
        self.write('dev/%s' % block, b'')
        for name, part_number in partitions:
            self.write('%s/%s/dev' % (directory, name), part_number + '\n')
            self.write('%s/%s/partition' % (directory, name), name[len(block):] + '\n')
            self.mkdir('%s/%s/holders' % (directory, name))
            self.link('sys/class/block/%s' % name, '%s/%s' % (directory, name))
            self.write('dev/%s' % name, b'')
        return directory

    def by_id(self, name, block):
        self.link('dev/disk/by-id/%s' % name, 'dev/%s' % block)

    def udev_links(self, block, wwid):
        naa = wwid[1:] if wwid.startswith('3') else None
        if naa:
            self.by_id('wwn-0x' + naa, block)
        self.by_id('scsi-' + wwid, block)

    def dm(self, name, number, uuid, dm_name, slaves=(), mapper=True):
        """A device-mapper device stacked on `slaves` (whole disks or partitions)."""
        directory = 'sys/devices/virtual/block/%s' % name
        self.write(directory + '/dev', number + '\n')
        self.write(directory + '/dm/uuid', uuid + '\n')
        self.write(directory + '/dm/name', dm_name + '\n')
        self.write(directory + '/size', '131072\n')
        self.mkdir(directory + '/holders')
        self.link('sys/block/%s' % name, directory)
        self.link('sys/class/block/%s' % name, directory)
        self.write('dev/%s' % name, b'')
        if mapper:
            self.link('dev/mapper/%s' % dm_name, 'dev/%s' % name)
        for slave in slaves:
            slave_dir = os.path.relpath(os.path.realpath(self.p('sys/class/block/%s' % slave)), self.root)
            self.link('%s/slaves/%s' % (directory, slave), slave_dir)
            self.link('%s/holders/%s' % (slave_dir, name), directory)
        return directory

    def multipath(self, name, number, wwid, slaves, mapper=True):
        return self.dm(name, number, 'mpath-' + wwid, wwid, slaves, mapper)


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path)


@pytest.fixture
def lab(host):
    """Session 1 on host 2 (tgtd): LUN 0 the controller, LUN 1 a 64 MiB disk (sdb) with its
    udev links, LUN 2 a 32 MiB disk (sdc) with its links."""
    host.session(1, 2)
    host.scsi_device(1, 2, 0, kind=12, vendor='IET', model='Controller', pg83=page83_t10(b'IET     CTRL'))
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1), pg80=page80(b'  beaf11  '))
    host.disk(hctl, 'sdb', '67:16', 131072)
    host.udev_links('sdb', WWID1)
    hctl = host.scsi_device(1, 2, 2, vendor='LIO-ORG', model='IBLOCK', rev='4.0', pg83=page83_naa(NAA2))
    host.disk(hctl, 'sdc', '67:32', 65536)
    host.udev_links('sdc', WWID2)
    return host


def tree_of(host):
    return HostTree(host.root)


def item(block, wwid, multipath=None, **kwargs):
    return HostLun(hctl='2:0:0:1', lun=1, type=0, vendor=None, model=None, revision=None, wwid=wwid, serial=None,
                   block=block, multipath=multipath, **kwargs)


# ---------------------------------------------------------------------------------------
# root
def test_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(_hostscsi.SYSROOT_ENV, str(tmp_path))
    assert HostTree().root == str(tmp_path)
    assert HostTree().path('/sys/block', 'sdb') == os.path.join(str(tmp_path), 'sys/block/sdb')
    monkeypatch.delenv(_hostscsi.SYSROOT_ENV)
    assert HostTree().root == '/'


# ---------------------------------------------------------------------------------------
# session_luns
def test_session_luns(lab):
    luns = tree_of(lab).session_luns(1)
    assert [lun.lun for lun in luns] == [0, 1, 2]
    controller, first, second = luns
    assert controller.type == 12 and controller.block is None and controller.size is None and controller.path is None
    assert controller.vendor == 'IET' and controller.model == 'Controller'
    assert first == HostLun(hctl='2:0:0:1', lun=1, type=0, vendor='IET', model='VIRTUAL-DISK', revision='0001',
                            wwid=WWID1, serial='beaf11', block='sdb', size=131072 * 512,
                            path=lab.p('dev/disk/by-id/wwn-0x' + NAA1), multipath=None)
    assert second.vendor == 'LIO-ORG' and second.model == 'IBLOCK' and second.revision == '4.0'
    assert second.wwid == WWID2 and second.serial is None and second.size == 33554432


def test_session_luns_of_another_session_and_of_none(lab):
    lab.session(2, 3)
    hctl = lab.scsi_device(2, 3, 1, pg83=page83_naa(NAA1))
    lab.disk(hctl, 'sdd', '67:48', 131072)
    tree = tree_of(lab)
    assert [(lun.hctl, lun.block) for lun in tree.session_luns(2)] == [('3:0:0:1', 'sdd')]
    assert [lun.block for lun in tree.session_luns(1)] == [None, 'sdb', 'sdc']
    assert tree.session_luns(9) == []


def test_session_luns_are_in_numeric_lun_order(host):
    host.session(1, 2)
    for lun in (10, 2, 1):
        host.scsi_device(1, 2, lun, pg83=page83_naa('6001405' + '%025x' % lun))
    assert [lun.lun for lun in tree_of(host).session_luns(1)] == [1, 2, 10]


def test_a_disk_the_kernel_has_not_probed_yet(host):
    host.session(1, 2)
    host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    lun, = tree_of(host).session_luns(1)
    assert lun.type == 0 and lun.wwid == WWID1 and lun.block is None and lun.size is None and lun.path is None


def test_a_lun_without_vpd_pages(host):
    host.session(1, 2)
    host.scsi_device(1, 2, 1)
    lun, = tree_of(host).session_luns(1)
    assert lun.wwid is None and lun.serial is None


def test_a_t10_only_lun_is_found_by_its_scsi_link(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_t10(b'IET     VIRTUAL-DISK    beaf12'))
    host.disk(hctl, 'sdb', '67:16', 2048)
    host.udev_links('sdb', T10_WWID)
    lun, = tree_of(host).session_luns(1)
    assert lun.wwid == T10_WWID
    assert lun.path == host.p('dev/disk/by-id/scsi-' + T10_WWID)


# ---------------------------------------------------------------------------------------
# device_path
def test_device_path_prefers_the_multipath_map(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    lun = tree_of(lab).session_luns(1)[1]
    assert lun.multipath == 'dm-0'
    assert lun.path == lab.p('dev/mapper/' + WWID1)


def test_device_path_of_a_map_whose_name_is_not_there_yet_is_none(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'], mapper=False)
    lun = tree_of(lab).session_luns(1)[1]
    assert lun.multipath == 'dm-0' and lun.path is None  # never the sd path under a map


def test_a_holder_that_is_not_multipath_is_no_map(lab):
    lab.dm('dm-3', '254:3', 'LVM-abcdef', 'vg0-data', ['sdb'])
    lun = tree_of(lab).session_luns(1)[1]
    assert lun.multipath is None and lun.path == lab.p('dev/disk/by-id/wwn-0x' + NAA1)


def test_device_path_wwn_before_scsi(lab):
    tree = tree_of(lab)
    assert tree.device_path(item('sdb', WWID1)) == lab.p('dev/disk/by-id/wwn-0x' + NAA1)
    os.unlink(lab.p('dev/disk/by-id/wwn-0x' + NAA1))
    assert tree.device_path(item('sdb', WWID1)) == lab.p('dev/disk/by-id/scsi-' + WWID1)


def test_device_path_ignores_a_link_to_another_device(lab):
    lab.by_id('wwn-0x' + NAA1, 'sdc')  # stale: the name now points at another disk
    tree = tree_of(lab)
    assert tree.device_path(item('sdb', WWID1)) == lab.p('dev/disk/by-id/scsi-' + WWID1)
    lab.by_id('scsi-' + WWID1, 'sdc')
    assert tree.device_path(item('sdb', WWID1)) is None


def test_device_path_before_udev_made_a_link(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 2048)
    tree = tree_of(host)
    assert tree.device_path(item('sdb', WWID1)) is None
    assert tree.device_path(item('sdb', None)) is None
    host.mkdir('dev/disk/by-id')
    assert tree.device_path(item('sdb', WWID1)) is None


# ---------------------------------------------------------------------------------------
# wait_for_devices
class FakeTime(object):
    """A monotonic clock that only sleeping moves."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def without_links(host):
    """Session 1 with LUN 1 (sdb) probed but not named by udev yet."""
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072)


def test_wait_returns_once_links_appear_and_stay(host):
    without_links(host)
    fake = FakeTime()
    polls = []

    def settle():
        polls.append(fake.now)
        if len(polls) == 3:
            host.udev_links('sdb', WWID1)

    luns, complete = tree_of(host).wait_for_devices(1, 30, settle=settle, clock=fake.clock, sleep=fake.sleep)
    assert complete is True
    assert luns[0].path == host.p('dev/disk/by-id/wwn-0x' + NAA1)
    assert len(polls) == 4  # seen at the 3rd poll, confirmed unchanged at the 4th
    assert fake.sleeps == [0.05, 0.1, _hostscsi.STABLE_LOOK]  # backing off, then one quick second look


def test_wait_polls_again_when_a_lun_appears(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072)
    host.udev_links('sdb', WWID1)
    fake = FakeTime()
    polls = []

    def settle():
        polls.append(fake.now)
        if len(polls) == 2:  # the scan finds LUN 2, already named
            hctl2 = host.scsi_device(1, 2, 2, pg83=page83_naa(NAA2))
            host.disk(hctl2, 'sdc', '67:32', 2048)
            host.udev_links('sdc', WWID2)

    luns, complete = tree_of(host).wait_for_devices(1, 30, settle=settle, clock=fake.clock, sleep=fake.sleep)
    assert complete and [lun.block for lun in luns] == ['sdb', 'sdc']
    assert len(polls) == 3


def test_wait_when_everything_is_there_sleeps_once_and_briefly(lab):
    fake = FakeTime()
    luns, complete = tree_of(lab).wait_for_devices(1, 30, clock=fake.clock, sleep=fake.sleep)
    assert complete and [lun.lun for lun in luns] == [0, 1, 2]
    assert fake.sleeps == [_hostscsi.STABLE_LOOK]


def test_wait_times_out_with_bounded_backing_off_sleeps(host):
    without_links(host)
    fake = FakeTime()
    start = fake.now
    luns, complete = tree_of(host).wait_for_devices(1, 5, clock=fake.clock, sleep=fake.sleep)
    assert complete is False
    assert luns[0].block == 'sdb' and luns[0].path is None
    assert fake.now - start == pytest.approx(5)  # up to the deadline, not past it
    assert sum(fake.sleeps) <= 5 + 1e-9
    assert max(fake.sleeps) <= _hostscsi.MAX_POLL
    assert fake.sleeps[0] <= 0.05
    body = fake.sleeps[:-1]
    assert all(later >= earlier for earlier, later in zip(body, body[1:]))  # backs off, never speeds up
    assert fake.sleeps[:6] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert len(fake.sleeps) < 20


def test_wait_with_zero_timeout_looks_once(host):
    without_links(host)
    fake = FakeTime()
    _luns, complete = tree_of(host).wait_for_devices(1, 0, clock=fake.clock, sleep=fake.sleep)
    assert complete is False and fake.sleeps == []


def test_wait_ignores_luns_that_are_not_disks(host):
    host.session(1, 2)
    host.scsi_device(1, 2, 0, kind=12, model='Controller')
    fake = FakeTime()
    luns, complete = tree_of(host).wait_for_devices(1, 30, clock=fake.clock, sleep=fake.sleep)
    assert complete and len(luns) == 1 and fake.sleeps == [_hostscsi.STABLE_LOOK]


# ---------------------------------------------------------------------------------------
# removal
def test_delete_device_writes_1_to_the_scsi_device(lab):
    tree_of(lab).delete_device('sdb')
    assert lab.read(lab.scsi['2:0:0:1'] + '/delete') == '1'
    assert lab.read(lab.scsi['2:0:0:2'] + '/delete') == ''


def test_delete_device_of_a_gone_device_raises(lab):
    with pytest.raises(OSError):
        tree_of(lab).delete_device('sdz')


# ---------------------------------------------------------------------------------------
# dev_numbers
def test_dev_numbers_of_a_plain_disk(lab):
    assert tree_of(lab).dev_numbers('sdb') == {'67:16'}


def test_dev_numbers_include_partitions_and_holders(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17'), ('sdb2', '67:18')])
    host.multipath('dm-0', '254:0', WWID1, ['sdb'])
    host.dm('dm-1', '254:1', 'part1-mpath-' + WWID1, WWID1 + '-part1', ['dm-0'])
    assert tree_of(host).dev_numbers('sdb') == {'67:16', '67:17', '67:18', '254:0', '254:1'}


def test_dev_numbers_follow_holders_of_partitions(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17')])
    host.dm('dm-3', '254:3', 'LVM-Zx81', 'vg0-data', ['sdb1'])
    assert tree_of(host).dev_numbers('sdb') == {'67:16', '67:17', '254:3'}


# ---------------------------------------------------------------------------------------
# host_uses
def proc_with(host, mountinfo='', swaps=None):
    host.write('proc/self/mountinfo', mountinfo)
    if swaps is not None:
        host.write('proc/swaps', swaps)
    return host.p('proc')


ROOT_MOUNT = '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n'
SWAPS_HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n'


def disk_lun(tree, lun=1):
    return [item for item in tree.session_luns(1) if item.lun == lun][0]


def test_host_uses_nothing(lab):
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT, SWAPS_HEADER)) == []


def test_host_uses_of_a_lun_without_block_device(lab):
    tree = tree_of(lab)
    assert tree.host_uses(tree.session_luns(1)[0], proc=proc_with(lab, ROOT_MOUNT)) == []


def test_host_uses_a_mounted_partition(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17')])
    tree = tree_of(host)
    mounts = ROOT_MOUNT + '97 22 67:17 / /srv/data rw,relatime shared:50 - xfs /dev/sdb1 rw,attr2\n'
    assert tree.host_uses(disk_lun(tree), proc=proc_with(host, mounts)) == ['mounted at /srv/data']


def test_host_uses_a_mounted_whole_disk_and_ignores_other_mounts(lab):
    tree = tree_of(lab)
    mounts = (ROOT_MOUNT + '98 22 67:16 / /mnt/lun rw - ext4 /dev/sdb rw\n'
              '99 22 67:32 / /mnt/other rw - ext4 /dev/sdc rw\n')
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, mounts)) == ['mounted at /mnt/lun']


def test_host_uses_a_mounted_multipath_map(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    tree = tree_of(lab)
    mounts = ROOT_MOUNT + '100 22 254:0 / /var/lib/data rw - xfs /dev/mapper/%s rw\n' % WWID1
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, mounts)) == ['mounted at /var/lib/data']


def test_host_uses_a_mounted_lv_on_a_partition(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17')])
    host.dm('dm-3', '254:3', 'LVM-Zx81', 'vg0-data', ['sdb1'])
    tree = tree_of(host)
    mounts = ROOT_MOUNT + '101 22 254:3 / /srv/lv rw - ext4 /dev/mapper/vg0-data rw\n'
    assert tree.host_uses(disk_lun(tree), proc=proc_with(host, mounts)) != []


def fake_block_stat(monkeypatch, devices):
    """os.stat that says the paths in `devices` are block nodes with those numbers."""
    real_stat = os.stat

    class Result(object):
        def __init__(self, number):
            major, minor = [int(part) for part in number.split(':')]
            self.st_mode = stat.S_IFBLK | 0o660
            self.st_rdev = os.makedev(major, minor)

    def fake_stat(path, *args, **kwargs):
        if path in devices:
            return Result(devices[path])
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(_hostscsi.os, 'stat', fake_stat)


def test_host_uses_swap_on_the_disk(lab, monkeypatch):
    fake_block_stat(monkeypatch, {'/dev/virtops-test-sdb': '67:16', '/dev/virtops-test-other': '8:5'})
    swaps = (SWAPS_HEADER + '/dev/virtops-test-other                  partition\t1048572\t\t0\t\t-2\n'
             '/dev/virtops-test-sdb                    partition\t1048572\t\t0\t\t-3\n'
             '/nonexistent/virtops-swapfile           file\t\t1024\t\t0\t\t-4\n')
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT, swaps)) == [
        'swap space (/dev/virtops-test-sdb)']


def test_host_uses_swap_on_a_partition(host, monkeypatch):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb2', '67:18')])
    fake_block_stat(monkeypatch, {'/dev/virtops-test-sdb2': '67:18'})
    tree = tree_of(host)
    swaps = SWAPS_HEADER + '/dev/virtops-test-sdb2 partition\t1048572\t0\t-2\n'
    assert tree.host_uses(disk_lun(tree), proc=proc_with(host, '', swaps)) == ['swap space (/dev/virtops-test-sdb2)']


def lvm_label(sector=1):
    label = b'LABELONE' + struct.pack('<Q', sector) + b'\0' * 8 + b'LVM2 001' + b'x' * 32
    return b'\0' * (512 * sector) + label + b'\0' * (2048 - 512 * sector - len(label))


@pytest.mark.parametrize('sector', [0, 1, 3])
def test_host_uses_an_lvm_physical_volume(lab, sector):
    lab.write('dev/sdb', lvm_label(sector))
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab)) == ['an LVM physical volume']


def test_a_label_without_the_lvm2_type_is_no_pv(lab):
    data = bytearray(lvm_label(1))
    data[512 + 24:512 + 32] = b'XFS 0001'
    lab.write('dev/sdb', bytes(data))
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab)) == []


def test_an_lvm_label_on_the_multipath_map(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    lab.write('dev/dm-0', lvm_label(1))
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab)) == ['an LVM physical volume']


def test_own_multipath_map_is_not_a_use(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    tree = tree_of(lab)
    lun = disk_lun(tree)
    assert lun.multipath == 'dm-0'
    assert tree.host_uses(lun, proc=proc_with(lab, ROOT_MOUNT)) == []


def test_a_foreign_holder_is_a_use(lab):
    lab.dm('dm-5', '254:5', 'CRYPT-LUKS2-0123-luks', 'luks-data', ['sdb'])
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT)) == ['held by dm-5 (luks-data)']


def test_what_stacks_on_the_own_map_is_a_use(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    lab.dm('dm-1', '254:1', 'part1-mpath-' + WWID1, WWID1 + '-part1', ['dm-0'])
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT)) == ['held by dm-1 (%s-part1)' % WWID1]


# ---------------------------------------------------------------------------------------
# real_paths
def test_real_paths(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    tree = tree_of(lab)
    lun = disk_lun(tree)
    assert tree.real_paths(lun) == {os.path.realpath(lab.p('dev/sdb')), os.path.realpath(lab.p('dev/dm-0'))}
    plain = disk_lun(tree, 2)
    assert tree.real_paths(plain) == {os.path.realpath(lab.p('dev/sdc'))}
