# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: storage_volume_info on a big pool, against the lab's real libvirt.

Builds a dir pool of --volumes volumes (sparse files) and --domains guest-less QEMU
domains whose disks use some of them, starts --running of the domains, then times
  (a) list_volumes() in this process (a fresh connection per repetition), and
  (b) the module end to end: `ansible localhost -m virtops.storage.storage_volume_info`,
for every volume of the pool, `unused: true` and `attached_to: <a running domain>`. It
also counts the libvirt calls of one list_volumes() run on the real connection.

Everything it makes is named vbench-*; it is removed at the end, and whatever an
interrupted earlier run left is removed at the start.

    .venv/bin/python bench/volume_info.py [--volumes 2000] [--domains 100] [--running 10] [--repeat 5]
"""

from __future__ import absolute_import, division, print_function

import argparse
import collections
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
import _support  # noqa: E402  links the collection, sets sys.path and ANSIBLE_COLLECTIONS_PATH

import libvirt  # noqa: E402

from ansible_collections.virtops.storage.plugins.module_utils._libvirt import LibvirtClient  # noqa: E402
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex  # noqa: E402
from ansible_collections.virtops.storage.plugins.module_utils._volume import list_volumes  # noqa: E402

URI = 'qemu:///system'
PREFIX = 'vbench-'
BENCH_ROOT = os.path.join(_support.lab_env().get('LAB_STATE_DIR', '/var/lib/virtops-lab'), 'bench')
ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
VOLUME_SIZE = 1024 * 1024  # sparse: no block is written


def say(text):
    print(text, file=sys.stderr, flush=True)


def _quiet(_context, _error):
    """libvirt prints every error to stderr by default; the ones that matter are raised."""


# ---------------------------------------------------------------------------------------
# The lab objects
def volume_name(number):
    return 'vol-%05d.img' % number


def cleanup(conn):
    """Remove every vbench- domain, pool and directory (this run's and leftovers)."""
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
    for pool in conn.listAllStoragePools(0):
        if pool.name().startswith(PREFIX):
            if pool.isActive():
                pool.destroy()
            if pool.isPersistent():
                pool.undefine()
    if os.path.isdir(BENCH_ROOT):
        for entry in os.listdir(BENCH_ROOT):
            if entry.startswith(PREFIX):
                shutil.rmtree(os.path.join(BENCH_ROOT, entry), ignore_errors=True)


def make_pool(conn, name, directory):
    os.makedirs(directory)
    pool = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                     % (name, directory), 0)
    pool.create(0)
    return pool


def make_volumes_as_files(pool, directory, count):
    """Sparse files put in the directory, then one refresh: libvirt finds them all."""
    start = time.perf_counter()
    for number in range(count):
        with open(os.path.join(directory, volume_name(number)), 'wb') as handle:
            handle.truncate(VOLUME_SIZE)
    written = time.perf_counter()
    pool.refresh(0)
    return [('write %d sparse files' % count, written - start),
            ('refresh the pool', time.perf_counter() - written)]


def make_volumes_through_libvirt(pool, _directory, count):
    """One storageVolCreateXML per volume."""
    start = time.perf_counter()
    for number in range(count):
        pool.createXML("<volume><name>%s</name><capacity unit='bytes'>%d</capacity>"
                       "<allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>"
                       % (volume_name(number), VOLUME_SIZE), 0)
    return [('create %d volumes (storageVolCreateXML)' % count, time.perf_counter() - start)]


def domain_xml(name, disks):
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
            "<devices>%s</devices></domain>" % (name, ''.join(disks)))


def disks_of(number, pool_name, directory):
    """Domain n uses two volumes: 2n as a file disk, 2n+1 as a type='volume' disk."""
    first, second = volume_name(2 * number), volume_name(2 * number + 1)
    return ["<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/></disk>" % os.path.join(directory, first),
            "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
            "<source pool='%s' volume='%s'/><target dev='vdb' bus='virtio'/></disk>" % (pool_name, second)]


