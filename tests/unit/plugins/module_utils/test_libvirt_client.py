# -*- coding: utf-8 -*-
"""The libvirt client against libvirt's own in-process test driver."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _pool
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import LibvirtClient
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex


@pytest.fixture
def client():
    # test:///default holds one state per process, shared by every connection to it: tests make
    # objects of their own names rather than relying on its demo objects
    client = LibvirtClient('test:///default')
    yield client
    client.close()


def test_lookups_return_none_only_for_missing_objects(client):
    assert client.lookup_pool('no-such-pool') is None
    assert client.lookup_domain('no-such-domain') is None
    assert client.lookup_domain('00000000-0000-0000-0000-000000000000') is None
    assert client.lookup_pool('default-pool').name() == 'default-pool'
    assert client.lookup_domain('test').name() == 'test'
    assert client.lookup_volume_by_path('/nope') is None


def test_get_pool_raises_pool_not_found(client):
    with pytest.raises(StorageError) as caught:
        client.get_pool('missing')
    assert caught.value.code == 'POOL_NOT_FOUND'


def test_other_libvirt_errors_keep_libvirts_message(client):
    with pytest.raises(StorageError) as caught:
        client.define_pool('<pool type="dir"><name>x</name></pool>')
    assert caught.value.code == 'LIBVIRT_ERROR'
    assert 'define storage pool failed' in caught.value.msg
    assert 'target' in caught.value.msg.lower()


def test_unreachable_daemon():
    with pytest.raises(StorageError) as caught:
        LibvirtClient('qemu+unix:///system?socket=/nonexistent').conn
    assert caught.value.code == 'LIBVIRT_UNREACHABLE'


def test_pool_ops_define_start_describe(client):
    ops = _pool.PoolOps(client)
    definition = _pool.PoolDefinition(name=u'p & <q> 池', type='dir', target_path='/p')
    ops.define(_pool.build_xml(definition))
    ops.start(definition.name)
    ops.set_autostart(definition.name, True)
    observed = ops.observe(definition.name)
    assert observed.active and observed.persistent and observed.autostart
    assert _pool.definition_changes(definition, observed.definition) == []
    described = _pool.describe_pool(client, client.get_pool(definition.name))
    assert described['name'] == definition.name and described['state'] == 'active'
    assert described['volume_count'] == 0 and described['persistent'] is True
    ops.stop(definition.name)
    ops.undefine(definition.name)
    assert client.lookup_pool(definition.name) is None


def test_usage_index_reads_every_domain_once(client):
    index = UsageIndex.build(client)
    assert index.users(path='/nonexistent') == []
    index.add_domain_xml('vm1', "<domain><devices><disk type='volume'><source pool='p' volume='v'/>"
                                "<target dev='vdb'/><shareable/></disk><disk type='file'>"
                                "<source file='/p/a.img'/><target dev='vdc'/></disk></devices></domain>", live=True)
    index.add_domain_xml('vm1', "<domain><devices><disk type='file'><source file='/p/a.img'/>"
                                "<target dev='vdc'/></disk></devices></domain>", live=False)
    [use] = index.users(path='/p/a.img')
    assert (use.domain, use.target, use.live, use.persistent) == ('vm1', 'vdc', True, True)
    [use] = index.users(pool='p', volume='v')
    assert use.shareable and use.live and not use.persistent
    assert [path for path, _use in index.paths_under('/p')] == ['/p/a.img']


def test_describe_a_transient_pool(client):
    client.conn.storagePoolCreateXML(_pool.build_xml(_pool.PoolDefinition(name='t p', type='dir', target_path='/t')), 0)
    described = _pool.describe_pool(client, client.get_pool('t p'))
    assert described['name'] == 't p' and described['state'] == 'active' and described['persistent'] is False
    assert described['volume_count'] == 0 and isinstance(described['capacity'], int)
    assert described['target_path'] == '/t'


def test_canonical_pool_xml_is_libvirts_own_rendering(client):
    canonical = client.canonical_pool_xml(
        "<pool type='dir'><name>x</name><uuid>8C3B5C5E-0000-4000-8000-00000000ABCD</uuid>"
        "<target><path>/x1/</path></target></pool>")
    assert '8c3b5c5e-0000-4000-8000-00000000abcd' in canonical
    assert '<path>/x1</path>' in canonical
    assert client.lookup_pool('x') is None, 'nothing reaches the real connection'


def test_canonical_pool_xml_refuses_what_libvirt_refuses(client):
    with pytest.raises(StorageError) as caught:
        client.canonical_pool_xml("<pool type='fs'><name>x</name><target><path>/x</path></target></pool>")
    assert caught.value.code == 'INVALID_ARGUMENT'
    assert 'libvirt accepts' in caught.value.msg


def test_purge_of_an_inactive_pool_reads_the_domains_once(client):
    """The in-use check after starting an inactive pool reuses the domains read while planning."""
    ops = _pool.PoolOps(client)
    ops.define(_pool.build_xml(_pool.PoolDefinition(name='purged', type='dir', target_path='/purged')))
    calls = []
    list_domains = client.list_domains
    client.list_domains = lambda flags=0: calls.append(flags) or list_domains(flags)
    observed = ops.observe('purged', with_usage=True)
    assert observed.users == () and len(calls) == 2, 'one listing of the running, one of the persistent domains'
    ops.start('purged')
    ops.delete_all_volumes('purged')
    assert len(calls) == 2, 'a second pass over every domain'


def test_purge_of_an_inactive_pool_rechecks_its_now_listed_volumes(client):
    ops = _pool.PoolOps(client)
    ops.define(_pool.build_xml(_pool.PoolDefinition(name='used', type='dir', target_path='/used')))
    ops.observe('used', with_usage=True)
    ops.start('used')
    client.get_pool('used').createXML("<volume><name>v.img</name><capacity>1024</capacity></volume>", 0)
    ops.usage().add_domain_xml('vm9', "<domain><devices><disk type='volume'><source pool='used' volume='v.img'/>"
                                      "<target dev='vdb'/></disk></devices></domain>", live=False)
    with pytest.raises(StorageError) as caught:
        ops.delete_all_volumes('used')
    assert caught.value.code == 'POOL_IN_USE' and 'vm9' in caught.value.msg
    assert client.lookup_volume(client.get_pool('used'), 'v.img') is not None


def test_usage_index_follows_the_backing_chain():
    index = UsageIndex()
    index.add_domain_xml('vm1', """<domain><devices><disk type='volume'><source pool='p' volume='top.qcow2'/>
      <target dev='vda'/><backingStore type='file'><source file='/p/mid.qcow2'/>
      <backingStore type='file'><source file='/p/base.img'/><backingStore/></backingStore></backingStore>
      </disk><disk type='file'><source file='/p/base.img'/><target dev='vdb'/><readonly/></disk>
      </devices></domain>""", live=True)
    [mid] = index.users(path='/p/mid.qcow2')
    assert (mid.domain, mid.target, mid.via, mid.readonly) == ('vm1', 'vda', 'p/top.qcow2', True)
    [base] = index.users(path='/p/base.img')
    assert (base.via, base.target) == (None, 'vdb'), 'also used directly: the direct use is what is reported'
    assert index.users(pool='p', volume='top.qcow2')[0].via is None


def test_usage_index_reads_backing_chains_from_image_headers(tmp_path):
    """A shut-off domain's XML names only the top image; the headers name the rest."""
    import shutil
    import subprocess
    if shutil.which('qemu-img') is None:
        pytest.skip('qemu-img is part of the lab packages')
    base, mid, top = (str(tmp_path / name) for name in ('base.img', 'mid.qcow2', 'top.qcow2'))
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', base, '1M'], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.img', '-F', 'raw', mid], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2', top], check=True)
    link = str(tmp_path / 'link.img')
    (tmp_path / 'link.img').symlink_to(base)
    index = UsageIndex(resolve_links=True)
    index.add_domain_xml('vm1', "<domain><devices><disk type='file'><source file='%s'/><target dev='vdb'/>"
                                "</disk></devices></domain>" % top, live=False)
    index.add_header_chains()
    [use] = index.users(path=base)
    assert (use.domain, use.target, use.via, use.persistent, use.live) == ('vm1', 'vdb', top, True, False)
    assert index.users(path=mid)[0].via == top
    assert index.users(path=link)[0].domain == 'vm1', 'found under another name of the same file'


