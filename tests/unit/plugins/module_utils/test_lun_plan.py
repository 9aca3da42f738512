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
import types

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _domain, _lun
from ansible_collections.virtops.storage.plugins.module_utils._disk import DiskSource, ObservedDomain
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
DOMAIN_UUID = '4f1c2a9e-0d7b-4c1e-9a55-2b7e1f0c3d11'


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


@pytest.mark.parametrize('lun', [-1, 65536])
def test_lun_range(lun):
    assert 'from 0 to 65535' in invalid(attach(wwid=None, lun=lun))


@pytest.mark.parametrize('lun', [0, 255, 16384, 16640, 65535])
def test_lun_numbers_as_libiscsi_qemu_and_linux_show_them(lun):
    assert desired_from_params(attach(wwid=None, lun=lun)).lun == lun  # flat LUN 256 is 16640


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


def test_a_logout_leaves_iscsi_direct_pools_alone_but_an_attach_does_not():
    reason = 'libvirt pool san (iscsi-direct of the whole target)'
    direct = lun(WWID2, 2, pools=[reason], own_session_pools=[reason])
    _lun.refuse_held([direct], 'logging out', logout=True)  # libvirt's own session: untouched by the logout
    with pytest.raises(StorageError) as caught:
        _lun.refuse_held([direct], 'attaching it to a domain')
    assert caught.value.code == 'LUN_IN_POOL' and 'san' in caught.value.msg
    kernel = lun(WWID2, 2, pools=['libvirt pool k (iscsi of the whole target)'])
    with pytest.raises(StorageError):
        _lun.refuse_held([kernel], 'logging out', logout=True)


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

    def UUIDString(self):  # noqa: N802 - libvirt's name
        return DOMAIN_UUID


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

    def get_domain(self, name):
        return next(domain for domain in self.domains if domain.name() == name)

    def domain_state(self, domain):
        return domain.running, True, DOMAIN_UUID


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

    missing = ()  # commands this fake host lacks

    def get_bin_path(self, name):
        return None if name in self.missing else '/usr/sbin/' + name


def node_lines(*records):
    return ''.join('%s,1 %s\n' % record for record in records)


class HostRun(object):
    """iscsiadm 2.1.8 and multipath as the host answers them; `events` logs every command
    (and the tree logs every SCSI device removal) in order."""

    def __init__(self, events, nodes, sessions, discoverydb=True, node_records=None):
        self.events = events
        self.nodes = nodes
        self.sessions = sessions
        self.discoverydb = discoverydb
        self.node_records = node_records or {}  # (target, portal): {key: value} that `-o show` prints

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
        if args[:2] == ['-m', 'node'] and '-T' in args and args[-2:] == ['-o', 'show']:
            record = self.node_records.get((args[args.index('-T') + 1], args[args.index('-p') + 1]), {})
            return 0, record_text(dict(record, **{'node.name': args[args.index('-T') + 1]})), ''
        return 0, '', ''


def record_text(settings):
    """A record as `iscsiadm -o show` prints it."""
    return '# BEGIN RECORD 2.1.8\n%s# END RECORD\n' % ''.join('%s = %s\n' % item for item in sorted(settings.items()))


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

    def wait_for_devices(self, sid, timeout, settle=None, **_ignored):
        """The real wait on a clock only its own pauses move: no test sleeps."""
        now = [0.0]

        def sleep(seconds):
            now[0] += seconds
        return super(LabTree, self).wait_for_devices(sid, timeout, settle, clock=lambda: now[0], sleep=sleep)


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


def add_session(p, sid, host):
    session = p('sys/devices/platform/host%d/session%d' % (host, sid))
    os.makedirs(session)
    relink(p('sys/class/iscsi_session/session%d/device' % sid), session)


def add_scsi_device(p, sid, host, number, kind=0, naa=None, block=None, dev=None, links=True):
    """SCSI device host:0:0:number of session `sid`; with `block`, its sd disk and (with
    `links`) udev's by-id names."""
    session = p('sys/devices/platform/host%d/session%d' % (host, sid))
    scsi = os.path.join(session, 'target%d:0:0' % host, '%d:0:0:%d' % (host, number))
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
        if links:
            relink(p('dev/disk/by-id/wwn-0x' + naa), p('dev/' + block))
            relink(p('dev/disk/by-id/scsi-3' + naa), p('dev/' + block))


def build_host(root):
    """Session 1 to T1 on host 2: LUN 0 controller, LUN 1 sdb under multipath map dm-0,
    LUN 2 sdc; udev links; an empty /proc/self/mountinfo."""
    root = str(root)

    def p(rel):
        return os.path.join(root, rel)
    add_session(p, 1, 2)
    for number, kind, naa, block, dev in ((0, 12, None, None, None), (1, 0, NAA1, 'sdb', '67:16'),
                                          (2, 0, NAA2, 'sdc', '67:32')):
        add_scsi_device(p, 1, 2, number, kind, naa, block, dev)
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
               discoverydb=True, prepare=None, node_records=None):
    p = build_host(tmp_path)
    if prepare is not None:
        prepare(p)
    events = []
    run = HostRun(events, nodes, list(sessions), discoverydb, node_records)
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
    # T3 (another portal) is only read: is its record one found through this portal's discovery record?
    assert [event for event in events if T3 in event] == [
        ['iscsiadm', '-m', 'node', '-T', T3, '-p', '198.51.100.7:3260', '-o', 'show']]
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


# ---------------------------------------------------------------------------------------
# `state: absent`: who stops a logout, the multipath map's name, the discovery record
def test_absent_is_not_stopped_by_a_qemu_network_disk_of_the_target(tmp_path):
    # QEMU's own session to the target does not go through this host's devices: a logout leaves it alone
    client = FakeClient([domain('vm1', network_disk(T1 + '/1')), domain('vm2', network_disk(T1 + '/2', 'sdc'))])
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, client=client,
                                    check_mode=False)
    assert module.plan.descriptions == TARGET_STEPS
    assert ['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '--logout'] in changes(events)


def test_absent_refuses_a_device_use_and_names_only_those(tmp_path):
    client = FakeClient([domain('vm1', network_disk(T1 + '/2', 'sdc'), block_disk(str(tmp_path / 'dev/sdc'))),
                         domain('vm2', network_disk(T1 + '/1'))])
    with pytest.raises(StorageError) as caught:
        run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, client=client, check_mode=False)
    assert caught.value.code == 'LUN_IN_USE'
    assert caught.value.details['used_by'] == ['vm1']
    assert 'vm2' not in caught.value.msg and '%s: vm1 (sda)' % WWID2 in caught.value.msg


def friendly_map_name(p):
    write(os.path.join(os.path.realpath(p('sys/block/dm-0')), 'dm', 'name'), 'mpatha\n')
    os.unlink(p('dev/mapper/' + WWID1))
    relink(p('dev/mapper/mpatha'), p('dev/dm-0'))


