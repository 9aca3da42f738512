# -*- coding: utf-8 -*-
"""vm_disk and vm_disk_info against the real lab: the root disk and the boot order.

Each behaviour: check mode (the running domain and its definition, read through libvirt,
stay as they were) -> apply (both verified through libvirt) -> re-apply (no change,
no actions). Every refusal is shown to leave the running domain and its definition
exactly as they were, in check mode and for real."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import libvirt
import pytest
from lxml import etree

import _disks
from _lab import define_domain, make_dir_pool, make_volume

MIB = 1024 ** 2
# the parts of the `disk` result that check mode predicts and a real run must give
PREDICTED_FIELDS = ('target', 'bus', 'device', 'format', 'role', 'bootable', 'boot_order', 'live', 'persistent')
EMPTY_CDROM = ("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/>"
               "<readonly/>%s</disk>")


# ---------------------------------------------------------------------------------------
# helpers
def make_pool(conn, names, suffix='pool'):
    return make_dir_pool(conn, names, suffix)


def create_volume(conn, pool_name, name, capacity=16 * MIB, volume_format='qcow2'):
    return make_volume(conn, pool_name, name, capacity, volume_format)


def volume_disk(pool, volume, target, volume_format='qcow2', boot=None):
    """A <disk type='volume'> as a domain definition would hold it."""
    return ("<disk type='volume' device='disk'><driver name='qemu' type='%s'/><source pool='%s' volume='%s'/>"
            "<target dev='%s' bus='virtio'/>%s</disk>"
            % (volume_format, pool, volume, target, "<boot order='%d'/>" % boot if boot else ''))


def cdrom(boot=None):
    """An empty IDE cdrom at hdc, with a per-device boot order when given."""
    return EMPTY_CDROM % ("<boot order='%d'/>" % boot if boot else '')


def make_domain(conn, names, suffix, disks_xml='', legacy_boot=(), start=False):
    """A guest-less domain of this test; `legacy_boot` rewrites its <os><boot dev> list
    (libvirt itself adds <boot dev='hd'/> to a definition without any boot order)."""
    dom = define_domain(conn, names(suffix), disks_xml)
    if legacy_boot:
        tree = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        os_node = tree.find('os')
        for boot in os_node.findall('boot'):
            os_node.remove(boot)
        for dev in legacy_boot:
            etree.SubElement(os_node, 'boot', dev=dev)
        dom = conn.defineXML(etree.tostring(tree, encoding='unicode'))
    if start:
        dom.create()
    return dom.name()


def domain_xmls(conn, name):
    """(live XML, persistent XML) of the domain, read through libvirt."""
    dom = conn.lookupByName(name)
    return dom.XMLDesc(0), dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def os_boot(xml):
    """The <os><boot dev> list of a domain XML."""
    return [boot.get('dev') for boot in etree.fromstring(xml).findall('os/boot')]


def disk_boot(xml):
    """{target: per-device boot order or None} of every disk of a domain XML."""
    orders = {}
    for disk in etree.fromstring(xml).findall('devices/disk'):
        boot = disk.find('boot')
        orders[disk.find('target').get('dev')] = int(boot.get('order')) if boot is not None else None
    return orders


def disk_of(xml, target):
    return next((disk for disk in etree.fromstring(xml).findall('devices/disk')
                 if disk.find('target').get('dev') == target), None)


def both_views(conn, name, read):
    """`read(xml)` of the running domain's XML and of its definition."""
    live, persistent = domain_xmls(conn, name)
    return read(live), read(persistent)


def twice(value):
    return value, value


def assert_both_views(conn, name, check):
    """`check(xml)` holds for the running domain's XML and for its definition."""
    live, persistent = domain_xmls(conn, name)
    check(live)
    check(persistent)


def disk_info(run, name):
    """(root, {target: disk}) as vm_disk_info reports them."""
    info = run('vm_disk_info', {'domain': name})
    assert not info.failed, info.get('msg')
    assert info['actions'] == [] and not info.changed
    return info['root'], dict((disk['target'], disk) for disk in info['disks'])


