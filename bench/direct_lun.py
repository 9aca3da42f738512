# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: direct LUNs on the lab's real tgtd, libvirt and QEMU.

In process: reading every LUN of the open target through libiscsi (login, REPORT LUNS,
INQUIRY, VPD 0x83 and 0x80, READ CAPACITY). End to end (`ansible localhost -m`, start-up
included): direct_lun_info over the portal (qemu transport), a LUN hot-plugged into a running
domain by WWID, its unchanged re-run, and the detach; and on the kernel transport (against the
iscsiadm stand-in) a login whose udev links appear --udev-delay seconds late, to show the
bounded wait ends soon after they do. `ansible -m ping` is the baseline.
Everything it makes is named vbench-* and removed at the end.

    .venv/bin/python bench/direct_lun.py [--repeat 5] [--udev-delay 1.0]
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, '..', 'tests'), os.path.join(HERE, '..', 'tests', 'integration')]

import _support  # noqa: E402  links the collection, sets sys.path and ANSIBLE_COLLECTIONS_PATH
from _lab import ANSIBLE, Names, ansible_env, define_domain  # noqa: E402
from ansible_collections.virtops.storage.plugins.module_utils import _libiscsi, _scsi  # noqa: E402

ROOT_DISK = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
             "<target dev='vda' bus='virtio'/><boot order='1'/></disk>")
FAKES = os.path.join(HERE, '..', 'tests', 'fakes')


class BenchNames(Names):
    def __init__(self, conn, root):
        super(BenchNames, self).__init__(conn, root)
        self.prefix = 'vbench-' + self.prefix[len('vtest-'):]


def timed(module, args, expect, env=None):
    command = [ANSIBLE, 'localhost', '-c', 'local', '-m', module] + (['-a', json.dumps(args)] if args else [])
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, check=False,
                          env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default', **(env or {})))
    seconds = time.monotonic() - started
    if expect not in proc.stdout:
        raise SystemExit('expected %s from %s %s:\n%s%s' % (expect, module, args, proc.stdout, proc.stderr))
    return seconds


def read_luns(portal, initiator, target):
    with _libiscsi.Connection(portal, initiator, target) as connection:
        found = []
        for lun in _scsi.report_luns(connection.report_luns()):
            kind = _scsi.standard_inquiry(connection.inquiry(lun))[0]
            if kind in _scsi.DISK_TYPES:
                found.append((_scsi.wwid_from_page83(connection.inquiry(lun, 0x83)),
                              _scsi.serial_from_page80(connection.inquiry(lun, 0x80)),
                              _scsi.capacity16(connection.read_capacity16(lun))))
        return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--udev-delay', type=float, default=1.0)
    options = parser.parse_args()
    lab = _support.lab_env()
    portal, target, initiator = lab['LAB_ISCSI_PORTAL'], lab['LAB_OPEN_IQN'], lab['LAB_INITIATOR_IQN']
    conn = libvirt.open('qemu:///system')
    root_dir = os.path.join(lab.get('LAB_STATE_DIR', '/var/lib/virtops-lab'), 'bench')
    os.makedirs(root_dir, exist_ok=True)
    names = BenchNames(conn, root_dir)
    rows = dict((label, []) for label in (
        'read LUNs in process', 'ping', 'direct_lun_info (qemu)', 'hot-plug LUN (qemu)', 'unchanged re-run (qemu)',
        'detach LUN (qemu)', 'login + udev wait (kernel)'))
    sysroot = None
    try:
        root = names.path('root.img')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', root, '1M'], check=True)
        dom = define_domain(conn, names('vm'), ROOT_DISK % root, start=True)
        wwid = read_luns(portal, initiator, target)[0][0]
        lun = {'portal': portal, 'target': target, 'transport': 'qemu', 'wwid': wwid, 'domain': dom.name()}
        for _index in range(options.repeat):
            started = time.monotonic()
            read_luns(portal, initiator, target)
            rows['read LUNs in process'].append(time.monotonic() - started)
            rows['ping'].append(timed('ping', None, 'SUCCESS'))
            rows['direct_lun_info (qemu)'].append(timed('virtops.storage.direct_lun_info',
                                                        {'portal': portal, 'transport': 'qemu'}, 'SUCCESS'))
            rows['hot-plug LUN (qemu)'].append(timed('virtops.storage.direct_lun', lun, 'CHANGED'))
            rows['unchanged re-run (qemu)'].append(timed('virtops.storage.direct_lun', lun, 'SUCCESS'))
            rows['detach LUN (qemu)'].append(timed('virtops.storage.direct_lun', dict(lun, attached=False),
                                                   'CHANGED'))
            sysroot = tempfile.mkdtemp(prefix='vbench-sysroot-')
            env = {'VIRTOPS_STORAGE_SYSROOT': sysroot, 'PATH': FAKES + ':' + os.environ['PATH'],
                   'VIRTOPS_FAKE_UDEV_DELAY': str(options.udev_delay)}
            rows['login + udev wait (kernel)'].append(timed('virtops.storage.direct_lun',
                                                            {'portal': portal, 'target': target}, 'CHANGED', env))
            subprocess.run([os.path.join(FAKES, 'iscsiadm'), '--standin-cleanup'], check=True,
                           env=dict(os.environ, VIRTOPS_STORAGE_SYSROOT=sysroot), capture_output=True)
            shutil.rmtree(sysroot, ignore_errors=True)
            sysroot = None
        print('%d repetitions; udev links %.1f s late on the kernel transport' % (options.repeat, options.udev_delay))
        for label, values in rows.items():
            print('%-30s min %.3f s  median %.3f s  max %.3f s' % (label, min(values), statistics.median(values),
                                                                   max(values)))
    finally:
        if sysroot:
            subprocess.run([os.path.join(FAKES, 'iscsiadm'), '--standin-cleanup'], check=False,
                           env=dict(os.environ, VIRTOPS_STORAGE_SYSROOT=sysroot), capture_output=True)
            shutil.rmtree(sysroot, ignore_errors=True)
        names.cleanup()


if __name__ == '__main__':
    main()