def test_absent_flushes_a_friendly_named_map_by_its_name(tmp_path):
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10', 'target': T1}, check_mode=False,
                                    prepare=friendly_map_name)
    assert module.plan.descriptions[0] == 'flush multipath map mpatha (%s)' % WWID1
    assert module.plan.descriptions[1:] == TARGET_STEPS[1:]
    assert changes(events)[0] == ['multipath', '-f', 'mpatha']


def test_a_failing_flush_stops_before_the_device_is_removed(tmp_path):
    p = build_host(tmp_path)
    events = []
    host_run = HostRun(events, NODES, [SESSION_T1])

    def run(argv):
        if argv[0] == 'multipath':
            events.append(list(argv))
            return 1, '', 'Dec 01 | %s: map in use\n' % WWID1
        return host_run(argv)
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(tmp_path), events)
    desired = desired_from_params({'portal': '192.0.2.10', 'target': T1, 'state': 'absent'})
    with pytest.raises(StorageError) as caught:
        _lun._run_kernel(FakeModule(check_mode=False), desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(FakeClient(), iscsiadm, tree, run))
    assert caught.value.code == 'LUN_IN_USE' and 'multipath -f %s exited 1' % WWID1 in caught.value.msg
    assert changes(events) == [['multipath', '-f', WWID1]]
    with open(os.path.join(os.path.realpath(p('sys/block/sdb')), 'device', 'delete')) as handle:
        assert handle.read() == ''


FOUND_HERE = {'node.discovery_address': '192.0.2.10', 'node.discovery_port': '3260',
              'node.discovery_type': 'send_targets'}


def test_the_discovery_record_stays_while_a_record_found_through_it_remains(tmp_path):
    # T3's record at another portal came from this portal's SendTargets answer: deleting the
    # discovery record would make open-iscsi delete it too
    records = {(T3, '198.51.100.7:3260'): FOUND_HERE}
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10'}, check_mode=False, node_records=records)
    assert module.plan.descriptions == TARGET_STEPS + ['delete the node record of %s at %s' % (T2, PORTAL)]
    assert module.plan.warnings == [
        'the discovery record of %s stays: node records found through it remain (%s at 198.51.100.7:3260), and '
        'open-iscsi would delete them with it' % (PORTAL, T3)]
    assert not any('discoverydb' in event and 'delete' in event for event in events)


def test_the_discovery_record_goes_when_only_records_being_deleted_came_through_it(tmp_path):
    records = {(T1, PORTAL): FOUND_HERE, (T2, PORTAL): FOUND_HERE,
               (T3, '198.51.100.7:3260'): {'node.discovery_address': '198.51.100.7', 'node.discovery_port': '3260'}}
    module, events, _p = run_absent(tmp_path, {'portal': '192.0.2.10'}, check_mode=False, node_records=records)
    assert module.plan.descriptions[-1] == 'delete the discovery record of %s' % PORTAL
    assert module.plan.warnings == []
    assert changes(events)[-1] == ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-o', 'delete']


def test_a_record_found_through_the_portal_by_another_port_is_not_this_portals(tmp_path):
    records = {(T3, '198.51.100.7:3260'): dict(FOUND_HERE, **{'node.discovery_port': '3261'})}
    module, _events, _p = run_absent(tmp_path, {'portal': '192.0.2.10'}, node_records=records)
    assert module.plan.descriptions[-1] == 'delete the discovery record of %s' % PORTAL


