# -*- coding: utf-8 -*-
"""storage_pool and storage_pool_info against the real lab.

Each behaviour: check mode (nothing changes) -> apply -> re-apply (no change) -> verify
through libvirt's own API, never only through the module's return value."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import libvirt
import pytest
from lxml import etree

from _lab import LAB, URI, pool_or_none, define_domain, run_playbook


def pool_xml(conn, name, inactive=True):
    pool = conn.storagePoolLookupByName(name)
    return etree.fromstring(pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE if inactive else 0))


def snapshot(conn, name, target=None):
    """Everything check mode must leave alone, read from libvirt and the filesystem."""
    pool = pool_or_none(conn, name)
    state = None
    if pool is not None:
        persistent = bool(pool.isPersistent())
        state = (pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE if persistent else 0), bool(pool.isActive()),
                 persistent, bool(pool.autostart()) if persistent else False)
    # the pool's own secret: other tests (running at the same time) store secrets of their own
    secrets = sorted((secret.usageID(), secret.XMLDesc(0)) for secret in conn.listAllSecrets(0)
                     if secret.usageID() == 'virtops-pool/' + name)
    return state, secrets, os.path.exists(target) if target else None


def converge(run, conn, args, verify, name=None):
    """check mode -> apply -> re-apply, verifying libvirt after each step."""
    name = name or args['name']
    before = snapshot(conn, name, args.get('target'))
    checked = run('storage_pool', args, check=True, diff=True)
    assert not checked.failed, checked.result
    assert checked.changed
    assert snapshot(conn, name, args.get('target')) == before, 'check mode changed something'
    applied = run('storage_pool', args, diff=True)
    assert not applied.failed, applied.result
    assert applied.changed
    assert applied['actions'] == checked['actions'], 'check mode predicted other steps than were taken'
    verify(conn.storagePoolLookupByName(name), applied)
    again = run('storage_pool', args)
    assert not again.failed, again.result
    assert not again.changed, again['actions']
    assert again['actions'] == []
    return checked, applied


# ---------------------------------------------------------------------------------------
def test_dir_pool_lifecycle(run, conn, names):
    name = names('images')
    target = names.path('images')
    args = {'name': name, 'type': 'dir', 'target': target}

    def verify(pool, applied):
        assert pool.isActive() and pool.isPersistent() and pool.autostart()
        assert pool_xml(conn, name).findtext('target/path') == target
        assert os.path.isdir(target), 'build created the directory'
        assert applied['pool']['uuid'] == pool.UUIDString()
        assert applied['pool']['capacity'] == pool.info()[1] > 0

    checked, applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['define pool %s' % name, 'build pool %s' % name, 'start pool %s' % name,
                                  'enable autostart of pool %s' % name]
    assert checked['diff']['before'] == {'name': name, 'state': 'absent'}
    assert applied['diff']['after']['target'] == target
    assert checked['pool']['uuid'] is None

    info = run('storage_pool_info', {'name': name})
    [described] = info['pools']
    assert described['uuid'] == conn.storagePoolLookupByName(name).UUIDString()
    assert described['state'] == 'active' and described['type'] == 'dir' and described['volume_count'] == 0
    assert info['actions'] == [] and not info.changed

    # Data kept on removal.
    with open(os.path.join(target, 'keep.img'), 'w') as handle:
        handle.write('data')
    removed_check = run('storage_pool', {'name': name, 'state': 'absent'}, check=True)
    assert removed_check.changed and pool_or_none(conn, name) is not None
    removed = run('storage_pool', {'name': name, 'state': 'absent'})
    assert removed['actions'] == ['stop pool %s' % name, 'undefine pool %s' % name]
    assert pool_or_none(conn, name) is None
    assert open(os.path.join(target, 'keep.img')).read() == 'data'
    assert not run('storage_pool', {'name': name, 'state': 'absent'}).changed


def test_names_with_special_characters_work_end_to_end(run, conn, names):
    name = names(u'odd & <name> \'q" 池 x')
    target = names.path('odd dir')

    def verify(pool, applied):
        assert pool.name() == name
        assert applied['pool']['name'] == name

    converge(run, conn, {'name': name, 'type': 'dir', 'target': target}, verify)
    assert [p['name'] for p in run('storage_pool_info', {'name': name})['pools']] == [name]


def test_longest_name_libvirt_can_store(run, conn, names):
    longest = names('')
    longest += 'n' * (247 - len(longest.encode('utf-8')))
    result = run('storage_pool', {'name': longest, 'type': 'dir', 'target': names.path('long')})
    assert not result.failed, result.result
    assert conn.storagePoolLookupByName(longest).isPersistent()
    too_long = longest + 'n'
    refused = run('storage_pool', {'name': too_long, 'type': 'dir', 'target': names.path('long2')})
    assert refused.failed and refused['error_code'] == 'INVALID_NAME'
    assert '247 bytes' in refused['msg']
    assert pool_or_none(conn, too_long) is None
    # the limit is libvirt's own: it cannot store that name either
    with pytest.raises(libvirt.libvirtError, match='File name too long'):
        conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>/tmp/x</path></target></pool>"
                                  % too_long, 0)


@pytest.mark.parametrize('active, autostart', [(False, False), (False, True), (True, False)])
def test_active_and_autostart_are_honoured_together(run, conn, names, active, autostart):
    name = names('flags')
    args = {'name': name, 'type': 'dir', 'target': names.path('flags'), 'active': active, 'autostart': autostart}

    def verify(pool, applied):
        assert bool(pool.isActive()) is active
        assert bool(pool.autostart()) is autostart
        assert applied['pool']['state'] == ('active' if active else 'inactive')

    converge(run, conn, args, verify)
    flipped = dict(args, active=not active, autostart=not autostart)

    def verify_flipped(pool, applied):
        assert bool(pool.isActive()) is (not active)
        assert bool(pool.autostart()) is (not autostart)

    converge(run, conn, flipped, verify_flipped)


def test_existing_pool_managed_without_its_definition(run, conn, names):
    name = names('bare')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': names.path('bare')})
    result = run('storage_pool', {'name': name, 'autostart': False})
    assert result['actions'] == ['disable autostart of pool %s' % name]
    assert not conn.storagePoolLookupByName(name).autostart()
    missing = run('storage_pool', {'name': names('missing')})
    assert missing.failed and missing['error_code'] == 'POOL_NOT_FOUND'
    assert pool_or_none(conn, names('missing')) is None


def test_changed_definition_is_redefined_and_restart_reported(run, conn, names):
    name = names('moving')
    first, second = names.path('first'), names.path('second')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': first})
    uuid = conn.storagePoolLookupByName(name).UUIDString()
    args = {'name': name, 'type': 'dir', 'target': second}
    checked = run('storage_pool', args, check=True, diff=True)
    assert checked['actions'] == ['redefine pool %s (target)' % name]
    assert checked['restart_required'] is True
    assert pool_xml(conn, name).findtext('target/path') == first
    applied = run('storage_pool', args, diff=True)
    assert applied['restart_required'] is True
    assert any('stop and start' in warning for warning in applied.get('warnings', []))
    assert applied['diff']['before']['target'] == first and applied['diff']['after']['target'] == second
    pool = conn.storagePoolLookupByName(name)
    assert pool.UUIDString() == uuid
    assert pool_xml(conn, name).findtext('target/path') == second
    assert pool_xml(conn, name, inactive=False).findtext('target/path') == first, 'the running pool is untouched'
    again = run('storage_pool', args)
    assert not again.changed and again['restart_required'] is True, 'still running the old definition'
    # After a restart the running definition matches: nothing left to report.
    run('storage_pool', dict(args, active=False))
    restarted = run('storage_pool', args)
    assert restarted['actions'] == ['build pool %s' % name, 'start pool %s' % name]
    assert restarted['restart_required'] is False
    assert os.path.isdir(second)
    assert pool_xml(conn, name, inactive=False).findtext('target/path') == second


def test_xml_definition(run, conn, names):
    name = names('fromxml')
    target = names.path('fromxml')
    xml = ("<pool type='dir'><name>%s</name><target><path>%s</path><permissions><mode>0750</mode></permissions>"
           "</target></pool>" % (name, target))

    def verify(pool, applied):
        assert pool_xml(conn, name).findtext('target/permissions/mode') == '0750'
        assert oct(os.stat(target).st_mode & 0o777) == '0o750'

    converge(run, conn, {'name': name, 'xml': xml}, verify)
    changed = run('storage_pool', {'name': name, 'xml': xml.replace('0750', '0700'), 'active': True})
    assert changed['actions'] == ['redefine pool %s (xml)' % name]
    assert pool_xml(conn, name).findtext('target/permissions/mode') == '0700'


def test_xml_definition_of_a_type_the_lab_cannot_start(run, conn, names):
    name = names('nfsxml')
    xml = ("<pool type='netfs'><name>%s</name><source><host name='nas.example'/><dir path='/export/vm'/>"
           "<format type='nfs'/></source><target><path>/mnt/%s</path></target></pool>" % (name, name))
    args = {'name': name, 'xml': xml, 'active': False, 'autostart': False}

    def verify(pool, applied):
        root = pool_xml(conn, name)
        assert root.get('type') == 'netfs'
        assert root.find('source/dir').get('path') == '/export/vm'
        assert applied['pool']['source']['host'] == 'nas.example'

    converge(run, conn, args, verify)
    moved = run('storage_pool', dict(args, xml=xml.replace('/export/vm', '/export/vm2')))
    assert moved['actions'] == ['redefine pool %s (source.dir, xml)' % name]
    assert pool_xml(conn, name).find('source/dir').get('path') == '/export/vm2'


def test_refresh_is_not_a_change(run, conn, names):
    name = names('refresh')
    target = names.path('refresh')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': target})
    with open(os.path.join(target, 'new.img'), 'wb') as handle:
        handle.truncate(1024 * 1024)
    assert conn.storagePoolLookupByName(name).numOfVolumes() == 0
    result = run('storage_pool', {'name': name, 'type': 'dir', 'target': target, 'refresh': True})
    assert not result.changed and result['actions'] == ['refresh pool %s' % name]
    assert conn.storagePoolLookupByName(name).numOfVolumes() == 1
    assert result['pool']['volume_count'] == 1


# ---------------------------------------------------------------------------------------
# fs pools on a loop device: build formats only what holds no data
def test_fs_pool_formats_an_empty_device(run, conn, names):
    device = names.loop_device()
    name = names('fs')
    target = names.path('fsmount')
    args = {'name': name, 'type': 'fs', 'target': target, 'source': {'devices': [device], 'format': 'ext4'}}

    def verify(pool, applied):
        assert pool.isActive()
        blkid = subprocess.run(['blkid', '-o', 'value', '-s', 'TYPE', device], capture_output=True, text=True, check=False)
        assert blkid.stdout.strip() == 'ext4'
        assert os.path.ismount(target)
        assert applied['pool']['source']['devices'] == [device]

    converge(run, conn, args, verify)


def ext4_device_holding_data(names):
    """A loop device with an ext4 filesystem holding precious.img."""
    device = names.loop_device()
    subprocess.run(['mkfs.ext4', '-q', device], check=True)
    staging = names.path('staging')
    os.makedirs(staging)
    subprocess.run(['mount', device, staging], check=True)
    with open(os.path.join(staging, 'precious.img'), 'w') as handle:
        handle.write('precious')
    subprocess.run(['umount', staging], check=True)
    return device


def test_fs_pool_uses_an_existing_filesystem_without_formatting(run, conn, names):
    device = ext4_device_holding_data(names)
    name = names('fsdata')
    target = names.path('fsdata')
    result = run('storage_pool', {'name': name, 'type': 'fs', 'target': target,
                                  'source': {'devices': [device], 'format': 'ext4'}})
    assert not result.failed, result.result
    assert open(os.path.join(target, 'precious.img')).read() == 'precious'
    assert 'precious.img' in [vol.name() for vol in conn.storagePoolLookupByName(name).listAllVolumes(0)]


def test_fs_pool_overwrite_never_formats_a_device_that_has_the_wanted_filesystem(run, conn, names):
    device = ext4_device_holding_data(names)
    name = names('fskeep')
    target = names.path('fskeep')
    result = run('storage_pool', {'name': name, 'type': 'fs', 'target': target, 'overwrite': True,
                                  'source': {'devices': [device], 'format': 'ext4'}})
    assert not result.failed, result.result
    assert open(os.path.join(target, 'precious.img')).read() == 'precious'


def test_fs_pool_refuses_to_format_foreign_data_unless_overwrite(run, conn, names):
    device = names.loop_device()
    subprocess.run(['mkswap', device], check=True, capture_output=True)
    name = names('fsforeign')
    args = {'name': name, 'type': 'fs', 'target': names.path('fsforeign'),
            'source': {'devices': [device], 'format': 'ext4'}}
    refused = run('storage_pool', args)
    assert refused.failed
    assert refused['error_code'] == 'FORMAT_MISMATCH'
    assert 'overwrite' in refused['msg']
    assert pool_or_none(conn, name) is None, 'the half-made pool was rolled back'
    assert 'rolled back: undefine pool %s' % name in refused['actions']
    blkid = subprocess.run(['blkid', '-o', 'value', '-s', 'TYPE', device], capture_output=True, text=True, check=False)
    assert blkid.stdout.strip() == 'swap', 'the data on the device is untouched'

    forced = run('storage_pool', dict(args, overwrite=True))
    assert not forced.failed, forced.result
    assert 'build pool %s (formatting allowed)' % name in forced['actions']
    blkid = subprocess.run(['blkid', '-o', 'value', '-s', 'TYPE', device], capture_output=True, text=True, check=False)
    assert blkid.stdout.strip() == 'ext4'


# ---------------------------------------------------------------------------------------
# iscsi-direct against the lab's tgtd
def _iscsi_args(name, iqn, auth=None, port=None):
    host, default_port = LAB['LAB_ISCSI_PORTAL'].split(':')
    source = {'host': host, 'iqn': iqn, 'initiator': LAB['LAB_INITIATOR_IQN']}
    if port:
        source['port'] = int(port)
    if auth:
        source['auth'] = auth
    return {'name': name, 'type': 'iscsi-direct', 'source': source}


def test_iscsi_direct_open_target(run, conn, names):
    name = names('san')
    args = _iscsi_args(name, LAB['LAB_OPEN_IQN'])

    def verify(pool, applied):
        assert pool.isActive()
        # LUN 0 is the target's controller (0 bytes); the two disks follow it
        sizes = sorted(vol.info()[1] for vol in pool.listAllVolumes(0))
        mib = 1024 * 1024
        assert sizes[0] == 0 and len(sizes) == 3
        assert sizes[1] // mib + 1 >= int(LAB['LAB_OPEN_LUN2_SIZE_MIB']) > sizes[1] // mib - 1
        assert applied['pool']['volume_count'] == 3
        assert applied['pool']['source']['iqn'] == LAB['LAB_OPEN_IQN']

    converge(run, conn, args, verify)


def test_iscsi_direct_chap_through_a_private_secret(run, conn, names):
    name = names('chap')
    password = LAB['LAB_CHAP_PASSWORD']
    args = _iscsi_args(name, LAB['LAB_CHAP_IQN'], {'username': LAB['LAB_CHAP_USER'], 'password': password})

    def verify(pool, applied):
        assert pool.isActive(), 'the login with the stored secret worked'
        assert len(pool.listAllVolumes(0)) == 2  # the controller and the one disk
        auth = pool_xml(conn, name).find('source/auth')
        assert auth.get('username') == LAB['LAB_CHAP_USER']
        secret = conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, auth.find('secret').get('usage'))
        with pytest.raises(libvirt.libvirtError):
            secret.value()  # private: libvirt never hands it back
        assert password not in secret.XMLDesc(0)
        assert password not in pool.XMLDesc(0)

    checked, applied = converge(run, conn, args, verify)
    verbose = run('storage_pool', args, diff=True, verbosity=4)
    for output in (checked, applied, verbose):
        assert password not in output.stdout + output.stderr, 'the CHAP password leaked'
    assert not verbose.changed

    wrong_args = _iscsi_args(names('chapwrong'), LAB['LAB_CHAP_IQN'],
                             {'username': LAB['LAB_CHAP_USER'], 'password': 'not-the-password'})
    wrong = run('storage_pool', wrong_args)
    assert wrong.failed
    assert wrong['error_code'] == 'ISCSI_AUTH_FAILED', wrong.result
    assert pool_or_none(conn, names('chapwrong')) is None
    assert 'not-the-password' not in wrong.stdout + wrong.stderr
    assert not [s for s in conn.listAllSecrets(0) if s.usageID() == 'virtops-pool/' + names('chapwrong')], \
        'a failed create leaves no secret behind'
    right = run('storage_pool', dict(wrong_args, source=dict(wrong_args['source'], auth=args['source']['auth'])))
    assert not right.failed, right.result
    assert conn.storagePoolLookupByName(names('chapwrong')).isActive()

    # the verifier in the description is keyed: a read-only client cannot get the key
    readonly = libvirt.openReadOnly(URI)
    try:
        key = readonly.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, 'virtops.storage/digest-key')
        with pytest.raises(libvirt.libvirtError):
            key.value(0)
    finally:
        readonly.close()

    removed = run('storage_pool', {'name': name, 'state': 'absent'})
    assert 'remove the secret of pool %s' % name in removed['actions']
    assert not [s for s in conn.listAllSecrets(0) if s.usageID() == 'virtops-pool/' + name]


def test_iscsi_direct_closed_port(run, conn, names):
    name = names('closed')
    port = LAB['LAB_ISCSI_CLOSED_PORTAL'].split(':')[1]
    result = run('storage_pool', _iscsi_args(name, LAB['LAB_OPEN_IQN'], port=port))
    assert result.failed
    assert result['error_code'] == 'ISCSI_UNREACHABLE', result.result
    assert pool_or_none(conn, name) is None


# ---------------------------------------------------------------------------------------
# Types the lab's kernel cannot run: libvirt must accept the XML we generate
@pytest.mark.parametrize('pool_type, extra', [
    ('netfs', {'target': '/mnt/vtest-netfs', 'source': {'host': 'nas.example', 'dir': '/export', 'format': 'nfs'}}),
    ('logical', {'source': {'name': 'vg_vtest', 'devices': ['/dev/vtest-pv'], 'format': 'lvm2'}}),
    ('disk', {'target': '/dev', 'source': {'devices': ['/dev/vtest-disk'], 'format': 'gpt'}}),
    ('iscsi', {'target': '/dev/disk/by-path', 'source': {'host': '192.0.2.1', 'port': 3260, 'iqn': 'iqn.2026-01.x:t'}}),
    ('scsi', {'source': {'adapter': 'host7'}}),
    ('mpath', {}),
    ('rbd', {'source': {'host': 'mon.example', 'name': 'rbdpool',
                        'auth': {'username': 'admin', 'password': 'QVFBbGliOnJiZA=='}}}),
    ('zfs', {'source': {'name': 'tank', 'devices': ['/dev/vtest-zdev']}}),
])
def test_other_types_are_defined_as_libvirt_expects(run, conn, names, pool_type, extra):
    name = names(pool_type)
    args = dict(extra, name=name, type=pool_type, active=False, autostart=False, build=False)

    def verify(pool, applied):
        root = pool_xml(conn, name)
        assert root.get('type') == pool_type
        assert not pool.isActive()
        source = extra.get('source', {})
        if 'host' in source:
            assert root.find('source/host').get('name') == source['host']
        if 'devices' in source:
            assert [d.get('path') for d in root.findall('source/device')] == source['devices']
        if 'name' in source:
            assert root.findtext('source/name') == source['name']
        if 'target' in extra:
            assert root.findtext('target/path') == extra['target']
        assert applied['pool']['type'] == pool_type

    converge(run, conn, args, verify)
    # the same definition given as xml (libvirt's own, without its UUID) is no change either
    stored = pool_xml(conn, name)
    stored.remove(stored.find('uuid'))
    as_xml = run('storage_pool', {'name': name, 'xml': etree.tostring(stored, encoding='unicode'),
                                  'active': False, 'autostart': False})
    assert not as_xml.failed and not as_xml.changed, as_xml.result
    assert not run('storage_pool', {'name': name, 'state': 'absent'}).failed
    assert pool_or_none(conn, name) is None


# ---------------------------------------------------------------------------------------
# what libvirt holds beyond the module's options
def test_redefinition_keeps_what_the_options_do_not_manage(run, conn, names):
    name = names('extra')
    first, second = names.path('extra1'), names.path('extra2')
    conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path><permissions><mode>0700</mode>"
                              "</permissions></target></pool>" % (name, first), 0)
    result = run('storage_pool', {'name': name, 'type': 'dir', 'target': second, 'active': False, 'autostart': False},
                 diff=True)
    assert result['actions'] == ['redefine pool %s (target)' % name]
    root = pool_xml(conn, name)
    assert root.findtext('target/path') == second
    assert root.findtext('target/permissions/mode') == '0700', 'unmanaged XML survives a redefinition'


def test_xml_in_another_spelling_is_still_the_same_definition(run, conn, names):
    name = names('spelling')
    target = names.path('spelling')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': target})
    uuid = conn.storagePoolLookupByName(name).UUIDString()
    xml = ("<pool type='dir'><name>%s</name><uuid>%s</uuid><target><path>%s/</path></target></pool>"
           % (name, uuid.upper(), target))
    same = run('storage_pool', {'name': name, 'xml': xml})
    assert not same.failed and not same.changed, same.result
    other = run('storage_pool', {'name': name, 'xml': xml.replace(uuid.upper(), '11111111-2222-4333-8444-555555555555')},
                check=True)
    assert other.failed and other['error_code'] == 'INVALID_ARGUMENT' and 'uuid' in other['msg'].lower()


def transient_dir_pool(conn, names, suffix):
    """A pool started without a definition (as `virsh pool-create-as` makes one)."""
    name, target = names(suffix), names.path(suffix)
    os.makedirs(target)
    conn.storagePoolCreateXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                              % (name, target), 0)
    return name, target


def test_transient_pools_are_made_persistent(run, conn, names):
    name, target = transient_dir_pool(conn, names, 'transient')
    checked = run('storage_pool', {'name': name, 'active': False, 'autostart': False}, check=True)
    assert checked['actions'] == ['persist pool %s' % name, 'stop pool %s' % name]
    assert not conn.storagePoolLookupByName(name).isPersistent()
    stopped = run('storage_pool', {'name': name, 'active': False, 'autostart': False})
    assert stopped['actions'] == checked['actions']
    pool = conn.storagePoolLookupByName(name)
    assert pool.isPersistent() and not pool.isActive(), 'stopping did not make the pool vanish'
    assert stopped['pool']['state'] == 'inactive'


def test_purge_of_a_transient_pool_deletes_its_storage(run, conn, names):
    name, target = transient_dir_pool(conn, names, 'transpurge')
    result = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert not result.failed, result.result
    assert pool_or_none(conn, name) is None and not os.path.exists(target)


# ---------------------------------------------------------------------------------------
# purge
def test_purge_refused_while_a_volume_is_used_then_deletes_everything(run, conn, names):
    name = names('purge')
    target = names.path('purge')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': target})
    pool = conn.storagePoolLookupByName(name)
    for vol in ('used.qcow2', 'free.raw'):
        pool.createXML("<volume><name>%s</name><capacity>1048576</capacity><allocation>0</allocation></volume>"
                       % vol, 0)
    domain = define_domain(conn, names('vm'), "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
                                              "<source pool='%s' volume='used.qcow2'/><target dev='vdb' bus='virtio'/>"
                                              "</disk>" % name)
    refused = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert refused.failed and refused['error_code'] == 'POOL_IN_USE'
    assert 'used.qcow2' in refused['msg'] and names('vm') in refused['msg']
    assert refused['used_by'][0]['domain'] == names('vm')
    assert sorted(v.name() for v in conn.storagePoolLookupByName(name).listAllVolumes(0)) == ['free.raw', 'used.qcow2']
    assert conn.storagePoolLookupByName(name).isActive()

    domain.undefine()
    checked = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True}, check=True)
    assert set(checked['actions']) >= {'delete volume used.qcow2 of pool %s' % name,
                                       'delete volume free.raw of pool %s' % name}
    assert len(conn.storagePoolLookupByName(name).listAllVolumes(0)) == 2
    purged = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert purged['actions'] == checked['actions']
    assert pool_or_none(conn, name) is None
    assert not os.path.exists(target)
    assert not run('storage_pool', {'name': name, 'state': 'absent', 'purge': True}).changed


def test_purge_deletes_files_libvirt_has_not_listed_yet(run, conn, names):
    name = names('stale')
    target = names.path('stale')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': target})
    with open(os.path.join(target, 'unlisted.raw'), 'wb') as handle:
        handle.truncate(4096)
    assert conn.storagePoolLookupByName(name).numOfVolumes() == 0
    checked = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True}, check=True)
    assert 'delete volume unlisted.raw of pool %s' % name in checked['actions']
    purged = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert not purged.failed, purged.result
    assert not os.path.exists(target)


def test_purge_is_refused_for_pools_whose_volumes_cannot_be_deleted(run, conn, names):
    name = names('lunpool')
    run('storage_pool', _iscsi_args(name, LAB['LAB_OPEN_IQN']))
    refused = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert refused.failed and refused['error_code'] == 'INVALID_ARGUMENT'
    assert conn.storagePoolLookupByName(name).isActive()


def test_purge_sees_a_running_domain_using_a_file_of_an_inactive_pool(run, conn, names):
    name = names('purgeoff')
    target = names.path('purgeoff')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': target})
    image = os.path.join(target, 'disk.raw')
    with open(image, 'wb') as handle:
        handle.truncate(1024 * 1024)
    define_domain(conn, names('vmrun'), "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                                        "<source file='%s'/><target dev='vdb' bus='virtio'/></disk>" % image,
                  start=True)
    run('storage_pool', {'name': name, 'active': False})
    refused = run('storage_pool', {'name': name, 'state': 'absent', 'purge': True})
    assert refused.failed and refused['error_code'] == 'POOL_IN_USE'
    assert refused['used_by'][0]['live'] is True
    assert os.path.exists(image) and pool_or_none(conn, name) is not None


# ---------------------------------------------------------------------------------------
# refusals change nothing
@pytest.mark.parametrize('suffix, args, code', [
    ('x/y', {'type': 'dir', 'target': 'TARGET'}, 'INVALID_NAME'),
    ('n' * 250, {'type': 'dir', 'target': 'TARGET'}, 'INVALID_NAME'),
    ('nul\x00', {'type': 'dir', 'target': 'TARGET'}, 'INVALID_NAME'),
    ('bad', {'type': 'fs', 'target': 'TARGET'}, 'INVALID_ARGUMENT'),
    ('bad', {'type': 'dir', 'target': 'TARGET', 'unknown': 1}, 'INVALID_ARGUMENT'),
    ('bad', {'type': 'dir', 'target': 'TARGET', 'uri': 'qemu+unix:///system?socket=/nope'}, 'LIBVIRT_UNREACHABLE'),
    (u'nonchar\ufffe', {'type': 'dir', 'target': 'TARGET'}, 'INVALID_NAME'),
    ('ctl', {'type': 'netfs', 'target': 'TARGET', 'source': {'host': 'nas\x01', 'dir': '/e'}}, 'INVALID_ARGUMENT'),
    ('port', {'xml': "<pool type='iscsi'><name>NAME</name><source><host name='h' port='abc'/>"
                     "<device path='iqn.x:t'/></source><target><path>/dev/disk/by-path</path></target></pool>"},
     'INVALID_ARGUMENT'),
    ('badxml', {'xml': "<pool type='fs'><name>NAME</name></pool>"}, 'INVALID_ARGUMENT'),
])
def test_refusals_carry_their_error_code_and_change_nothing(run, conn, names, suffix, args, code):
    target = names.path('never-made')
    args = dict(args, name=names(suffix), **({'target': target} if 'target' in args else {}))
    if 'xml' in args:
        args['xml'] = args['xml'].replace('NAME', args['name'])
    result = run('storage_pool', args)
    assert result.failed and result['error_code'] == code, result.result
    assert result['msg'] and result['actions'] == []
    assert [pool.name() for pool in conn.listAllStoragePools(0) if pool.name().startswith(names.prefix)] == []
    assert not os.path.exists(target)


def test_reserved_names_are_refused(run, conn):
    for name in ('.', '..'):
        result = run('storage_pool', {'name': name, 'type': 'dir', 'target': '/tmp/x'})
        assert result.failed and result['error_code'] == 'INVALID_NAME'
        assert pool_or_none(conn, name) is None


def test_pool_type_is_never_converted(run, conn, names):
    name = names('typed')
    run('storage_pool', {'name': name, 'type': 'dir', 'target': names.path('typed')})
    refused = run('storage_pool', {'name': name, 'type': 'netfs', 'target': names.path('typed'),
                                   'source': {'host': 'nas', 'dir': '/e'}})
    assert refused.failed and refused['error_code'] == 'INVALID_ARGUMENT'
    assert pool_xml(conn, name).get('type') == 'dir'


def test_info_filters(run, conn, names):
    active, inactive = names('on'), names('off')
    run('storage_pool', {'name': active, 'type': 'dir', 'target': names.path('on')})
    run('storage_pool', {'name': inactive, 'type': 'dir', 'target': names.path('off'), 'active': False})
    listed = run('storage_pool_info', {'type': 'dir', 'state': 'inactive'})['pools']
    assert inactive in [p['name'] for p in listed] and active not in [p['name'] for p in listed]
    everything = {p['name']: p for p in run('storage_pool_info', {})['pools']}
    assert {active, inactive} <= set(everything)
    assert {p.name() for p in conn.listAllStoragePools(0)} == set(everything)
    assert everything[inactive]['volume_count'] is None
    assert run('storage_pool_info', {'name': names('none')})['pools'] == []
    invalid = run('storage_pool_info', {'name': 'a/b'})
    assert invalid.failed and invalid['error_code'] == 'INVALID_NAME'


def test_module_defaults_group_sets_the_uri(names, tmp_path, conn):
    name = names('grouped')
    playbook = tmp_path / 'play.yml'
    playbook.write_text('''
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/virtops.storage.libvirt:
      uri: qemu+unix:///system?socket=/nonexistent-for-this-test
  tasks:
    - virtops.storage.storage_pool:
        name: %s
        type: dir
        target: %s
      register: grouped
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - grouped.error_code == 'LIBVIRT_UNREACHABLE'
          - "'nonexistent-for-this-test' in grouped.msg"
''' % (name, names.path('grouped')))
    proc = run_playbook(str(playbook))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'failed=0' in proc.stdout
    assert pool_or_none(conn, name) is None
