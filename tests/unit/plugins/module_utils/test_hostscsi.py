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

    def sleep(seconds):  # udev works while the module waits
        fake.sleep(seconds)
        polls.append(fake.now)
        if len(polls) == 2:
            host.udev_links('sdb', WWID1)

    luns, complete = tree_of(host).wait_for_devices(1, 30, clock=fake.clock, sleep=sleep)
    assert complete is True
    assert luns[0].path == host.p('dev/disk/by-id/wwn-0x' + NAA1)
    assert len(polls) == 3  # seen at the 3rd look, confirmed unchanged at the 4th
    assert fake.sleeps == [0.05, 0.1, _hostscsi.STABLE_LOOK]  # backing off, then one quick second look


def test_wait_polls_again_when_a_lun_appears(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072)
    host.udev_links('sdb', WWID1)
    fake = FakeTime()
    polls = []

    def sleep(seconds):
        fake.sleep(seconds)
        polls.append(fake.now)
        if len(polls) == 1:  # the scan finds LUN 2, already named, during the second look's pause
            hctl2 = host.scsi_device(1, 2, 2, pg83=page83_naa(NAA2))
            host.disk(hctl2, 'sdc', '67:32', 2048)
            host.udev_links('sdc', WWID2)

    luns, complete = tree_of(host).wait_for_devices(1, 30, clock=fake.clock, sleep=sleep)
    assert complete and [lun.block for lun in luns] == ['sdb', 'sdc']
    assert len(polls) == 2  # the new LUN changed what the second look saw: a third look confirms it


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


def reads_of_labels(monkeypatch):
    read = []
    real = HostTree._lvm_label

    def spy(device):
        read.append(os.path.basename(device))
        return real(device)
    monkeypatch.setattr(HostTree, '_lvm_label', staticmethod(spy))
    return read


def test_an_lvm_label_on_the_multipath_map(lab, monkeypatch):
    # the map shows the disk's own bytes: the label is read from the SCSI disk, never from the
    # map (a read of a map that queues I/O without paths could block the run)
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    lab.write('dev/dm-0', lvm_label(1))
    lab.write('dev/sdb', lvm_label(1))
    read = reads_of_labels(monkeypatch)
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab)) == ['an LVM physical volume']
    assert 'dm-0' not in read


def test_an_lvm_label_on_a_partition(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17')])
    host.write('dev/sdb1', lvm_label(1))
    tree = tree_of(host)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(host)) == ['an LVM physical volume']


@pytest.mark.parametrize('state', ['offline', 'transport-offline', 'blocked'])
def test_the_label_of_a_disk_that_does_not_answer_is_not_read(lab, monkeypatch, state):
    lab.write(lab.scsi['2:0:0:1'] + '/state', state + '\n')
    lab.write('dev/sdb', lvm_label(1))
    read = reads_of_labels(monkeypatch)
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab)) == [] and read == []
    lab.write(lab.scsi['2:0:0:1'] + '/state', 'running\n')
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


def test_settle_runs_once_before_the_looks(host):
    without_links(host)
    fake = FakeTime()
    calls = []
    tree_of(host).wait_for_devices(1, 2, settle=lambda: calls.append(fake.now), clock=fake.clock, sleep=fake.sleep)
    assert calls == [calls[0]]  # udevadm settle has its own timeout: once, not per look


def test_settle_runs_before_the_first_look(host):
    without_links(host)
    fake = FakeTime()
    order = []

    def settle():
        order.append('settle')
        host.udev_links('sdb', WWID1)  # udev's queue after the login names the disk

    def sleep(seconds):
        order.append(seconds)
        fake.sleep(seconds)
    luns, complete = tree_of(host).wait_for_devices(1, 30, settle=settle, clock=fake.clock, sleep=sleep)
    assert complete and luns[0].path == host.p('dev/disk/by-id/wwn-0x' + NAA1)
    assert order == ['settle', _hostscsi.STABLE_LOOK]  # named at the first look: one quick second look