# ---------------------------------------------------------------------------------------
# annotate through both transports, and with the host's own devices
def test_annotate_a_kernel_lun_used_as_a_network_disk_too(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    client = FakeClient([domain('vm1', network_disk(T1 + '/1')), domain('vm2', block_disk(str(devices / 'sdb')))])
    _lun.annotate(client, [item])
    assert item.used_by == ['vm1', 'vm2']
    assert [use.domain for use in item.device_uses] == ['vm2']  # what a logout would take away
    assert sorted(use.domain for use in item.uses) == ['vm1', 'vm2']


def test_annotate_a_qemu_lun_through_the_host_devices_of_its_wwid(tmp_path):
    p = build_host(tmp_path)
    tree = LabTree(str(tmp_path), [])
    client = FakeClient([domain('vm1', block_disk(p('dev/mapper/' + WWID1))),
                         domain('vm2', network_disk(T1 + '/1', 'sdc'))])
    item, plain = qemu_lun(WWID1, 1), qemu_lun(WWID1, 1)
    _lun.annotate(client, [item], host=tree)
    _lun.annotate(client, [plain])
    assert item.used_by == ['vm1', 'vm2'] and [use.domain for use in item.device_uses] == ['vm1']
    assert plain.used_by == ['vm2'] and plain.device_uses == []  # without the host tree only the network disk


def test_annotate_a_kernel_lun_through_another_session_with_its_wwid(tmp_path):
    # two sessions (two portals) to one LUN: a domain on the other path's disk uses it too
    p = build_host(tmp_path)
    add_session(p, 2, 3)
    add_scsi_device(p, 2, 3, 1, naa=NAA1, block='sdd', dev='67:48', links=False)
    tree = LabTree(str(tmp_path), [])
    transport = _lun.KernelTransport(desired_from_params({'portal': '192.0.2.10'}), None, tree)
    item = [lun for lun in transport.luns(Session(1, PORTAL, 1, T1))[0] if lun.wwid == WWID1][0]
    assert os.path.realpath(p('dev/sdd')) not in item.real_paths
    client = FakeClient([domain('vm1', block_disk(p('dev/sdd')))])
    _lun.annotate(client, [item])
    assert item.used_by == []
    _lun.annotate(client, [item], host=tree)
    assert item.used_by == ['vm1'] and [use.domain for use in item.device_uses] == ['vm1']


def test_a_qemu_lun_borrows_the_host_uses_of_its_kernel_device(tmp_path):
    p = build_host(tmp_path)
    with open(p('proc/self/mountinfo'), 'a') as handle:
        handle.write('98 22 254:0 / /srv/data rw - xfs /dev/mapper/%s rw\n' % WWID1)
    tree = LabTree(str(tmp_path), [])
    item, other = qemu_lun(WWID1, 1), qemu_lun(WWID2, 2)
    for _run in range(2):
        _lun.annotate(FakeClient(), [item, other], host=tree)
    assert item.host_uses == ['mounted at /srv/data']  # once, however often it is annotated
    assert item.as_dict('qemu')['in_pool'] is True and other.in_pool == []
    with pytest.raises(StorageError) as caught:
        _lun.refuse_held([item], 'attaching it to a domain')
    assert caught.value.code == 'LUN_IN_POOL' and 'mounted at /srv/data' in caught.value.msg


def test_annotate_recomputes_pools_every_call(devices):
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    _lun.annotate(FakeClient(pools=[iscsi_pool('p1', 'iscsi', T1), device_pool('p2', 'fs', str(devices / 'sdb'))]),
                  [item])
    assert item.pools == ['libvirt pool p1 (iscsi of the whole target)', 'libvirt pool p2 (fs)']
    _lun.annotate(FakeClient(pools=[device_pool('p2', 'fs', str(devices / 'sdb'))]), [item])
    assert item.pools == ['libvirt pool p2 (fs)']  # p1 went away: no longer listed
    _lun.annotate(FakeClient(), [item])
    assert item.pools == [] and item.in_pool == []


# ---------------------------------------------------------------------------------------
# LunOps
def test_lun_ops_users_are_the_luns_users_through_either_transport(devices):
    client = FakeClient([domain('vm2', block_disk(str(devices / 'sdb')))])
    ops = _lun.LunOps(client)
    source = _lun.KernelTransport(desired_from_params({'portal': '192.0.2.10'}), None, None).disk_source(
        kernel_lun(devices, WWID1, 1, 'sdb'))
    users, chain_users = ops.users(source)  # before annotate: vm_disk's own look at the source
    assert [use.domain for use in users] == ['vm2'] and chain_users == []
    item = kernel_lun(devices, WWID1, 1, 'sdb')
    _lun.annotate(FakeClient([domain('vm1', network_disk(T1 + '/1'))]), [item])
    ops.lun_uses = item.uses
    users, chain_users = ops.users(source)
    assert [use.domain for use in users] == ['vm1'] and chain_users == []
    assert users is not item.uses


def test_lun_ops_users_with_no_uses_at_all(devices):
    ops = _lun.LunOps(FakeClient([domain('vm2', block_disk(str(devices / 'sdb')))]))
    ops.lun_uses = []
    assert ops.users(None) == ([], [])


@pytest.mark.parametrize('existing', [None, '0b6f3c1e-8a3d-4b39-9f35-0c7d2f6b1a11'])
def test_store_chap_keeps_the_uuid_of_the_existing_secret(monkeypatch, existing):
    from ansible_collections.virtops.storage.plugins.module_utils import _secrets
    stored = []

    def observe_secret(client, usage_type, usage_id, password=None):
        assert (usage_type, usage_id, password) == ('iscsi', _lun.secret_usage(T1), None)
        return _secrets.ObservedSecret(existing, usage_type, usage_id, 'old') if existing else None

    def store_secret(client, usage_type, usage_id, purpose, password, uuid=None):
        stored.append((usage_type, usage_id, password, uuid))
        return uuid or 'new-uuid'
    monkeypatch.setattr(_secrets, 'observe_secret', observe_secret)
    monkeypatch.setattr(_secrets, 'store_secret', store_secret)
    _lun.LunOps(FakeClient()).store_chap(T1, SECRET)
    assert stored == [('iscsi', _lun.secret_usage(T1), SECRET, existing)]


def test_flush_multipath_runs_multipath_f_with_the_map_name():
    calls = []

    def run(argv):
        calls.append(list(argv))
        return 0, '', ''
    _lun.LunOps(FakeClient(), run=run).flush_multipath('mpatha')
    assert calls == [['multipath', '-f', 'mpatha']]


# ---------------------------------------------------------------------------------------
# the disk sources of both transports
def test_qemu_disk_source_carries_qemus_default_initiator():
    desired = desired_from_params({'portal': '192.0.2.10', 'transport': 'qemu', 'target': T1})
    network = _lun.QemuTransport(desired).disk_source(lun(WWID1, 3)).network
    assert network.initiator == _lun.QEMU_INITIATOR == 'iqn.2008-11.org.linux-kvm'
    assert (network.username, network.secret_type, network.secret_usage) == (None, None, None)


def test_kernel_disk_source_is_known_by_its_wwid(tmp_path):
    transport = _lun.KernelTransport(desired_from_params({'portal': '192.0.2.10'}), None, None)
    device = tmp_path / 'sdb'
    device.write_bytes(b'')
    (tmp_path / 'wwn-0x1').symlink_to(device)
    source = transport.disk_source(lun(WWID1, 1, block='sdb', path=str(tmp_path / 'wwn-0x1')))
    assert source.stable_id == 'wwid:' + WWID1 and source.identity == 'wwid:' + WWID1
    assert source.in_use_code == 'LUN_IN_USE' and source.block and source.aliases == ()
    # the same LUN on another host (or after a reboot, as /dev/sdc) gives the guest the same serial
    elsewhere = transport.disk_source(lun(WWID1, 1, block='sdc', path=str(device)))
    assert _domain.default_serial(elsewhere.identity) == _domain.default_serial(source.identity)
    assert _domain.default_serial(source.identity) != _domain.default_serial(source.real_path)


def gone_source(tmp_path, wwid):
    transport = _lun.KernelTransport(desired_from_params({'portal': '192.0.2.10'}), None, HostTree(str(tmp_path)))
    return transport.disk_source(Lun(wwid=wwid, lun=-1, target=T1, portal=PORTAL, gone=True))


def test_the_source_of_a_gone_lun_is_every_udev_name_of_its_wwid(tmp_path):
    source = gone_source(tmp_path, WWID1)
    by_id = str(tmp_path / 'dev/disk/by-id')
    assert source.real_path == source.path and len(source.aliases) == 2
    assert {source.path} | set(source.aliases) == {os.path.join(by_id, 'wwn-0x' + NAA1),
                                                   os.path.join(by_id, 'scsi-' + WWID1),
                                                   str(tmp_path / 'dev/mapper' / WWID1)}
    assert source.stable_id == 'wwid:' + WWID1 and source.in_use_code == 'LUN_IN_USE' and source.block
    t10 = gone_source(tmp_path, '1IET_VIRTUAL-DISK_beaf11')  # no NAA: no wwn- name
    assert {t10.path} | set(t10.aliases) == {os.path.join(by_id, 'scsi-1IET_VIRTUAL-DISK_beaf11'),
                                             str(tmp_path / 'dev/mapper/1IET_VIRTUAL-DISK_beaf11')}


@pytest.mark.parametrize('name', ['disk/by-id/wwn-0x' + NAA1, 'disk/by-id/scsi-' + WWID1, 'mapper/' + WWID1])
def test_a_gone_lun_matches_a_disk_attached_by_any_of_its_names(tmp_path, name):
    source = gone_source(tmp_path, WWID1)
    path = str(tmp_path / 'dev' / name)
    assert source.matches(_domain.DiskState(target='sdb', bus='scsi', type='block', path=path, real_path=path))
    other = str(tmp_path / 'dev/mapper' / WWID2)
    assert not source.matches(_domain.DiskState(target='sdc', bus='scsi', type='block', path=other, real_path=other))


def test_disk_source_matches_by_aliases():
    source = DiskSource(kind='block', format='raw', path='/dev/a', real_path='/dev/a', aliases=('/dev/b', '/dev/c'))
    assert source.matches(_domain.DiskState(target='sdb', bus='scsi', path='/dev/x', real_path='/dev/c'))
    assert source.matches(_domain.DiskState(target='sdb', bus='scsi', path='/dev/b', real_path='/dev/dm-7'))
    assert not source.matches(_domain.DiskState(target='sdb', bus='scsi', path='/dev/x', real_path='/dev/y'))


# _lun_to_change
def kernel_transport(params):
    return _lun.KernelTransport(desired_from_params(params), None, None)


def test_a_detach_by_wwid_of_a_lun_that_is_gone():
    params = attach(wwid=WWID2, attached=False)
    found = _lun._lun_to_change(desired_from_params(params), kernel_transport(params), [lun(WWID1, 1)])
    assert found.gone and (found.wwid, found.lun, found.target, found.portal) == (WWID2, -1, T1, PORTAL)
    without_target = dict(params, target=None)
    assert _lun._lun_to_change(desired_from_params(without_target), kernel_transport(without_target), []).target == ''


def test_a_visible_lun_is_never_taken_for_gone():
    params = attach(attached=False)
    named = _lun.Lun(wwid=WWID1, lun=1, target=T1, portal=PORTAL, block='sdb', path='/dev/disk/by-id/wwn-0x' + NAA1)
    found = _lun._lun_to_change(desired_from_params(params), kernel_transport(params), [named])
    assert found is named and not found.gone


def test_a_visible_lun_without_udev_name_is_detached_by_every_name():
    params = attach(attached=False)
    unnamed = _lun.Lun(wwid=WWID1, lun=1, target=T1, portal=PORTAL, block='sdb')
    found = _lun._lun_to_change(desired_from_params(params), kernel_transport(params), [unnamed])
    assert found.gone and found.wwid == WWID1 and not unnamed.gone


@pytest.mark.parametrize('params,transport', [
    (attach(wwid=WWID2), 'kernel'),  # an attach needs the LUN
    (attach(wwid=None, lun=7, attached=False), 'kernel'),  # a number names nothing once the LUN is gone
    (attach(wwid=WWID2, attached=False, transport='qemu'), 'qemu'),  # a network disk is found by iqn/lun
], ids=['attach', 'by-number', 'qemu'])
def test_a_lun_that_is_not_visible_is_not_found(params, transport):
    desired = desired_from_params(params)
    chosen = _lun.QemuTransport(desired) if transport == 'qemu' else _lun.KernelTransport(desired, None, None)
    with pytest.raises(StorageError) as caught:
        _lun._lun_to_change(desired, chosen, [lun(WWID1, 1)])
    assert caught.value.code == 'LUN_NOT_FOUND'


# ---------------------------------------------------------------------------------------
# a network disk attached with other connection settings
NO_OTHER_USE = _lun.Lun(wwid=WWID1, lun=1, target=T1, portal=PORTAL)  # no other disk of the LUN in the domain


def observed_domain(*disks):
    xml = ("<domain type='kvm'><name>vm1</name><uuid>%s</uuid><os><type>hvm</type></os><devices>%s</devices>"
           "</domain>" % (DOMAIN_UUID, ''.join(disks)))
    view = _domain.parse_view(xml)
    return ObservedDomain(name='vm1', uuid=DOMAIN_UUID, running=True, persistent=True, config=view, live=view)


def chap_disk(name=T1 + '/3', host='2001:db8::10', port='3261', username='alice', usage=None,
              initiator='iqn.2026-11.lab.virtops:vm1', target='sdb'):
    auth = ("<auth username='%s'><secret type='iscsi' usage='%s'/></auth>" % (username, usage or _lun.secret_usage(T1))
            if username else '')
    port = " port='%s'" % port if port else ''
    initiator = "<initiator><iqn name='%s'/></initiator>" % initiator if initiator else ''
    return ("<disk type='network' device='lun'><driver name='qemu' type='raw'/><source protocol='iscsi' name='%s'>"
            "<host name='%s'%s/>%s%s</source><target dev='%s' bus='scsi'/></disk>"
            % (name, host, port, auth, initiator, target))


def qemu_source(**extra):
    params = {'portal': '[2001:db8::10]:3261', 'transport': 'qemu', 'target': T1,
              'auth': {'username': 'alice', 'password': SECRET}, 'initiator_name': 'iqn.2026-11.lab.virtops:vm1'}
    params.update(extra)
    return _lun.QemuTransport(desired_from_params(params)).disk_source(lun(WWID1, 3))


def test_the_same_connection_is_no_mismatch():
    _lun._refuse_other_connection(observed_domain(chap_disk()), qemu_source(), NO_OTHER_USE)
    # another LUN of the target, however it connects, is another disk
    _lun._refuse_other_connection(observed_domain(chap_disk(name=T1 + '/4', host='192.0.2.99')), qemu_source(),
                                  NO_OTHER_USE)


def test_a_kernel_source_is_never_a_connection_mismatch(devices):
    source = kernel_transport({'portal': '192.0.2.10'}).disk_source(kernel_lun(devices, WWID1, 1, 'sdb'))
    _lun._refuse_other_connection(observed_domain(chap_disk(name=T1 + '/1', host='192.0.2.99')), source,
                                  NO_OTHER_USE)


@pytest.mark.parametrize('disk,differs', [
    (chap_disk(host='192.0.2.99'), 'portal'),
    (chap_disk(port='3260'), 'portal'),
    (chap_disk(username='bob'), 'CHAP user'),
    (chap_disk(usage='virtops.storage/direct_lun/other'), 'secret'),
    (chap_disk(initiator='iqn.2026-11.lab.virtops:vm2'), 'initiator'),
    (chap_disk(username=None), 'CHAP user, secret'),
    (chap_disk(host='192.0.2.99', username='bob', initiator='iqn.2026-11.lab.virtops:vm2'),
     'portal, CHAP user, initiator'),
], ids=['host', 'port', 'user', 'secret', 'initiator', 'no-chap', 'several'])
def test_another_connection_to_the_same_lun_is_refused(disk, differs):
    with pytest.raises(StorageError) as caught:
        _lun._refuse_other_connection(observed_domain(disk), qemu_source(), NO_OTHER_USE)
    assert caught.value.code == 'TARGET_MISMATCH'
    assert caught.value.msg.startswith('disk sdb of vm1 already reads %s/3 with another %s; ' % (T1, differs))
    assert 'attached: false' in caught.value.msg and SECRET not in caught.value.msg


def test_a_disk_with_chap_when_none_is_asked_is_refused():
    with pytest.raises(StorageError) as caught:
        _lun._refuse_other_connection(observed_domain(chap_disk()), qemu_source(auth=None), NO_OTHER_USE)
    assert caught.value.code == 'TARGET_MISMATCH' and 'CHAP user, secret' in caught.value.msg


def test_a_disk_without_initiator_uses_qemus_default():
    _lun._refuse_other_connection(observed_domain(chap_disk(initiator=None)), qemu_source(initiator_name=None),
                                  NO_OTHER_USE)


# ---------------------------------------------------------------------------------------
# the kernel transport's `state: present` flow
DISCOVERY_USER = 'disco'
DISCOVERY_SECRET = 'D1sc0very-Pw'
WWID3 = '3' + '6001405' + '0' * 24 + '3'
RECORD_DEFAULTS = {'discovery.startup': 'manual', 'discovery.type': 'sendtargets',
                   'discovery.sendtargets.address': '192.0.2.10', 'discovery.sendtargets.port': '3260',
                   'discovery.sendtargets.auth.authmethod': 'None', 'discovery.sendtargets.auth.username': '<empty>',
                   'discovery.sendtargets.auth.password': '<empty>'}
CHAP_RECORD = dict(RECORD_DEFAULTS, **{'discovery.sendtargets.auth.authmethod': 'CHAP',
                                       'discovery.sendtargets.auth.username': DISCOVERY_USER,
                                       'discovery.sendtargets.auth.password': DISCOVERY_SECRET})
AUTH_REFUSED = (24, '', 'iscsiadm: Login failed to authenticate with target\niscsiadm: Could not perform SendTargets '
                        'discovery: iSCSI login failed due to authorization failure\n')


class IscsiHost(object):
    """iscsiadm 2.1.8 on a host in front of one portal, with state: its node records, sessions,
    the portal's discoverydb record, and the targets the portal offers (to a discovery with
    the CHAP credentials `chap` when set). `events` logs every command."""

    def __init__(self, events, nodes=(T1,), sessions=(SESSION_T1,), offered=(T1,), chap=None, record=None,
                 on_login=None, on_rescan=None):
        self.events = events
        self.nodes = dict((target, {'node.startup': 'automatic'}) for target in nodes)
        self.sessions = list(sessions)
        self.offered = list(offered)
        self.chap = chap
        self.record = dict(record) if record is not None else None
        self.on_login = on_login
        self.on_rescan = on_rescan

    def __call__(self, argv):
        argv = list(argv)
        self.events.append(argv)
        if argv[0] == 'multipath':
            return 0, '', ''
        args = argv[1:]
        mode = args[1]
        op = args[args.index('-o') + 1] if '-o' in args else None
        if mode == 'session':
            if '--rescan' in args:
                if self.on_rescan is not None:
                    self.on_rescan(int(args[args.index('-r') + 1]))
                return 0, 'Rescanning session [sid: 1, target: %s, portal: 192.0.2.10,3260]\n' % T1, ''
            if not self.sessions:
                return 21, '', 'iscsiadm: No active sessions.\n'
            return 0, ''.join('tcp: [%d] %s,1 %s (non-flash)\n' % session for session in self.sessions), ''
        if mode == 'node':
            return self.node(args, op)
        if mode == 'discovery':
            return AUTH_REFUSED if self.chap else self.offer(op)
        assert mode == 'discoverydb' and args[args.index('-p') + 1] == PORTAL, argv
        if '-D' in args:
            record = self.record or RECORD_DEFAULTS
            if self.chap and (record['discovery.sendtargets.auth.authmethod'], record[
                    'discovery.sendtargets.auth.username'], record['discovery.sendtargets.auth.password']) != (
                    ('CHAP',) + self.chap):
                return AUTH_REFUSED
            return self.offer(op)
        if op == 'new':
            self.record = dict(RECORD_DEFAULTS)
            return 0, 'New discovery record for [192.0.2.10,3260] added.\n', ''
        if self.record is None:
            return 6, '', 'iscsiadm: Discovery record [192.0.2.10,3260] not found.\n'
        if op == 'show':
            shown = dict(self.record)
            if '-S' not in args and shown['discovery.sendtargets.auth.password'] != '<empty>':
                shown['discovery.sendtargets.auth.password'] = '********'
            return 0, record_text(shown), ''
        if op == 'update':
            self.record[args[args.index('-n') + 1]] = args[args.index('-v') + 1]
            return 0, '', ''
        raise AssertionError('unexpected command: %r' % argv)

    def offer(self, op):
        if not self.offered:
            return 21, '', 'iscsiadm: No portals found\n'
        if op == 'new':
            for target in self.offered:
                self.nodes.setdefault(target, {'node.startup': 'manual'})  # iscsid.conf's default
        return 0, ''.join('%s,1 %s\n' % (PORTAL, target) for target in self.offered), ''

    def node(self, args, op):
        if args == ['-m', 'node']:
            if not self.nodes:
                return 21, '', 'iscsiadm: No records found\n'
            return 0, ''.join('%s,1 %s\n' % (PORTAL, target) for target in sorted(self.nodes)), ''
        target = args[args.index('-T') + 1]
        if target not in self.nodes:
            return 21, '', 'iscsiadm: No records found\n'
        if '--login' in args:
            if not any(session[2] == target for session in self.sessions):
                sid = max([session[0] for session in self.sessions] + [1]) + 1
                self.sessions.append((sid, PORTAL, target))
                if self.on_login is not None:
                    self.on_login(target, sid)
            return 0, 'Login to [iface: default, target: %s, portal: 192.0.2.10,3260] successful.\n' % target, ''
        if op == 'show':
            shown = dict(self.nodes[target], **{'node.name': target})
            if '-S' not in args and 'node.session.auth.password' in shown:
                shown['node.session.auth.password'] = '********'
            return 0, record_text(shown), ''
        if op == 'update':
            self.nodes[target][args[args.index('-n') + 1]] = args[args.index('-v') + 1]
            return 0, '', ''
        raise AssertionError('unexpected command: %r' % (['iscsiadm'] + args))


def run_present(tmp_path, params, check_mode=False, client=None, **host):
    """_run_kernel over build_host's tree and an IscsiHost; returns (module, events, fake,
    p); a refusal raises its StorageError."""
    p = build_host(tmp_path)
    events = []
    run = IscsiHost(events, **host)
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(tmp_path), events)
    desired = desired_from_params(params)
    module = FakeModule(check_mode)
    module.iscsiadm = iscsiadm
    with pytest.raises(Exited):
        _lun._run_kernel(module, desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(client or FakeClient(), iscsiadm, tree, run))
    return module, events, run, p