def test_usage_index_counts_a_qcow2_data_file_as_used(tmp_path):
    """QEMU writes a qcow2 image's guest data into its external data file: whoever uses the
    image uses that file, writable."""
    import shutil
    import subprocess
    if shutil.which('qemu-img') is None:
        pytest.skip('qemu-img is part of the lab packages')
    data, image = str(tmp_path / 'data.raw'), str(tmp_path / 'image.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', data, '1M'], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'data_file=%s' % data, image, '1M'], check=True)
    index = UsageIndex(resolve_links=True)
    index.add_domain_xml('vm1', "<domain><devices><disk type='file'><source file='%s'/><target dev='vdb'/>"
                                "</disk></devices></domain>" % image, live=False)
    index.add_header_chains()
    [use] = index.users(path=data)
    assert (use.domain, use.target, use.via, use.persistent) == ('vm1', 'vdb', image, True)


def test_a_failed_create_never_deletes_a_volume_it_did_not_make(client):
    from ansible_collections.virtops.storage.plugins.module_utils import _volume
    # test:///default is one state per process (other tests remove its demo pool): a pool of our own
    pool = client.conn.storagePoolCreateXML(
        _pool.build_xml(_pool.PoolDefinition(name='leftovers', type='dir', target_path='/leftovers')), 0)
    pool.createXML("<volume><name>theirs.img</name><capacity>1024</capacity></volume>", 0)
    ops = _volume.VolumeOps(client)
    with pytest.raises(StorageError):
        ops.create('leftovers', _volume.build_volume_xml('theirs.img', 2048, 0, 'raw'))
    assert client.lookup_volume(pool, 'theirs.img') is not None, 'the existing volume is still there'


