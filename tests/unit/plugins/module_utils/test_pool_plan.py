# -*- coding: utf-8 -*-
"""The pool planner is a pure function of (desired, observed): tested as a table."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _pool, _secrets, _xml
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import LibvirtClient
from ansible_collections.virtops.storage.plugins.module_utils._usage import DiskUse, UsageIndex


def params(**overrides):
    base = dict(name='images', state='present', type='dir', target='/srv/images', source=None, xml=None,
                active=True, autostart=True, build=True, overwrite=False, purge=False, refresh=False)
    base.update(overrides)
    return base


def observed_from(desired_params, active=True, autostart=True, persistent=True, volumes=(), users=(),
                  live_params=None, stored_xml=None):
    """What libvirt would report for a pool defined from `desired_params` (or `stored_xml`)."""
    if stored_xml is None:
        definition = _pool.desired_from_params(desired_params).definition
        definition = dataclasses.replace(_pool.merge_definition(definition, None), uuid=UUID)
        stored_xml = _pool.build_xml(definition)
    tree = _xml.parse(stored_xml)
    definition = _pool.parse_definition(tree)
    live_tree = tree
    if live_params is not None:
        live = dataclasses.replace(_pool.desired_from_params(live_params).definition, uuid=UUID)
        live_tree = _xml.parse(_pool.build_xml(live))
    return _pool.ObservedPool(definition=definition, xml_tree=tree, live_tree=live_tree if active else None,
                              live_definition=_pool.parse_definition(live_tree) if active else None,
                              active=active, persistent=persistent, autostart=autostart,
                              volumes=tuple(volumes) if active else None, users=tuple(users))


UUID = '00000000-0000-4000-8000-000000000001'
SCRATCH = LibvirtClient('test:///default')


def plan_for(desired_params, observed, secrets=None):
    desired = _pool.desired_from_params(desired_params)
    if desired.xml_tree is not None:  # as run_pool_module does: libvirt's own rendering
        desired.canonical_tree = _xml.parse(SCRATCH.canonical_pool_xml(_xml.to_string(desired.xml_tree)))
    return _pool.plan_pool(desired, observed, secrets)


@pytest.mark.parametrize('desired, observed_kwargs, expected', [
    # new pools
    (params(), None, ['define pool images', 'build pool images', 'start pool images',
                      'enable autostart of pool images']),
    (params(active=False, autostart=False), None, ['define pool images', 'build pool images']),
    (params(build=False), None, ['define pool images', 'start pool images', 'enable autostart of pool images']),
    (params(type='iscsi-direct', target=None, source=dict(host='127.0.0.1', iqn='iqn.x:t', initiator='iqn.x:i')),
     None, ['define pool images', 'start pool images', 'enable autostart of pool images']),
    (params(type='fs', source=dict(devices=['/dev/loop3'], format='ext4')), None,
     ['define pool images', 'build pool images', 'start pool images', 'enable autostart of pool images']),
    (params(type='fs', source=dict(devices=['/dev/loop3'], format='ext4'), overwrite=True), None,
     ['define pool images', 'build pool images (formatting allowed)', 'start pool images',
      'enable autostart of pool images']),
    # existing pools
    (params(), {}, []),
    (params(active=False), {}, ['stop pool images']),
    (params(autostart=False), {}, ['disable autostart of pool images']),
    (params(), {'active': False, 'autostart': False},
     ['build pool images', 'start pool images', 'enable autostart of pool images']),
    (params(type=None, target=None, active=False), {}, ['stop pool images']),
    (params(type='fs', target='/srv/images', source=dict(devices=['/dev/x'])), {'active': False}, None),
    (params(target='/srv/other'), {'active': False},
     ['redefine pool images (target)', 'build pool images', 'start pool images']),
    (params(target='/srv/other', build=False), {'active': False}, ['redefine pool images (target)', 'start pool images']),
    (params(target='/srv/other', active=False), {'active': False}, ['redefine pool images (target)']),
    (params(), {'persistent': False, 'autostart': False},
     ['persist pool images', 'enable autostart of pool images']),
    (params(refresh=True), {}, ['refresh pool images']),
    (params(refresh=True, active=False), {}, ['stop pool images']),
    # removal
    (params(state='absent'), None, []),
    (params(state='absent'), {}, ['stop pool images', 'undefine pool images']),
    (params(state='absent'), {'active': False}, ['undefine pool images']),
    (params(state='absent', purge=True), {'volumes': [('a.img', '/srv/images/a.img'), ('b', '/srv/images/b')]},
     ['delete volume a.img of pool images', 'delete volume b of pool images', 'stop pool images',
      'delete the storage of pool images', 'undefine pool images']),
    (params(state='absent', purge=True), {'active': False},
     ['start pool images to list its volumes', 'delete every volume of pool images', 'stop pool images',
      'delete the storage of pool images', 'undefine pool images']),
])
def test_plan_steps(desired, observed_kwargs, expected):
    observed = None
    if observed_kwargs is not None:
        observed = observed_from(params(), **observed_kwargs)
    if expected is None:  # a type change is refused before anything is planned
        with pytest.raises(StorageError):
            plan_for(desired, observed)
        return
    plan = plan_for(desired, observed)
    assert plan.descriptions == expected
    assert plan.changed == any(a.changes for a in plan.actions)


def test_refresh_alone_is_not_a_change():
    plan = plan_for(params(refresh=True), observed_from(params()))
    assert plan.descriptions == ['refresh pool images']
    assert plan.changed is False


def test_redefining_an_active_pool_requires_a_restart_and_warns():
    observed = observed_from(params())
    plan = plan_for(params(target='/srv/moved'), observed)
    assert plan.descriptions == ['redefine pool images (target)']
    assert plan.extra['restart_required'] is True
    assert 'target' in plan.warnings[0]
    define = plan.actions[0]
    assert define.method == 'define'
    root = _xml.parse(define.args[0])
    assert root.findtext('uuid') == observed.definition.uuid, 'a redefinition keeps the UUID'
    assert root.findtext('target/path') == '/srv/moved'


def test_redefining_back_to_the_running_definition_needs_no_restart():
    observed = observed_from(params(target='/srv/new'), live_params=params(target='/srv/images'))
    plan = plan_for(params(target='/srv/images'), observed)
    assert plan.descriptions == ['redefine pool images (target)']
    assert plan.extra['restart_required'] is False
    assert plan.warnings == []


def test_unmanaged_fields_are_kept_on_redefinition():
    existing = params(type='netfs', target='/mnt/nfs', source=dict(host='nas', dir='/export', format='nfs'))
    plan = plan_for(dict(existing, source=dict(host='nas2', dir='/export'), active=False),
                    observed_from(existing, active=False))
    root = _xml.parse(plan.actions[0].args[0])
    assert root.find('source/host').get('name') == 'nas2'
    assert root.find('source/format').get('type') == 'nfs'
    assert plan.descriptions == ['redefine pool images (source.host)']


def test_type_is_never_converted():
    with pytest.raises(StorageError) as caught:
        plan_for(params(type='fs', source=dict(devices=['/dev/loop1'])), observed_from(params()))
    assert caught.value.code == 'INVALID_ARGUMENT'
    assert 'type dir' in caught.value.msg


def test_missing_pool_without_a_definition_is_not_found():
    with pytest.raises(StorageError) as caught:
        plan_for(params(type=None, target=None), None)
    assert caught.value.code == 'POOL_NOT_FOUND'


def test_purge_refused_while_a_volume_is_used():
    observed = observed_from(params(), volumes=[('a.img', '/srv/images/a.img')],
                             users=[('a.img', DiskUse('vm1', 'vdb', live=True))])
    with pytest.raises(StorageError) as caught:
        plan_for(params(state='absent', purge=True), observed)
    assert caught.value.code == 'POOL_IN_USE'
    assert 'a.img' in caught.value.msg and 'vm1' in caught.value.msg
    assert caught.value.details['used_by'][0]['domain'] == 'vm1'


def test_purge_refused_for_types_whose_volumes_libvirt_cannot_delete():
    existing = params(type='iscsi', target=None, source=dict(host='h', iqn='iqn.x:t'))
    with pytest.raises(StorageError) as caught:
        plan_for(dict(existing, state='absent', purge=True), observed_from(existing))
    assert caught.value.code == 'INVALID_ARGUMENT'


@pytest.mark.parametrize('overrides, fragment', [
    (dict(type='fs', source=dict(format='ext4')), 'source.devices'),
    (dict(type='dir', target=None), 'target'),
    (dict(type='netfs', source=dict(host='nas')), 'source.dir'),
    (dict(type='iscsi-direct', target=None, source=dict(host='h', iqn='iqn.x:t')), 'source.initiator'),
    (dict(type='dir', target='relative/path'), 'absolute'),
    (dict(type='iscsi', source=dict(host='h', iqn='i', port=70000)), 'source.port'),
    (dict(type=None, target='/srv/x'), 'type is required'),
    (dict(state='present', purge=True), 'purge'),
    (dict(type=None, target=None, xml='<volume/>'), '<pool>'),
    (dict(type=None, target=None, xml='<pool type="dir"><name>other</name></pool>'), 'differs'),
    (dict(type=None, target=None, xml='<pool type="dir"><name>images'), 'well-formed'),
    (dict(type='iscsi', target=None, source=dict(host='h', iqn='iqn.x:t', auth=dict(username='u', password=None))),
     'password'),
])
def test_invalid_arguments(overrides, fragment):
    with pytest.raises(StorageError) as caught:
        plan_for(params(**overrides), None)
    assert caught.value.code == 'INVALID_ARGUMENT'
    assert fragment in caught.value.msg


def test_invalid_name_comes_first():
    with pytest.raises(StorageError) as caught:
        _pool.desired_from_params(params(name='a/b'))
    assert caught.value.code == 'INVALID_NAME'


CHAP = params(type='iscsi-direct', target=None, source=dict(
    host='127.0.0.1', iqn='iqn.x:t', initiator='iqn.x:i', auth=dict(username='u', password='s3cret')))


def test_chap_pool_stores_the_password_in_a_secret_never_in_the_xml_or_descriptions():
    plan = plan_for(CHAP, None)
    assert plan.descriptions[:2] == ['store the secret of pool images', 'define pool images']
    store, define = plan.actions[0], plan.actions[1]
    assert store.args[1] == 'virtops-pool/images'
    assert 's3cret' not in define.args[0]
    auth = _xml.parse(define.args[0]).find('source/auth')
    assert auth.get('type') == 'chap' and auth.get('username') == 'u'
    assert auth.find('secret').get('usage') == 'virtops-pool/images'
    assert 's3cret' not in repr(plan.before) + repr(plan.after) + ' '.join(plan.descriptions)


def secret(matches=None):
    return _secrets.ObservedSecret('uuid-1', 'iscsi', 'virtops-pool/images', 'x [hmac-sha256:...]', matches)


def test_unchanged_password_is_no_change_and_a_new_one_is():
    assert plan_for(CHAP, observed_from(CHAP), {'iscsi': secret(matches=True)}).descriptions == []
    changed = dict(CHAP, source=dict(CHAP['source'], auth=dict(username='u', password='other')))
    plan = plan_for(changed, observed_from(CHAP), {'iscsi': secret(matches=False)})
    assert plan.descriptions == ['update the secret of pool images']
    assert plan.actions[0].args[-1] == 'uuid-1', 'the secret keeps its UUID'
    assert plan.actions[0].undo is None, 'an updated secret is not removed on failure'
    assert plan.extra['restart_required'] is True
    assert plan.before['source']['auth'] == {'username': 'u', 'password': 'stored'}
    assert plan.after['source']['auth'] == {'username': 'u', 'password': 'updated'}
    assert 'other' not in repr(plan.before) + repr(plan.after)


def test_a_new_secret_is_removed_again_when_the_create_fails():
    plan = plan_for(CHAP, None)
    assert plan.actions[0].undo.method == 'remove_secret'


def test_a_secret_left_by_a_failed_create_is_reused():
    plan = plan_for(CHAP, None, {'iscsi': secret(matches=False)})
    assert plan.descriptions[:2] == ['update the secret of pool images', 'define pool images']
    assert plan.actions[0].args[-1] == 'uuid-1'
    assert plan_for(CHAP, None, {'iscsi': secret(matches=True)}).descriptions[0] == 'define pool images'


def test_removing_a_missing_pool_removes_its_left_over_secret():
    plan = plan_for(params(state='absent', type=None, target=None), None, {'iscsi': secret(), 'ceph': None})
    assert plan.descriptions == ['remove the secret of pool images']
    assert plan_for(params(state='absent', type=None, target=None), None, {'iscsi': None}).descriptions == []


def test_dropping_auth_redefines_and_removes_the_secret():
    no_auth = dict(CHAP, source=dict(host='127.0.0.1', iqn='iqn.x:t', initiator='iqn.x:i'), active=False)
    plan = plan_for(no_auth, observed_from(CHAP, active=False), {'iscsi': secret()})
    assert plan.descriptions == ['redefine pool images (source.auth.username)', 'remove the secret of pool images']
    assert _xml.parse(plan.actions[0].args[0]).find('source/auth') is None


def test_new_pool_steps_roll_back_on_failure():
    plan = plan_for(params(), None)
    assert plan.actions[0].undo.method == 'undefine'
    assert plan.actions[2].undo.method == 'stop'


def test_a_new_fs_pool_builds_guarded_and_passes_the_overwrite_permission():
    fs = params(type='fs', source=dict(devices=['/dev/loop3']))
    assert plan_for(fs, None).actions[1].args == ('images', 'guarded', False)
    assert plan_for(dict(fs, overwrite=True), None).actions[1].args == ('images', 'guarded', True)
    started = plan_for(fs, observed_from(fs, active=False))
    assert started.descriptions[0] == 'start pool images', 'an existing device pool is never built again'


XML_DIR = ("<pool type='dir'><name>images</name><target><path>/srv/images</path>"
           "<permissions><mode>0711</mode></permissions></target></pool>")


def test_xml_mode_detects_changes_outside_the_modelled_fields():
    observed = observed_from(params(), active=False)
    plan = plan_for(params(type=None, target=None, xml=XML_DIR, active=False), observed)
    assert plan.descriptions == ['redefine pool images (xml)']
    root = _xml.parse(plan.actions[0].args[0])
    assert root.findtext('target/permissions/mode') == '0711'
    assert root.findtext('uuid') == UUID


XML_RBD = ("<pool type='rbd'><name>images</name><source><host name='mon1'/><host name='mon2'/>"
           "<name>rbdpool</name></source></pool>")


def test_xml_mode_manages_the_whole_definition_removals_included():
    stored = SCRATCH.canonical_pool_xml(XML_RBD.replace('<name>images', '<uuid>%s</uuid><name>images' % UUID))
    observed = observed_from(None, active=False, stored_xml=stored)
    assert plan_for(params(type=None, target=None, xml=XML_RBD, active=False), observed).descriptions == []
    one_monitor = XML_RBD.replace("<host name='mon2'/>", '')
    plan = plan_for(params(type=None, target=None, xml=one_monitor, active=False), observed)
    assert plan.descriptions == ['redefine pool images (xml)']
    assert len(_xml.parse(plan.actions[0].args[0]).findall('source/host')) == 1


def test_xml_mode_ignores_the_owner_libvirt_fills_in_but_not_a_changed_mode():
    filled = SCRATCH.canonical_pool_xml(XML_DIR.replace('<name>', '<uuid>%s</uuid><name>' % UUID).replace(
        '</mode>', '</mode><owner>0</owner><group>0</group>'))
    observed = observed_from(None, active=False, stored_xml=filled)
    assert plan_for(params(type=None, target=None, xml=XML_DIR, active=False), observed).descriptions == []
    assert plan_for(params(type=None, target=None, xml=XML_DIR.replace('0711', '0700'), active=False),
                    observed).descriptions == ['redefine pool images (xml)']


def test_xml_mode_compares_as_libvirt_writes_it():
    stored = SCRATCH.canonical_pool_xml(XML_DIR.replace('<name>', '<uuid>%s</uuid><name>' % UUID))
    observed = observed_from(None, active=False, stored_xml=stored)
    shouting = XML_DIR.replace('<name>', '<uuid>%s</uuid><name>' % UUID.upper()).replace('/srv/images', '/srv/images/')
    assert plan_for(params(type=None, target=None, xml=shouting, active=False), observed).descriptions == []


def test_xml_with_another_uuid_is_refused_before_anything_runs():
    observed = observed_from(params(), active=False)
    other = XML_DIR.replace('<name>', '<uuid>11111111-2222-4333-8444-555555555555</uuid><name>')
    with pytest.raises(StorageError) as caught:
        plan_for(params(type=None, target=None, xml=other), observed)
    assert caught.value.code == 'INVALID_ARGUMENT' and 'uuid' in caught.value.msg.lower()


def test_redefinition_keeps_what_the_user_did_not_manage():
    stored = ("<pool type='rbd'><name>images</name><uuid>%s</uuid><source><host name='mon1'/>"
              "<host name='mon2' port='6789'/><name>rbdpool</name></source></pool>" % UUID)
    plan = plan_for(params(type='rbd', target=None, source=dict(name='other'), active=False),
                    observed_from(None, active=False, stored_xml=stored))
    root = _xml.parse(plan.actions[0].args[0])
    assert [host.get('name') for host in root.findall('source/host')] == ['mon1', 'mon2']
    assert root.findtext('source/name') == 'other'


def test_transient_pools_are_persisted_first():
    observed = observed_from(params(), persistent=False, autostart=False)
    plan = plan_for(params(type=None, target=None, active=False, autostart=False), observed)
    assert plan.descriptions == ['persist pool images', 'stop pool images']
    assert _xml.parse(plan.actions[0].args[0]).findtext('target/path') == '/srv/images'
    purge = plan_for(params(state='absent', purge=True), observed_from(params(), persistent=False))
    assert purge.descriptions[0] == 'persist pool images to delete its storage'
    assert purge.descriptions[-1] == 'undefine pool images'


def test_an_existing_pool_needs_only_the_fields_given():
    existing = params(type='scsi', target='/dev/disk/by-path', source=dict(adapter='host0'))
    plan = plan_for(params(type='scsi', target='/dev/disk/by-id', active=False), observed_from(existing, active=False))
    assert plan.descriptions == ['redefine pool images (target)']


def test_diff_shows_managed_fields():
    plan = plan_for(params(autostart=False), observed_from(params()))
    assert plan.before['autostart'] is True and plan.after['autostart'] is False
    assert plan.before['target'] == '/srv/images'
    new = plan_for(params(), None)
    assert new.before == {'name': 'images', 'state': 'absent'}
    assert new.after['state'] == 'present'


def usage_of(*disks):
    """A UsageIndex with one domain per (kind, source) pair."""
    index = UsageIndex()
    for number, (kind, source) in enumerate(disks):
        if kind == 'file':
            xml = "<disk type='file'><source file='%s'/><target dev='vd%s'/></disk>" % (source, 'bcd'[number])
        elif kind == 'block':
            xml = "<disk type='block'><source dev='%s'/><target dev='vd%s'/></disk>" % (source, 'bcd'[number])
        else:
            xml = ("<disk type='network'><source protocol='rbd' name='%s'><host name='mon1'/></source>"
                   "<target dev='vd%s'/></disk>" % (source, 'bcd'[number]))
        index.add_domain_xml('vm%d' % number, '<domain><devices>%s</devices></domain>' % xml, live=False)
    return index


@pytest.mark.parametrize('definition, disk, expected', [
    (_pool.PoolDefinition(name='p', type='logical', target_path='/dev/vg0'), ('block', '/dev/vg0/root'), 'root'),
    (_pool.PoolDefinition(name='p', type='zfs', target_path='/dev/zvol/tank'), ('block', '/dev/zvol/tank/v1'), 'v1'),
    (_pool.PoolDefinition(name='p', type='disk', target_path='/dev', source=_pool.PoolSource(devices=('/dev/sdb',))),
     ('block', '/dev/sdb2'), 'sdb2'),
    (_pool.PoolDefinition(name='p', type='rbd', source=_pool.PoolSource(name='rbdpool')),
     ('rbd', 'rbdpool/image1'), 'image1'),
    (_pool.PoolDefinition(name='p', type='dir', target_path='/srv/p'), ('file', '/srv/p/a.img'), 'a.img'),
])
def test_purge_guard_finds_users_of_inactive_pools_of_every_type(definition, disk, expected):
    [(volume, use)] = _pool.pool_users(definition, None, usage_of(disk))
    assert (volume, use.domain) == (expected, 'vm0')


@pytest.mark.parametrize('definition, disk', [
    (_pool.PoolDefinition(name='p', type='disk', source=_pool.PoolSource(devices=('/dev/sdb',))), ('block', '/dev/sdc1')),
    (_pool.PoolDefinition(name='p', type='rbd', source=_pool.PoolSource(name='rbdpool')), ('rbd', 'otherpool/x')),
    (_pool.PoolDefinition(name='p', type='dir', target_path='/srv/p'), ('file', '/srv/pp/a.img')),
])
def test_purge_guard_ignores_other_storage(definition, disk):
    assert _pool.pool_users(definition, None, usage_of(disk)) == ()


def test_cephx_keys_are_stored_decoded_and_chap_passwords_as_text():
    assert _secrets.secret_bytes('ceph', 'QVFBbGliOnJiZA==') == b'AQAlib:rbd'
    assert _secrets.secret_bytes('iscsi', u'pässword') == u'pässword'.encode('utf-8')
    with pytest.raises(StorageError) as caught:
        _secrets.secret_bytes('ceph', 'not base64!')
    assert caught.value.code == 'INVALID_ARGUMENT'


def test_a_digest_matches_only_its_password_under_its_key():
    digest = _secrets.password_digest(b'k' * 32, 's3cret')
    assert _secrets.digest_matches('x [%s]' % digest, b'k' * 32, 's3cret')
    assert not _secrets.digest_matches('x [%s]' % digest, b'k' * 32, 'other')
    assert not _secrets.digest_matches('x [%s]' % digest, b'j' * 32, 's3cret')
    assert not _secrets.digest_matches('x [%s]' % digest, None, 's3cret')