def refused_present(tmp_path, params, check_mode=False, client=None, **host):
    events = []
    with pytest.raises(StorageError) as caught:
        build_host(tmp_path)
        run = IscsiHost(events, **host)
        iscsiadm = Iscsiadm(run)
        tree = LabTree(str(tmp_path), events)
        desired = desired_from_params(params)
        _lun._run_kernel(FakeModule(check_mode), desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(client or FakeClient(), iscsiadm, tree, run))
    return caught.value, events


def discoveries(events):
    return [event[1:] for event in events if event[0] == 'iscsiadm' and (
        event[2] == 'discovery' or (event[2] == 'discoverydb' and '-D' in event))]


PLAIN_CHECK = ['-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL, '-o', 'nonpersistent']
PLAIN_NEW = ['-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL, '-o', 'new']
RECORD_CHECK = ['-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-D', '-o', 'nonpersistent']
RECORD_NEW = ['-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-D', '-o', 'new']
AUTH_STEPS = [
    'create the discovery record of %s' % PORTAL,
    'set discovery.sendtargets.auth.authmethod = CHAP on the discovery record of %s' % PORTAL,
    'set discovery.sendtargets.auth.username = %s on the discovery record of %s' % (DISCOVERY_USER, PORTAL),
    'set the discovery CHAP password of %s' % PORTAL,
]
DISCOVERY_AUTH = {'discovery_auth': {'username': DISCOVERY_USER, 'password': DISCOVERY_SECRET}}


def test_a_rerun_without_target_changes_nothing(tmp_path):
    module, events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10'})
    assert module.plan.descriptions == [] and not module.plan.changed
    assert discoveries(events) == [PLAIN_CHECK]  # asks what is offered, writes no record
    assert changes(events) == []
    assert module.result['sessions'] == [{'target': T1, 'portal': PORTAL, 'transport': 'kernel'}]
    assert [item['wwid'] for item in module.result['luns']] == [WWID1, WWID2]


def test_a_named_target_already_known_is_not_discovered(tmp_path):
    module, events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10', 'target': T1})
    assert module.plan.descriptions == [] and discoveries(events) == []


def test_the_persistent_discovery_adds_only_new_records(tmp_path):
    module, events, run, _p = run_present(tmp_path, {'portal': '192.0.2.10'}, offered=(T1, T2))
    assert module.plan.descriptions == [
        'discover the targets of portal %s (new: %s)' % (PORTAL, T2),
        'log in to %s at %s' % (T2, PORTAL),
        'set node.startup = automatic on node %s at %s' % (T2, PORTAL),
    ]
    assert module.plan.changed
    assert discoveries(events) == [PLAIN_CHECK, PLAIN_NEW]
    assert run.nodes[T1] == {'node.startup': 'automatic'}  # `-o new` left the existing record alone
    assert module.plan.diff[0] == {'before_header': 'node records of %s' % PORTAL,
                                   'after_header': 'node records of %s' % PORTAL,
                                   'before': '%s\n' % T1, 'after': '%s\n%s\n' % (T1, T2)}


def test_the_persistent_discovery_in_check_mode(tmp_path):
    module, events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10', 'target': T2}, check_mode=True,
                                           offered=(T1, T2))
    assert module.plan.descriptions == [
        'discover the targets of portal %s (new: %s)' % (PORTAL, T2),
        'log in to %s at %s' % (T2, PORTAL),
        'set node.startup = automatic on node %s at %s' % (T2, PORTAL),
    ]
    assert discoveries(events) == [PLAIN_CHECK] and changes(events) == []


def test_a_portal_that_offers_nothing(tmp_path):
    module, _events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10'}, nodes=(), sessions=(), offered=())
    assert module.plan.descriptions == [] and module.result['sessions'] == []
    error, _events = refused_present(tmp_path / 'named', {'portal': '192.0.2.10', 'target': T1}, nodes=(),
                                     sessions=(), offered=())
    assert error.code == 'ISCSI_LOGIN_FAILED' and 'it offers: nothing' in error.msg


def test_a_target_the_portal_does_not_offer_is_refused_before_any_change(tmp_path):
    error, events = refused_present(tmp_path, {'portal': '192.0.2.10', 'target': T3, 'node_startup': 'manual'},
                                    offered=(T1, T2))
    assert error.code == 'ISCSI_LOGIN_FAILED'
    assert error.msg == 'portal %s does not offer target %s (it offers: %s, %s)' % (PORTAL, T3, T1, T2)
    assert error.details.get('actions', []) == [] and not error.details.get('changed')
    assert changes(events) == [] and discoveries(events) == [PLAIN_CHECK]


def test_discovery_chap_is_stored_first_then_discovers_through_the_record(tmp_path):
    module, events, run, _p = run_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH), nodes=(),
                                          sessions=(), offered=(T1, T2), chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert module.plan.descriptions == AUTH_STEPS + [
        'discover the targets of portal %s (new: %s, %s)' % (PORTAL, T1, T2),
        'log in to %s at %s' % (T1, PORTAL), 'set node.startup = automatic on node %s at %s' % (T1, PORTAL),
        'log in to %s at %s' % (T2, PORTAL), 'set node.startup = automatic on node %s at %s' % (T2, PORTAL),
    ]
    base = ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL]
    assert events[2:8] == [
        base + ['-o', 'show', '-S'],  # compared with the stored password
        base + ['-o', 'new'],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.authmethod', '-v', 'CHAP'],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.username', '-v', DISCOVERY_USER],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.password', '-v', DISCOVERY_SECRET],
        ['iscsiadm'] + RECORD_CHECK,
    ]
    assert discoveries(events) == [RECORD_CHECK, RECORD_NEW]
    assert run.record == CHAP_RECORD
    assert sorted(session[2] for session in run.sessions) == [T1, T2]
    shown = repr((module.plan.descriptions, module.plan.diff, module.plan.warnings, module.result))
    assert DISCOVERY_SECRET not in shown
    assert all(DISCOVERY_SECRET not in line for line in module.iscsiadm.calls)
    assert {'before_header': 'discovery record %s' % PORTAL, 'after_header': 'discovery record %s' % PORTAL,
            'before': '', 'after': 'CHAP password changed\n'} in module.plan.diff


