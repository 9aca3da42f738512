# -*- coding: utf-8 -*-
"""The volume planner is a pure function of (desired, pool, observed, users, content): tested as a table."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _volume, _xml
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._images import ImageInfo
from ansible_collections.virtops.storage.plugins.module_utils._usage import DiskUse

DIR_POOL = _volume.PoolFacts(name='images', type='dir', active=True, target_path='/srv/images')
LVM_POOL = _volume.PoolFacts(name='vg', type='logical', active=True, target_path='/dev/vg')
ISCSI_POOL = _volume.PoolFacts(name='san', type='iscsi', active=True, target_path='/dev/disk/by-path')
MIB = 1024 ** 2


def params(**overrides):
    base = dict(pool='images', name='data.img', state='present', capacity=None, allocation=None, format=None,
                backing_store=None, clone_from=None, import_from=None, allow_shrink=False, mode=None, owner=None,
                group=None, wipe=None)
    base.update(overrides)
    return base


def desired(**overrides):
    return _volume.desired_from_params(params(**overrides))


def observed(**overrides):
    base = dict(name='data.img', pool='images', key='/srv/images/data.img', path='/srv/images/data.img',
                type='file', format='raw', capacity=10 * MIB, allocation=0, mode=0o600, owner=0, group=0)
    base.update(overrides)
    return _volume.ObservedVolume(**base)


def plan(want, pool=DIR_POOL, have=None, users=(), content=None, overlays=()):
    return _volume.plan_volume(want, pool, have, users, content, overlays)


def refused(code, *args, **kwargs):
    with pytest.raises(StorageError) as caught:
        plan(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


def xml_of(action):
    return _xml.parse(action.args[1])


# ---------------------------------------------------------------------------------------
def test_create_is_thin_raw_by_default_on_file_pools():
    steps = plan(desired(capacity='1.5M'))
    [create] = steps.actions
    assert create.description == 'create volume data.img in pool images (1572864 bytes, raw)'
    tree = xml_of(create)
    assert tree.findtext('capacity') == '1572864' and tree.findtext('allocation') == '0'
    assert tree.find('target/format').get('type') == 'raw'
    assert create.undo.method == 'delete', 'a failed later step removes the new volume'
    assert steps.before == {'state': 'absent'} and steps.after['capacity'] == 1572864


def test_block_pools_get_no_format_element():
    [create] = plan(desired(pool='vg', capacity='1G'), pool=LVM_POOL).actions
    assert xml_of(create).find('target/format') is None


@pytest.mark.parametrize('size, expected', [('1GiB', 1024 ** 3), ('1GB', 1000 ** 3), ('1.5K', 1536),
                                            ('1.3K', 1332), (4096, 4096), ('2 MB', 2000000)])
def test_sizes_follow_libvirts_units(size, expected):
    assert plan(desired(capacity=size)).after['capacity'] == expected


@pytest.mark.parametrize('overrides, code', [
    ({}, 'INVALID_ARGUMENT'),  # no capacity to create with
    ({'capacity': '1M', 'allocation': '2M'}, 'INVALID_ARGUMENT'),
    ({'capacity': '-1M'}, 'INVALID_SIZE'),
    ({'capacity': '1Q'}, 'INVALID_SIZE'),
    ({'capacity': '1M', 'name': 'a/b'}, 'INVALID_NAME'),
    ({'capacity': '1M', 'name': '..'}, 'INVALID_NAME'),
    ({'capacity': '1M', 'mode': '0999'}, 'INVALID_ARGUMENT'),
    ({'capacity': '1M', 'state': 'present', 'wipe': 'zero'}, 'INVALID_ARGUMENT'),
    ({'backing_store': {'pool': 'images', 'name': 'base'}, 'format': 'raw'}, 'INVALID_ARGUMENT'),
    ({'clone_from': {'pool': 'images'}}, 'INVALID_ARGUMENT'),
    ({'clone_from': {'path': 'relative.img'}}, 'INVALID_ARGUMENT'),
    ({'import_from': 'relative.img'}, 'INVALID_ARGUMENT'),
])
def test_bad_input_is_refused_before_planning(overrides, code):
    with pytest.raises(StorageError) as caught:
        plan(desired(**overrides))
    assert caught.value.code == code


def test_pool_must_exist_and_be_active():
    refused('POOL_NOT_FOUND', desired(capacity='1M'), pool=None)
    refused('POOL_INACTIVE', desired(capacity='1M'), pool=dataclasses.replace(DIR_POOL, active=False))
    refused('POOL_INACTIVE', desired(state='absent'), pool=dataclasses.replace(DIR_POOL, active=False))


def test_san_pools_neither_create_nor_delete():
    refused('INVALID_ARGUMENT', desired(pool='san', capacity='1M'), pool=ISCSI_POOL)
    error = refused('INVALID_ARGUMENT', desired(pool='san', state='absent'), pool=ISCSI_POOL,
                    have=observed(pool='san', type='block', format=None))
    assert 'cannot delete' in error.msg


def test_existing_volume_of_the_asked_size_needs_nothing():
    steps = plan(desired(capacity='10M', format='raw'), have=observed())
    assert steps.actions == [] and not steps.changed
    assert steps.before == steps.after


@pytest.mark.parametrize('pool, volume_format, capacity, requested', [
    (DIR_POOL, 'qcow2', 1024, 1000),  # qemu-img rounds to 512-byte sectors
    (LVM_POOL, None, 8 * MIB, 5 * MIB),  # LVM rounds to its 4 MiB extents
])
def test_what_the_backend_rounded_up_is_not_a_shrink(pool, volume_format, capacity, requested):
    have = observed(pool=pool.name, format=volume_format, capacity=capacity, type='file' if volume_format else 'block')
    assert plan(desired(pool=pool.name, capacity=requested), pool=pool, have=have).actions == []


def test_grow_resizes_the_volume_when_no_running_domain_uses_it():
    shut_off = DiskUse('vm1', 'vdb', live=False, persistent=True)
    [grow] = plan(desired(capacity='20M'), have=observed(), users=[shut_off]).actions
    assert grow.method == 'resize' and grow.args == ('images', 'data.img', 20 * MIB, False)


def test_grow_goes_through_every_running_domain_using_the_volume():
    users = [DiskUse('vm1', 'vdb', live=True, persistent=True, shareable=True),
             DiskUse('vm2', 'sdc', live=True, shareable=True), DiskUse('vm3', 'vdd', persistent=True)]
    steps = plan(desired(capacity='20M'), have=observed(), users=users)
    assert [(a.method, a.args) for a in steps.actions] == [
        ('resize_live', ('vm1', 'vdb', 20 * MIB)), ('resize_live', ('vm2', 'sdc', 20 * MIB))]
    assert 'live through domain vm1 (vdb)' in steps.actions[0].description


def test_shrink_needs_allow_shrink_and_no_running_user():
    error = refused('SHRINK_REFUSED', desired(capacity='5M'), have=observed())
    assert 'allow_shrink' in error.msg
    [shrink] = plan(desired(capacity='5M', allow_shrink=True), have=observed(),
                    users=[DiskUse('vm1', 'vdb', persistent=True)]).actions
    assert shrink.args == ('images', 'data.img', 5 * MIB, True)
    error = refused('VOLUME_IN_USE', desired(capacity='5M', allow_shrink=True), have=observed(),
                    users=[DiskUse('vm1', 'vdb', live=True)])
    assert 'vm1' in error.msg


def test_format_is_never_converted():
    error = refused('FORMAT_MISMATCH', desired(capacity='10M', format='qcow2'), have=observed())
    assert 'raw' in error.msg and 'qcow2' in error.msg
    # a backing store means a qcow2 overlay: an existing raw volume is not one
    refused('FORMAT_MISMATCH', desired(backing_store={'pool': 'images', 'name': 'base'}), have=observed())
    # block volumes hold raw data
    have = observed(pool='vg', type='block', format=None)
    assert plan(desired(pool='vg', format='raw'), pool=LVM_POOL, have=have).actions == []


def test_permissions_of_an_existing_volume():
    steps = plan(desired(mode='0640', owner='107', group='0'), have=observed())
    [chmod] = steps.actions
    assert chmod.method == 'set_permissions' and chmod.args == ('/srv/images/data.img', 0o640, 107, 0)
    assert chmod.description == 'set mode 0640, owner 107 of volume data.img of pool images'
    assert steps.after['mode'] == '0640' and steps.before['mode'] == '0600'
    assert plan(desired(mode=0o600), have=observed()).actions == [], 'YAML 0600 arrives as an int'


def test_delete_refused_while_used_naming_the_domains():
    users = [DiskUse('web1', 'vdb', live=True, persistent=True), DiskUse('web2', 'vdc', persistent=True)]
    error = refused('VOLUME_IN_USE', desired(state='absent'), have=observed(), users=users)
    assert 'web1 (vdb)' in error.msg and 'web2 (vdc)' in error.msg
    assert [use['domain'] for use in error.details['used_by']] == ['web1', 'web2']


def test_delete_refused_for_the_backing_store_of_another_volume():
    error = refused('VOLUME_IN_USE', desired(state='absent'), have=observed(), overlays=['images/child.qcow2'])
    assert 'images/child.qcow2' in error.msg


def test_delete_with_wipe_and_absent_volume():
    steps = plan(desired(state='absent', wipe='zero'), have=observed())
    assert [a.method for a in steps.actions] == ['wipe', 'delete']
    assert steps.actions[0].args == ('images', 'data.img', 'zero')
    assert steps.after == {'state': 'absent'}
    assert plan(desired(state='absent'), have=None).actions == []


# content ---------------------------------------------------------------------------------
BASE = observed(name='base.qcow2', path='/srv/images/base.qcow2', key='/srv/images/base.qcow2', format='qcow2',
                capacity=100 * MIB)


def test_overlay_takes_the_backing_capacity_and_format():
    steps = plan(desired(backing_store={'pool': 'images', 'name': 'base.qcow2'}),
                 content=_volume.Content('backing', source=BASE))
    [create] = steps.actions
    tree = xml_of(create)
    assert tree.findtext('backingStore/path') == '/srv/images/base.qcow2'
    assert tree.find('backingStore/format').get('type') == 'qcow2'
    assert tree.find('target/format').get('type') == 'qcow2' and tree.findtext('capacity') == str(100 * MIB)
    refused('SHRINK_REFUSED', desired(backing_store={'pool': 'images', 'name': 'base.qcow2'}, capacity='1M'),
            content=_volume.Content('backing', source=BASE))


def test_clone_keeps_the_source_format_and_grows_after_copying():
    steps = plan(desired(clone_from={'pool': 'images', 'name': 'base.qcow2'}, capacity='200M'),
                 content=_volume.Content('clone', source=BASE))
    clone, grow = steps.actions
    assert clone.method == 'clone' and clone.args[2:] == ('images', 'base.qcow2', False)
    assert xml_of(clone).find('target/format').get('type') == 'qcow2'
    assert xml_of(clone).findtext('allocation') == '0', 'a sparse copy unless asked otherwise'
    assert grow.method == 'resize' and grow.args[2] == 200 * MIB
    raw = dataclasses.replace(BASE, format='raw')
    [clone] = plan(desired(clone_from={'pool': 'images', 'name': 'base.qcow2'}),
                   content=_volume.Content('clone', source=raw)).actions
    assert clone.args[-1] is True, 'raw to raw is tried as a reflink first'
    refused('SHRINK_REFUSED', desired(clone_from={'pool': 'images', 'name': 'x'}, capacity='1M'),
            content=_volume.Content('clone', source=BASE))


def image(image_format='raw', file_size=4 * MIB, virtual_size=None, backing=False):
    return ImageInfo('/tmp/disk.img', image_format, file_size,
                     virtual_size if virtual_size is not None else file_size, backing)


def test_import_creates_then_uploads_and_rolls_back_as_one():
    steps = plan(desired(import_from='/tmp/disk.img'), content=_volume.Content('import', image=image()))
    create, upload = steps.actions
    assert create.undo is not None and upload.method == 'upload'
    assert upload.args == ('images', 'data.img', '/tmp/disk.img', 'raw')
    assert steps.after['capacity'] == 4 * MIB and steps.after['content'] == 'import of /tmp/disk.img'


def test_import_of_a_qcow2_image_keeps_its_format_and_virtual_size():
    qcow2 = image('qcow2', file_size=MIB, virtual_size=100 * MIB)
    steps = plan(desired(import_from='/tmp/disk.img', capacity='200M'), content=_volume.Content('import', image=qcow2))
    create, upload, grow = steps.actions
    assert xml_of(create).findtext('capacity') == str(MIB), 'the container holds the file as it is'
    assert upload.args[-1] == 'qcow2' and grow.args[2] == 200 * MIB
    assert steps.after['format'] == 'qcow2'


@pytest.mark.parametrize('overrides, info, pool, code', [
    ({'format': 'raw'}, image('qcow2', MIB, 100 * MIB), DIR_POOL, 'FORMAT_MISMATCH'),
    ({'pool': 'vg'}, image('qcow2', MIB, 100 * MIB), LVM_POOL, 'FORMAT_MISMATCH'),
    ({'capacity': '1M'}, image(), DIR_POOL, 'SHRINK_REFUSED'),
    ({}, image('qcow2', MIB, 100 * MIB, backing=True), DIR_POOL, 'INVALID_ARGUMENT'),
    ({'capacity': '1G'}, ImageInfo('/tmp/disk.img', 'vhdx', MIB, None), DIR_POOL, 'INVALID_ARGUMENT'),
])
def test_import_refusals(overrides, info, pool, code):
    refused(code, desired(import_from='/tmp/disk.img', **overrides), pool=pool,
            content=_volume.Content('import', image=info))


# results ---------------------------------------------------------------------------------
def test_describe_and_predict():
    users = [DiskUse('b', 'vdc', persistent=True), DiskUse('a', 'vdb', live=True, via='/x/top.qcow2')]
    described = _volume.describe_volume(observed(backing_path='/b', backing_format='raw'), users)
    assert [use['domain'] for use in described['used_by']] == ['a', 'b']
    assert described['ref_count'] == 2 and described['in_use'] is True
    assert described['backing_store'] == {'path': '/b', 'format': 'raw'} and described['mode'] == '0600'
    want = desired(capacity='2M', format='qcow2')
    steps = plan(want)
    predicted = _volume.predict_volume(want, DIR_POOL, None, steps, [])
    assert predicted['path'] == '/srv/images/data.img' and predicted['capacity'] == 2 * MIB
    assert predicted['format'] == 'qcow2' and predicted['used_by'] == [] and predicted['in_use'] is False


def test_parse_volume_reads_libvirts_xml():
    xml = """<volume type='file'><name>v &amp; w.qcow2</name><key>/p/v &amp; w.qcow2</key>
      <capacity unit='bytes'>1073741824</capacity><allocation unit='bytes'>200704</allocation>
      <target><path>/p/v &amp; w.qcow2</path><format type='qcow2'/>
        <permissions><mode>0640</mode><owner>107</owner><group>107</group></permissions></target>
      <backingStore><path>/p/base.img</path><format type='raw'/></backingStore></volume>"""
    volume = _volume.parse_volume(xml, 'p')
    assert (volume.name, volume.format) == ('v & w.qcow2', 'qcow2')
    assert (volume.capacity, volume.allocation) == (1024 ** 3, 200704)
    assert (volume.mode, volume.owner, volume.group) == (0o640, 107, 107)
    assert (volume.backing_path, volume.backing_format) == ('/p/base.img', 'raw')
    block = _volume.parse_volume("<volume type='block'><name>lv</name><capacity>4194304</capacity>"
                                 "<target><path>/dev/vg/lv</path></target></volume>", 'vg')
    assert block.format is None and block.effective_format == 'raw' and block.allocation == 0


def test_import_of_a_raw_image_into_a_larger_volume_grows_after_the_upload():
    steps = plan(desired(import_from='/tmp/disk.img', capacity='16M'), content=_volume.Content('import', image=image()))
    create, upload, grow = steps.actions
    assert create.description == 'create volume data.img in pool images to hold /tmp/disk.img (%d bytes)' % (4 * MIB)
    assert grow.args == ('images', 'data.img', 16 * MIB, False)
    assert steps.after['capacity'] == 16 * MIB


def test_an_existing_overlay_is_never_rebased():
    have = observed(name='top.qcow2', format='qcow2', backing_path='/srv/images/base.qcow2', backing_format='qcow2')
    same = _volume.Content('backing', source=BASE)
    assert plan(desired(backing_store={'pool': 'images', 'name': 'base.qcow2'}), have=have, content=same).actions == []
    other = _volume.Content('backing', source=dataclasses.replace(BASE, path='/srv/images/other.qcow2'))
    error = refused('INVALID_ARGUMENT', desired(backing_store={'pool': 'images', 'name': 'other.qcow2'}), have=have,
                    content=other)
    assert 'never changed' in error.msg
    refused('INVALID_ARGUMENT', desired(backing_store={'pool': 'images', 'name': 'other.qcow2'}),
            have=dataclasses.replace(have, backing_path=None), content=other)


def test_content_options_on_an_existing_volume_change_nothing():
    """Every idempotent re-run passes them again: they are silently done with, as documented."""
    steps = plan(desired(import_from='/tmp/new.img', clone_from=None), have=observed())
    assert steps.actions == [] and steps.warnings == []


# found in review -------------------------------------------------------------------------
def test_refusals_found_in_review():
    refused('INVALID_ARGUMENT', desired(state='absent', wipe='trim'), have=observed())  # only rbd trims
    assert [a.method for a in plan(desired(pool='ceph', state='absent', wipe='trim'),
                                   pool=_volume.PoolFacts('ceph', 'rbd', True, None, 'rbdpool'),
                                   have=observed(pool='ceph', type='network', format=None)).actions] == ['wipe', 'delete']
    chained = DiskUse('vm1', 'vda', live=True, via='/srv/images/top.qcow2')
    error = refused('VOLUME_IN_USE', desired(capacity='20M'), have=observed(), users=[chained])
    assert 'through /srv/images/top.qcow2' in error.msg
    refused('VOLUME_IN_USE', desired(capacity='5M', allow_shrink=True), have=observed(), overlays=['images/top.qcow2'])
    refused('INVALID_ARGUMENT', desired(pool='vg', backing_store={'pool': 'images', 'name': 'base.qcow2'}),
            pool=LVM_POOL, content=_volume.Content('backing', source=BASE))
    refused('INVALID_SIZE', desired(capacity=0, format='qcow2'))
    assert plan(desired(capacity=0)).after['capacity'] == 0, 'an empty raw volume is fine'
    with pytest.raises(StorageError) as caught:
        desired(capacity=2 ** 64 - 1)
    assert caught.value.code == 'INVALID_SIZE'


def test_vpc_geometry_rounding_is_not_a_shrink():
    have = observed(format='vpc', capacity=1048707072)
    assert plan(desired(capacity='1000M'), have=have).actions == []


def test_rbd_volumes_are_used_through_network_disks():
    from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex
    index = UsageIndex()
    index.add_domain_xml('vm1', "<domain><devices><disk type='network'><source protocol='rbd' name='rbdpool/img1'>"
                                "<host name='mon1'/></source><target dev='vdb'/></disk></devices></domain>", live=False)
    volume = observed(name='img1', pool='ceph', path='rbdpool/img1', type='network', format=None)
    [use] = _volume.volume_users(index, volume, 'rbd', 'rbdpool')
    assert (use.domain, use.target) == ('vm1', 'vdb')
    assert _volume.volume_users(index, observed(name='img2', path='rbdpool/img2'), 'rbd', 'rbdpool') == []


def test_owner_and_group_ids_must_fit_an_id():
    with pytest.raises(StorageError) as caught:
        desired(capacity='1M', owner='99999999999999999999')
    assert caught.value.code == 'INVALID_ARGUMENT'
    assert desired(capacity='1M', owner=str(2 ** 32 - 2)).owner == 2 ** 32 - 2


def test_qcow2_capacity_is_predicted_in_whole_sectors():
    steps = plan(desired(capacity=1000000001, format='qcow2'))
    assert steps.after['capacity'] == 1000000512
    have = observed(format='qcow2', capacity=1000000512)
    assert plan(desired(capacity=1000000001, format='qcow2'), have=have).actions == []
