# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who uses which storage: built from every domain's live and persistent XML in one pass."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import os

from ansible_collections.virtops.storage.plugins.module_utils import _xml
from ansible_collections.virtops.storage.plugins.module_utils._images import image_dependencies
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt


# Pools whose volumes are files named <target>/<volume>.
FILE_POOL_TYPES = frozenset(('dir', 'fs', 'netfs'))


def file_pool_directory(client, pool):
    """The directory that holds the volumes of a dir/fs/netfs pool (as <target>/<volume>), also
    while it is stopped; None for other pools and for one that has gone away."""
    xml = client.pool_xml(pool, missing_ok=True)
    if xml is None:
        return None
    root = _xml.parse(xml, 'pool XML')
    return _xml.text_of(root, 'target/path') if root.get('type') in FILE_POOL_TYPES else None


class DiskUse(object):
    """One domain's use of one disk source, merged over its live and persistent views."""

    __slots__ = ('domain', 'target', 'live', 'persistent', 'shareable', 'readonly', 'via')

    def __init__(self, domain, target, live=False, persistent=False, shareable=False, readonly=False, via=None):
        self.domain = domain
        self.target = target
        self.live = live
        self.persistent = persistent
        self.shareable = shareable
        self.readonly = readonly
        self.via = via  # the disk's own source, when this one is only in its backing chain

    def as_dict(self):
        return {'domain': self.domain, 'target': self.target, 'live': self.live, 'persistent': self.persistent,
                'via': self.via}


def disk_source_keys(disk):
    """The keys under which a <disk> (or <backingStore>) element's source can be found:
    ('path', p), ('volume', pool, name), ('network', protocol, host, name)."""
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


def _source_label(keys):
    """A disk source for people to read: its path, else pool/volume, else the network name."""
    first = dict((key[0], key) for key in reversed(keys))
    if 'path' in first:
        return first['path'][1]
    if 'volume' in first:
        return '%s/%s' % first['volume'][1:]
    if 'network' in first:
        return first['network'][3]
    return None


class UsageIndex(object):
    """Every disk of every domain, indexed by source; build() lists the domains once."""

    def __init__(self, resolve_links=False):
        self._uses = collections.OrderedDict()
        # With libvirt on this host, a path is also known by its real path, so a disk that
        # names a volume through a symbolic link (or /dev/disk/by-*) still counts as a use.
        self._resolve_links = resolve_links

    @classmethod
    def build(cls, client):
        """Two listings (running, persistent) and one XML read per view of each domain;
        nothing is asked per disk or per volume."""
        index = cls(resolve_links=client.is_local)
        for flags, live in ((libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE, True),
                            (libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT, False)):
            xml_flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
            for domain in client.list_domains(flags):
                xml = client.domain_xml(domain, xml_flags)
                if xml is not None:  # None: the domain went away meanwhile
                    index.add_domain_xml(domain.name(), xml, live=live)
        if index._resolve_links:
            index.add_header_chains(index.volume_paths(client))
        return index

    def add_header_chains(self, volume_paths=None, max_depth=1024):
        """Files that only the image headers name - backing files and qcow2 data files (a
        shut-off domain's XML lists no chain, and an overlay may live outside every pool): read
        from the files of this host, each image once. `volume_paths` maps (pool, volume) of
        <disk type='volume'> sources to their files."""
        volume_paths = volume_paths or {}
        headers = {}
        for key, per_source in list(self._uses.items()):
            path = key[1] if key[0] == 'path' else volume_paths.get(key[1:]) if key[0] == 'volume' else None
            direct = [use for use in per_source.values() if use.via is None]
            if not path or not path.startswith('/') or not direct:
                continue
            for chained in image_dependencies(path, headers, max_depth):
                for chain_key in self._with_real_paths([('path', chained)]):
                    for use in direct:
                        for live in [view for view, held in ((True, use.live), (False, use.persistent)) if held]:
                            self._add(chain_key, use.domain, use.target, live, (use.shareable, True), path)

    def volume_paths(self, client):
        """The files behind the <disk type='volume'> sources of file pools: one lookup and
        one XML read per pool named, none per disk."""
        paths = {}
        for pool_name in sorted(set(key[1] for key in self._uses if key[0] == 'volume')):
            pool = client.lookup_pool(pool_name)
            directory = file_pool_directory(client, pool) if pool is not None else None
            if directory:
                paths.update(((pool_name, key[2]), os.path.join(directory, key[2]))
                             for key in self._uses if key[0] == 'volume' and key[1] == pool_name)
        return paths

    def add_domain_xml(self, domain_name, xml, live):
        root = _xml.parse(xml, 'domain XML')
        for disk in root.findall('./devices/disk'):
            target = _xml.attr_of(disk, 'target', 'dev')
            flags = (disk.find('shareable') is not None, disk.find('readonly') is not None)
            own_keys = self._with_real_paths(disk_source_keys(disk))
            for key in own_keys:
                self._add(key, domain_name, target, live, flags, None)
            # a disk reads every image of its backing chain (live XML lists them)
            via = _source_label(own_keys) or target
            chained = disk.find('backingStore')
            while chained is not None and chained.find('source') is not None:
                for key in self._with_real_paths(disk_source_keys(chained)):
                    self._add(key, domain_name, target, live, (flags[0], True), via)
                chained = chained.find('backingStore')

    def _real_path(self, path):
        if not self._resolve_links or not path.startswith('/'):
            return path
        return os.path.realpath(path)

    def _with_real_paths(self, keys):
        extra = [('path', self._real_path(key[1])) for key in keys if key[0] == 'path']
        return keys + [key for key in extra if key not in keys]

    def _add(self, key, domain_name, target, live, flags, via):
        per_source = self._uses.setdefault(key, collections.OrderedDict())
        use = per_source.get(domain_name)
        if use is None:
            use = per_source[domain_name] = DiskUse(domain_name, target, via=via)
        if live:
            use.live = True
            use.target = target
        else:
            use.persistent = True
        use.shareable = use.shareable or flags[0]
        use.readonly = use.readonly or flags[1]
        if via is None and use.via is not None:  # a direct use outranks one through a chain
            use.via = None
            use.target = target

    def domains_using(self, domain_name):
        """(key, DiskUse) for every source the domain uses."""
        return [(key, per_source[domain_name]) for key, per_source in self._uses.items() if domain_name in per_source]

    def users(self, path=None, pool=None, volume=None):
        """The DiskUse records of a volume, found by its path and/or pool+name."""
        found = collections.OrderedDict()
        keys = []
        if path:
            keys.extend(self._with_real_paths([('path', path)]))
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

    def network_users(self, protocol, name):
        """The DiskUse records of a network disk source (rbd: "pool/image"), on any host."""
        return [use for found, use in self.network_uses(protocol) if found == name]

    def network_uses(self, protocol):
        """(source name, DiskUse) for every network disk of `protocol` (rbd: "pool/image")."""
        return [(key[3], use) for key, per_source in self._uses.items()
                if key[0] == 'network' and key[1] == protocol for use in per_source.values()]

    def pool_references(self, pool):
        """Disks that name `pool` in a <disk type='volume'>, whatever the volume."""
        return [(key[2], use) for key, per_source in self._uses.items()
                if key[0] == 'volume' and key[1] == pool for use in per_source.values()]