def test_discovery_chap_already_stored_changes_nothing(tmp_path):
    module, events, _run, _p = run_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH),
                                           record=CHAP_RECORD, chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert module.plan.descriptions == [] and not module.plan.changed
    assert changes(events) == [] and discoveries(events) == [RECORD_CHECK]


def test_only_the_discovery_setting_that_differs_is_set(tmp_path):
    stale = dict(CHAP_RECORD, **{'discovery.sendtargets.auth.password': 'old-password'})
    module, events, run, _p = run_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH), record=stale,
                                          chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert module.plan.descriptions == ['set the discovery CHAP password of %s' % PORTAL]
    assert list(changes(events)) == [
        ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-o', 'update',
         '-n', 'discovery.sendtargets.auth.password', '-v', DISCOVERY_SECRET]]
    assert run.record == CHAP_RECORD
    assert 'old-password' not in repr(module.plan.diff) and DISCOVERY_SECRET not in repr(module.plan.diff)


def test_another_discovery_user_is_set_and_shown(tmp_path):
    other = dict(CHAP_RECORD, **{'discovery.sendtargets.auth.username': 'someone'})
    module, _events, _run, _p = run_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH), record=other,
                                            chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert module.plan.descriptions == [
        'set discovery.sendtargets.auth.username = %s on the discovery record of %s' % (DISCOVERY_USER, PORTAL)]
    assert module.plan.diff[0]['before'] == 'discovery.sendtargets.auth.username = someone\n'
    assert module.plan.diff[0]['after'] == 'discovery.sendtargets.auth.username = %s\n' % DISCOVERY_USER