def converge(run, conn, args, verify=None):
    """check mode (nothing changes) -> apply -> re-apply (no change), verified through libvirt."""
    return _disks.converge(run, conn, args, verify, fields=PREDICTED_FIELDS)


def refused(run, conn, args, code):
    """The run fails with `code`, in check mode and for real, and the running domain and
    its definition are exactly as they were."""
    return _disks.refused(run, conn, args, code)


def role_of(disk):
    """(role, bootable, boot_order) of a `disk` result."""
    return disk['role'], disk['bootable'], disk['boot_order']


def converts(actions):
    """Whether one of the steps converts <os><boot dev> to per-device boot order."""
    return any('<os><boot dev>' in action and 'per-device boot order' in action for action in actions)


def boot_diff(result, name):
    """The boot order entry of a --diff result."""
    entries = [entry for entry in result['diff'] if entry.get('before_header') == '%s: boot order' % name]
    assert len(entries) == 1, result['diff']
    return entries[0]


# ---------------------------------------------------------------------------------------
# 1. role: root on a shut-off domain without a root
def test_root_on_a_shut_off_domain_without_disks(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    name = make_domain(conn, names, 'vm', cdrom())
    assert os_boot(domain_xmls(conn, name)[1]) == ['hd'], 'libvirt boots the first hard disk by default'
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'root'}

    def verify(applied):
        def check(xml):
            assert os_boot(xml) == [], 'per-device boot order and <os><boot dev> cannot be mixed'
            assert disk_boot(xml) == {'vda': 1, 'hdc': None}
            disk = disk_of(xml, 'vda')
            assert (disk.get('type'), disk.find('source').get('pool'), disk.find('source').get('volume')) == (
                'volume', pool, 'root.qcow2')
            assert disk.find('driver').get('type') == 'qcow2'
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('root', True, 1)

    checked, _applied = converge(run, conn, args, verify)
    assert checked['disk']['target'] == 'vda'
    root, disks = disk_info(run, name)
    assert root == 'vda'
    assert role_of(disks['vda']) == ('root', True, 1)
    assert disks['vda']['source']['volume'] == 'root.qcow2' and disks['vda']['format'] == 'qcow2'
    assert disks['hdc']['role'] == 'data'


def test_root_next_to_a_data_disk_with_a_boot_order(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'data.img', volume_format='raw')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'data.img', 'vdb', 'raw', boot=2))
    assert disk_info(run, name)[0] is None, 'boot order 2 is no root'
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'root'}

    def verify(applied):
        assert both_views(conn, name, disk_boot) == twice({'vda': 1, 'vdb': 2})
        assert both_views(conn, name, os_boot) == twice([])
        assert role_of(applied['disk']) == ('root', True, 1)

    converge(run, conn, args, verify)
    root, disks = disk_info(run, name)
    assert root == 'vda'
    assert role_of(disks['vda']) == ('root', True, 1)
    assert role_of(disks['vdb']) == ('data', True, 2)


# ---------------------------------------------------------------------------------------
# 2. <os><boot dev='cdrom'/><boot dev='hd'/> becomes per-device boot order
def test_root_converts_legacy_boot_order_keeping_the_others_order(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'data.img', volume_format='raw')
    name = make_domain(conn, names, 'vm', cdrom() + volume_disk(pool, 'data.img', 'vdb', 'raw'),
                       legacy_boot=('cdrom', 'hd'))
    root, disks = disk_info(run, name)
    assert root is None, 'the cdrom boots first, the data disk second: no root disk'
    assert (disks['hdc']['boot_order'], disks['vdb']['boot_order']) == (1, 2)
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'root'}

    def verify(applied):
        def check(xml):
            assert os_boot(xml) == [], xml
            assert disk_boot(xml) == {'vda': 1, 'hdc': 2, 'vdb': 3}, xml
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('root', True, 1)

    checked, applied = converge(run, conn, args, verify)
    assert converts(checked['actions'])
    assert any(action.startswith('attach disk vda (%s/root.qcow2) to the definition of %s' % (pool, name))
               for action in checked['actions']), checked['actions']
    for result in (checked, applied):
        entry = boot_diff(result, name)
        assert '<os><boot dev>: cdrom, hd' in entry['before']
        assert entry['after'].splitlines() == ['vda: 1', 'hdc: 2', 'vdb: 3'], entry['after']
        [disk_entry] = [entry for entry in result['diff'] if entry.get('before_header', '').endswith('disk vda')]
        assert disk_entry['before'] == ''
        assert etree.fromstring(disk_entry['after']).find('boot').get('order') == '1'
    root, disks = disk_info(run, name)
    assert root == 'vda'
    assert [role_of(disks[target]) for target in ('vda', 'hdc', 'vdb')] == [
        ('root', True, 1), ('data', True, 2), ('data', True, 3)]


