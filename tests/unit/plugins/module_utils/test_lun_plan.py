# -*- coding: utf-8 -*-
"""direct_lun's host-free logic: argument checks, picking the LUN, who uses it, the result
shape, and the kernel transport's `state: absent` plan.

The planner test runs the real KernelTransport, Iscsiadm and HostTree over a scripted
iscsiadm (open-iscsi 2.1.8 texts) and a fake sysfs/dev tree under tmp_path; libvirt is a
fake client of plain objects (domains' XML and pools' XML, nothing else).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import os
import struct

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _lun
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._hostscsi import HostTree
from ansible_collections.virtops.storage.plugins.module_utils._iscsiadm import Iscsiadm, Session
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.storage.plugins.module_utils._lun import Lun, desired_from_params
from ansible_collections.virtops.storage.plugins.module_utils._runner import apply_plan
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex

T1 = 'iqn.2003-01.org.example.storage:target1'
T2 = 'iqn.2003-01.org.example.storage:target2'
T3 = 'iqn.2003-01.org.example.storage:target3'
PORTAL = '192.0.2.10:3260'
NAA1 = '6001405a1b2c3d4e5f60718293a4b5c6'
NAA2 = '6001405ffeeddccbbaa9988776655443'
WWID1 = '3' + NAA1
WWID2 = '3' + NAA2
SECRET = 'S3cr3t-Chap-Pw!'


def invalid(params, code='INVALID_ARGUMENT', info=False):
    with pytest.raises(StorageError) as caught:
        desired_from_params(params, info=info)
    assert caught.value.code == code, caught.value.msg
    return caught.value.msg


def attach(**extra):
    params = {'portal': '192.0.2.10', 'target': T1, 'wwid': WWID1, 'domain': 'vm1'}
    params.update(extra)
    return params


# ---------------------------------------------------------------------------------------
# desired_from_params: portals
@pytest.mark.parametrize('portal,expected', [
    ('192.0.2.10', '192.0.2.10:3260'),
    ('192.0.2.10:3261', '192.0.2.10:3261'),
    ('storage.example.com', 'storage.example.com:3260'),
    ('[2001:db8::10]', '[2001:db8::10]:3260'),
    ('[2001:db8::10]:3262', '[2001:db8::10]:3262'),
    ('[::1]:3260', '[::1]:3260'),
    ('192.0.2.10:65535', '192.0.2.10:65535'),
    ('192.0.2.10:1', '192.0.2.10:1'),
])
def test_portal_forms(portal, expected):
    assert desired_from_params({'portal': portal}).portal == expected


@pytest.mark.parametrize('portal', [
    '', ' ', ':3260', '192.0.2.10:', '192.0.2.10:0', '192.0.2.10:65536', '192.0.2.10:99999999999999999999',
    '192.0.2.10:-1', '192.0.2.10:abc', '192.0.2.10:32 60', '2001:db8::10', '[2001:db8::10', '[]:3260', '[ ]',
    '[2001:db8::10]:', '[2001:db8::10]3260', '192.0.2.10\0', 'host:3260:3261',
], ids=repr)
def test_bad_portals(portal):
    invalid({'portal': portal})


def test_portal_is_required_except_for_kernel_info():
    assert 'portal is required' in invalid({'target': T1})
    assert desired_from_params({}, info=True).portal is None
    assert 'transport: qemu' in invalid({'transport': 'qemu'}, info=True)


# targets and initiator names
@pytest.mark.parametrize('target', [T1, 'iqn.2026-11.lab.virtops', 'eui.0123456789ABCDEF',
                                    'naa.6001405a1b2c3d4e', 'naa.6001405a1b2c3d4e5f60718293a4b5c6'])
def test_target_forms(target):
    assert desired_from_params({'portal': '192.0.2.10', 'target': target}).target == target


@pytest.mark.parametrize('target', ['', 'target1', 'iqn.2003-1.org.example', 'iqn.03-01.org.example', 'iqn.2003-01.',
                                    'iqn.2003-01.org.example:a b', 'iqn.2003-01.org/example', 'eui.0123',
                                    'naa.xyz0123456789abcd', ' ' + T1,
                                    T1 + '\n'])
def test_bad_targets(target):
    assert 'target must be an iSCSI name' in invalid({'portal': '192.0.2.10', 'target': target})


def test_initiator_name_only_with_qemu():
    assert 'kernel initiator' in invalid({'portal': '192.0.2.10', 'initiator_name': 'iqn.2026-11.lab.virtops:vm'})
    invalid({'portal': '192.0.2.10', 'initiator_name': 'iqn.2026-11.lab.virtops:vm'}, info=True)
    desired = desired_from_params({'portal': '192.0.2.10', 'transport': 'qemu',
                                   'initiator_name': 'iqn.2026-11.lab.virtops:vm'})
    assert desired.initiator == 'iqn.2026-11.lab.virtops:vm'
    assert desired_from_params({'portal': '192.0.2.10', 'transport': 'qemu'}).initiator == _lun.QEMU_INITIATOR
    assert 'initiator_name must be' in invalid({'portal': '192.0.2.10', 'transport': 'qemu', 'initiator_name': 'vm1'})


# auth
@pytest.mark.parametrize('option', ['auth', 'discovery_auth'])
@pytest.mark.parametrize('auth', [{'username': 'alice'}, {'username': 'alice', 'password': ''},
                                  {'username': 'alice', 'password': None}, {'password': SECRET},
                                  {'username': '', 'password': SECRET}, {'username': 'al\nice', 'password': SECRET},
                                  {'username': 'alice', 'password': 'pw\0'}],
                         ids=['no-password', 'empty-password', 'none-password', 'no-username', 'empty-username',
                              'newline', 'nul'])
def test_incomplete_or_bad_auth(option, auth):
    msg = invalid({'portal': '192.0.2.10', option: auth})
    assert option in msg
    assert SECRET not in msg


def test_auth_is_kept():
    desired = desired_from_params({'portal': '192.0.2.10', 'auth': {'username': 'alice', 'password': SECRET},
                                   'discovery_auth': {'username': 'disco', 'password': 'other'}})
    assert (desired.username, desired.password) == ('alice', SECRET)
    assert (desired.discovery_username, desired.discovery_password) == ('disco', 'other')


def test_info_reads_auth_but_not_the_rest():
    desired = desired_from_params({'portal': '192.0.2.10', 'auth': {'username': 'alice', 'password': SECRET},
                                   'lun': 3, 'device_timeout': -5}, info=True)
    assert desired.password == SECRET and desired.lun is None


# wwid, lun, domain
@pytest.mark.parametrize('given,expected', [
    ('3600140' + '5A1B2C3D4E5F60718293A4B5C6', WWID1),
    ('  %s  ' % WWID1, WWID1),
    ('20123456789ABCDEF', '20123456789abcdef'),
    ('1IET_VIRTUAL-DISK_beaf11', '1IET_VIRTUAL-DISK_beaf11'),  # a T10 id keeps its case
    ('8iqn.2003-01.org.example:Disk.A', '8iqn.2003-01.org.example:Disk.A'),
])
def test_wwid_normalisation(given, expected):
    assert desired_from_params({'portal': '192.0.2.10', 'wwid': given}).wwid == expected


def test_wwid_with_leading_blank_is_lowercased_too():
    assert desired_from_params({'portal': '192.0.2.10', 'wwid': ' 3600140' + NAA1[6:].upper()}).wwid == WWID1


@pytest.mark.parametrize('wwid', ['', '   ', '4abc', '0IET', '3', '3600 140', 'naa.' + NAA1, '3\u00e9t\u00e9'])
def test_bad_wwids(wwid):
    assert 'wwid' in invalid({'portal': '192.0.2.10', 'wwid': wwid})


def test_wwid_and_lun_are_exclusive():
    assert 'not both' in invalid(attach(lun=1))


@pytest.mark.parametrize('lun', [-1, 16384])
def test_lun_range(lun):
    invalid(attach(wwid=None, lun=lun))


def test_lun_needs_domain():
    assert 'needs domain' in invalid({'portal': '192.0.2.10', 'lun': 1})


def test_wwid_without_domain_is_an_assertion():
    desired = desired_from_params({'portal': '192.0.2.10', 'wwid': WWID1})
    assert desired.wwid == WWID1 and desired.domain is None and desired.disk is None


def test_domain_needs_wwid_or_lun():
    assert 'wwid or lun' in invalid({'portal': '192.0.2.10', 'domain': 'vm1'})


def test_absent_with_domain():
    assert 'attached: false' in invalid(attach(state='absent'))


def test_attached_false_without_domain():
    assert 'needs domain' in invalid({'portal': '192.0.2.10', 'attached': False})


def test_bad_domain_name():
    invalid(attach(domain='a/b'), code='INVALID_NAME')


# the disk options
def test_attach_defaults_to_a_scsi_lun():
    disk = desired_from_params(attach()).disk
    assert (disk.domain, disk.state, disk.bus, disk.device) == ('vm1', 'present', 'scsi', 'lun')
    assert disk.persistent is True and disk.live == 'auto' and disk.unplug_timeout == 30


def test_detach_keeps_whatever_is_there():
    disk = desired_from_params(attach(attached=False)).disk
    assert (disk.state, disk.bus, disk.device) == ('absent', None, None)


def test_attach_as_a_plain_disk_on_virtio():
    disk = desired_from_params(attach(device='disk', bus='virtio', readonly=True, shareable=True, boot_order=2,
                                      error_policy='report', live='true', persistent=False,
                                      unplug_timeout=5)).disk
    assert (disk.bus, disk.device, disk.readonly, disk.shareable, disk.boot_order) == ('virtio', 'disk', True, True, 2)
    assert (disk.error_policy, disk.live, disk.persistent, disk.unplug_timeout) == ('report', 'true', False, 5)


def test_device_cdrom_is_refused():
    assert 'device lun' in invalid(attach(device='cdrom'))
    invalid(attach(device='cdrom', bus='sata', attached=False))


@pytest.mark.parametrize('bus', ['virtio', 'sata', 'ide', 'usb'])
def test_device_lun_needs_bus_scsi(bus):
    assert 'bus: scsi' in invalid(attach(device='lun', bus=bus))


def test_default_device_lun_with_another_bus():
    invalid(attach(bus='virtio'))


@pytest.mark.parametrize('extra', [{'boot_order': 0}, {'boot_order': 65536}, {'unplug_timeout': -1},
                                   {'unplug_timeout': float('nan')}, {'live': 'sometimes'}])
def test_bad_disk_options(extra):
    invalid(attach(**extra))


@pytest.mark.parametrize('value', [-0.5, 3600.5, float('nan'), float('inf')])
def test_device_timeout_range(value):
    assert 'device_timeout' in invalid({'portal': '192.0.2.10', 'device_timeout': value})


@pytest.mark.parametrize('value', [0, 0.5, 30, 3600])
def test_device_timeout_ok(value):
    assert desired_from_params({'portal': '192.0.2.10', 'device_timeout': value}).device_timeout == value


def test_defaults():
    desired = desired_from_params({'portal': '192.0.2.10'})
    assert (desired.transport, desired.state, desired.node_startup, desired.attached) == (
        'kernel', 'present', 'automatic', True)
    assert desired.device_timeout == _lun.DEFAULT_DEVICE_TIMEOUT and not math.isnan(desired.device_timeout)


# ---------------------------------------------------------------------------------------
# pick_lun, refuse_held, secret_usage
def lun(wwid, number, target=T1, **kwargs):
    return Lun(wwid=wwid, lun=number, target=target, portal=PORTAL, **kwargs)


LUNS = [lun(WWID1, 1), lun(WWID2, 2)]


def test_pick_by_wwid():
    assert desired_from_params({'portal': '192.0.2.10', 'wwid': WWID2.upper()}).wwid == WWID2
    assert _lun.pick_lun(desired_from_params({'portal': '192.0.2.10', 'wwid': WWID2}), LUNS) is LUNS[1]


def test_pick_by_wwid_across_targets():
    luns = [lun(WWID1, 1, T1), lun(WWID2, 1, T2)]
    assert _lun.pick_lun(desired_from_params({'portal': '192.0.2.10', 'wwid': WWID2}), luns) is luns[1]


def test_pick_by_lun_of_the_one_target():
    assert _lun.pick_lun(desired_from_params(attach(wwid=None, lun=2)), LUNS) is LUNS[1]


def test_pick_by_lun_is_ambiguous_across_targets():
    luns = [lun(WWID1, 1, T1), lun(WWID2, 1, T2)]
    with pytest.raises(StorageError) as caught:
        _lun.pick_lun(desired_from_params(attach(target=None, wwid=None, lun=1)), luns)
    assert caught.value.code == 'INVALID_ARGUMENT'
    assert T1 in caught.value.msg and T2 in caught.value.msg and 'ambiguous' in caught.value.msg


def test_lun_not_found_lists_what_is_visible():
    missing = '3' + '6' * 32
    with pytest.raises(StorageError) as caught:
        _lun.pick_lun(desired_from_params({'portal': '192.0.2.10', 'target': T1, 'wwid': missing}), LUNS)
    error = caught.value
    assert error.code == 'LUN_NOT_FOUND'
    assert missing in error.msg and WWID1 in error.msg and WWID2 in error.msg and PORTAL in error.msg
    assert error.details['visible_wwids'] == [WWID1, WWID2]


def test_lun_number_not_found_and_nothing_visible():
    with pytest.raises(StorageError) as caught:
        _lun.pick_lun(desired_from_params(attach(wwid=None, lun=7)), [])
    assert caught.value.code == 'LUN_NOT_FOUND'
    assert 'LUN 7' in caught.value.msg and 'none' in caught.value.msg
    assert caught.value.details['visible_wwids'] == []


def test_refuse_held():
    _lun.refuse_held(LUNS, 'logging out')
    held = lun(WWID2, 2, host_uses=['mounted at /srv/data', 'libvirt pool p1 (fs)'])
    with pytest.raises(StorageError) as caught:
        _lun.refuse_held([LUNS[0], held], 'logging out')
    assert caught.value.code == 'LUN_IN_POOL'
    assert WWID2 in caught.value.msg and 'mounted at /srv/data' in caught.value.msg
    assert 'libvirt pool p1' in caught.value.msg and 'logging out' in caught.value.msg


def test_secret_usage():
    assert _lun.secret_usage(T1) == 'virtops.storage/direct_lun/' + T1


# ---------------------------------------------------------------------------------------
# the result shape
SPEC_KEYS = {'wwid', 'lun', 'target', 'portal', 'size', 'vendor', 'model', 'serial', 'used_by', 'in_pool'}


def test_as_dict_kernel():
    item = lun(WWID1, 1, size=67108864, vendor='IET', model='VIRTUAL-DISK', serial='beaf11',
               path='/dev/disk/by-id/wwn-0x' + NAA1, block="sdb", used_by=["vm1"], host_uses=['mounted at /srv'])
    shown = item.as_dict('kernel')
    assert SPEC_KEYS | {'path'} <= set(shown) and 'source' not in shown
    assert shown['path'] == '/dev/disk/by-id/wwn-0x' + NAA1
    assert shown['in_pool'] is True and shown['used_by'] == ['vm1'] and shown['size'] == 67108864
    assert shown['used_by'] is not item.used_by


def test_as_dict_qemu():
    source = 'iscsi://192.0.2.10:3260/%s/1' % T1
    shown = lun(WWID1, 1, source=source).as_dict('qemu')
    assert SPEC_KEYS | {'source'} <= set(shown) and 'path' not in shown
    assert shown['source'] == source and shown['in_pool'] is False and shown['used_by'] == []


@pytest.mark.parametrize('transport', ['kernel', 'qemu'])
def test_as_dict_never_has_a_password(transport):
    desired = desired_from_params({'portal': '192.0.2.10', 'transport': transport,
                                   'auth': {'username': 'alice', 'password': SECRET}})
    item = lun(WWID1, 1, source='iscsi://192.0.2.10:3260/%s/1' % T1, path='/dev/sdb')
    shown = item.as_dict(desired.transport)
    assert SECRET not in repr(shown) and not any('password' in key for key in shown)


def test_qemu_disk_source_names_the_secret_not_the_password():
    desired = desired_from_params({'portal': '[2001:db8::10]:3261', 'transport': 'qemu', 'target': T1,
                                   'auth': {'username': 'alice', 'password': SECRET},
                                   'initiator_name': 'iqn.2026-11.lab.virtops:vm1'})
    source = _lun.QemuTransport(desired).disk_source(lun(WWID1, 3))
    assert SECRET not in repr(source)
    network = source.network
    assert (network.protocol, network.name, network.hosts) == ('iscsi', T1 + '/3', (('2001:db8::10', '3261'),))
    assert (network.username, network.secret_type, network.secret_usage) == ('alice', 'iscsi', _lun.secret_usage(T1))
    assert network.initiator == 'iqn.2026-11.lab.virtops:vm1'
    assert source.in_use_code == 'LUN_IN_USE' and source.block


def test_kernel_disk_source_needs_a_udev_name(tmp_path):
    transport = _lun.KernelTransport(desired_from_params({'portal': '192.0.2.10'}), None, None)
    with pytest.raises(StorageError) as caught:
        transport.disk_source(lun(WWID1, 1, block='sdb'))
    assert caught.value.code == 'LUN_NOT_FOUND' and '/dev/sdb' in caught.value.msg
    device = tmp_path / 'sdb'
    device.write_bytes(b'')
    (tmp_path / 'wwn-0x1').symlink_to(device)
    source = transport.disk_source(lun(WWID1, 1, block='sdb', path=str(tmp_path / 'wwn-0x1')))
    assert source.path == str(tmp_path / 'wwn-0x1') and source.real_path == os.path.realpath(str(device))


# ---------------------------------------------------------------------------------------
# fake libvirt
class FakeDomain(object):
    def __init__(self, name, xml, running):
        self._name, self.xml, self.running = name, xml, running

    def name(self):
        return self._name


class FakePool(object):
    def __init__(self, name, xml):
        self._name, self.xml = name, xml

    def name(self):
        return self._name


class FakeClient(object):
    canonical_uri = 'qemu:///system'

    def __init__(self, domains=(), pools=(), is_local=True):
        self.domains = list(domains)
        self.pools = list(pools)
        self.is_local = is_local

    def list_domains(self, flags=0):
        if flags == libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE:
            return [domain for domain in self.domains if domain.running]
        return list(self.domains)

    def domain_xml(self, domain, flags=0):
        return domain.xml

    def list_pools(self, flags=0):
        return list(self.pools)

    def pool_xml(self, pool, inactive=False, missing_ok=False):
        return pool.xml

    def lookup_pool(self, name):
        return None


def domain(name, *disks, **kwargs):
    xml = ("<domain type='qemu'><name>%s</name><devices>%s</devices></domain>" % (name, ''.join(disks)))
    return FakeDomain(name, xml, kwargs.get('running', True))


def block_disk(path, target='sda', shareable=False):
    return ("<disk type='block' device='lun'><driver name='qemu' type='raw'/><source dev='%s'/>"
            "<target dev='%s' bus='scsi'/>%s</disk>" % (path, target, '<shareable/>' if shareable else ''))


def network_disk(name, target='sdb'):
    return ("<disk type='network' device='lun'><driver name='qemu' type='raw'/>"
            "<source protocol='iscsi' name='%s'><host name='192.0.2.10' port='3260'/></source>"
            "<target dev='%s' bus='scsi'/></disk>" % (name, target))


def iscsi_pool(name, kind, iqn):
    return FakePool(name, "<pool type='%s'><name>%s</name><source><host name='192.0.2.10'/>"
                          "<device path='%s'/><initiator><iqn name='iqn.2026-11.lab.virtops:host'/></initiator>"
                          "</source><target><path>/dev/disk/by-path</path></target></pool>" % (kind, name, iqn))


def device_pool(name, kind, device):
    return FakePool(name, "<pool type='%s'><name>%s</name><source><device path='%s'/></source>"
                          "<target><path>/srv/%s</path></target></pool>" % (kind, name, device, name))


@pytest.fixture
def devices(tmp_path):
    """/dev/sdb and /dev/sdc with their by-id links, and /dev/dm-0 (a map on sdb)."""
    dev = tmp_path / 'dev'
    (dev / 'disk' / 'by-id').mkdir(parents=True)
    (dev / 'mapper').mkdir()
    for name in ('sdb', 'sdc', 'dm-0', 'sdd'):
        (dev / name).write_bytes(b'')
    (dev / 'disk' / 'by-id' / ('wwn-0x' + NAA1)).symlink_to('../../sdb')
    (dev / 'disk' / 'by-id' / ('scsi-' + WWID2)).symlink_to('../../sdc')
    (dev / 'mapper' / WWID1).symlink_to('../dm-0')
    return dev


def kernel_lun(devices, wwid, number, block, multipath=None, target=T1):
    path = {'sdb': 'disk/by-id/wwn-0x' + NAA1, 'sdc': 'disk/by-id/scsi-' + WWID2}[block]
    if multipath:
        path = 'mapper/' + wwid
    real = [os.path.realpath(str(devices / block))]
    if multipath:
        real.append(os.path.realpath(str(devices / multipath)))
    return lun(wwid, number, target, block=block, multipath=multipath, path=str(devices / path),
               real_paths=tuple(sorted(real)))


def qemu_lun(wwid, number, target=T1):
    return lun(wwid, number, target, source='iscsi://192.0.2.10:3260/%s/%d' % (target, number))


# ---------------------------------------------------------------------------------------
# annotate
def test_annotate_kernel_luns_by_their_real_paths(devices):
    first, second = kernel_lun(devices, WWID1, 1, 'sdb'), kernel_lun(devices, WWID2, 2, 'sdc')
    client = FakeClient([domain('vm1', block_disk(str(devices / 'disk/by-id' / ('wwn-0x' + NAA1)))),
                         domain('vm2', block_disk(str(devices / 'sdb'), 'sdb'), running=False),
                         domain('vm3', block_disk(str(devices / 'sdd')))])
    _lun.annotate(client, [first, second])
    assert first.used_by == ['vm1', 'vm2']
    assert [(use.domain, use.target) for use in first.uses] == [('vm1', 'sda'), ('vm2', 'sdb')]
    assert second.used_by == [] and second.in_pool == []


def test_annotate_a_multipath_lun_by_the_map(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb', multipath='dm-0')
    client = FakeClient([domain('vm1', block_disk(str(devices / 'mapper' / WWID1)))])
    _lun.annotate(client, [item])
    assert item.used_by == ['vm1']


def test_annotate_qemu_luns_by_iqn_and_lun():
    first, second, other = qemu_lun(WWID1, 1), qemu_lun(WWID2, 2), qemu_lun(WWID1, 1, T2)
    client = FakeClient([domain('vm1', network_disk(T1 + '/1')), domain('vm2', network_disk(T1 + '/1', 'sdc'),
                                                                        network_disk(T2 + '/2', 'sdd'))])
    _lun.annotate(client, [first, second, other])
    assert first.used_by == ['vm1', 'vm2']
    assert second.used_by == [] and other.used_by == []


def test_annotate_a_domain_counts_once():
    item = qemu_lun(WWID1, 1)
    client = FakeClient([domain('vm1', network_disk(T1 + '/1', 'sda'), network_disk(T1 + '/1', 'sdb'))])
    _lun.annotate(client, [item])
    assert item.used_by == ['vm1']


@pytest.mark.parametrize('kind', ['iscsi', 'iscsi-direct'])
def test_annotate_a_pool_of_the_whole_target(devices, kind):
    kernel, qemu, elsewhere = kernel_lun(devices, WWID1, 1, 'sdb'), qemu_lun(WWID2, 2), qemu_lun(WWID2, 2, T2)
    _lun.annotate(FakeClient(pools=[iscsi_pool('p1', kind, T1)]), [kernel, qemu, elsewhere])
    assert kernel.in_pool == ['libvirt pool p1 (%s of the whole target)' % kind]
    assert qemu.in_pool == kernel.in_pool
    assert elsewhere.in_pool == []
    assert kernel.as_dict('kernel')['in_pool'] is True


@pytest.mark.parametrize('kind,link', [('disk', 'disk/by-id/wwn-0x' + NAA1), ('fs', 'sdb'), ('logical', 'mapper/' + WWID1)])
def test_annotate_a_pool_on_the_lun_device(devices, kind, link):
    item = kernel_lun(devices, WWID1, 1, 'sdb', multipath='dm-0' if link.startswith('mapper') else None)
    other = kernel_lun(devices, WWID2, 2, 'sdc')
    _lun.annotate(FakeClient(pools=[device_pool('p2', kind, str(devices / link)),
                                    device_pool('p3', 'fs', str(devices / 'sdd'))]), [item, other])
    assert item.in_pool == ['libvirt pool p2 (%s)' % kind]
    assert other.in_pool == []


def test_annotate_keeps_host_uses_already_found(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    item.host_uses.append('mounted at /srv/data')
    _lun.annotate(FakeClient(pools=[device_pool('p2', 'fs', str(devices / 'sdb'))]), [item])
    assert item.in_pool == ['mounted at /srv/data', 'libvirt pool p2 (fs)']


def test_annotate_with_a_given_index(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    index = UsageIndex(resolve_links=True)
    index.add_domain_xml('vm9', "<domain><name>vm9</name><devices>%s</devices></domain>"
                         % block_disk(str(devices / 'disk/by-id' / ('wwn-0x' + NAA1))), live=True)
    _lun.annotate(FakeClient(), [item], index=index)
    assert item.used_by == ['vm9']


def test_annotate_twice_does_not_repeat_pools(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    client = FakeClient(pools=[iscsi_pool('p1', 'iscsi', T1)])
    _lun.annotate(client, [item])
    _lun.annotate(client, [item])
    assert item.as_dict('kernel')['held_by'] == ['libvirt pool p1 (iscsi of the whole target)']


# ---------------------------------------------------------------------------------------
# the kernel transport's `state: absent` plan
class Exited(Exception):
    pass


class FakeModule(object):
    def __init__(self, check_mode=True):
        self.check_mode = check_mode
        self.applied = []
        self.plan = None
        self.result = None

    def apply(self, plan, ops, prior=None):
        self.applied.append(list(plan.descriptions))
        if self.check_mode:
            return
        outcome = apply_plan(plan, ops)
        if outcome.error is not None:
            raise outcome.error

    def exit_plan(self, plan, **result):
        self.plan, self.result = plan, result
        raise Exited()


def node_lines(*records):
    return ''.join('%s,1 %s\n' % record for record in records)


class HostRun(object):
    """iscsiadm 2.1.8 and multipath as the host answers them; `events` logs every command
    (and the tree logs every SCSI device removal) in order."""

    def __init__(self, events, nodes, sessions, discoverydb=True):
        self.events = events
        self.nodes = nodes
        self.sessions = sessions
        self.discoverydb = discoverydb

    def __call__(self, argv):
        argv = list(argv)
        self.events.append(argv)
        args = argv[1:]
        if argv[0] == 'multipath':
            return 0, '', ''
        if args == ['-m', 'node']:
            return (0, node_lines(*self.nodes), '') if self.nodes else (21, '', 'iscsiadm: No records found\n')
        if args == ['-m', 'session']:
            if not self.sessions:
                return 21, '', 'iscsiadm: No active sessions.\n'
            return 0, ''.join('tcp: [%d] %s,1 %s (non-flash)\n' % session for session in self.sessions), ''
        if args[:2] == ['-m', 'discoverydb'] and args[-2:] == ['-o', 'show']:
            if self.discoverydb:
                return 0, '# BEGIN RECORD 2.1.8\ndiscovery.startup = manual\n# END RECORD\n', ''
            return 21, '', 'iscsiadm: No records found\n'
        return 0, '', ''


CHANGING = ('--logout', '--login', 'delete', 'update', 'new', '-f')


def changes(events):
    return [event for event in events if any(word in event for word in CHANGING) or event[0] == 'removed']


class LabTree(HostTree):
    """HostTree with its /proc in the fake tree, logging removals."""

    def __init__(self, root, events):
        super(LabTree, self).__init__(root)
        self.events = events

    def host_uses(self, item, proc=None):
        return super(LabTree, self).host_uses(item, proc=self.path('proc'))

    def delete_device(self, block):
        self.events.append(['removed', block])
        super(LabTree, self).delete_device(block)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as handle:
        handle.write(data)


def relink(link, target):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def page83(naa_hex):
    naa = bytes.fromhex(naa_hex)
    body = bytes([1, 3, 0, len(naa)]) + naa
    return bytes([0, 0x83]) + struct.pack('>H', len(body)) + body


def build_host(root):
    """Session 1 to T1 on host 2: LUN 0 controller, LUN 1 sdb under multipath map dm-0,
    LUN 2 sdc; udev links; an empty /proc/self/mountinfo."""
    root = str(root)

    def p(rel):
        return os.path.join(root, rel)
    session = p('sys/devices/platform/host2/session1')
    os.makedirs(session)
    relink(p('sys/class/iscsi_session/session1/device'), session)
    for number, kind, naa, block, dev in ((0, 12, None, None, None), (1, 0, NAA1, 'sdb', '67:16'),
                                          (2, 0, NAA2, 'sdc', '67:32')):
        scsi = os.path.join(session, 'target2:0:0', '2:0:0:%d' % number)
        write(os.path.join(scsi, 'type'), '%d\n' % kind)
        write(os.path.join(scsi, 'vendor'), 'IET     \n')
        write(os.path.join(scsi, 'model'), 'VIRTUAL-DISK    \n')
        write(os.path.join(scsi, 'delete'), '')
        if naa:
            write(os.path.join(scsi, 'vpd_pg83'), page83(naa))
        if block:
            directory = os.path.join(scsi, 'block', block)
            write(os.path.join(directory, 'size'), '131072\n')
            write(os.path.join(directory, 'dev'), dev + '\n')
            os.makedirs(os.path.join(directory, 'holders'))
            relink(os.path.join(directory, 'device'), scsi)
            relink(p('sys/block/' + block), directory)
            write(p('dev/' + block), b'')
            relink(p('dev/disk/by-id/wwn-0x' + naa), p('dev/' + block))
            relink(p('dev/disk/by-id/scsi-3' + naa), p('dev/' + block))
    dm = p('sys/devices/virtual/block/dm-0')
    write(os.path.join(dm, 'dev'), '254:0\n')
    write(os.path.join(dm, 'dm/uuid'), 'mpath-%s\n' % WWID1)
    write(os.path.join(dm, 'dm/name'), WWID1 + '\n')
    os.makedirs(os.path.join(dm, 'holders'))
    relink(p('sys/block/dm-0'), dm)
    relink(os.path.join(os.path.realpath(p('sys/block/sdb')), 'holders', 'dm-0'), dm)
    write(p('dev/dm-0'), b'')
    relink(p('dev/mapper/' + WWID1), p('dev/dm-0'))
    write(p('proc/self/mountinfo'), '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n')
    return p


SESSION_T1 = (1, PORTAL, T1)
NODES = [(PORTAL, T1), (PORTAL, T2), ('198.51.100.7:3260', T3)]


def run_absent(tmp_path, params, client=None, check_mode=True, nodes=tuple(NODES), sessions=(SESSION_T1,),
               discoverydb=True, prepare=None):
    p = build_host(tmp_path)
    if prepare is not None:
        prepare(p)
    events = []
    run = HostRun(events, nodes, list(sessions), discoverydb)
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(tmp_path), events)
    desired = desired_from_params(dict(params, state='absent'))
    transport = _lun.KernelTransport(desired, iscsiadm, tree)
    ops = _lun.LunOps(client or FakeClient(), iscsiadm, tree, run)
    module = FakeModule(check_mode)
    with pytest.raises(Exited):
        _lun._run_kernel(module, desired, transport, ops)
    return module, events, p


TARGET_STEPS = [
    'flush multipath map %s' % WWID1,
    'remove SCSI device sdb (%s LUN 1)' % T1,
    'remove SCSI device sdc (%s LUN 2)' % T1,
    'log out of %s at %s' % (T1, PORTAL),
    'delete the node record of %s at %s' % (T1, PORTAL),
]


def test_absent_of_a_target_in_check_mode(tmp_path):
    module, events, p = run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1})
    assert module.plan.descriptions == TARGET_STEPS
    assert module.plan.changed and module.result == {'sessions': [], 'luns': []}
    assert changes(events) == []
    with open(os.path.join(os.path.realpath(p('sys/block/sdb')), 'device', 'delete')) as handle:
        assert handle.read() == ''
    assert not any('discoverydb' in event for event in events)  # a named target keeps the discovery record


def test_absent_of_a_target_for_real_runs_the_steps_in_order(tmp_path):
    module, events, p = run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, check_mode=False)
    assert module.plan.descriptions == TARGET_STEPS
    assert changes(events) == [
        ['multipath', '-f', WWID1],
        ['removed', 'sdb'],
        ['removed', 'sdc'],
        ['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '--logout'],
        ['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '-o', 'delete'],
    ]
    for block in ('sdb', 'sdc'):
        with open(os.path.join(os.path.realpath(p('sys/block/' + block)), 'device', 'delete')) as handle:
            assert handle.read() == '1'


def test_absent_of_every_target_of_the_portal(tmp_path):
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10'})
    assert module.plan.descriptions == TARGET_STEPS + [
        'delete the node record of %s at %s' % (T2, PORTAL),
        'delete the discovery record of %s' % PORTAL,
    ]
    assert not any(T3 in ' '.join(event) for event in events)
    assert changes(events) == []


def test_absent_without_a_discovery_record(tmp_path):
    module, _events, _p = run_absent(tmp_path, {'portal': '192.0.2.10'}, discoverydb=False)
    assert module.plan.descriptions[-1] == 'delete the node record of %s at %s' % (T2, PORTAL)


def test_absent_when_nothing_is_there_changes_nothing(tmp_path):
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, nodes=[], sessions=())
    assert module.plan.descriptions == [] and not module.plan.changed
    assert changes(events) == []


def test_absent_refuses_a_lun_a_domain_uses(tmp_path):
    client = FakeClient([domain('vm1', block_disk(str(tmp_path / 'dev/disk/by-id' / ('scsi-' + WWID2))),
                                running=False)])
    with pytest.raises(StorageError) as caught:
        run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, client=client, check_mode=False)
    assert caught.value.code == 'LUN_IN_USE'
    assert caught.value.details['used_by'] == ['vm1'] and WWID2 in caught.value.msg


def test_absent_refuses_a_lun_a_domain_uses_through_the_map(tmp_path):
    client = FakeClient([domain('vm1', block_disk(str(tmp_path / 'dev/mapper' / WWID1), shareable=True))])
    with pytest.raises(StorageError) as caught:
        run_absent(tmp_path, {'portal': '192.0.2.10'}, client=client, check_mode=False)
    assert caught.value.code == 'LUN_IN_USE'


def test_absent_refuses_a_mounted_lun(tmp_path):
    def mount(p):
        with open(p('proc/self/mountinfo'), 'a') as handle:
            handle.write('98 22 254:0 / /srv/data rw - xfs /dev/mapper/%s rw\n' % WWID1)
    with pytest.raises(StorageError) as caught:
        run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, check_mode=False, prepare=mount)
    assert caught.value.code == 'LUN_IN_POOL' and 'mounted at /srv/data' in caught.value.msg


def test_absent_refuses_a_target_a_pool_uses(tmp_path):
    client = FakeClient(pools=[iscsi_pool('san', 'iscsi', T1)])
    with pytest.raises(StorageError) as caught:
        run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, client=client, check_mode=False)
    assert caught.value.code == 'LUN_IN_POOL' and 'libvirt pool san' in caught.value.msg


@pytest.mark.parametrize('case', ['domain', 'mounted', 'pool'])
def test_refusals_come_before_any_step(tmp_path, case):
    client, prepare = FakeClient(), None
    if case == 'domain':
        client = FakeClient([domain('vm1', block_disk(str(tmp_path / 'dev/sdc')))])
    elif case == 'pool':
        client = FakeClient(pools=[device_pool('fs1', 'fs', str(tmp_path / 'dev/sdc'))])
    else:
        def prepare(p):
            with open(p('proc/self/mountinfo'), 'a') as handle:
                handle.write('98 22 67:32 / /srv/data rw - xfs /dev/sdc rw\n')
    events = []
    module = FakeModule(check_mode=False)
    p = build_host(tmp_path)
    if prepare:
        prepare(p)
    run = HostRun(events, NODES, [SESSION_T1])
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(tmp_path), events)
    desired = desired_from_params({'portal': '192.0.2.10', 'state': 'absent'})
    with pytest.raises(StorageError):
        _lun._run_kernel(module, desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(client, iscsiadm, tree, run))
    assert changes(events) == [] and module.applied == []


def test_a_portal_named_by_host_name_matches_the_address_iscsiadm_records():
    # iscsiadm keeps records and sessions under addresses: a portal given by name must still
    # find its session, or every run would log in again and report a change
    transport = _lun.KernelTransport(desired_from_params({'portal': 'localhost'}), None, None)
    session = Session(1, '127.0.0.1:3260', 1, T1)
    assert transport.session_of(T1, [session]) is session
    assert transport.session_of(T1, [Session(2, '192.0.2.99:3260', 1, T1)]) is None
    assert transport.at_portal('127.0.0.1:3260') and not transport.at_portal('127.0.0.1:3261')