def test_a_target_not_offered_after_discovery_chap_reports_the_chap_steps(tmp_path):
    error, events = refused_present(tmp_path, dict({'portal': '192.0.2.10', 'target': T3}, **DISCOVERY_AUTH),
                                    offered=(T1,), chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert error.code == 'ISCSI_LOGIN_FAILED' and 'does not offer target %s' % T3 in error.msg
    assert error.details == {'actions': AUTH_STEPS, 'changed': True}
    assert DISCOVERY_SECRET not in error.msg
    assert not any('--login' in event or ('-m' in event and event[event.index('-m') + 1] == 'node'
                                          and 'update' in event) for event in events)


def test_wrong_discovery_chap_fails_after_storing_it(tmp_path):
    error, events = refused_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH),
                                    chap=('disco', 'another-password'))
    assert error.code == 'ISCSI_AUTH_FAILED'
    assert DISCOVERY_SECRET not in error.msg
    assert discoveries(events) == [RECORD_CHECK]
    assert not any('--login' in event for event in events)


def test_a_failing_discovery_after_the_chap_steps_reports_them(tmp_path):
    error, _events = refused_present(tmp_path, dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH),
                                     chap=('disco', 'another-password'))
    assert error.code == 'ISCSI_AUTH_FAILED'
    assert (error.details.get('actions'), error.details.get('changed')) == (AUTH_STEPS, True)


