# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _pool, _xml

ODD_NAME = u'odd & <name> \'quoted" 池'


@pytest.mark.parametrize('definition', [
    _pool.PoolDefinition(name=ODD_NAME, type='dir', target_path='/srv/a b'),
    _pool.PoolDefinition(name='f', type='fs', target_path='/mnt/f',
                         source=_pool.PoolSource(devices=('/dev/loop1',), format='ext4')),
    _pool.PoolDefinition(name='n', type='netfs', target_path='/mnt/n',
                         source=_pool.PoolSource(host='nas', dir='/export', format='nfs')),
    _pool.PoolDefinition(name='l', type='logical',
                         source=_pool.PoolSource(name='vg0', devices=('/dev/sdb', '/dev/sdc'), format='lvm2')),
    _pool.PoolDefinition(name='i', type='iscsi-direct', source=_pool.PoolSource(
        host='10.0.0.1', port=3260, iqn='iqn.2026-01.x:t', initiator='iqn.2026-01.x:i',
        auth_username='u', auth_secret_usage='virtops-pool/i')),
    _pool.PoolDefinition(name='s', type='scsi', target_path='/dev/disk/by-path', source=_pool.PoolSource(adapter='host0')),
    _pool.PoolDefinition(name='r', type='rbd', source=_pool.PoolSource(
        host='mon1', name='rbdpool', auth_username='admin', auth_secret_usage='virtops-pool/r')),
    _pool.PoolDefinition(name='z', type='zfs', source=_pool.PoolSource(name='tank', devices=('/dev/sdd',))),
    _pool.PoolDefinition(name='m', type='mpath', target_path='/dev/mapper'),
])
def test_build_then_parse_round_trips(definition):
    text = _pool.build_xml(definition)
    assert _pool.parse_definition(_xml.parse(text)) == definition
    assert _pool.definition_changes(definition, _pool.parse_definition(_xml.parse(text))) == []


def test_names_are_escaped_by_lxml():
    text = _pool.build_xml(_pool.PoolDefinition(name=ODD_NAME, type='dir', target_path='/x'))
    assert '&amp;' in text and '&lt;name&gt;' in text


@pytest.mark.parametrize('wanted, actual, expected', [
    ('<pool type="dir"><name>a</name></pool>', '<pool type="dir"><name>a</name></pool>', True),
    ('<pool type="dir"><name>a</name></pool>', '<pool type="dir"><name>a</name><uuid>u</uuid></pool>', False),
    ('<pool type="dir"><name>a</name></pool>', '<pool type="fs"><name>a</name></pool>', False),
    ('<pool><target><path>/a</path></target></pool>', '<pool><target><path>/b</path></target></pool>', False),
    ('<pool><capacity>5</capacity></pool>', '<pool><capacity>9</capacity></pool>', True),
    ('<p><d path="1"/><d path="2"/></p>', '<p><d path="2"/><d path="1"/></p>', False),
    ('<p><name> a </name></p>', '<p><name>a</name></p>', True),
])
def test_same_tree(wanted, actual, expected):
    assert _xml.same_tree(_xml.parse(wanted), _xml.parse(actual)) is expected


def test_parse_refuses_entities():
    text = '<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><p>&x;</p>'
    root = _xml.parse(text)
    assert 'root:' not in (root.text or '')


def test_values_xml_cannot_hold_are_invalid_arguments():
    from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
    with pytest.raises(StorageError) as caught:
        _pool.build_xml(_pool.PoolDefinition(name='x', type='dir', target_path='/a\x01b'))
    assert caught.value.code == 'INVALID_ARGUMENT'


def test_a_port_that_is_no_number_is_an_invalid_argument():
    from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
    with pytest.raises(StorageError) as caught:
        _pool.parse_definition(_xml.parse("<pool type='iscsi'><name>x</name><source><host name='h' port='abc'/>"
                                          "</source></pool>"))
    assert caught.value.code == 'INVALID_ARGUMENT'


def test_names_keep_their_spaces():
    assert _pool.parse_definition(_xml.parse("<pool type='dir'><name> a b </name></pool>")).name == ' a b '