def test_header_chains_end_at_loops_and_follow_volume_disks(tmp_path):
    import shutil
    import subprocess
    if shutil.which('qemu-img') is None:
        pytest.skip('qemu-img is part of the lab packages')
    pool_dir = tmp_path / 'pool'
    pool_dir.mkdir()
    base = str(pool_dir / 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '1M'], check=True)
    previous = base
    for number in range(40):  # deeper than any fixed small limit
        image = str(pool_dir / ('o%02d.qcow2' % number))
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', previous, '-F', 'qcow2', '-u', image, '1M'],
                       check=True)
        previous = image
    index = UsageIndex(resolve_links=True)
    index.add_domain_xml('vm1', "<domain><devices><disk type='volume'><source pool='p' volume='o39.qcow2'/>"
                                "<target dev='vdb'/></disk></devices></domain>", live=False)
    index.add_header_chains({('p', 'o39.qcow2'): previous})
    [use] = index.users(path=base)
    assert (use.domain, use.via) == ('vm1', previous)
    # a loop (a -> b -> a) ends the walk instead of running forever
    loop_a, loop_b = str(tmp_path / 'a.qcow2'), str(tmp_path / 'b.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', loop_b, '-F', 'qcow2', '-u', loop_a, '1M'],
                   check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', loop_a, '-F', 'qcow2', '-u', loop_b, '1M'],
                   check=True)
    index.add_domain_xml('vm2', "<domain><devices><disk type='file'><source file='%s'/><target dev='vdc'/>"
                                "</disk></devices></domain>" % loop_a, live=True)
    index.add_header_chains()
    assert [use.domain for use in index.users(path=loop_b)] == ['vm2']


class _Volume(object):
    """A volume whose XMLDesc fails with a given libvirt error code."""

    def __init__(self, code):
        self.code = code

    def name(self):
        return 'v.img'

    def XMLDesc(self, _flags):
        import libvirt
        err = libvirt.libvirtError('failed')
        err.get_error_code = lambda: self.code
        err.get_error_message = lambda: 'storage pool is not active' if self.code else 'boom'
        raise err


def test_a_volume_whose_pool_stopped_after_the_listing_reads_as_gone():
    import libvirt
    client = LibvirtClient('test:///default')
    assert client.volume_xml(_Volume(libvirt.VIR_ERR_OPERATION_INVALID), missing_ok=True) is None
    assert client.volume_xml(_Volume(libvirt.VIR_ERR_NO_STORAGE_VOL), missing_ok=True) is None
    with pytest.raises(StorageError):
        client.volume_xml(_Volume(libvirt.VIR_ERR_INTERNAL_ERROR), missing_ok=True)
    with pytest.raises(StorageError):
        client.volume_xml(_Volume(libvirt.VIR_ERR_OPERATION_INVALID))