@pytest.mark.parametrize('target,new', [(T2, T2), (None, 'to be seen')])
def test_check_mode_cannot_discover_with_chap_it_has_not_stored(tmp_path, target, new):
    params = dict({'portal': '192.0.2.10'}, **DISCOVERY_AUTH)
    if target:
        params['target'] = target
    module, events, _run, _p = run_present(tmp_path, params, check_mode=True, offered=(T1, T2),
                                           chap=(DISCOVERY_USER, DISCOVERY_SECRET))
    assert module.plan.descriptions[:5] == AUTH_STEPS + [
        'discover the targets of portal %s (new: %s)' % (PORTAL, new)]
    assert module.plan.warnings[0].startswith('check mode cannot discover with discovery CHAP it has not stored yet')
    assert discoveries(events) == [] and changes(events) == []
    if target:
        assert module.plan.descriptions[5:] == ['log in to %s at %s' % (T2, PORTAL),
                                                'set node.startup = automatic on node %s at %s' % (T2, PORTAL)]
    else:
        assert module.plan.descriptions[5:] == []  # the targets shown are those already known (T1, logged in)


def test_lun_without_target_when_several_are_offered_is_refused_before_any_login(tmp_path):
    error, events = refused_present(tmp_path, {'portal': '192.0.2.10', 'lun': 1, 'domain': 'vm1'},
                                    nodes=(T1, T2), offered=(T1, T2))
    assert error.code == 'INVALID_ARGUMENT'
    assert 'lun 1 is ambiguous' in error.msg and '%s, %s' % (T1, T2) in error.msg
    assert error.details.get('actions', []) == [] and not error.details.get('changed')
    assert changes(events) == []


def test_lun_without_target_after_a_discovery_reports_it(tmp_path):
    error, events = refused_present(tmp_path, {'portal': '192.0.2.10', 'lun': 1, 'domain': 'vm1'},
                                    offered=(T1, T2))
    assert error.code == 'INVALID_ARGUMENT'
    assert error.details == {'actions': ['discover the targets of portal %s (new: %s)' % (PORTAL, T2)],
                             'changed': True}
    assert not any('--login' in event for event in events)


def add_lun3(p):
    def rescan(sid):
        assert sid == 1
        add_scsi_device(p, 1, 2, 3, naa=WWID3[1:], block='sdd', dev='67:48')
    return rescan


def test_rescan_true_rescans_the_sessions_as_a_step_that_changes_nothing(tmp_path):
    module, events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'rescan': True})
    assert module.plan.descriptions == ['rescan session 1 of %s' % T1]
    assert not module.plan.changed and [action.changes for action in module.plan.actions] == [False]
    assert ['iscsiadm', '-m', 'session', '-r', '1', '--rescan'] in events


def test_rescan_true_finds_a_lun_added_since_the_login(tmp_path):
    module, _events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'rescan': True},
                                    on_rescan=add_lun3)
    assert error is None and module.plan.descriptions == ['rescan session 1 of %s' % T1]
    assert [item['wwid'] for item in module.result['luns']] == [WWID1, WWID2, WWID3]


def test_rescan_in_check_mode_is_skipped_with_a_warning(tmp_path):
    module, events, _run, _p = run_present(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'rescan': True},
                                           check_mode=True)
    assert module.plan.descriptions == []
    assert module.plan.warnings == ['check mode does not rescan sessions; LUNs added since the login are not shown']
    assert not any('--rescan' in event for event in events)


def run_on(root, params, check_mode=False, client=None, **host):
    """run_present, with hooks that write into the tree the run reads; returns (module,
    events, the StorageError or None)."""
    events = []
    p = build_host(root)
    for key in ('on_rescan', 'on_login'):
        if key in host:
            host[key] = host[key](p)
    run = IscsiHost(events, **host)
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(root), events)
    desired = desired_from_params(params)
    module = FakeModule(check_mode)
    try:
        _lun._run_kernel(module, desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(client or FakeClient(), iscsiadm, tree, run))
    except Exited:
        return module, events, None
    except StorageError as err:
        return module, events, err
    raise AssertionError('the run neither exited nor failed')


def test_a_named_lun_not_visible_in_an_existing_session_rescans_it(tmp_path):
    module, events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'wwid': WWID3},
                                   on_rescan=add_lun3)
    assert error is None
    assert module.plan.descriptions == ['rescan session 1 of %s' % T1] and not module.plan.changed
    assert WWID3 in [item['wwid'] for item in module.result['luns']]
    assert [event for event in events if '--rescan' in event] == [
        ['iscsiadm', '-m', 'session', '-r', '1', '--rescan']]


def test_a_visible_named_lun_needs_no_rescan(tmp_path):
    module, events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'wwid': WWID2})
    assert error is None and module.plan.descriptions == []
    assert not any('--rescan' in event for event in events)


def test_a_lun_still_missing_after_the_rescan(tmp_path):
    _module, events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T1, 'wwid': WWID3})
    assert error.code == 'LUN_NOT_FOUND' and WWID3 in error.msg
    # the rescan is reported as done, and changed nothing
    assert (error.details['actions'], error.details['changed']) == (['rescan session 1 of %s' % T1], False)
    assert ['iscsiadm', '-m', 'session', '-r', '1', '--rescan'] in events


def test_a_refusal_after_a_login_reports_the_login_and_changed(tmp_path):
    # a fresh login has just scanned the target: no rescan; the missing LUN is refused after it
    _module, events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T2, 'wwid': WWID3},
                                    nodes=(T1, T2), offered=(T1, T2))
    assert error.code == 'LUN_NOT_FOUND'
    assert error.details['actions'] == ['log in to %s at %s' % (T2, PORTAL)]
    assert error.details['changed'] is True
    assert not any('--rescan' in event for event in events)


def test_rescan_true_rescans_a_fresh_login_too(tmp_path):
    module, _events, error = run_on(tmp_path, {'portal': '192.0.2.10', 'target': T2, 'rescan': True},
                                    nodes=(T1, T2), offered=(T1, T2))
    assert error is None
    assert module.plan.descriptions == ['log in to %s at %s' % (T2, PORTAL), 'rescan session 2 of %s' % T2]
    assert module.plan.changed