# ---------------------------------------------------------------------------------------
# Counting the calls that cross the connection
class Counting(object):
    """Wraps a libvirt object; every method call is counted as 'Class.method', except
    name(), which libvirt-python answers from the local handle without asking the daemon."""

    LOCAL = frozenset(('name',))
    WRAPPED = (libvirt.virDomain, libvirt.virStoragePool, libvirt.virStorageVol)

    def __init__(self, target, calls):
        self._target, self._calls = target, calls

    def __getattr__(self, attr):
        value = getattr(self._target, attr)
        if attr in self.LOCAL or not callable(value):
            return value

        def call(*args, **kwargs):
            key = '%s.%s' % (type(self._target).__name__, attr)
            if attr == 'XMLDesc' and isinstance(self._target, libvirt.virDomain):
                key += '(inactive)' if args and args[0] & libvirt.VIR_DOMAIN_XML_INACTIVE else '(live)'
            self._calls[key] += 1
            return self._wrap(value(*args, **kwargs))
        return call

    def _wrap(self, result):
        if isinstance(result, list):
            return [self._wrap(item) for item in result]
        if isinstance(result, self.WRAPPED):
            return Counting(result, self._calls)
        return result


def counted_run(params):
    client = LibvirtClient(URI)
    calls = collections.Counter()
    client._conn = Counting(client.conn, calls)
    try:
        volumes = list_volumes(client, params)
    finally:
        client._conn = client._conn._target
        client.close()
    return volumes, calls


# ---------------------------------------------------------------------------------------
# Timing
def in_process(params):
    client = LibvirtClient(URI)  # a new connection each time, as the module opens one
    try:
        return list_volumes(client, params)
    finally:
        client.close()


def domain_pass_only():
    client = LibvirtClient(URI)
    try:
        return UsageIndex.build(client)
    finally:
        client.close()


