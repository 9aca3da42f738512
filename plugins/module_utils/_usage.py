# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who uses which storage: built from every domain's live and persistent XML in one pass."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections

from ansible_collections.virtops.storage.plugins.module_utils import _xml
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt


class DiskUse(object):
    """One domain's use of one disk source, merged over its live and persistent views."""

    __slots__ = ('domain', 'target', 'live', 'persistent', 'shareable', 'readonly')

    def __init__(self, domain, target, live=False, persistent=False, shareable=False, readonly=False):
        self.domain = domain
        self.target = target
        self.live = live
        self.persistent = persistent
        self.shareable = shareable
        self.readonly = readonly

    def as_dict(self):
        return {'domain': self.domain, 'target': self.target, 'live': self.live, 'persistent': self.persistent}


def disk_source_keys(disk):
    """The keys under which a <disk> element's source can be found: ('path', p) and/or
    ('volume', pool, name)."""
    source = disk.find('source')
    if source is None:
        return []
    keys = []
    if disk.get('type') == 'volume':
        if source.get('pool') and source.get('volume'):
            keys.append(('volume', source.get('pool'), source.get('volume')))
    for attr in ('file', 'dev', 'dir'):
        if source.get(attr):
            keys.append(('path', source.get(attr)))
    if disk.get('type') == 'network' and source.get('name'):
        host = source.find('host')
        keys.append(('network', source.get('protocol'), host.get('name') if host is not None else None,
                     source.get('name')))
    return keys


class UsageIndex(object):
    """Every disk of every domain, indexed by source; build() lists the domains once."""

    def __init__(self):
        self._uses = collections.OrderedDict()

    @classmethod
    def build(cls, client):
        index = cls()
        for domain in client.list_domains():
            with client.errors('read the definition of domain %s' % domain.name()):
                name = domain.name()
                if domain.isActive():
                    index.add_domain_xml(name, domain.XMLDesc(0), live=True)
                if domain.isPersistent():
                    index.add_domain_xml(name, domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), live=False)
        return index

    def add_domain_xml(self, domain_name, xml, live):
        root = _xml.parse(xml, 'domain XML')
        for disk in root.findall('./devices/disk'):
            target = _xml.attr_of(disk, 'target', 'dev')
            for key in disk_source_keys(disk):
                per_source = self._uses.setdefault(key, collections.OrderedDict())
                use = per_source.get(domain_name)
                if use is None:
                    use = per_source[domain_name] = DiskUse(domain_name, target)
                if live:
                    use.live = True
                    use.target = target
                else:
                    use.persistent = True
                use.shareable = use.shareable or disk.find('shareable') is not None
                use.readonly = use.readonly or disk.find('readonly') is not None

    def users(self, path=None, pool=None, volume=None):
        """The DiskUse records of a volume, found by its path and/or pool+name."""
        found = collections.OrderedDict()
        keys = []
        if path:
            keys.append(('path', path))
        if pool and volume:
            keys.append(('volume', pool, volume))
        for key in keys:
            for domain_name, use in self._uses.get(key, {}).items():
                found.setdefault(domain_name, use)
        return list(found.values())

    def paths_under(self, directory):
        """(path, DiskUse) for every disk whose file or device path lies below `directory`."""
        return self.paths_starting_with(directory.rstrip('/') + '/')

    def paths_starting_with(self, prefix):
        """(path, DiskUse) for every disk whose path starts with `prefix` (a device's
        partitions: /dev/sdb1, /dev/sdb2 for /dev/sdb)."""
        return [(key[1], use) for key, per_source in self._uses.items()
                if key[0] == 'path' and key[1].startswith(prefix) for use in per_source.values()]

    def network_uses(self, protocol):
        """(source name, DiskUse) for every network disk of `protocol` (rbd: "pool/image")."""
        return [(key[3], use) for key, per_source in self._uses.items()
                if key[0] == 'network' and key[1] == protocol for use in per_source.values()]

    def pool_references(self, pool):
        """Disks that name `pool` in a <disk type='volume'>, whatever the volume."""
        return [(key[2], use) for key, per_source in self._uses.items()
                if key[0] == 'volume' and key[1] == pool for use in per_source.values()]