# ---------------------------------------------------------------------------------------
# 3. role: root on a running domain
@pytest.mark.parametrize('layout', ['legacy', 'per-device'])
def test_root_on_a_running_domain_is_refused(run, conn, names, layout):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'data.img', volume_format='raw')
    if layout == 'legacy':
        name = make_domain(conn, names, 'vm', cdrom(), start=True)
    else:
        name = make_domain(conn, names, 'vm', cdrom(boot=2) + volume_disk(pool, 'data.img', 'vdb', 'raw', boot=3),
                           start=True)
    assert disk_info(run, name)[0] is None
    result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'root'},
                     'DOMAIN_RUNNING')
    assert name in result['msg']
    assert disk_info(run, name)[0] is None


# ---------------------------------------------------------------------------------------
# 4. role: root when there is a root already
@pytest.mark.parametrize('layout', ['legacy', 'per-device'])
def test_a_second_root_is_refused(run, conn, names, layout):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'other.qcow2')
    if layout == 'legacy':  # <boot dev='hd'/>: the first hard disk is the root
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda'), legacy_boot=('hd',))
    else:
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1))
    assert disk_info(run, name)[0] == 'vda'
    result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'other.qcow2', 'role': 'root'},
                     'ROOT_DISK_PRESENT')
    assert 'vda' in result['msg']
    # the root itself, asked for again, is no change (even on a running domain)
    conn.lookupByName(name).create()
    before = domain_xmls(conn, name)
    for check in (True, False):
        again = run('vm_disk', {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'root'}, check=check)
        assert not again.failed, again.result
        assert not again.changed and again['actions'] == []
        assert (again['disk']['role'], again['disk']['boot_order'], again['disk']['target']) == ('root', 1, 'vda')
    assert domain_xmls(conn, name) == before


# ---------------------------------------------------------------------------------------
# 5. detaching the root disk
@pytest.mark.parametrize('layout', ['legacy', 'per-device'])
def test_root_detach_needs_the_domain_shut_off(run, conn, names, layout):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    if layout == 'legacy':
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda') + cdrom(), legacy_boot=('hd',),
                           start=True)
    else:
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1) + cdrom(boot=2),
                           start=True)
    assert disk_info(run, name)[0] == 'vda'
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'state': 'absent'}
    result = refused(run, conn, args, 'DOMAIN_RUNNING')
    assert 'vda' in result['msg']
    assert both_views(conn, name, lambda xml: disk_of(xml, 'vda') is not None) == twice(True)

    conn.lookupByName(name).destroy()

    def verify(applied):
        assert applied['disk'] is None
        assert both_views(conn, name, disk_boot) == twice({'hdc': None if layout == 'legacy' else 2})

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['detach disk vda (%s/root.qcow2) from the definition of %s' % (pool, name)]
    root, disks = disk_info(run, name)
    assert root is None
    assert sorted(disks) == ['hdc'] and disks['hdc']['role'] == 'data'
    assert conn.storagePoolLookupByName(pool).storageVolLookupByName('root.qcow2') is not None, 'the volume stays'