def through_ansible(module, args):
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_STDOUT_CALLBACK='minimal',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
               ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_NOCOLOR='1')
    command = [ANSIBLE, 'localhost', '-c', 'local', '-m', module]
    if args:
        command += ['-a', json.dumps(args)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    head, _sep, body = proc.stdout.partition(' => ')
    if proc.returncode != 0 or 'SUCCESS' not in head:
        raise RuntimeError('%s failed (rc %d):\n%s\n%s' % (' '.join(command), proc.returncode,
                                                           proc.stdout[-2000:], proc.stderr[-2000:]))
    return json.loads(body)


def timed(function, repeat):
    """(seconds of each run, result of the last run)."""
    times, result = [], None
    for _run in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return times, result


def stats(times):
    return min(times), statistics.median(times), max(times)


# ---------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--volumes', type=int, default=2000, help='volumes in the pool (default 2000)')
    parser.add_argument('--domains', type=int, default=100, help='persistent domains (default 100)')
    parser.add_argument('--running', type=int, default=10, help='of which started (default 10)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs of each query (default 5)')
    parser.add_argument('--create', choices=('files', 'libvirt'), default='files',
                        help='make the volumes as sparse files plus one pool refresh (default), '
                             'or with one storageVolCreateXML each')
    parser.add_argument('--skip-module', action='store_true', help='time list_volumes() only, not ansible')
    args = parser.parse_args(argv)
    if args.volumes < 2 * args.domains:
        parser.error('each domain uses two volumes: --volumes must be at least 2 x --domains')
    if not 0 <= args.running <= args.domains or args.repeat < 1:
        parser.error('--running must be between 0 and --domains, --repeat at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))  # so that `finally` cleans up
    libvirt.registerErrorHandler(_quiet, None)
    conn = libvirt.open(URI)
    daemon_version = conn.getLibVersion()
    cleanup(conn)
    name = PREFIX + uuid.uuid4().hex[:8]
    directory = os.path.join(BENCH_ROOT, name)
    setup = collections.OrderedDict()
    rows = []
    try:
        pool = make_pool(conn, name, directory)
        maker = make_volumes_as_files if args.create == 'files' else make_volumes_through_libvirt
        setup.update(maker(pool, directory, args.volumes))
        listed = pool.numOfVolumes()
        if listed != args.volumes:
            raise RuntimeError('pool %s lists %d volumes, not %d' % (name, listed, args.volumes))

        start = time.perf_counter()
        domains = [conn.defineXML(domain_xml('%sdom-%03d' % (PREFIX, number), disks_of(number, name, directory)))
                   for number in range(args.domains)]
        setup['define %d domains' % args.domains] = time.perf_counter() - start
        start = time.perf_counter()
        for dom in domains[:args.running]:
            dom.create()
        setup['start %d domains' % args.running] = time.perf_counter() - start

        all_domains = conn.listAllDomains(0)
        host_running = sum(1 for dom in all_domains if dom.isActive())
        used = 2 * args.domains
        target = domains[0].name() if args.running else None
        queries = [('every volume', {'pool': name}, args.volumes),
                   ('unused: true', {'pool': name, 'unused': True}, args.volumes - used)]
        if target:
            queries.append(('attached_to: %s' % target, {'pool': name, 'attached_to': target}, 2))

        counted, calls = counted_run(dict(pool=name, name=None, key=None, path=None, unused=False,
                                          attached_to=None))
        if len(counted) != args.volumes or sum(1 for volume in counted if volume['in_use']) != used:
            raise RuntimeError('the counted run found %d volumes, %d in use; expected %d, %d'
                               % (len(counted), sum(1 for volume in counted if volume['in_use']), args.volumes, used))
        for label, query, expected in queries:
            params = dict(pool=None, name=None, key=None, path=None, unused=False, attached_to=None)
            params.update(query)
            say('timing %s: list_volumes() x %d' % (label, args.repeat))
            times, result = timed(functools.partial(in_process, params), args.repeat)
            if len(result) != expected:
                raise RuntimeError('%s: %d volumes, expected %d' % (label, len(result), expected))
            rows.append(('list_volumes()', label, len(result), stats(times)))
            if args.skip_module:
                continue
            say('timing %s: ansible storage_volume_info x %d' % (label, args.repeat))
            module_run = functools.partial(through_ansible, 'virtops.storage.storage_volume_info', query)
            times, result = timed(module_run, args.repeat)
            if len(result['volumes']) != expected:
                found = len(result['volumes'])
                raise RuntimeError('%s via ansible: %d volumes, expected %d' % (label, found, expected))
            rows.append(('ansible module', label, len(result['volumes']), stats(times)))
        say('timing the domain pass alone: UsageIndex.build() x %d' % args.repeat)
        times, _result = timed(domain_pass_only, args.repeat)
        rows.append(('UsageIndex', 'build() alone (the domain pass)', 0, stats(times)))
        if not args.skip_module:
            say('timing ansible.builtin.ping x %d (ansible\'s own start-up, for comparison)' % args.repeat)
            times, _result = timed(functools.partial(through_ansible, 'ansible.builtin.ping', None), args.repeat)
            rows.append(('ansible module', 'ansible.builtin.ping (baseline)', 0, stats(times)))
    finally:
        say('cleaning up %s' % name)
        cleanup(conn)
        conn.close()

    version = daemon_version
    print('storage_volume_info benchmark: libvirtd %d.%d.%d at %s'
          % (version // 1000000, version // 1000 % 1000, version % 1000, URI))
    print('pool %s: %d volumes; %d vbench domains (%d running), each using 2 volumes; '
          'the host has %d domains in all (%d running)'
          % (name, args.volumes, args.domains, args.running, len(all_domains), host_running))
    for label, seconds in setup.items():
        print('  setup: %-42s %7.2f s' % (label, seconds))
    print('libvirt calls of one list_volumes(pool) run: %d in all' % sum(calls.values()))
    for call, count in sorted(calls.items()):
        print('  %-44s %5d' % (call, count))
    print('')
    print('%-15s %-32s %8s %9s %9s %9s' % ('how', 'query', 'volumes', 'min s', 'median s', 'max s'))
    for how, label, count, (low, middle, high) in rows:
        print('%-15s %-32s %8d %9.3f %9.3f %9.3f' % (how, label, count, low, middle, high))
    print('(%d runs each; list_volumes() includes opening the connection)' % args.repeat)
    return 0


if __name__ == '__main__':
    sys.exit(main())
