# -*- coding: utf-8 -*-
"""_domain: a domain's disks read from libvirt's XML, boot order, target names and the <disk> XML written."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _domain, _xml
from ansible_collections.virtops.storage.plugins.module_utils._domain import DiskState, NetworkSource

MAC = '52:54:00:12:34:56'
MAC2 = '52:54:00:65:43:21'
ODD_PATH = u'/srv/my images/a & b <c> "d" \'e\' é池.qcow2'


# helpers ---------------------------------------------------------------------------------
def disk(target, bus='virtio', device='disk', path=None, fmt='qcow2', boot=None, disk_type='file'):
    """A <disk> as `virsh dumpxml --inactive` shows it."""
    parts = ["<disk type='%s' device='%s'>" % (disk_type, device), "<driver name='qemu' type='%s'/>" % fmt]
    if path:
        parts.append("<source %s='%s'/>" % ('dev' if disk_type == 'block' else 'file', path))
    parts.append("<target dev='%s' bus='%s'/>" % (target, bus))
    if boot is not None:
        parts.append("<boot order='%d'/>" % boot)
    parts.append('</disk>')
    return ''.join(parts)


def interface(mac=MAC, boot=None):
    return ("<interface type='network'><mac address='%s'/><source network='default'/><model type='virtio'/>%s"
            "</interface>" % (mac, "<boot order='%d'/>" % boot if boot is not None else ''))


def domain_xml(devices, boot=()):
    return ("<domain type='kvm'><name>vm1</name><memory unit='KiB'>1048576</memory>"
            "<os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type>%s</os>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>%s</devices></domain>"
            % (''.join("<boot dev='%s'/>" % dev for dev in boot), ''.join(devices)))


def view(devices, boot=()):
    return _domain.parse_view(domain_xml(devices, boot))


def round_trip(state, with_boot=True):
    return dataclasses.replace(_domain.parse_disk(_xml.parse(_domain.disk_xml(state, with_boot))), xml='')


# reading what libvirt shows ---------------------------------------------------------------
LIVE_XML = u"""<domain type='kvm' id='7'>
  <name>vm1</name>
  <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='native' discard='unmap' detect_zeroes='unmap' error_policy='stop'/>
      <source file='/srv/images/root &amp; co.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='raw'/>
        <source file='/srv/images/base.img'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <serial>root-1</serial>
      <boot order='1'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='images' volume='data &lt;1&gt;.img' index='1'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
      <shareable/>
      <alias name='virtio-disk1'/>
    </disk>
    <disk type='block' device='lun'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/mapper/36001405abcdef'/>
      <target dev='sda' bus='scsi'/>
      <boot order='x'/>
      <alias name='scsi0-0-0-0'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='iscsi' name='iqn.2026-01.org.example:t1/0'>
        <host name='10.0.0.1' port='3260'/>
        <host name='10.0.0.2'/>
        <auth username='chap'><secret type='iscsi' usage='virtops-lun/t1'/></auth>
        <initiator><iqn name='iqn.2026-01.org.example:host1'/></initiator>
      </source>
      <target dev='sdb' bus='scsi'/>
      <alias name='scsi0-0-0-1'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu'/>
      <target dev='sdc' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-2'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'><alias name='scsi0'/></controller>
    <controller type='scsi' index='1'/>
    <controller type='sata' index='0'/>
    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/><boot order='2'/></interface>
    <interface type='network'><mac address='52:54:00:65:43:21'/><source network='default'/></interface>
    <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source>
      <boot order='3'/></hostdev>
  </devices>