# ---------------------------------------------------------------------------------------
# 6. a new first hard disk must not take over booting from a <boot dev='hd'/> root
def test_a_new_first_disk_does_not_steal_the_boot_from_a_legacy_root(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'data.img', volume_format='raw')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vdb'), legacy_boot=('hd',))
    assert disk_info(run, name)[0] == 'vdb'
    args = {'domain': name, 'pool': pool, 'volume': 'data.img', 'target': 'vda'}

    def verify(applied):
        def check(xml):
            assert os_boot(xml) == [], xml
            assert disk_boot(xml) == {'vda': None, 'vdb': 1}, xml
            assert [disk.find('target').get('dev') for disk in etree.fromstring(xml).findall('devices/disk')] == [
                'vda', 'vdb'], 'libvirt puts vda first: only the boot order keeps vdb the boot disk'
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('data', False, None)

    checked, _applied = converge(run, conn, args, verify)
    assert converts(checked['actions'])
    root, disks = disk_info(run, name)
    assert root == 'vdb'
    assert role_of(disks['vdb']) == ('root', True, 1)
    assert role_of(disks['vda']) == ('data', False, None)


# ---------------------------------------------------------------------------------------
# 7. boot_order of a data disk
def test_data_disk_boot_order_and_a_taken_order(run, conn, names):
    pool, _target = make_pool(conn, names)
    for volume in ('root.qcow2', 'second.img', 'third.img'):
        create_volume(conn, pool, volume, volume_format='qcow2' if volume.endswith('qcow2') else 'raw')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1) + cdrom(boot=3))
    args = {'domain': name, 'pool': pool, 'volume': 'second.img', 'boot_order': 2}

    def verify(applied):
        def check(xml):
            assert disk_boot(xml) == {'vda': 1, 'vdb': 2, 'hdc': 3}, xml
            assert os_boot(xml) == []
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('data', True, 2)

    converge(run, conn, args, verify)
    root, disks = disk_info(run, name)
    assert root == 'vda'
    assert role_of(disks['vdb']) == ('data', True, 2)
    for order, holder in ((2, 'vdb'), (3, 'hdc')):
        result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'third.img', 'boot_order': order},
                         'INVALID_ARGUMENT')
        assert holder in result['msg'], result['msg']
    # boot order 1 is the root's (SPEC: role root = boot_order 1), and this domain has one
    result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'third.img', 'boot_order': 1},
                     'ROOT_DISK_PRESENT')
    assert 'vda' in result['msg']
    refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'third.img', 'boot_order': 1, 'role': 'data'},
            'INVALID_ARGUMENT')


def test_data_disk_boot_order_converts_a_legacy_definition(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'second.img', volume_format='raw')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda'), legacy_boot=('hd',))
    args = {'domain': name, 'pool': pool, 'volume': 'second.img', 'boot_order': 2}

    def verify(applied):
        def check(xml):
            assert os_boot(xml) == [], xml
            assert disk_boot(xml) == {'vda': 1, 'vdb': 2}, xml
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('data', True, 2)

    converge(run, conn, args, verify)
    root, disks = disk_info(run, name)
    assert root == 'vda' and disks['vdb']['boot_order'] == 2


def test_data_disk_boot_order_on_a_running_domain(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'second.img', volume_format='raw')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1), start=True)
    args = {'domain': name, 'pool': pool, 'volume': 'second.img', 'boot_order': 2}

    def verify(applied):
        live, persistent = domain_xmls(conn, name)
        assert disk_boot(persistent) == {'vda': 1, 'vdb': 2}, persistent
        assert disk_boot(live) == {'vda': 1, 'vdb': 2}, live
        assert applied['disk']['live'] and applied['disk']['persistent']

    converge(run, conn, args, verify)
    create_volume(conn, pool, 'third.img', volume_format='raw')
    result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'third.img', 'boot_order': 2},
                     'INVALID_ARGUMENT')
    assert 'vdb' in result['msg']
    # another boot order on the root takes its role away: shut-off domains only
    refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'boot_order': 3}, 'DOMAIN_RUNNING')


# ---------------------------------------------------------------------------------------
# 8. role: data on the root disk
def test_demoting_the_root_disk(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1) + cdrom(boot=2))
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'data'}

    def verify(applied):
        def check(xml):
            assert disk_boot(xml) == {'vda': None, 'hdc': 2}, xml
            assert os_boot(xml) == [], 'the cdrom boots, nothing else'
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('data', False, None)

    converge(run, conn, args, verify)
    root, disks = disk_info(run, name)
    assert root is None
    assert role_of(disks['vda']) == ('data', False, None)
    assert (disks['hdc']['bootable'], disks['hdc']['boot_order']) == (True, 2)