def test_wait_backs_off_to_max_poll_and_confirms_with_one_stable_look(host):
    without_links(host)
    fake = FakeTime()

    def sleep(seconds):
        fake.sleep(seconds)
        if len(fake.sleeps) == 7:
            host.udev_links('sdb', WWID1)
    luns, complete = tree_of(host).wait_for_devices(1, 30, clock=fake.clock, sleep=sleep)
    assert complete and luns[0].path is not None
    assert fake.sleeps == [0.05, 0.1, 0.2, 0.4, _hostscsi.MAX_POLL, _hostscsi.MAX_POLL, _hostscsi.MAX_POLL,
                           _hostscsi.STABLE_LOOK]
    assert (_hostscsi.STABLE_LOOK, _hostscsi.MAX_POLL) == (0.1, 0.5)


# ---------------------------------------------------------------------------------------
# flat-addressed LUN numbers
def test_session_luns_number_a_flat_addressed_lun_as_libiscsi_and_qemu_do(host):
    host.session(1, 2)
    host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    hctl = host.scsi_device(1, 2, 16640, pg83=page83_naa(NAA2))  # flat LUN 256: 0x4100, as Linux names it
    host.disk(hctl, 'sdc', '67:32', 2048)
    host.scsi_device(1, 2, 300, pg83=page83_naa('6001405' + '0' * 24 + '3'))
    luns = tree_of(host).session_luns(1)
    # the number a QEMU iscsi://host/iqn/<lun> URI and libiscsi use for the same LUN, numeric order
    assert [(lun.hctl, lun.lun) for lun in luns] == [('2:0:0:1', 1), ('2:0:0:300', 300), ('2:0:0:16640', 16640)]
    assert luns[2].wwid == WWID2 and luns[2].block == 'sdc'


# ---------------------------------------------------------------------------------------
# directories that vanish while they are read (a device the kernel removes meanwhile)
def vanishing(monkeypatch, *suffixes):
    """os.listdir that fails as for a removed device on paths ending with `suffixes`
    (after isdir/glob saw them)."""
    real = os.listdir

    def listdir(path):
        if any(str(path).endswith(suffix) for suffix in suffixes):
            raise FileNotFoundError(2, 'No such file or directory', path)
        return real(path)
    monkeypatch.setattr(_hostscsi.os, 'listdir', listdir)


def test_a_block_directory_that_vanishes_reads_as_no_disk(lab, monkeypatch):
    vanishing(monkeypatch, '2:0:0:1/block')
    luns = tree_of(lab).session_luns(1)
    assert [(lun.lun, lun.block) for lun in luns] == [(0, None), (1, None), (2, 'sdc')]


def test_holders_that_vanish_read_as_none(lab, monkeypatch):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    tree = tree_of(lab)
    assert tree.multipath_of('sdb') == 'dm-0'
    vanishing(monkeypatch, 'holders')
    assert tree.multipath_of('sdb') is None
    assert tree.dev_numbers('sdb') == {'67:16'}


def test_a_device_that_is_gone(lab):
    tree = tree_of(lab)
    assert tree.multipath_of('sdz') is None
    assert tree.dev_numbers('sdz') == set()
    assert tree.host_uses(item('sdz', WWID1), proc=proc_with(lab, ROOT_MOUNT)) == []


# ---------------------------------------------------------------------------------------
# real_paths, devices_by_wwid, sessions, map_name
def test_real_paths_include_partitions(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17'), ('sdb2', '67:18')])
    host.udev_links('sdb', WWID1)
    host.dm('dm-3', '254:3', 'LVM-Zx81', 'vg0-data', ['sdb1'])  # an LV on a partition reads the LUN too
    tree = tree_of(host)
    lun = disk_lun(tree)
    assert lun.path == host.p('dev/disk/by-id/wwn-0x' + NAA1)
    assert tree.real_paths(lun) == set(os.path.realpath(host.p('dev/' + name))
                                       for name in ('sdb', 'sdb1', 'sdb2', 'dm-3'))


def test_real_paths_of_a_map_with_a_partition_of_the_disk(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072, partitions=[('sdb1', '67:17')])
    host.udev_links('sdb', WWID1)
    host.multipath('dm-0', '254:0', WWID1, ['sdb'])
    tree = tree_of(host)
    lun = disk_lun(tree)
    assert lun.path == host.p('dev/mapper/' + WWID1)
    assert tree.real_paths(lun) == set(os.path.realpath(host.p('dev/' + name)) for name in ('sdb', 'sdb1', 'dm-0'))


def multipath_with_kpartx(host, map_name, partition_map):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 131072)
    host.udev_links('sdb', WWID1)
    host.multipath(map_name, '254:1', WWID1, ['sdb'])
    host.dm(partition_map, '254:2', 'part1-mpath-' + WWID1, WWID1 + '-part1', [map_name])
    tree = tree_of(host)
    return tree, tree.real_paths(disk_lun(tree))


