# -*- coding: utf-8 -*-
"""The modules run as Ansible runs them (a process reading its arguments file): every
failure, argument validation included, carries a SPEC error_code."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from _support import COLLECTIONS_ROOT


def run_module(name, args, tmp_path):
    args_file = tmp_path / 'args.json'
    args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
    env.pop('LIBVIRT_DEFAULT_URI', None)
    proc = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.virtops.storage.plugins.modules.%s' % name, str(args_file)],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    return json.loads(proc.stdout)


@pytest.mark.parametrize('module, args, fragment', [
    ('storage_pool', {}, 'name'),
    ('storage_pool', {'name': 'p', 'bogus': 1}, 'bogus'),
    ('storage_pool', {'name': 'p', 'state': 'gone'}, 'state'),
    ('storage_pool', {'name': 'p', 'type': 'lvm'}, 'type'),
    ('storage_pool', {'name': 'p', 'type': 'dir', 'xml': '<pool/>'}, 'mutually exclusive'),
    ('storage_pool', {'name': 'p', 'type': 'iscsi', 'source': {'auth': {'password': 'x'}}}, 'username'),
    ('storage_pool', {'name': 'p', 'active': 'perhaps'}, 'active'),
    ('storage_pool_info', {'state': 'running'}, 'state'),
])
def test_argument_errors_are_invalid_argument(module, args, fragment, tmp_path):
    result = run_module(module, args, tmp_path)
    assert result['failed'] is True
    assert result['error_code'] == 'INVALID_ARGUMENT'
    assert fragment in result['msg']
    assert result['actions'] == []


def test_invalid_name_is_reported_before_connecting(tmp_path):
    result = run_module('storage_pool', {'name': 'a/b', 'type': 'dir', 'target': '/x',
                                         'uri': 'qemu+unix:///system?socket=/nonexistent'}, tmp_path)
    assert result['error_code'] == 'INVALID_NAME'


@pytest.mark.parametrize('module', ['storage_pool', 'storage_pool_info'])
def test_unreachable_libvirt(module, tmp_path):
    result = run_module(module, {'name': 'p', 'uri': 'qemu+unix:///system?socket=/nonexistent/sock'}, tmp_path)
    assert result['failed'] is True
    assert result['error_code'] == 'LIBVIRT_UNREACHABLE'
    assert '/nonexistent/sock' in result['msg']


def test_uri_falls_back_to_the_environment(tmp_path, monkeypatch):
    args_file = tmp_path / 'args.json'
    args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {}}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, LIBVIRT_DEFAULT_URI='test:///default')
    proc = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.virtops.storage.plugins.modules.storage_pool_info', str(args_file)],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    result = json.loads(proc.stdout)
    assert [pool['name'] for pool in result['pools']] == ['default-pool'], result
    assert result['changed'] is False and result['actions'] == []


def test_check_mode_against_the_test_driver_changes_nothing(tmp_path):
    args = {'name': 'new-pool', 'type': 'dir', 'target': '/new-pool', 'uri': 'test:///default',
            '_ansible_check_mode': True, '_ansible_diff': True}
    result = run_module('storage_pool', args, tmp_path)
    assert result['changed'] is True
    assert result['actions'] == ['define pool new-pool', 'build pool new-pool', 'start pool new-pool',
                                 'enable autostart of pool new-pool']
    assert result['pool']['uuid'] is None and result['pool']['state'] == 'active'
    assert result['diff']['before'] == {'name': 'new-pool', 'state': 'absent'}
    assert result['diff']['after']['target'] == '/new-pool'