def test_demoting_a_legacy_root_disk(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda') + cdrom(),
                       legacy_boot=('hd', 'cdrom'))
    args = {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'data'}

    def verify(applied):
        def check(xml):
            assert os_boot(xml) == [], xml
            assert disk_boot(xml) == {'vda': None, 'hdc': 2}, xml
        assert_both_views(conn, name, check)
        assert role_of(applied['disk']) == ('data', False, None)

    converge(run, conn, args, verify)
    root, disks = disk_info(run, name)
    assert root is None and disks['vda']['role'] == 'data' and disks['hdc']['boot_order'] == 2


def test_demoting_the_root_of_a_running_domain_is_refused(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1) + cdrom(boot=2), start=True)
    result = refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'data'},
                     'DOMAIN_RUNNING')
    assert name in result['msg']
    assert disk_info(run, name)[0] == 'vda'


def test_the_only_bootable_disk_stays_the_root(run, conn, names):
    """Without any other boot device libvirt boots the first hard disk anyway (it puts
    <boot dev='hd'/> back): the root keeps boot order 1, with a warning, and no run
    pretends to change it (nor leaves a definition that libvirt rewrites)."""
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1))
    before = domain_xmls(conn, name)
    for check in (True, False, False):
        result = run('vm_disk', {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'role': 'data'}, check=check)
        assert not result.failed, result.result
        assert not result.changed and result['actions'] == []
        assert any('vda' in warning for warning in result.get('warnings', [])), result.result
        assert role_of(result['disk']) == ('root', True, 1)
        assert domain_xmls(conn, name) == before
    assert both_views(conn, name, disk_boot) == twice({'vda': 1})
    assert disk_info(run, name)[0] == 'vda'
    # a boot order other than 1 cannot be had either: that is a refusal
    refused(run, conn, {'domain': name, 'pool': pool, 'volume': 'root.qcow2', 'boot_order': 2}, 'INVALID_ARGUMENT')


# ---------------------------------------------------------------------------------------
# 9. check mode's predicted disk is the real one
@pytest.mark.parametrize('case', ['root-on-empty', 'root-on-legacy', 'data-boot-order', 'data-before-legacy-root',
                                  'demote', 'root-running'])
def test_check_mode_predicts_the_disk(run, conn, names, case):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'root.qcow2')
    create_volume(conn, pool, 'data.img', volume_format='raw')
    args = {'pool': pool}
    if case == 'root-on-empty':
        name = make_domain(conn, names, 'vm')
        args.update(volume='root.qcow2', role='root')
    elif case == 'root-on-legacy':
        name = make_domain(conn, names, 'vm', cdrom() + volume_disk(pool, 'data.img', 'vdb', 'raw'),
                           legacy_boot=('cdrom', 'hd'))
        args.update(volume='root.qcow2', role='root')
    elif case == 'data-boot-order':
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1))
        args.update(volume='data.img', boot_order=2)
    elif case == 'data-before-legacy-root':
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vdb'), legacy_boot=('hd',))
        args.update(volume='data.img', target='vda')
    elif case == 'demote':
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1) + cdrom(boot=2))
        args.update(volume='root.qcow2', role='data')
    else:  # a data disk hot-plugged next to the root of a running domain
        name = make_domain(conn, names, 'vm', volume_disk(pool, 'root.qcow2', 'vda', boot=1), start=True)
        args.update(volume='data.img')
    args['domain'] = name
    checked, applied = converge(run, conn, args)
    predicted, real = checked['disk'], applied['disk']
    for field in ('role', 'boot_order', 'bootable', 'target'):
        assert predicted[field] == real[field], (field, predicted, real)
    assert predicted == real
    # and what the run returned is what vm_disk_info reads from libvirt afterwards
    root, disks = disk_info(run, name)
    listed = dict(disks[real['target']])
    assert listed.pop('drift') == []
    assert listed == real
    assert (root == real['target']) == (real['role'] == 'root')