def test_real_paths_include_the_partitions_of_the_multipath_map(host):
    _tree, paths = multipath_with_kpartx(host, 'dm-1', 'dm-2')
    assert os.path.realpath(host.p('dev/mapper/%s-part1' % WWID1)) in paths


def test_real_paths_do_not_depend_on_dm_numbers(tmp_path):
    shapes = []
    for number, holder in ((1, 'dm-2'), (2, 'dm-10')):
        host = FakeHost(tmp_path / str(number))
        _tree, paths = multipath_with_kpartx(host, 'dm-1', holder)
        shapes.append(sorted(os.path.basename(path).replace(holder, 'HOLDER') for path in paths))
    assert shapes[0] == shapes[1]


def test_sessions_in_numeric_order(host):
    for sid in (10, 2, 1):
        host.session(sid, sid + 1)
    host.mkdir('sys/class/iscsi_session/sessionX')
    assert tree_of(host).sessions() == [1, 2, 10]
    assert HostTree(host.p('nothing-here')).sessions() == []


def test_devices_by_wwid_across_sessions(lab):
    lab.session(2, 3)  # a second path to LUN 1 (another portal), and a LUN not probed yet
    hctl = lab.scsi_device(2, 3, 1, pg83=page83_naa(NAA1))
    lab.disk(hctl, 'sdd', '67:48', 131072)
    lab.scsi_device(2, 3, 3, pg83=page83_naa('6001405' + '0' * 24 + '3'))
    found = tree_of(lab).devices_by_wwid()
    assert sorted(found) == [WWID1, WWID2]  # the controller and the disk without sd are not there
    assert [(item.hctl, item.block) for item in found[WWID1]] == [('2:0:0:1', 'sdb'), ('3:0:0:1', 'sdd')]
    assert [item.block for item in found[WWID2]] == ['sdc']


def test_devices_by_wwid_of_a_host_without_sessions(tmp_path):
    assert HostTree(str(tmp_path)).devices_by_wwid() == {}


def test_map_name(lab):
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    lab.dm('dm-1', '254:1', 'mpath-' + WWID2, 'mpatha', ['sdc'])  # user_friendly_names
    tree = tree_of(lab)
    assert tree.map_name('dm-0') == WWID1
    assert tree.map_name('dm-1') == 'mpatha'
    assert tree.map_name('dm-9') is None


# ---------------------------------------------------------------------------------------
# udev's own record of a disk (/run/udev/data/b<major>:<minor>)
EUI_WWID = '20123456789abcdef'


def udev_record(host, number, serial=None, links=()):
    lines = ['S:disk/by-id/%s' % link for link in links] + ['W:12', 'I:1234567']
    if serial is not None:
        lines.append('E:ID_SERIAL=%s' % serial)
    host.write('run/udev/data/b' + number, '\n'.join(lines) + '\n')


def test_udev_data(lab):
    udev_record(lab, '67:16', WWID1, ['wwn-0x' + NAA1, 'scsi-' + WWID1, 'wwn-0x%s-part1' % NAA1])
    tree = tree_of(lab)
    assert tree.udev_data('sdb') == (WWID1, ['wwn-0x' + NAA1, 'scsi-' + WWID1, 'wwn-0x%s-part1' % NAA1])
    assert tree.udev_data('sdc') == (None, [])  # no record
    assert tree.udev_data('sdz') == (None, [])  # no device


def test_the_wwid_udev_gave_the_disk_wins(host):
    # this host's udev rules ranked another designator first: its name is what /dev/disk/by-id
    # and multipath use
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 2048)
    host.by_id('scsi-' + EUI_WWID, 'sdb')
    udev_record(host, '67:16', EUI_WWID, ['scsi-' + EUI_WWID])
    lun, = tree_of(host).session_luns(1)
    assert lun.wwid == EUI_WWID
    assert lun.path == host.p('dev/disk/by-id/scsi-' + EUI_WWID)


