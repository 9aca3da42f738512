# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: vm_disk end to end on a running domain of the lab's real libvirt.

Times `ansible localhost -m virtops.storage.vm_disk` (Ansible start-up included) for a
virtio hot-plug, its unchanged re-run, check mode, a SCSI hot-plug and hot-unplug, and a
virtio hot-unplug the guest-less domain never releases (HOTUNPLUG_TIMEOUT, unplug_timeout
1 s), with `ansible -m ping` as the baseline. --domains extra shut-off domains, each with a
disk, make the pass over every domain that guards VOLUME_IN_USE bigger.
Everything it makes is named vbench-* and removed at the end.

    .venv/bin/python bench/vm_disk.py [--repeat 5] [--domains 0]
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, '..', 'tests'), os.path.join(HERE, '..', 'tests', 'integration')]

import _support  # noqa: E402  links the collection, sets sys.path and ANSIBLE_COLLECTIONS_PATH
from _lab import ANSIBLE, Names, ansible_env, define_domain, make_dir_pool, make_volume  # noqa: E402

ROOT_DISK = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
             "<target dev='vda' bus='virtio'/><boot order='1'/></disk>")


class BenchNames(Names):
    def __init__(self, conn, root):
        super(BenchNames, self).__init__(conn, root)
        self.prefix = 'vbench-' + self.prefix[len('vtest-'):]


def timed(command):
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default'),
                          check=False)
    return time.monotonic() - started, proc.stdout


def vm_disk(args, check=False, expect='CHANGED'):
    seconds, out = timed([ANSIBLE, 'localhost', '-c', 'local', '-m', 'virtops.storage.vm_disk', '-a', json.dumps(args)]
                         + (['--check'] if check else []))
    if expect not in out:
        raise SystemExit('expected %s from %s:\n%s' % (expect, args, out))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--domains', type=int, default=0)
    options = parser.parse_args()
    conn = libvirt.open('qemu:///system')
    root_dir = os.path.join(_support.lab_env().get('LAB_STATE_DIR', '/var/lib/virtops-lab'), 'bench')
    os.makedirs(root_dir, exist_ok=True)
    names = BenchNames(conn, root_dir)
    rows = dict((label, []) for label in ('ping', 'check mode', 'hot-plug virtio', 'unchanged re-run',
                                          'hot-plug scsi', 'hot-unplug scsi', 'HOTUNPLUG_TIMEOUT virtio (1 s)'))
    try:
        pool = make_dir_pool(conn, names)[0]
        root = names.path('root.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', root, '16M'], check=True)
        dom = define_domain(conn, names('vm'), ROOT_DISK % root, start=True)
        for index in range(options.domains):
            other = names.path('other%d.qcow2' % index)
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', other, '1M'], check=True)
            define_domain(conn, names('other%d' % index), ROOT_DISK % other)
        for index in range(options.repeat):
            virtio, scsi = 'v%d.img' % index, 's%d.img' % index
            make_volume(conn, pool, virtio, 1 << 20)
            make_volume(conn, pool, scsi, 1 << 20)
            base = {'domain': dom.name(), 'pool': pool}
            rows['ping'].append(timed([ANSIBLE, 'localhost', '-c', 'local', '-m', 'ping'])[0])
            rows['check mode'].append(vm_disk(dict(base, volume=virtio), check=True))
            rows['hot-plug virtio'].append(vm_disk(dict(base, volume=virtio)))
            rows['unchanged re-run'].append(vm_disk(dict(base, volume=virtio), expect='SUCCESS'))
            rows['hot-plug scsi'].append(vm_disk(dict(base, volume=scsi, bus='scsi')))
            rows['hot-unplug scsi'].append(vm_disk(dict(base, volume=scsi, state='absent')))
            rows['HOTUNPLUG_TIMEOUT virtio (1 s)'].append(
                vm_disk(dict(base, volume=virtio, state='absent', unplug_timeout=1), expect='HOTUNPLUG_TIMEOUT'))
        print('%d repetitions, %d other domains' % (options.repeat, options.domains))
        for label, values in rows.items():
            print('%-32s min %.2f s  median %.2f s  max %.2f s' % (label, min(values), statistics.median(values),
                                                                   max(values)))
    finally:
        names.cleanup()


if __name__ == '__main__':
    main()
