# -*- coding: utf-8 -*-
"""vm_state against the real libvirtd: power, autostart and the collection's notes, each
verified through libvirt itself (state, autostart flag, the <metadata> element of the
persistent definition)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import time

import libvirt
from lxml import etree

from _lab import define_domain

NS = 'https://virtops.example/xmlns/storage/1'


def notes(dom):
    """Our notes as libvirt keeps them in the persistent definition (independent parser)."""
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    found = root.findall('metadata/{%s}storage' % NS)
    assert len(found) <= 1
    return json.loads(found[0].text) if found else None


def snapshot(dom):
    return (dom.isActive(), dom.autostart(), dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def test_reading_changes_nothing(conn, names, run):
    dom = define_domain(conn, names('dom'))
    before = snapshot(dom)
    result = run('vm_state', {'name': names('dom')})
    assert not result.failed and not result.changed and result['actions'] == []
    assert result['domain'] == {'name': names('dom'), 'uuid': dom.UUIDString(), 'state': 'shutoff',
                                'running': False, 'persistent': True, 'autostart': False}
    assert result['metadata'] == {} and result['shutdown'] is None
    assert snapshot(dom) == before


def test_start_autostart_and_notes_check_mode_apply_rerun(conn, names, run):
    dom = define_domain(conn, names('dom'))
    args = {'name': names('dom'), 'state': 'running', 'autostart': True,
            'metadata': {'rescue': {'root': {'pool': 'p', 'volume': 'v'}, 'autostart': False}, 'n': 3}}
    before = snapshot(dom)
    checked = run('vm_state', args, check=True, diff=True)
    assert checked.changed and snapshot(dom) == before, 'check mode changed the domain'
    assert checked['domain']['state'] == 'running' and checked['domain']['autostart'] is True
    applied = run('vm_state', args, diff=True)
    assert applied.changed and applied['actions'] == checked['actions']
    assert applied['actions'] == ['set metadata n, rescue of %s' % names('dom'),
                                  'enable autostart of %s' % names('dom'), 'start %s' % names('dom')]
    assert applied['diff'] == checked['diff']
    assert dom.isActive() and dom.autostart() == 1
    assert notes(dom) == args['metadata']
    assert applied['metadata'] == args['metadata'] and applied['domain'] == checked['domain']
    again = run('vm_state', args)
    assert not again.changed and again['actions'] == []

    # one key removed, one kept, one replaced: only what was named changes
    result = run('vm_state', {'name': names('dom'), 'metadata': {'n': None, 'rescue': {'done': True}}})
    assert result.changed and notes(dom) == {'rescue': {'done': True}}
    # the running domain's own XML carries the notes too
    live = etree.fromstring(dom.XMLDesc(0)).find('metadata/{%s}storage' % NS)
    assert json.loads(live.text) == {'rescue': {'done': True}}
    result = run('vm_state', {'name': names('dom'), 'metadata': {'rescue': None}})
    assert result.changed and notes(dom) is None and result['metadata'] == {}


def test_graceful_shutdown_timeout_refuses_and_undoes_the_other_steps(conn, names, run):
    # a guest-less domain ignores the ACPI request: the graceful shutdown can only time out
    dom = define_domain(conn, names('dom'), start=True)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<storage>{"keep":1}</storage>', 'virtops', NS,
                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    before = snapshot(dom)
    started = time.monotonic()
    result = run('vm_state', {'name': names('dom'), 'state': 'shutoff', 'shutdown_timeout': 2, 'autostart': True,
                              'metadata': {'x': 1}})
    took = time.monotonic() - started
    assert result.failed and result['error_code'] == 'DOMAIN_RUNNING', result.get('msg')
    assert 'force_off' in result['msg'] and not result.changed
    assert took >= 2
    assert 'rolled back: restore autostart of %s' % names('dom') in result['actions']
    assert snapshot(dom) == before and dom.isActive()
    assert notes(dom) == {'keep': 1}


def test_forced_power_off_after_the_timeout_and_start_again(conn, names, run):
    dom = define_domain(conn, names('dom'), start=True)
    result = run('vm_state', {'name': names('dom'), 'state': 'shutoff', 'shutdown_timeout': 1, 'force_off': True})
    assert result.changed and result['shutdown'] == 'forced' and result['shutdown_seconds'] >= 1
    assert not dom.isActive() and result['domain']['state'] == 'shutoff'
    assert not run('vm_state', {'name': names('dom'), 'state': 'shutoff'}).changed
    result = run('vm_state', {'name': names('dom'), 'state': 'running'})
    assert result.changed and dom.isActive()


def test_paused_domain(conn, names, run):
    dom = define_domain(conn, names('dom'), start=True)
    dom.suspend()
    refused = run('vm_state', {'name': names('dom'), 'state': 'shutoff', 'shutdown_timeout': 1})
    assert refused.failed and refused['error_code'] == 'DOMAIN_RUNNING' and 'paused' in refused['msg']
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    result = run('vm_state', {'name': names('dom'), 'state': 'running'})
    assert result['actions'] == ['resume %s' % names('dom')] and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_transient_and_missing_domains(conn, names, run):
    dom = define_domain(conn, names('dom'), start=True)
    dom.undefine()  # still running: now transient
    for args in ({'autostart': True}, {'metadata': {'a': 1}}):
        args['name'] = names('dom')
        result = run('vm_state', args, check=True)
        assert result.failed and result['error_code'] == 'INVALID_ARGUMENT' and 'transient' in result['msg']
    result = run('vm_state', {'name': names('dom')})
    assert result['domain']['persistent'] is False and result['metadata'] == {}
    missing = run('vm_state', {'name': names('nothing'), 'state': 'running'})
    assert missing.failed and missing['error_code'] == 'DOMAIN_NOT_FOUND'
    # stopping a transient domain makes it vanish: that is a success, not DOMAIN_NOT_FOUND
    zero = run('vm_state', {'name': names('dom'), 'state': 'shutoff', 'shutdown_timeout': 0}, check=True)
    assert zero.failed and zero['error_code'] == 'INVALID_ARGUMENT' and dom.isActive()
    stopped = run('vm_state', {'name': names('dom'), 'state': 'shutoff', 'shutdown_timeout': 0, 'force_off': True})
    assert not stopped.failed, stopped.get('msg')
    assert stopped.changed and stopped['shutdown'] == 'forced' and stopped['domain']['state'] == 'shutoff'
    assert names('dom') not in [d.name() for d in conn.listAllDomains(0)]