</domain>
"""


def test_parse_view_reads_every_kind_of_disk():
    parsed = _domain.parse_view(LIVE_XML)
    assert [item.target for item in parsed.disks] == ['vda', 'vdb', 'sda', 'sdb', 'sdc']
    root, data, lun, network, cdrom = parsed.disks
    assert (root.type, root.path, root.format, root.serial, root.boot_order, root.alias) == (
        'file', '/srv/images/root & co.qcow2', 'qcow2', 'root-1', 1, 'virtio-disk0')
    assert (root.cache, root.io, root.discard, root.detect_zeroes, root.error_policy) == (
        'none', 'native', 'unmap', 'unmap', 'stop')
    assert not root.readonly and not root.shareable
    assert (data.type, data.pool, data.volume, data.path) == ('volume', 'images', 'data <1>.img', None)
    assert data.readonly and data.shareable and data.boot_order is None and data.cache is None
    assert (lun.device, lun.bus, lun.type, lun.path) == ('lun', 'scsi', 'block', '/dev/mapper/36001405abcdef')
    assert lun.boot_order is None, 'an order that is not a number is no order'
    assert network.network == NetworkSource(
        protocol='iscsi', name='iqn.2026-01.org.example:t1/0', hosts=(('10.0.0.1', '3260'), ('10.0.0.2', None)),
        username='chap', secret_type='iscsi', secret_usage='virtops-lun/t1', initiator='iqn.2026-01.org.example:host1')
    assert network.path is None and network.source_label == 'iscsi://iqn.2026-01.org.example:t1/0'
    assert (cdrom.device, cdrom.path, cdrom.format, cdrom.readonly, cdrom.source_label) == (
        'cdrom', None, None, True, '(empty)')
    assert parsed.scsi_controllers == ('virtio-scsi', '')
    assert parsed.device_boot == (('interface %s' % MAC, 2), ('hostdev 1', 3))
    assert parsed.first_of_kind == (('interface', 'interface %s' % MAC),)
    assert parsed.legacy_boot == ()
    assert parsed.disk_at('sdb') is network and parsed.disk_at('vdz') is None
    assert _xml.parse(root.xml).find('alias').get('name') == 'virtio-disk0', 'each disk keeps its own XML'


def test_parse_view_of_a_domain_without_devices():
    parsed = _domain.parse_view("<domain type='kvm'><name>x</name><os><boot dev='hd'/></os></domain>")
    assert parsed.disks == () and parsed.legacy_boot == ('hd',) and parsed.boot_orders() == {}
    assert parsed.root() is None


@pytest.mark.parametrize('state, label', [
    (DiskState('vda', 'virtio', type='volume', pool='p', volume='v', path='/x/v'), 'p/v'),
    (DiskState('vda', 'virtio', type='file', path='/x/v'), '/x/v'),
    (DiskState('sda', 'scsi', type='network', network=NetworkSource('rbd', 'pool/img')), 'rbd://pool/img'),
    (DiskState('sda', 'sata', device='cdrom', type='file'), '(empty)'),
])
def test_source_label(state, label):
    assert state.source_label == label


# boot order --------------------------------------------------------------------------------
@pytest.mark.parametrize('devices, legacy, orders, root', [
    # the legacy list: the first device of each kind gets the index of its kind in the list
    ([disk('sda', 'sata', 'cdrom'), disk('vda', path='/a'), disk('vdb', path='/b')], ['hd'], {'vda': 1}, 'vda'),
    ([disk('vda', path='/a'), disk('sda', 'sata', 'cdrom')], ['cdrom', 'hd'], {'sda': 1, 'vda': 2}, None),
    ([disk('vda', path='/a'), interface()], ['network', 'hd'], {'interface %s' % MAC: 1, 'vda': 2}, None),
    ([disk('vda', path='/a'), interface(), interface(MAC2)], ['hd', 'network'], {'vda': 1, 'interface %s' % MAC: 2},
     'vda'),
    ([disk('vda', path='/a')], ['network', 'hd'], {'vda': 2}, None),  # no interface: the index stays 2
    ([disk('vda', path='/a'), interface()], ['hd', 'cdrom', 'network'], {'vda': 1, 'interface %s' % MAC: 3}, 'vda'),
    ([disk('fda', 'fdc', 'floppy', fmt='raw'), disk('vda', path='/a')], ['fd', 'hd'], {'fda': 1, 'vda': 2}, None),
    ([disk('sda', 'sata', 'cdrom')], ['hd', 'cdrom'], {'sda': 2}, None),
    # per-device boot order
    ([disk('vda', path='/a', boot=2), disk('sda', 'sata', 'cdrom', boot=1), interface(boot=3)], [],
     {'vda': 2, 'sda': 1, 'interface %s' % MAC: 3}, None),
    ([disk('vdb', path='/b', boot=1), disk('vda', path='/a')], [], {'vdb': 1}, 'vdb'),
    ([disk('sda', 'scsi', 'lun', path='/dev/sdx', fmt='raw', disk_type='block', boot=1)], [], {'sda': 1}, 'sda'),
    ([disk('vda', path='/a')], [], {}, None),
])
def test_boot_orders_and_root(devices, legacy, orders, root):
    parsed = view(devices, legacy)
    assert parsed.boot_orders() == orders
    found = parsed.root()
    assert (found.target if found is not None else None) == root


def test_legacy_hd_goes_to_the_first_disk_or_lun_as_libvirt_does():
    """libvirt (qemuBuildDiskDriveCommandLine / qemuProcessPrepareDeviceBootorder) hands the
    <boot dev='hd'> index to the first disk whose device is disk *or lun*."""
    parsed = view([disk('sda', 'scsi', 'lun', path='/dev/mapper/3600a', fmt='raw', disk_type='block'),
                   disk('vda', path='/a')], ['hd'])
    assert parsed.boot_orders() == {'sda': 1}
    assert parsed.root().target == 'sda'


def test_rewrite_boot_order_keeps_what_boots_and_drops_the_legacy_list():
    xml = domain_xml([disk('vda', path='/a'), disk('sda', 'sata', 'cdrom'), interface(), interface(MAC2)],
                     boot=['cdrom', 'hd', 'network'])
    before = _domain.parse_view(xml)
    assert before.boot_orders() == {'sda': 1, 'vda': 2, 'interface %s' % MAC: 3}
    text = _domain.rewrite_boot_order(xml, before.boot_orders())
    after = _domain.parse_view(text)
    assert after.legacy_boot == () and after.boot_orders() == before.boot_orders()
    assert [item.boot_order for item in after.disks] == [2, 1]
    tree = _xml.parse(text)
    assert tree.findtext('os/type') == 'hvm' and tree.findtext('name') == 'vm1', 'the rest of the definition stays'
    assert tree.findall('devices/interface')[1].find('boot') is None


def test_rewrite_boot_order_sets_exactly_the_orders_given():
    xml = domain_xml([disk('vda', path='/a', boot=1), disk('vdb', path='/b', boot=2), disk('sda', 'sata', 'cdrom'),
                      interface(boot=3)])
    text = _domain.rewrite_boot_order(xml, {'sda': 1, 'vda': 2, 'interface %s' % MAC: 4})
    after = _domain.parse_view(text)
    assert after.boot_orders() == {'sda': 1, 'vda': 2, 'interface %s' % MAC: 4}
    assert after.disk_at('vdb').boot_order is None, 'a device left out stops booting'
    assert len(_xml.parse(text).findall('devices/disk/boot')) == 2
    assert _xml.parse(text).find('devices/interface/boot').attrib == {'order': '4'}


def test_rewrite_boot_order_adds_a_new_disk_in_the_same_change():
    new = _domain.disk_xml(DiskState('vda', 'virtio', type='file', path='/a', format='raw', boot_order=1))
    xml = domain_xml([disk('vdb', path='/b'), disk('sda', 'sata', 'cdrom'), interface()], boot=['cdrom', 'hd'])
    after = _domain.parse_view(_domain.rewrite_boot_order(xml, {'vda': 1, 'sda': 2, 'vdb': 3}, new))
    assert [item.target for item in after.disks] == ['vdb', 'sda', 'vda'], 'after the disks already there'
    assert after.legacy_boot == () and after.boot_orders() == {'vda': 1, 'sda': 2, 'vdb': 3}
    diskless = _domain.rewrite_boot_order(domain_xml([interface()], boot=['hd']), {'vda': 1}, new)
    assert [child.tag for child in _xml.parse(diskless).find('devices')] == ['emulator', 'disk', 'interface']
    assert _domain.parse_view(diskless).boot_orders() == {'vda': 1}
    bare = _domain.rewrite_boot_order("<domain type='kvm'><name>x</name><os><boot dev='hd'/></os></domain>", {'vda': 1}, new)
    assert _domain.parse_view(bare).boot_orders() == {'vda': 1} and _domain.parse_view(bare).root().target == 'vda'


# target names --------------------------------------------------------------------------------
@pytest.mark.parametrize('name, index', [
    ('vda', 0), ('vdz', 25), ('vdaa', 26), ('vdaz', 51), ('vdba', 52), ('vdzz', 701), ('vdaaa', 702),
    ('sda', 0), ('hdd', 3), ('sdab', 27), ('vdzzz', 18277),
])
def test_target_names_count_like_libvirt(name, index):
    assert _domain.target_index(name) == index
    assert _domain.target_name(name[:2], index) == name


@pytest.mark.parametrize('name', [None, '', 'vd', 'xda', 'vdA', 'vda1', 'vdaaaa', 'fda', 'nvme0n1'])
def test_names_that_are_no_disk_targets(name):
    assert _domain.target_index(name) is None


def test_every_target_index_round_trips():
    names = [_domain.target_name('vd', index) for index in range(18278)]
    assert len(set(names)) == len(names)
    assert all(_domain.target_index(name) == index for index, name in enumerate(names))
    assert names[-1] == 'vdzzz'


@pytest.mark.parametrize('views, bus, expected', [
    ([[]], 'virtio', 'vda'),
    ([[('vda', 'virtio'), ('vdc', 'virtio')]], 'virtio', 'vdb'),
    ([[('vda', 'virtio'), ('vdb', 'virtio')], [('vda', 'virtio'), ('vdc', 'virtio')]], 'virtio', 'vdd'),
    ([[('sda', 'sata')]], 'scsi', 'sdb'),  # sata, scsi and usb share the sd names
    ([[('sda', 'scsi')]], 'usb', 'sdb'),
    ([[('vda', 'virtio')]], 'ide', 'hda'),
    ([[('vd' + chr(ord('a') + index), 'virtio') for index in range(26)]], 'virtio', 'vdaa'),
])
def test_free_target_skips_names_any_view_uses(views, bus, expected):
    parsed = [view([disk(target, target_bus, path='/%s' % target) for target, target_bus in disks]) for disks in views]
    assert _domain.free_target(parsed, bus) == expected


# where libvirt inserts an attached disk ------------------------------------------------------
@pytest.mark.parametrize('disks, bus, target, position', [
    ([], 'virtio', 'vda', 0),
    ([('vda', 'virtio')], 'virtio', 'vdb', 1),
    ([('vdb', 'virtio')], 'virtio', 'vda', 0),
    ([('vda', 'virtio'), ('vdc', 'virtio')], 'virtio', 'vdb', 1),
    ([('sda', 'sata'), ('vda', 'virtio')], 'virtio', 'vdb', 2),
    ([('sda', 'sata'), ('vda', 'virtio')], 'sata', 'sdb', 1),
    ([('sda', 'sata'), ('vda', 'virtio')], 'ide', 'hda', 2),  # no disk on that bus: the end
    ([('vdc', 'virtio'), ('sda', 'sata'), ('vdd', 'virtio')], 'virtio', 'vda', 0),
    ([('vda', 'virtio'), ('sda', 'sata'), ('vdc', 'virtio')], 'virtio', 'vdb', 2),
    ([('vda', 'virtio'), ('vdb', 'virtio')], 'virtio', 'vdaa', 2),
    ([('vdz', 'virtio'), ('vdab', 'virtio')], 'virtio', 'vdaa', 1),
    ([('sdb', 'sata')], 'scsi', 'sda', 1),  # same names, another bus: not before it
    ([('vdc', 'virtio'), ('vda', 'virtio')], 'virtio', 'vdb', 0),
    ([('vdb', 'virtio'), ('vda', 'virtio')], 'virtio', 'vdc', 2),
])
def test_insert_position_follows_virDomainDiskInsert(disks, bus, target, position):
    parsed = view([disk(name, disk_bus, path='/%s' % name) for name, disk_bus in disks])
    assert _domain.insert_position(parsed, bus, target) == position


# serials and guest paths -------------------------------------------------------------------
def test_default_serial_is_stable_short_and_valid():
    one = _domain.default_serial('/srv/images/data.qcow2')
    assert one == _domain.default_serial('/srv/images/data.qcow2')
    assert one != _domain.default_serial('/srv/images/data2.qcow2')
    assert len(one) == _domain.SERIAL_LENGTH == 20 and _domain.SERIAL_RE.match(one)
    odd = _domain.default_serial(ODD_PATH)
    assert len(odd) == 20 and _domain.SERIAL_RE.match(odd)


@pytest.mark.parametrize('state, path', [
    (DiskState('vdb', 'virtio', serial='abc def'), '/dev/disk/by-id/virtio-abc_def'),
    (DiskState('vdb', 'virtio', serial='0123456789abcdefghijKLMN'), '/dev/disk/by-id/virtio-0123456789abcdefghij'),
    (DiskState('sdb', 'scsi', serial='S1'), '/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_S1'),
    (DiskState('sdb', 'scsi', device='cdrom', serial='S1'), '/dev/disk/by-id/scsi-0QEMU_QEMU_CD-ROM_S1'),
    (DiskState('sdb', 'sata', serial='S 1'), '/dev/disk/by-id/ata-QEMU_HARDDISK_S_1'),
    (DiskState('sdb', 'sata', device='cdrom', serial='S1'), '/dev/disk/by-id/ata-QEMU_DVD-ROM_S1'),
    (DiskState('hda', 'ide', serial='0123456789abcdefghijKLMN'), '/dev/disk/by-id/ata-QEMU_HARDDISK_0123456789abcdefghij'),
    (DiskState('sdb', 'usb', serial='S1'), '/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_S1-0:0'),
    (DiskState('sdb', 'usb', device='cdrom', serial='S1'), '/dev/disk/by-id/usb-QEMU_QEMU_CD-ROM_S1-0:0'),
    (DiskState('sdb', 'scsi', device='lun', serial='S1'), None),  # the LUN shows its own serial
    (DiskState('vdb', 'virtio'), None),
])
def test_guest_path_per_bus(state, path):
    assert _domain.guest_path(state) == path


# writing <disk> ----------------------------------------------------------------------------
ROUND_TRIPS = [
    DiskState('vdb', 'virtio', type='file', path=ODD_PATH, format='qcow2', serial='data 1+x_y.z-w', cache='none',
              io='native', discard='unmap', detect_zeroes='unmap', error_policy='stop', boot_order=2),
    DiskState('sdb', 'scsi', device='lun', type='block', path='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', format='raw',
              shareable=True),
    DiskState('vdc', 'virtio', type='volume', pool=u'pool & <ü>', volume=u'vol \'x\' "y" 卷.qcow2', format='qcow2',
              readonly=True, boot_order=1),
    DiskState('sdc', 'scsi', device='lun', type='network', format='raw', network=NetworkSource(
        protocol='iscsi', name='iqn.2026-01.org.example:target & co/1', hosts=(('10.0.0.1', '3260'), ('san2', None)),
        username='chap user', secret_type='iscsi', secret_usage='virtops-lun/t & 1',
        initiator='iqn.2026-01.org.example:host1')),
    DiskState('sdd', 'scsi', type='network', format='raw', network=NetworkSource('rbd', 'pool/img', (('mon1', None),))),
    DiskState('sda', 'sata', device='cdrom', type='file', readonly=True),
    DiskState('hdc', 'ide', device='cdrom', type='file', path='/iso/boot me.iso', format='raw', readonly=True, boot_order=3),
]


@pytest.mark.parametrize('state', ROUND_TRIPS, ids=[item.target for item in ROUND_TRIPS])
def test_disk_xml_then_parse_disk_round_trips(state):
    assert round_trip(state) == state


def test_disk_xml_without_boot_order():
    state = ROUND_TRIPS[0]
    assert round_trip(state, with_boot=False) == dataclasses.replace(state, boot_order=None)


def test_disk_xml_is_escaped_by_lxml():
    text = _domain.disk_xml(ROUND_TRIPS[0])
    assert '&amp;' in text and '&lt;c&gt;' in text
    element = _xml.parse(text)
    assert element.get('type') == 'file' and element.get('device') == 'disk'
    assert element.find('source').get('file') == ODD_PATH
    assert element.find('driver').attrib == {'name': 'qemu', 'type': 'qcow2', 'cache': 'none', 'io': 'native',
                                             'discard': 'unmap', 'detect_zeroes': 'unmap', 'error_policy': 'stop'}
    volume = _xml.parse(_domain.disk_xml(ROUND_TRIPS[2]))
    assert volume.find('source').attrib == {'pool': u'pool & <ü>', 'volume': u'vol \'x\' "y" 卷.qcow2'}


def test_serial_with_outer_spaces_is_refused():
    """Outer spaces would not survive libvirt's XML and a guest's udev; such a serial is
    refused up front rather than "changed" again on every run."""
    from ansible_collections.virtops.storage.plugins.module_utils import _disk
    from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
    with pytest.raises(StorageError) as caught:
        _disk.desired_from_params({'domain': 'vm', 'path': '/a', 'serial': ' lead and trail '})
    assert caught.value.code == 'INVALID_ARGUMENT'
    state = DiskState('vdb', 'virtio', type='file', path='/a', format='raw', serial='inner spaces ok')
    assert round_trip(state).serial == 'inner spaces ok'


def test_scsi_controller_xml():
    element = _xml.parse(_domain.scsi_controller_xml())
    assert element.tag == 'controller' and element.attrib == {'type': 'scsi', 'index': '0', 'model': 'virtio-scsi'}


# changing a <disk> libvirt showed ------------------------------------------------------------
def live_disk():
    return _domain.parse_view(LIVE_XML).disks[0]


def test_update_disk_xml_sets_and_removes():
    text = _domain.update_disk_xml(live_disk(), {'cache': None, 'io': 'threads', 'error_policy': 'report',
                                                 'readonly': True, 'shareable': True, 'serial': 'new one',
                                                 'boot_order': 2})
    element = _xml.parse(text)
    updated = _domain.parse_disk(element)
    assert updated.cache is None and 'cache' not in element.find('driver').attrib
    assert (updated.io, updated.error_policy, updated.discard, updated.format) == ('threads', 'report', 'unmap', 'qcow2')
    assert updated.readonly and updated.shareable and updated.serial == 'new one' and updated.boot_order == 2
    assert len(element.findall('serial')) == 1 and len(element.findall('boot')) == 1
    assert updated.path == '/srv/images/root & co.qcow2' and updated.target == 'vda'
    assert element.find('alias') is None, 'libvirt matches the device by target, not by its run-time alias'
    assert element.find('backingStore') is not None and element.find('address') is not None


def test_update_disk_xml_removes_elements():
    shared = _domain.parse_view(LIVE_XML).disks[1]
    element = _xml.parse(_domain.update_disk_xml(shared, {'readonly': False, 'shareable': False, 'serial': None}))
    assert element.find('readonly') is None and element.find('shareable') is None and element.find('serial') is None
    root = _xml.parse(_domain.update_disk_xml(live_disk(), {'serial': None, 'boot_order': None}))
    assert root.find('serial') is None and root.find('boot') is None
    assert _domain.parse_disk(root).cache == 'none', 'fields not named stay'


def test_update_disk_xml_adds_a_driver_when_there_is_none():
    bare = _domain.parse_disk(_xml.parse("<disk type='file' device='disk'><source file='/a'/>"
                                         "<target dev='vdb' bus='virtio'/></disk>"))
    element = _xml.parse(_domain.update_disk_xml(bare, {'cache': 'writeback', 'format': 'raw'}))
    driver = element[0]
    assert driver.tag == 'driver' and driver.attrib == {'name': 'qemu', 'cache': 'writeback', 'type': 'raw'}
