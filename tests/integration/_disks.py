# -*- coding: utf-8 -*-
"""What the vm_disk integration tests share: both views of a domain as libvirt shows them,
and the converge/refused checks bound to them."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import libvirt
from lxml import etree

import _lab

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
# the parts of the `disk` result that check mode predicts and a real run must give
DISK_FIELDS = ('target', 'bus', 'device', 'format', 'role', 'bootable', 'boot_order', 'readonly', 'shareable',
               'serial', 'guest_path', 'live', 'persistent', 'source')


def views(conn, name):
    """(live XML or None, persistent XML or None) of a domain, as libvirt gives them."""
    dom = conn.lookupByName(name)
    return (dom.XMLDesc(0) if dom.isActive() else None), (dom.XMLDesc(INACTIVE) if dom.isPersistent() else None)


def disks_of(xml):
    """{target: <disk> element} of a domain XML."""
    if xml is None:
        return {}
    return dict((disk.find('target').get('dev'), disk) for disk in etree.fromstring(xml).findall('devices/disk'))


def disk_in(conn, name, target):
    """(live <disk>, persistent <disk>) at `target`, None where absent."""
    live, config = views(conn, name)
    return disks_of(live).get(target), disks_of(config).get(target)


def converge(run, conn, args, verify=None, fields=DISK_FIELDS):
    return _lab.converge(run, 'vm_disk', args, lambda: views(conn, args['domain']), 'disk', fields, verify)


def refused(run, conn, args, code, domains=None):
    """Refused in check mode and for real; no watched domain (the one named by default) moved."""
    watched = domains or [args['domain']]
    return _lab.refused(run, 'vm_disk', args, code, lambda: [views(conn, name) for name in watched])
