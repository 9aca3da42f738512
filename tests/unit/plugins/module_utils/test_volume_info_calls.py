# -*- coding: utf-8 -*-
"""storage_volume_info asks libvirt a bounded number of questions: one pass over the domains.

A fake libvirt connection (plain Python objects, no daemon) holds one active dir pool of
2,000 volumes and 100 domains (60 running and persistent, 40 persistent and shut off). Every
fake method that would be a remote call in libvirt-python counts itself, so the tests can
state exactly what `list_volumes` asked and show that nothing is asked per volume *and*
domain. Anything the code might call that is not faked here fails with AttributeError, so a
new remote call cannot go unnoticed.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _volume
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import LibvirtClient, libvirt

POOL = 'bench'
POOL_DIR = '/srv/fake-pools/bench'
VOLUMES = 2000
RUNNING = 60
SHUT_OFF = 40
DOMAINS = RUNNING + SHUT_OFF
SHARED = 'vol-1999.img'    # attached (shareable) to the first five domains
BACKING = 'vol-1998.img'   # in the live backing chain of dom-000's vda only
DECOY = 'vol-0500.img'     # a disk names pool "elsewhere" with this volume name: not ours


def vol_name(number):
    return 'vol-%04d.img' % number


def vol_path(name):
    return '%s/%s' % (POOL_DIR, name)


def dom_name(number):
    return 'dom-%03d' % number


def dom_uuid(number):
    return '6d2c0f4e-0000-4000-8000-%012d' % number


def missing(code, message):
    """A libvirtError as libvirt raises it for "no such object"."""
    error = libvirt.libvirtError(message)
    error.err = (code, libvirt.VIR_FROM_NONE, message, 2, message, None, None, 0, 0)
    return error


# ---------------------------------------------------------------------------------------
# The fake connection. `calls` counts remote calls as 'Class.method'. name() is not
# counted: libvirt-python's virDomain.name(), virStorageVol.name() and virStoragePool.name()
# return the name cached in the local object handle, without a round trip to the daemon.
class FakeVolume(object):
    def __init__(self, conn, pool, name):
        self._conn, self._pool, self._name = conn, pool, name

    def name(self):  # local in libvirt-python: not counted
        return self._name

    def XMLDesc(self, flags=0):
        self._conn.calls['virStorageVol.XMLDesc'] += 1
        path = vol_path(self._name)
        return ("<volume type='file'><name>%s</name><key>%s</key>"
                "<capacity unit='bytes'>1048576</capacity><allocation unit='bytes'>0</allocation>"
                "<target><path>%s</path><format type='raw'/><permissions><mode>0600</mode>"
                "<owner>0</owner><group>0</group></permissions></target></volume>" % (self._name, path, path))

    def storagePoolLookupByVolume(self):
        self._conn.calls['virStorageVol.storagePoolLookupByVolume'] += 1
        return self._pool


class FakePool(object):
    def __init__(self, conn, name, active, volume_names):
        self._conn, self._name, self._active = conn, name, active
        self._volumes = collections.OrderedDict((name, FakeVolume(conn, self, name)) for name in volume_names)

    def name(self):  # local in libvirt-python: not counted
        return self._name

    def isActive(self):
        self._conn.calls['virStoragePool.isActive'] += 1
        return 1 if self._active else 0

    def XMLDesc(self, flags=0):
        self._conn.calls['virStoragePool.XMLDesc'] += 1
        return "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (self._name, POOL_DIR)

    def listAllVolumes(self, flags=0):
        self._conn.calls['virStoragePool.listAllVolumes'] += 1
        return list(self._volumes.values())

    def storageVolLookupByName(self, name):
        self._conn.calls['virStoragePool.storageVolLookupByName'] += 1
        if name not in self._volumes:
            raise missing(libvirt.VIR_ERR_NO_STORAGE_VOL, 'Storage volume not found: %s' % name)
        return self._volumes[name]


class FakeDomain(object):
    def __init__(self, conn, number, active, live_xml, persistent_xml):
        self._conn, self._name, self.uuid = conn, dom_name(number), dom_uuid(number)
        self.active, self._live_xml, self._persistent_xml = active, live_xml, persistent_xml

    def name(self):  # local in libvirt-python: not counted
        return self._name

    def XMLDesc(self, flags=0):
        inactive = bool(flags & libvirt.VIR_DOMAIN_XML_INACTIVE)
        self._conn.calls['virDomain.XMLDesc(%s)' % ('inactive' if inactive else 'live')] += 1
        return self._persistent_xml if inactive or not self.active else self._live_xml


class FakeConnection(object):
    def __init__(self):
        self.calls = collections.Counter()
        self.pools = collections.OrderedDict()
        self.domains = collections.OrderedDict()

    def add(self, pools, domains):
        for pool in pools:
            self.pools[pool.name()] = pool
        for dom in domains:
            self.domains[dom.name()] = dom

    def close(self):
        pass

    def listAllStoragePools(self, flags=0):
        self.calls['virConnect.listAllStoragePools'] += 1
        if flags & libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE:
            return [pool for pool in self.pools.values() if pool._active]
        return list(self.pools.values())

    def storagePoolLookupByName(self, name):
        self.calls['virConnect.storagePoolLookupByName'] += 1
        if name not in self.pools:
            raise missing(libvirt.VIR_ERR_NO_STORAGE_POOL, 'Storage pool not found: %s' % name)
        return self.pools[name]

    def _volume_at(self, path):
        for pool in self.pools.values():
            if pool._active:
                for volume in pool._volumes.values():
                    if vol_path(volume.name()) == path:  # a dir pool's key is the path
                        return volume
        raise missing(libvirt.VIR_ERR_NO_STORAGE_VOL, 'Storage volume not found: %s' % path)

    def storageVolLookupByPath(self, path):
        self.calls['virConnect.storageVolLookupByPath'] += 1
        return self._volume_at(path)

    def storageVolLookupByKey(self, key):
        self.calls['virConnect.storageVolLookupByKey'] += 1
        return self._volume_at(key)

    def listAllDomains(self, flags=0):
        self.calls['virConnect.listAllDomains'] += 1
        found = list(self.domains.values())
        if flags & libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE:
            found = [dom for dom in found if dom.active]
        # every fake domain is persistent: VIR_CONNECT_LIST_DOMAINS_PERSISTENT keeps them all
        return found

    def lookupByName(self, name):
        self.calls['virConnect.lookupByName'] += 1
        if name not in self.domains:
            raise missing(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching name '%s'" % name)
        return self.domains[name]

    def lookupByUUIDString(self, uuid):
        self.calls['virConnect.lookupByUUIDString'] += 1
        for dom in self.domains.values():
            if dom.uuid == uuid:
                return dom
        raise missing(libvirt.VIR_ERR_NO_DOMAIN, 'Domain not found: no domain with matching uuid %s' % uuid)


# ---------------------------------------------------------------------------------------
# The lab: which domain uses which volume, written down independently of the code under test.
def file_disk(target, name, extra=''):
    return ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>%s"
            "<target dev='%s' bus='virtio'/></disk>" % (vol_path(name), extra, target))


def volume_disk(target, pool, name, extra=''):
    return ("<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
            "<source pool='%s' volume='%s'/>%s<target dev='%s' bus='virtio'/></disk>" % (pool, name, extra, target))


def domain_xml(number, disks):
    return ("<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='KiB'>65536</memory>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>%s"
            "<disk type='file' device='cdrom'><source file='/srv/iso/installer.iso'/>"
            "<target dev='sda' bus='sata'/><readonly/></disk></devices></domain>"
            % (dom_name(number), dom_uuid(number), ''.join(disks)))


def build_lab():
    """(connection, expected) where expected maps a volume name to {domain: (target, live, persistent, via)}."""
    expected = collections.defaultdict(dict)
    domains = []
    for number in range(DOMAINS):
        running = number < RUNNING
        name = dom_name(number)
        first, second, third = vol_name(3 * number), vol_name(3 * number + 1), vol_name(3 * number + 2)
        persistent = [file_disk('vda', first), volume_disk('vdb', POOL, second)]
        live = list(persistent)
        expected[first][name] = ('vda', running, True, None)
        expected[second][name] = ('vdb', running, True, None)
        if number % 2:  # odd domains: a third disk in the persistent definition (next boot) only
            persistent.append(file_disk('vdc', third))
            expected[third][name] = ('vdc', False, True, None)
        elif running:   # even running domains: a third disk hot-plugged into the live XML only
            live.append(volume_disk('vdc', POOL, third))
            expected[third][name] = ('vdc', True, False, None)
        if number < 5:
            shared = file_disk('vdd', SHARED, extra='<shareable/>')
            persistent.append(shared)
            live.append(shared)
            expected[SHARED][name] = ('vdd', running, True, None)
        if number == 7:
            decoy = volume_disk('vde', 'elsewhere', DECOY)
            persistent.append(decoy)
            live.append(decoy)
        if number == 0:  # the live XML spells out vda's backing chain
            chain = "<backingStore type='file'><format type='raw'/><source file='%s'/><backingStore/></backingStore>"
            live[0] = file_disk('vda', first, extra=chain % vol_path(BACKING))
            expected[BACKING][name] = ('vda', True, False, vol_path(first))
        domains.append((number, running, domain_xml(number, live), domain_xml(number, persistent)))
    conn = FakeConnection()
    pool = FakePool(conn, POOL, True, [vol_name(number) for number in range(VOLUMES)])
    cold = FakePool(conn, 'cold', False, ['never-listed.img'])
    conn.add([pool, cold], [FakeDomain(conn, *args) for args in domains])
    return conn, dict(expected)


@pytest.fixture(scope='module')
def lab():
    return build_lab()


@pytest.fixture
def conn(lab):
    fake = lab[0]
    fake.calls.clear()
    return fake


@pytest.fixture
def expected(lab):
    return lab[1]


def run(conn, **params):
    client = LibvirtClient('qemu:///system')
    client._conn = conn  # the `conn` property opens a connection only while _conn is None
    full = dict(pool=None, name=None, key=None, path=None, unused=False, attached_to=None)
    full.update(params)
    conn.calls.clear()
    return _volume.list_volumes(client, full)


# What one pass costs: two domain listings, one XML read per view of each domain (live for
# the running ones, the persistent definition for all), one XML read per candidate volume.
def domain_pass():
    """The domains read once, plus a lookup of each pool their <disk type='volume'> sources
    name ("bench" and the decoy's "elsewhere", which does not exist) and one XML read of
    each that exists: how those files are found, to follow their backing chains."""
    return {'virConnect.listAllDomains': 2, 'virDomain.XMLDesc(live)': RUNNING,
            'virDomain.XMLDesc(inactive)': DOMAINS, 'virConnect.storagePoolLookupByName': 2,
            'virStoragePool.XMLDesc': 1}


def with_pass(**calls):
    """The calls of the domain pass plus `calls`."""
    total = collections.Counter(domain_pass())
    total.update(calls)
    return dict(total)


# ---------------------------------------------------------------------------------------
def test_one_pool_is_one_pass_over_the_domains(conn):
    volumes = run(conn, pool=POOL)
    want = with_pass(**{'virConnect.storagePoolLookupByName': 1, 'virStoragePool.isActive': 1,
                        'virStoragePool.listAllVolumes': 1, 'virStorageVol.XMLDesc': VOLUMES})
    assert dict(conn.calls) == want
    assert conn.calls['virConnect.listAllDomains'] == 2
    assert conn.calls['virDomain.XMLDesc(live)'] + conn.calls['virDomain.XMLDesc(inactive)'] == 60 + 100
    assert conn.calls['virStorageVol.XMLDesc'] == 2000
    # bounded by a sum, never a product: 2,165 calls here, where volumes x domains would be 200,000
    assert sum(conn.calls.values()) <= VOLUMES + 2 * DOMAINS + 5
    assert [volume['name'] for volume in volumes] == [vol_name(number) for number in range(VOLUMES)]


def test_every_volume_reports_its_users(conn, expected):
    volumes = {volume['name']: volume for volume in run(conn, pool=POOL)}
    for name, volume in volumes.items():
        users = expected.get(name, {})
        got = {use['domain']: (use['target'], use['live'], use['persistent'], use['via']) for use in volume['used_by']}
        assert got == users, name
        assert volume['ref_count'] == len(users) and volume['in_use'] is bool(users), name
        assert [use['domain'] for use in volume['used_by']] == sorted(users), name


def test_chosen_volumes(conn):
    volumes = {volume['name']: volume for volume in run(conn, pool=POOL)}
    # dom-003 runs (odd: its vdc is in the next-boot definition only)
    assert volumes['vol-0009.img']['used_by'] == [
        {'domain': 'dom-003', 'target': 'vda', 'live': True, 'persistent': True, 'via': None}]
    assert volumes['vol-0011.img']['used_by'] == [
        {'domain': 'dom-003', 'target': 'vdc', 'live': False, 'persistent': True, 'via': None}]
    # dom-004 runs (even: vdc hot-plugged as a type='volume' disk)
    assert volumes['vol-0013.img']['used_by'] == [
        {'domain': 'dom-004', 'target': 'vdb', 'live': True, 'persistent': True, 'via': None}]
    assert volumes['vol-0014.img']['used_by'] == [
        {'domain': 'dom-004', 'target': 'vdc', 'live': True, 'persistent': False, 'via': None}]
    # dom-070 is shut off: persistent only
    assert volumes['vol-0210.img']['used_by'] == [
        {'domain': 'dom-070', 'target': 'vda', 'live': False, 'persistent': True, 'via': None}]
    assert volumes['vol-0212.img']['ref_count'] == 0  # even and shut off: no third disk
    shared = volumes[SHARED]
    assert shared['ref_count'] == 5 and shared['in_use'] is True
    assert [use['domain'] for use in shared['used_by']] == ['dom-000', 'dom-001', 'dom-002', 'dom-003', 'dom-004']
    assert volumes[BACKING]['used_by'] == [
        {'domain': 'dom-000', 'target': 'vda', 'live': True, 'persistent': False, 'via': vol_path('vol-0000.img')}]
    decoy = volumes[DECOY]
    assert (decoy['ref_count'], decoy['in_use'], decoy['used_by']) == (0, False, [])
    assert volumes['vol-1500.img']['in_use'] is False


def test_unused_returns_exactly_the_volumes_nobody_uses(conn, expected):
    volumes = run(conn, pool=POOL, unused=True)
    want = sorted(set(vol_name(number) for number in range(VOLUMES)) - set(expected))
    assert [volume['name'] for volume in volumes] == want
    assert len(want) == VOLUMES - len(expected) and DECOY in want and BACKING not in want
    assert all(volume['used_by'] == [] and volume['ref_count'] == 0 for volume in volumes)
    assert dict(conn.calls) == with_pass(**{
        'virConnect.storagePoolLookupByName': 1, 'virStoragePool.isActive': 1,
        'virStoragePool.listAllVolumes': 1, 'virStorageVol.XMLDesc': VOLUMES})


@pytest.mark.parametrize('domain, lookup', [('dom-004', 'virConnect.lookupByName'),
                                            (dom_uuid(4), 'virConnect.lookupByUUIDString')])
def test_attached_to_returns_that_domains_volumes(conn, expected, domain, lookup):
    volumes = run(conn, pool=POOL, attached_to=domain)
    want = sorted(name for name, users in expected.items() if 'dom-004' in users)
    assert want == ['vol-0012.img', 'vol-0013.img', 'vol-0014.img', SHARED]
    assert [volume['name'] for volume in volumes] == want
    # the same pass, the one lookup that resolves the domain's name, then one lookup per
    # source the domain's disks name: no pool is listed and only those volumes are read
    calls = dict(conn.calls)
    sources = calls.get('virConnect.storageVolLookupByPath', 0) + calls.get('virStoragePool.storageVolLookupByName', 0)
    assert 'virStoragePool.listAllVolumes' not in calls
    assert len(want) <= sources <= 8 and calls['virStorageVol.XMLDesc'] == len(want)
    assert calls[lookup] == 1 and calls['virConnect.listAllDomains'] == 2


def test_attached_to_and_unused_together_is_empty(conn):
    assert run(conn, pool=POOL, attached_to='dom-004', unused=True) == []


def test_attached_to_a_missing_domain_asks_nothing_else(conn):
    with pytest.raises(StorageError) as caught:
        run(conn, pool=POOL, attached_to='no-such-domain')
    assert caught.value.code == 'DOMAIN_NOT_FOUND'
    assert dict(conn.calls) == {'virConnect.lookupByName': 1}


def test_every_active_pool_skips_the_inactive_one(conn):
    volumes = run(conn)
    assert len(volumes) == VOLUMES and {volume['pool'] for volume in volumes} == {POOL}
    assert dict(conn.calls) == with_pass(**{
        'virConnect.listAllStoragePools': 1, 'virStoragePool.listAllVolumes': 1, 'virStorageVol.XMLDesc': VOLUMES})


def test_one_volume_by_name_or_path_reads_one_volume(conn):
    [volume] = run(conn, pool=POOL, name='vol-0013.img')
    assert volume['used_by'][0]['domain'] == 'dom-004'
    assert dict(conn.calls) == with_pass(**{
        'virConnect.storagePoolLookupByName': 1, 'virStoragePool.isActive': 1,
        'virStoragePool.storageVolLookupByName': 1, 'virStorageVol.XMLDesc': 1})
    [volume] = run(conn, path=vol_path(SHARED))
    assert (volume['name'], volume['pool'], volume['ref_count']) == (SHARED, POOL, 5)
    assert dict(conn.calls) == with_pass(**{
        'virConnect.storageVolLookupByPath': 1, 'virStorageVol.storagePoolLookupByVolume': 1,
        'virStorageVol.XMLDesc': 1})


def test_no_candidates_reads_no_domain(conn):
    assert run(conn, pool=POOL, name='no-such-volume.img') == []
    assert dict(conn.calls) == {'virConnect.storagePoolLookupByName': 1, 'virStoragePool.isActive': 1,
                                'virStoragePool.storageVolLookupByName': 1}


@pytest.mark.parametrize('volumes, running, shut_off', [(10, 1, 1), (40, 3, 9), (400, 12, 5)])
def test_the_cost_is_a_sum_at_every_size(volumes, running, shut_off):
    """The call count follows volumes + domains at several sizes: no volume x domain term."""
    conn = FakeConnection()
    pool = FakePool(conn, POOL, True, [vol_name(number) for number in range(volumes)])
    domains = [FakeDomain(conn, number, number < running,
                          domain_xml(number, [file_disk('vda', vol_name(number))]),
                          domain_xml(number, [file_disk('vda', vol_name(number))]))
               for number in range(running + shut_off)]
    conn.add([pool], domains)
    result = run(conn, pool=POOL, unused=True)
    assert len(result) == volumes - running - shut_off
    assert sum(conn.calls.values()) == 3 + 2 + running + (running + shut_off) + volumes