def test_a_refusal_of_the_attach_after_a_login_reports_the_login(tmp_path, monkeypatch):
    from ansible_collections.virtops.storage.plugins.module_utils import _locks
    monkeypatch.setattr(_locks, 'LOCK_DIRS', (str(tmp_path / 'locks'),))

    def login_brings_lun1(p):
        def login(target, sid):
            add_session(p, sid, 5)
            add_scsi_device(p, sid, 5, 1, naa=NAA1, block='sde', dev='68:64', links=False)
        return login
    _module, _events, error = run_on(tmp_path / 'host', {'portal': '192.0.2.10', 'target': T2, 'wwid': WWID1,
                                                         'domain': 'vm1'},
                                     nodes=(T1, T2), offered=(T1, T2), on_login=login_brings_lun1)
    # sde has no udev name yet: the attach is refused, and the login it already made is reported
    assert error.code == 'LUN_NOT_FOUND' and 'no udev name' in error.msg
    assert error.details == {'actions': ['log in to %s at %s' % (T2, PORTAL)], 'changed': True}


# ---------------------------------------------------------------------------------------
# attach and detach through vm_disk's planner (check mode: nothing is applied)
@pytest.fixture
def locks(tmp_path, monkeypatch):
    from ansible_collections.virtops.storage.plugins.module_utils import _locks
    monkeypatch.setattr(_locks, 'LOCK_DIRS', (str(tmp_path / 'locks'),))


def full_domain(name, *disks, **kwargs):
    xml = ("<domain type='kvm'><name>%s</name><uuid>%s</uuid><memory unit='KiB'>1048576</memory>"
           "<os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type><boot dev='hd'/></os><devices>"
           "<emulator>/usr/bin/qemu-system-x86_64</emulator>%s<controller type='scsi' index='0' "
           "model='virtio-scsi'/></devices></domain>" % (name, DOMAIN_UUID, ''.join(disks)))
    return FakeDomain(name, xml, kwargs.get('running', False))


def run_disk(root, params, domains, check_mode=True, **host):
    params = dict({'portal': '192.0.2.10', 'target': T1}, **params)
    return run_on(root, params, check_mode=check_mode, client=FakeClient(domains), **host)


def test_a_kernel_lun_attached_as_a_disk_gets_a_serial_from_its_wwid(tmp_path, locks):
    module, events, error = run_disk(tmp_path / 'host', {'wwid': WWID2, 'domain': 'vm1', 'device': 'disk',
                                                         'bus': 'virtio'}, [full_domain('vm1')])
    assert error is None, error
    assert module.plan.descriptions == ['attach disk vda (%s) to the definition of vm1'
                                        % (tmp_path / 'host/dev/disk/by-id' / ('wwn-0x' + NAA2))]
    disk = module.result['disk']
    assert disk['wwid'] == WWID2
    assert disk['serial'] == _domain.default_serial('wwid:' + WWID2)
    assert changes(events) == []


def test_an_attach_is_refused_when_another_domain_reads_the_lun_through_qemu(tmp_path, locks):
    # the LUN_IN_USE check of the attach sees network disks of the LUN too
    domains = [full_domain('vm1'), domain('vm2', network_disk(T1 + '/2'))]
    _module, events, error = run_disk(tmp_path / 'host', {'wwid': WWID2, 'domain': 'vm1'}, domains)
    assert error is not None and error.code == 'LUN_IN_USE', error
    assert 'vm2' in error.msg
    assert changes(events) == []


def test_a_shareable_attach_next_to_a_qemu_reader(tmp_path, locks):
    domains = [full_domain('vm1'), domain('vm2', network_disk(T1 + '/2').replace('</disk>', '<shareable/></disk>'))]
    module, _events, error = run_disk(tmp_path / 'host', {'wwid': WWID2, 'domain': 'vm1', 'shareable': True}, domains)
    assert error is None, error
    assert module.plan.descriptions == ['attach disk sda (%s) to the definition of vm1'
                                        % (tmp_path / 'host/dev/disk/by-id' / ('wwn-0x' + NAA2))]


@pytest.mark.parametrize('name', ['disk/by-id/wwn-0x', 'disk/by-id/scsi-3', 'mapper/3'])
def test_a_detach_by_wwid_of_a_lun_that_is_gone_finds_its_disk(tmp_path, locks, name):
    path = str(tmp_path / 'host/dev' / (name + WWID3[1:]))
    vm = full_domain('vm1', block_disk(path, 'sdb'))
    module, events, error = run_disk(tmp_path / 'host', {'wwid': WWID3, 'domain': 'vm1', 'attached': False}, [vm])
    assert error is None, error
    assert module.plan.descriptions == ['detach disk sdb (%s) from the definition of vm1' % path]
    assert module.plan.warnings == ['check mode does not rescan sessions; LUNs added since the login are not shown']
    assert changes(events) == []


def test_a_detach_of_a_gone_lun_that_is_not_attached_changes_nothing(tmp_path, locks):
    vm = full_domain('vm1', block_disk(str(tmp_path / 'host/dev/sdc'), 'sdb'))
    module, _events, error = run_disk(tmp_path / 'host', {'wwid': WWID3, 'domain': 'vm1', 'attached': False}, [vm],
                                      check_mode=False)
    assert error is None, error
    assert module.plan.descriptions == ['rescan session 1 of %s' % T1] and not module.plan.changed


def test_a_detach_of_a_gone_lun_finds_a_disk_attached_by_its_friendly_map_name(tmp_path, locks):
    root = tmp_path / 'host'
    p = build_host(root)
    dm = p('sys/devices/virtual/block/dm-5')  # the map lingers, its paths gone (queue_if_no_path)
    write(os.path.join(dm, 'dev'), '254:5\n')
    write(os.path.join(dm, 'dm/uuid'), 'mpath-%s\n' % WWID3)
    write(os.path.join(dm, 'dm/name'), 'mpatha\n')
    relink(p('sys/block/dm-5'), dm)
    write(p('dev/dm-5'), b'')
    relink(p('dev/mapper/mpatha'), p('dev/dm-5'))
    vm = full_domain('vm1', block_disk(p('dev/mapper/mpatha'), 'sdb'))
    events = []
    run = IscsiHost(events)
    iscsiadm = Iscsiadm(run)
    tree = LabTree(str(root), events)
    desired = desired_from_params({'portal': '192.0.2.10', 'target': T1, 'wwid': WWID3, 'domain': 'vm1',
                                   'attached': False})
    module = FakeModule(check_mode=True)
    with pytest.raises(Exited):
        _lun._run_kernel(module, desired, _lun.KernelTransport(desired, iscsiadm, tree),
                         _lun.LunOps(FakeClient([vm]), iscsiadm, tree, run))
    assert module.plan.descriptions == ['detach disk sdb (%s) from the definition of vm1' % p('dev/mapper/mpatha')]


def test_a_domain_that_has_the_lun_through_the_other_transport_does_not_get_it_twice():
    # the domain reads the LUN as /dev/sdb (kernel); a qemu network disk of it would be a second disk of one LUN
    use = types.SimpleNamespace(domain='vm1', target='sdc')
    through_kernel = _lun.Lun(wwid=WWID1, lun=1, target=T1, portal=PORTAL, uses=[use])
    with pytest.raises(StorageError) as caught:
        _lun._refuse_other_connection(observed_domain(), qemu_source(), through_kernel)
    assert caught.value.code == 'TARGET_MISMATCH' and 'sdc' in caught.value.msg