def test_a_udev_link_not_derived_from_the_wwid_is_a_path(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1, pg83=page83_naa(NAA1))
    host.disk(hctl, 'sdb', '67:16', 2048, partitions=[('sdb1', '67:17')])
    host.by_id('wwn-0x5000c500a1b2c3d4', 'sdb')  # what udev's rules named it, not what the WWID gives
    host.by_id('wwn-0x5000c500a1b2c3d4-part1', 'sdb1')
    udev_record(host, '67:16', WWID1, ['wwn-0x5000c500a1b2c3d4-part1', 'wwn-0x5000c500a1b2c3d4', 'ata-foo'])
    lun, = tree_of(host).session_luns(1)
    assert lun.wwid == WWID1 and lun.path == host.p('dev/disk/by-id/wwn-0x5000c500a1b2c3d4')


def test_a_disk_without_a_wwid_is_settled_with_its_block_device(host):
    host.session(1, 2)
    hctl = host.scsi_device(1, 2, 1)  # no VPD 0x83: udev makes no by-id name
    host.disk(hctl, 'sdb', '67:16', 2048)
    fake = FakeTime()
    luns, complete = tree_of(host).wait_for_devices(1, 30, clock=fake.clock, sleep=fake.sleep)
    assert complete and luns[0].path is None and luns[0].wwid is None
    assert fake.sleeps == [_hostscsi.STABLE_LOOK]


# ---------------------------------------------------------------------------------------
# host_uses: what else may hold the disk
def test_host_uses_a_mount_shown_by_its_source_device(lab):
    # btrfs shows an anonymous 0:N device in mountinfo: the source names the disk
    tree = tree_of(lab)
    mounts = ROOT_MOUNT + '120 22 0:45 / /srv/btrfs rw - btrfs %s rw\n' % lab.p('dev/disk/by-id/wwn-0x' + NAA1)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, mounts)) == ['mounted at /srv/btrfs']
    other = ROOT_MOUNT + '121 22 0:46 / /srv/other rw - btrfs %s rw\n' % lab.p('dev/sdc')
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, other)) == []


def test_host_uses_an_md_array(lab):
    directory = 'sys/devices/virtual/block/md127'
    lab.write(directory + '/dev', '9:127\n')
    lab.mkdir(directory + '/holders')
    lab.link('sys/block/md127', directory)
    sdb = os.path.relpath(os.path.realpath(lab.p('sys/class/block/sdb')), lab.root)
    lab.link(sdb + '/holders/md127', directory)
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT)) == ['held by md127 (the kernel)']


def test_host_uses_an_exclusive_claim_only_when_nothing_else_says_why(lab, monkeypatch):
    import errno
    real_open = os.open
    claimed = set([lab.p('dev/sdb')])

    def fake_open(path, flags, *args):
        if path in claimed and flags & os.O_EXCL:
            raise OSError(errno.EBUSY, 'Device or resource busy', path)
        return real_open(path, flags, *args)
    monkeypatch.setattr(_hostscsi.os, 'open', fake_open)
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT)) == [
        'claimed by the kernel (an exclusive open: a mount, RAID or swap)']
    assert tree.host_uses(disk_lun(tree, 2), proc=proc_with(lab, ROOT_MOUNT)) == []
    mounts = ROOT_MOUNT + '98 22 67:16 / /mnt/lun rw - ext4 /dev/sdb rw\n'
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, mounts)) == ['mounted at /mnt/lun']


def test_an_exclusive_claim_of_the_multipath_map_is_looked_at_on_the_map(lab, monkeypatch):
    import errno
    lab.multipath('dm-0', '254:0', WWID1, ['sdb'])
    opened = []
    real_open = os.open

    def fake_open(path, flags, *args):
        opened.append(os.path.basename(path))
        if os.path.basename(path) == 'dm-0' and flags & os.O_EXCL:
            raise OSError(errno.EBUSY, 'Device or resource busy', path)
        return real_open(path, flags, *args)
    monkeypatch.setattr(_hostscsi.os, 'open', fake_open)
    tree = tree_of(lab)
    assert tree.host_uses(disk_lun(tree), proc=proc_with(lab, ROOT_MOUNT)) == [
        'claimed by the kernel (an exclusive open: a mount, RAID or swap)']
    assert 'dm-0' in opened
