# -*- coding: utf-8 -*-
"""storage_volume and storage_volume_info against the real lab.

Each behaviour: check mode (nothing changes) -> apply -> re-apply (no change) -> verify
through libvirt's own API (and the files themselves), never only through the module's
return value. Every refusal is shown to change nothing."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import filecmp
import os
import subprocess

import libvirt
import pytest
from lxml import etree

import _lab
from _lab import define_domain, make_dir_pool, make_volume

MIB = 1024 ** 2


# ---------------------------------------------------------------------------------------
# helpers
def make_pool(conn, names, suffix='pool'):
    return make_dir_pool(conn, names, suffix)


def volume_or_none(conn, pool_name, name):
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def vol_tree(conn, pool_name, name):
    return etree.fromstring(conn.storagePoolLookupByName(pool_name).storageVolLookupByName(name).XMLDesc(0))


def snapshot(conn, pool_name):
    """Every volume of the pool as libvirt describes it (minus access times) and the files."""
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    volumes = []
    for volume in pool.listAllVolumes(0):
        tree = etree.fromstring(volume.XMLDesc(0))
        for stamps in tree.iter('timestamps'):
            stamps.getparent().remove(stamps)
        volumes.append(etree.tostring(tree))
    target = etree.fromstring(pool.XMLDesc(0)).findtext('target/path')
    files = sorted((entry, os.stat(os.path.join(target, entry)).st_size) for entry in os.listdir(target))
    return sorted(volumes), files


VOLUME_FIELDS = ('name', 'pool', 'key', 'path', 'type', 'format', 'capacity', 'backing_store', 'mode', 'owner',
                 'group', 'used_by', 'ref_count', 'in_use')


def converge(run, conn, args, verify=None):
    """check mode -> apply -> re-apply, verifying libvirt after each step."""
    return _lab.converge(run, 'storage_volume', args, lambda: snapshot(conn, args['pool']), 'volume', VOLUME_FIELDS,
                         verify, known_only=True)


def refused(run, conn, args, code, pools=None):
    """The run fails with `code` and every pool it could touch is as it was."""
    watched = pools or [args['pool']]
    return _lab.refused(run, 'storage_volume', args, code, lambda: [snapshot(conn, name) for name in watched],
                        check_too=False)


def disk_xml(path, target, bus='virtio', driver='raw', extra=''):
    return ("<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
            "<target dev='%s' bus='%s'/>%s</disk>" % (driver, path, target, bus, extra))


def create_volume(conn, pool_name, name, capacity, volume_format='raw'):
    return make_volume(conn, pool_name, name, capacity, volume_format)


def sparse_file(path, size, chunks):
    """A file of `size` bytes holding random data at the (offset, length) `chunks`, holes elsewhere."""
    with open(path, 'wb') as handle:
        handle.truncate(size)
        for offset, length in chunks:
            handle.seek(offset)
            handle.write(os.urandom(length))
    return path


# ---------------------------------------------------------------------------------------
# create
def test_create_thin_raw_volume(run, conn, names):
    pool, target = make_pool(conn, names)
    args = {'pool': pool, 'name': 'data.img', 'capacity': '64M'}

    def verify(applied):
        tree = vol_tree(conn, pool, 'data.img')
        assert tree.findtext('capacity') == str(64 * MIB)
        assert tree.find('target/format').get('type') == 'raw'
        stat = os.stat(os.path.join(target, 'data.img'))
        assert stat.st_size == 64 * MIB and stat.st_blocks == 0, 'thin: nothing allocated'
        assert applied['volume']['key'] == tree.findtext('key')
        assert applied['volume']['used_by'] == [] and applied['volume']['in_use'] is False

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['create volume data.img in pool %s (%d bytes, raw)' % (pool, 64 * MIB)]
    assert checked['diff']['before'] == {'state': 'absent'}
    assert checked['diff']['after']['capacity'] == 64 * MIB
    assert checked['volume']['path'] == os.path.join(target, 'data.img')


@pytest.mark.parametrize('size, expected', [
    ('1.5M', 1572864), ('1.5MiB', 1572864), ('2MB', 2000000), ('1GiB', 1024 ** 3), ('1GB', 1000 ** 3),
    ('0.5k', 512), (123457, 123457)])
def test_sizes_follow_libvirts_units(run, conn, names, size, expected):
    pool, _target = make_pool(conn, names)
    result = run('storage_volume', {'pool': pool, 'name': 'sized', 'capacity': size})
    assert not result.failed, result.get('msg')
    assert int(vol_tree(conn, pool, 'sized').findtext('capacity')) == expected
    assert result['volume']['capacity'] == expected


def test_preallocated_raw_with_permissions(run, conn, names):
    pool, target = make_pool(conn, names)
    args = {'pool': pool, 'name': 'pre.img', 'capacity': '8M', 'allocation': '8M',
            'mode': '0640', 'owner': '107', 'group': '107'}

    def verify(applied):
        tree = vol_tree(conn, pool, 'pre.img')
        assert int(tree.findtext('allocation')) >= 8 * MIB, 'preallocated'
        assert (tree.findtext('target/permissions/mode'), tree.findtext('target/permissions/owner'),
                tree.findtext('target/permissions/group')) == ('0640', '107', '107')
        stat = os.stat(os.path.join(target, 'pre.img'))
        assert (stat.st_mode & 0o7777, stat.st_uid, stat.st_gid) == (0o640, 107, 107)
        assert stat.st_blocks * 512 >= 8 * MIB

    converge(run, conn, args, verify)


def test_qcow2_volume(run, conn, names):
    pool, target = make_pool(conn, names)

    def verify(applied):
        assert vol_tree(conn, pool, 'disk.qcow2').find('target/format').get('type') == 'qcow2'
        info = subprocess.run(['qemu-img', 'info', '--output=json', '-U', os.path.join(target, 'disk.qcow2')],
                              capture_output=True, text=True, check=True).stdout
        assert '"format": "qcow2"' in info and '"virtual-size": %d' % (1024 ** 3) in info
        assert applied['volume']['format'] == 'qcow2' and applied['volume']['allocation'] < MIB

    converge(run, conn, {'pool': pool, 'name': 'disk.qcow2', 'capacity': '1G', 'format': 'qcow2'}, verify)


def test_permissions_of_an_existing_volume(run, conn, names):
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'perm.img', MIB)
    args = {'pool': pool, 'name': 'perm.img', 'mode': '0604', 'owner': 'nobody'}

    def verify(applied):
        stat = os.stat(os.path.join(target, 'perm.img'))
        assert (stat.st_mode & 0o7777, stat.st_uid) == (0o604, 65534)
        assert vol_tree(conn, pool, 'perm.img').findtext('target/permissions/mode') == '0604'
        assert applied['volume']['mode'] == '0604' and applied['volume']['owner'] == 65534

    checked, _applied = converge(run, conn, args, verify)
    assert checked['diff']['before']['mode'] == '0600' and checked['diff']['after']['mode'] == '0604'


def test_unusual_names_work_end_to_end(run, conn, names):
    pool, target = make_pool(conn, names)
    name = 'vol &<>\'" ü.img'
    converge(run, conn, {'pool': pool, 'name': name, 'capacity': '1M'},
             lambda applied: os.path.exists(os.path.join(target, name)))
    assert vol_tree(conn, pool, name).findtext('name') == name
    info = run('storage_volume_info', {'pool': pool, 'name': name})
    assert [volume['name'] for volume in info['volumes']] == [name]


def test_a_file_placed_behind_libvirts_back_is_found_not_overwritten(run, conn, names):
    pool, target = make_pool(conn, names)
    path = sparse_file(os.path.join(target, 'stray.img'), 4 * MIB, [(0, 4096)])
    with open(path, 'rb') as handle:
        content = handle.read()
    result = run('storage_volume', {'pool': pool, 'name': 'stray.img', 'capacity': '4M'})
    assert not result.failed and not result.changed, result.result
    with open(path, 'rb') as handle:
        assert handle.read() == content


# ---------------------------------------------------------------------------------------
# resize
def test_grow_then_shrink_only_when_allowed(run, conn, names):
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'grow.qcow2', 16 * MIB, 'qcow2')

    def grown(applied):
        assert int(vol_tree(conn, pool, 'grow.qcow2').findtext('capacity')) == 32 * MIB
        assert applied['volume']['capacity'] == 32 * MIB

    checked, _applied = converge(run, conn, {'pool': pool, 'name': 'grow.qcow2', 'capacity': '32M'}, grown)
    assert checked['actions'] == ['grow volume grow.qcow2 of pool %s from %d to %d bytes' % (pool, 16 * MIB, 32 * MIB)]
    assert checked['diff']['before']['capacity'] == 16 * MIB and checked['diff']['after']['capacity'] == 32 * MIB

    result = refused(run, conn, {'pool': pool, 'name': 'grow.qcow2', 'capacity': '8M'}, 'SHRINK_REFUSED')
    assert 'allow_shrink' in result['msg']

    converge(run, conn, {'pool': pool, 'name': 'grow.qcow2', 'capacity': '8M', 'allow_shrink': True},
             lambda applied: int(vol_tree(conn, pool, 'grow.qcow2').findtext('capacity')) == 8 * MIB)
    assert int(vol_tree(conn, pool, 'grow.qcow2').findtext('capacity')) == 8 * MIB


def test_grow_a_volume_attached_to_a_running_domain_live(run, conn, names):
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'live.img', 16 * MIB)
    path = os.path.join(target, 'live.img')
    dom = define_domain(conn, names('vm'), disk_xml(path, 'vdb'), start=True)
    args = {'pool': pool, 'name': 'live.img', 'capacity': '48M'}

    def verify(applied):
        assert dom.blockInfo('vdb')[0] == 48 * MIB, 'QEMU (and so the guest) sees the new size'
        assert int(vol_tree(conn, pool, 'live.img').findtext('capacity')) == 48 * MIB
        [use] = applied['volume']['used_by']
        assert (use['domain'], use['target'], use['live'], use['persistent']) == (dom.name(), 'vdb', True, True)

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['grow volume live.img of pool %s from %d to %d bytes live through domain %s (vdb)'
                                  % (pool, 16 * MIB, 48 * MIB, dom.name())]
    result = refused(run, conn, {'pool': pool, 'name': 'live.img', 'capacity': '16M', 'allow_shrink': True},
                     'VOLUME_IN_USE')
    assert dom.name() in result['msg']
    assert dom.blockInfo('vdb')[0] == 48 * MIB


# ---------------------------------------------------------------------------------------
# format
def test_format_mismatch_is_refused(run, conn, names):
    pool, _target = make_pool(conn, names)
    create_volume(conn, pool, 'disk.img', MIB)
    result = refused(run, conn, {'pool': pool, 'name': 'disk.img', 'format': 'qcow2', 'capacity': '1M'},
                     'FORMAT_MISMATCH')
    assert 'raw' in result['msg']
    assert vol_tree(conn, pool, 'disk.img').find('target/format').get('type') == 'raw'


# ---------------------------------------------------------------------------------------
# content
def test_clone_is_a_sparse_full_copy_written_only_once(run, conn, names):
    pool, target = make_pool(conn, names)
    source = sparse_file(os.path.join(target, 'src.img'), 32 * MIB, [(MIB, MIB), (20 * MIB, 512 * 1024)])
    args = {'pool': pool, 'name': 'copy.img', 'clone_from': {'pool': pool, 'name': 'src.img'}}

    def verify(applied):
        copy = os.path.join(target, 'copy.img')
        assert filecmp.cmp(source, copy, shallow=False)
        assert os.stat(copy).st_blocks * 512 <= 4 * MIB, 'holes stay holes'
        assert applied['volume']['capacity'] == 32 * MIB

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['create volume copy.img in pool %s as a copy of %s/src.img' % (pool, pool)]
    # content is written only when the volume is created
    sparse_file(source, 32 * MIB, [(0, MIB)])
    again = run('storage_volume', args)
    assert not again.changed and not filecmp.cmp(source, os.path.join(target, 'copy.img'), shallow=False)


def test_clone_into_another_pool_and_format_and_grow(run, conn, names):
    pool, target = make_pool(conn, names)
    other, other_target = make_pool(conn, names, 'other')
    sparse_file(os.path.join(target, 'src.img'), 8 * MIB, [(0, MIB)])
    args = {'pool': other, 'name': 'copy.qcow2', 'format': 'qcow2', 'capacity': '16M',
            'clone_from': {'path': os.path.join(target, 'src.img')}}

    def verify(applied):
        tree = vol_tree(conn, other, 'copy.qcow2')
        assert tree.find('target/format').get('type') == 'qcow2'
        assert tree.findtext('capacity') == str(16 * MIB)
        compared = subprocess.run(['qemu-img', 'compare', '-U', os.path.join(target, 'src.img'),
                                   os.path.join(other_target, 'copy.qcow2')], capture_output=True, text=True,
                                  check=False)
        assert compared.returncode == 0, compared.stdout + compared.stderr

    checked, _applied = converge(run, conn, args, verify)
    assert [action.split(' ')[0] for action in checked['actions']] == ['create', 'grow']


def test_overlay_on_a_backing_store(run, conn, names):
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'base.qcow2', 20 * MIB, 'qcow2')
    args = {'pool': pool, 'name': 'top.qcow2', 'backing_store': {'pool': pool, 'name': 'base.qcow2'}}

    def verify(applied):
        tree = vol_tree(conn, pool, 'top.qcow2')
        assert tree.findtext('backingStore/path') == os.path.join(target, 'base.qcow2')
        assert tree.find('target/format').get('type') == 'qcow2' and tree.findtext('capacity') == str(20 * MIB)
        assert applied['volume']['backing_store'] == {'path': os.path.join(target, 'base.qcow2'), 'format': 'qcow2'}

    converge(run, conn, args, verify)
    # the base now holds another volume's data: not deleted
    result = refused(run, conn, {'pool': pool, 'name': 'base.qcow2', 'state': 'absent'}, 'VOLUME_IN_USE')
    assert '%s/top.qcow2' % pool in result['msg']
    # an overlay outside any pool, under a shut-off domain (whose XML lists no backing
    # chain): found from the image headers
    outside = names.path('outside.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', os.path.join(target, 'base.qcow2'), '-F', 'qcow2',
                    outside], check=True)
    conn.storagePoolLookupByName(pool).storageVolLookupByName('top.qcow2').delete(0)
    user = define_domain(conn, names('chain'), disk_xml(outside, 'vdb', driver='qcow2'))
    result = refused(run, conn, {'pool': pool, 'name': 'base.qcow2', 'state': 'absent'}, 'VOLUME_IN_USE')
    assert user.name() in result['msg'] and outside in result['msg']
    # another backing store for the existing overlay is refused, never rebased
    create_volume(conn, pool, 'base2.qcow2', 20 * MIB, 'qcow2')
    conn.storagePoolLookupByName(pool).createXML(
        "<volume><name>top2.qcow2</name><capacity>%d</capacity><target><format type='qcow2'/></target>"
        "<backingStore><path>%s</path><format type='qcow2'/></backingStore></volume>"
        % (20 * MIB, os.path.join(target, 'base.qcow2')), 0)
    refused(run, conn, {'pool': pool, 'name': 'top2.qcow2', 'backing_store': {'pool': pool, 'name': 'base2.qcow2'}},
            'INVALID_ARGUMENT')


def test_import_is_sparse_and_only_at_creation(run, conn, names):
    pool, target = make_pool(conn, names)
    image = sparse_file(names.path('image.raw'), 64 * MIB, [(0, MIB), (40 * MIB, MIB)])
    args = {'pool': pool, 'name': 'imported.img', 'import_from': image}

    def verify(applied):
        volume = os.path.join(target, 'imported.img')
        assert filecmp.cmp(image, volume, shallow=False)
        assert os.stat(volume).st_blocks * 512 <= 4 * MIB, 'holes were neither read nor written'
        tree = vol_tree(conn, pool, 'imported.img')
        assert tree.findtext('capacity') == str(64 * MIB) and tree.find('target/format').get('type') == 'raw'

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == [
        'create volume imported.img in pool %s to hold %s (%d bytes)' % (pool, image, 64 * MIB),
        'upload %s (raw, %d bytes) into volume imported.img of pool %s' % (image, 64 * MIB, pool)]
    os.unlink(image)
    again = run('storage_volume', args)
    assert not again.failed and not again.changed, 'the image is read only when the volume is created'


def test_import_a_qcow2_image(run, conn, names):
    pool, target = make_pool(conn, names)
    image = names.path('cloud.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '100M'], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 7 0 1M', image], check=True, capture_output=True)
    args = {'pool': pool, 'name': 'cloud.qcow2', 'import_from': image, 'format': 'qcow2', 'capacity': '200M'}

    def verify(applied):
        tree = vol_tree(conn, pool, 'cloud.qcow2')
        assert tree.find('target/format').get('type') == 'qcow2'
        assert tree.findtext('capacity') == str(200 * MIB), 'grown after the upload'
        read = subprocess.run(['qemu-io', '-f', 'qcow2', '-r', '-c', 'read -P 7 0 1M',
                               os.path.join(target, 'cloud.qcow2')], capture_output=True, text=True, check=False)
        assert read.returncode == 0 and 'Pattern verification failed' not in read.stdout, read.stdout

    checked, _applied = converge(run, conn, args, verify)
    assert len(checked['actions']) == 3 and checked['actions'][2].startswith('grow volume cloud.qcow2')
    # the same image asked for as raw would hand the guest a qcow2 header
    result = refused(run, conn, {'pool': pool, 'name': 'raw.img', 'import_from': image, 'format': 'raw'},
                     'FORMAT_MISMATCH')
    assert 'qcow2' in result['msg']


def fs_pool(conn, names, suffix, size_mib, fs_format):
    """An fs pool of `fs_format` on a loop device of this test, built by libvirt."""
    device = names.loop_device(size_mib)
    name = names(suffix)
    target = names.path(suffix)
    os.makedirs(target)
    root = etree.Element('pool', type='fs')
    etree.SubElement(root, 'name').text = name
    source = etree.SubElement(root, 'source')
    etree.SubElement(source, 'device', path=device)
    etree.SubElement(source, 'format', type=fs_format)
    etree.SubElement(etree.SubElement(root, 'target'), 'path').text = target
    pool = conn.storagePoolDefineXML(etree.tostring(root, encoding='unicode'), 0)
    pool.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
    pool.create(0)
    return name, target


def shared_extents(path):
    """Whether the file's extents are shared with another file (filefrag's "shared" flag)."""
    report = subprocess.run(['filefrag', '-v', path], capture_output=True, text=True, check=True).stdout
    return 'shared' in report


def test_clone_shares_extents_where_the_filesystem_can(run, conn, names):
    pool, target = fs_pool(conn, names, 'xfs', 320, 'xfs')  # mkfs.xfs wants 300 MiB at least
    with open(os.path.join(target, 'src.raw'), 'wb') as handle:
        handle.write(os.urandom(8 * MIB))
    conn.storagePoolLookupByName(pool).refresh(0)
    before = os.statvfs(target)

    def verify(applied):
        copy = os.path.join(target, 'copy.raw')
        assert filecmp.cmp(os.path.join(target, 'src.raw'), copy, shallow=False)
        assert shared_extents(copy), 'a reflink, not a copy'
        after = os.statvfs(target)
        assert (before.f_bfree - after.f_bfree) * after.f_frsize < MIB, 'no second 8 MiB written'

    converge(run, conn, {'pool': pool, 'name': 'copy.raw', 'clone_from': {'pool': pool, 'name': 'src.raw'}}, verify)


# ---------------------------------------------------------------------------------------
# no space
@pytest.fixture
def tiny_pool(conn, names):
    """An ext4 fs pool on a 16 MiB loop device: a real ENOSPC."""
    return fs_pool(conn, names, 'tiny', 16, 'ext4')


def test_no_space_leaves_no_volume_behind(run, conn, names, tiny_pool):
    pool, target = tiny_pool
    result = refused(run, conn, {'pool': pool, 'name': 'big.img', 'capacity': '32M', 'allocation': '32M'},
                     'NO_SPACE')
    assert 'No space left' in result['msg']
    image = names.path('random.raw')
    with open(image, 'wb') as handle:
        handle.write(os.urandom(32 * MIB))
    result = refused(run, conn, {'pool': pool, 'name': 'imported.img', 'import_from': image}, 'NO_SPACE')
    assert result['actions'][-1] == 'rolled back: delete volume imported.img in pool %s' % pool
    assert volume_or_none(conn, pool, 'imported.img') is None
    assert not os.path.exists(os.path.join(target, 'imported.img'))
    source_pool, source_target = make_pool(conn, names)
    with open(os.path.join(source_target, 'full.raw'), 'wb') as handle:
        handle.write(os.urandom(32 * MIB))
    refused(run, conn, {'pool': pool, 'name': 'copy.img', 'clone_from': {'pool': source_pool, 'name': 'full.raw'}},
            'NO_SPACE')
    assert sorted(os.listdir(target)) == ['lost+found']


# ---------------------------------------------------------------------------------------
# delete
def test_delete_refused_while_any_domain_uses_it(run, conn, names):
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'shared.img', MIB)
    create_volume(conn, pool, 'cold.img', MIB)
    running = define_domain(conn, names('running'), disk_xml(os.path.join(target, 'shared.img'), 'vdb'), start=True)
    stopped = define_domain(conn, names('stopped'),
                            "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
                            "<source pool='%s' volume='cold.img'/><target dev='vdc' bus='virtio'/></disk>" % pool)
    result = refused(run, conn, {'pool': pool, 'name': 'shared.img', 'state': 'absent'}, 'VOLUME_IN_USE')
    assert running.name() in result['msg'] and 'vdb' in result['msg']
    assert result['used_by'] == [{'domain': running.name(), 'target': 'vdb', 'live': True, 'persistent': True,
                                  'via': None}]
    result = refused(run, conn, {'pool': pool, 'name': 'cold.img', 'state': 'absent'}, 'VOLUME_IN_USE')
    assert stopped.name() in result['msg']
    # a disk that names the volume through a symbolic link uses it all the same
    create_volume(conn, pool, 'linked.img', MIB)
    link = names.path('link-to-linked.img')
    os.symlink(os.path.join(target, 'linked.img'), link)
    linked = define_domain(conn, names('linked'), disk_xml(link, 'vde'))
    result = refused(run, conn, {'pool': pool, 'name': 'linked.img', 'state': 'absent'}, 'VOLUME_IN_USE')
    assert linked.name() in result['msg']
    # undefining the domain never touches the volume; then it may go
    stopped.undefine()
    assert volume_or_none(conn, pool, 'cold.img') is not None
    converge(run, conn, {'pool': pool, 'name': 'cold.img', 'state': 'absent'},
             lambda applied: volume_or_none(conn, pool, 'cold.img') is None)
    assert volume_or_none(conn, pool, 'cold.img') is None


def test_wipe_then_delete(run, conn, names):
    pool, target = make_pool(conn, names)
    path = os.path.join(target, 'secret.img')
    with open(path, 'wb') as handle:
        handle.write(b'secret data ' * (MIB // 12))
    keeper = names.path('keeper')
    os.link(path, keeper)  # a second name of the same inode shows what wipe wrote
    args = {'pool': pool, 'name': 'secret.img', 'state': 'absent', 'wipe': 'zero'}

    def verify(applied):
        assert volume_or_none(conn, pool, 'secret.img') is None
        with open(keeper, 'rb') as handle:
            assert handle.read().strip(b'\0') == b'', 'the data was overwritten with zeros'
        assert applied['volume'] is None

    checked, _applied = converge(run, conn, args, verify)
    assert checked['actions'] == ['wipe volume secret.img of pool %s (zero)' % pool,
                                  'delete volume secret.img of pool %s' % pool]
    assert checked['diff']['after'] == {'state': 'absent'}


# ---------------------------------------------------------------------------------------
# pools
def test_missing_and_inactive_pools(run, conn, names):
    refused_missing = run('storage_volume', {'pool': names('nopool'), 'name': 'x', 'capacity': '1M'})
    assert refused_missing['error_code'] == 'POOL_NOT_FOUND'
    assert run('storage_volume', {'pool': names('nopool'), 'name': 'x', 'state': 'absent'})['error_code'] == \
        'POOL_NOT_FOUND'
    pool, target = make_pool(conn, names)
    conn.storagePoolLookupByName(pool).destroy()
    result = run('storage_volume', {'pool': pool, 'name': 'x', 'capacity': '1M'})
    assert result['error_code'] == 'POOL_INACTIVE' and os.listdir(target) == []
    assert run('storage_volume_info', {'pool': pool})['error_code'] == 'POOL_INACTIVE'
    assert run('storage_volume', {'pool': pool, 'name': 'a/b', 'capacity': '1M'})['error_code'] == 'INVALID_NAME'
    assert run('storage_volume', {'pool': pool, 'name': 'x', 'capacity': '1 parsec'})['error_code'] == 'INVALID_SIZE'


# ---------------------------------------------------------------------------------------
# storage_volume_info
def test_info_filters_and_usage(run, conn, names):
    pool, target = make_pool(conn, names)
    for name in ('a.img', 'b.img', 'c.img'):
        create_volume(conn, pool, name, MIB)
    overlay_base = create_volume(conn, pool, 'base.qcow2', MIB, 'qcow2')
    conn.storagePoolLookupByName(pool).createXML(
        "<volume><name>top.qcow2</name><capacity>%d</capacity><target><format type='qcow2'/></target>"
        "<backingStore><path>%s</path><format type='qcow2'/></backingStore></volume>" % (MIB, overlay_base.path()), 0)
    link = names.path('guest-disk-link')
    os.symlink(os.path.join(target, 'b.img'), link)
    vm1 = define_domain(conn, names('vm1'), disk_xml(os.path.join(target, 'a.img'), 'vdb') +
                        disk_xml(os.path.join(target, 'top.qcow2'), 'vdc', driver='qcow2'), start=True)
    vm2 = define_domain(conn, names('vm2'), disk_xml(os.path.join(target, 'a.img'), 'sdb', bus='scsi',
                                                     extra='<shareable/>'))
    # a disk hot-plugged into the running domain only: live, not persistent
    vm1.attachDeviceFlags(disk_xml(os.path.join(target, 'b.img'), 'vdd'), libvirt.VIR_DOMAIN_AFFECT_LIVE)

    every = run('storage_volume_info', {'pool': pool})
    by_name = dict((volume['name'], volume) for volume in every['volumes'])
    assert sorted(by_name) == ['a.img', 'b.img', 'base.qcow2', 'c.img', 'top.qcow2']
    assert every['actions'] == [] and not every.changed
    assert by_name['a.img']['used_by'] == [
        {'domain': vm1.name(), 'target': 'vdb', 'live': True, 'persistent': True, 'via': None},
        {'domain': vm2.name(), 'target': 'sdb', 'live': False, 'persistent': True, 'via': None}]
    assert by_name['a.img']['ref_count'] == 2 and by_name['a.img']['in_use'] is True
    assert by_name['b.img']['used_by'] == [
        {'domain': vm1.name(), 'target': 'vdd', 'live': True, 'persistent': False, 'via': None}]
    [through] = by_name['base.qcow2']['used_by']
    assert (through['domain'], through['via']) == (vm1.name(), os.path.join(target, 'top.qcow2'))
    assert by_name['c.img']['in_use'] is False and by_name['c.img']['ref_count'] == 0
    for volume in every['volumes']:  # the same figures as libvirt's own
        info = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume['name']).info()
        assert (volume['capacity'], volume['allocation']) == (info[1], info[2])

    def listed(**filters):
        result = run('storage_volume_info', filters)
        assert not result.failed, result.get('msg')
        return sorted((volume['pool'], volume['name']) for volume in result['volumes'])

    assert listed(pool=pool, unused=True) == [(pool, 'c.img')]
    assert (pool, 'c.img') in listed(unused=True), 'every active pool by default'
    assert listed(attached_to=vm2.name()) == [(pool, 'a.img')]
    assert listed(attached_to=vm1.UUIDString()) == [(pool, 'a.img'), (pool, 'b.img'), (pool, 'base.qcow2'),
                                                    (pool, 'top.qcow2')]
    assert listed(path=link) == [(pool, 'b.img')], 'a guest path resolves to its volume'
    assert listed(key=os.path.join(target, 'c.img')) == [(pool, 'c.img')]
    assert listed(pool=pool, name='b.img') == [(pool, 'b.img')]
    assert listed(path='/nonexistent/disk.img') == []
    missing = run('storage_volume_info', {'attached_to': names('ghost')})
    assert missing['error_code'] == 'DOMAIN_NOT_FOUND'
    assert run('storage_volume_info', {'pool': names('nopool')})['error_code'] == 'POOL_NOT_FOUND'


def test_two_runs_at_once_take_turns(run, conn, names):
    """Two plays importing the same volume at the same moment: one creates it, the other
    waits and then finds it complete (never a half-uploaded raw file, never a clash)."""
    import threading
    pool, _target = make_pool(conn, names)
    image = names.path('big.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '1G'], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 9 0 256M', image], check=True, capture_output=True)
    args = {'pool': pool, 'name': 'big.qcow2', 'import_from': image, 'format': 'qcow2', 'capacity': '2G'}
    results = []
    threads = [threading.Thread(target=lambda: results.append(run('storage_volume', args))) for _run in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [result.get('msg') for result in results if result.failed] == []
    assert sorted(result.changed for result in results) == [False, True]
    for result in results:
        assert (result['volume']['format'], result['volume']['capacity']) == ('qcow2', 2 * 1024 ** 3)
    tree = vol_tree(conn, pool, 'big.qcow2')
    assert tree.find('target/format').get('type') == 'qcow2' and tree.findtext('capacity') == str(2 * 1024 ** 3)


def test_more_refusals_change_nothing(run, conn, names):
    """Refusals the planner makes before any step, each shown against the lab."""
    pool, target = make_pool(conn, names)
    create_volume(conn, pool, 'base.qcow2', 16 * MIB, 'qcow2')
    create_volume(conn, pool, 'data.img', 4 * MIB)
    conn.storagePoolLookupByName(pool).createXML(
        "<volume><name>top.qcow2</name><capacity>%d</capacity><target><format type='qcow2'/></target>"
        "<backingStore><path>%s</path><format type='qcow2'/></backingStore></volume>"
        % (16 * MIB, os.path.join(target, 'base.qcow2')), 0)
    overlay_image = names.path('overlay.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', os.path.join(target, 'base.qcow2'), '-F',
                    'qcow2', overlay_image], check=True)
    cases = [
        ({'name': 'imported.qcow2', 'import_from': overlay_image}, 'INVALID_ARGUMENT', 'flatten'),
        ({'name': 'data.img', 'state': 'absent', 'wipe': 'trim'}, 'INVALID_ARGUMENT', 'rbd'),
        ({'name': 'empty.qcow2', 'capacity': 0, 'format': 'qcow2'}, 'INVALID_SIZE', 'capacity 0'),
        ({'name': 'data.img', 'owner': '99999999999999999999'}, 'INVALID_ARGUMENT', 'owner'),
        ({'name': 'copy.img', 'clone_from': {'pool': pool, 'name': 'data.img'}, 'capacity': '1M'},
         'SHRINK_REFUSED', 'lose data'),
        ({'name': 'base.qcow2', 'capacity': '8M', 'allow_shrink': True}, 'VOLUME_IN_USE', '%s/top.qcow2' % pool),
        ({'name': 'x', 'capacity': 2 ** 64 - 1}, 'INVALID_SIZE', 'larger'),
        ({'name': 'a/b', 'capacity': '1M'}, 'INVALID_NAME', '/'),
    ]
    for extra, code, fragment in cases:
        result = refused(run, conn, dict(extra, pool=pool), code)
        assert fragment in result['msg'], (extra, result['msg'])
    # growing a base that a running domain reads through its overlay: only QEMU holds it
    conn.storagePoolLookupByName(pool).storageVolLookupByName('top.qcow2').delete(0)
    dom = define_domain(conn, names('vm'), disk_xml(overlay_image, 'vdb', driver='qcow2'), start=True)
    result = refused(run, conn, {'pool': pool, 'name': 'base.qcow2', 'capacity': '32M'}, 'VOLUME_IN_USE')
    assert dom.name() in result['msg'] and overlay_image in result['msg']


def test_a_volume_that_is_a_qcow2_data_file_is_in_use(run, conn, names):
    """A domain whose qcow2 keeps its data in a pool volume (data_file=) uses that volume: it is
    not deleted under it, though no domain XML names it."""
    pool, target = make_pool(conn, names)
    data = create_volume(conn, pool, 'data.raw', 4 * MIB).path()
    image = names.path('image.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'data_file=%s' % data, image, '4M'], check=True)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='vdb' bus='virtio'/></disk>" % image)
    dom = define_domain(conn, names('vm'), disk)
    args = {'pool': pool, 'name': 'data.raw', 'state': 'absent'}
    checked = run('storage_volume', args, check=True)
    assert checked.failed and checked['error_code'] == 'VOLUME_IN_USE'
    result = refused(run, conn, args, 'VOLUME_IN_USE')
    assert dom.name() in result['msg'] and result['used_by'][0]['via'] == image
