# -*- coding: utf-8 -*-
# Copyright (c) 2026 virtops.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pools: desired and observed state, the planner, and the steps that apply it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import dataclasses
import posixpath
from typing import Optional, Tuple

from ansible_collections.virtops.storage.plugins.module_utils import _secrets, _xml
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.storage.plugins.module_utils._names import (
    DEFINITION_NAME_MAX_BYTES, validate_name)
from ansible_collections.virtops.storage.plugins.module_utils._runner import Action, Plan
from ansible_collections.virtops.storage.plugins.module_utils._usage import UsageIndex

POOL_TYPES = ('dir', 'fs', 'netfs', 'logical', 'disk', 'iscsi', 'iscsi-direct', 'scsi', 'mpath', 'rbd', 'zfs')

# What each type cannot be defined without, checked before libvirt sees the XML so the
# user gets the option's name rather than an XPath.
REQUIRED_FIELDS = {
    'dir': ('target',),
    'fs': ('source.devices', 'target'),
    'netfs': ('source.host', 'source.dir', 'target'),
    'logical': (),
    'disk': ('source.devices',),
    'iscsi': ('source.host', 'source.iqn'),
    'iscsi-direct': ('source.host', 'source.iqn', 'source.initiator'),
    'scsi': ('source.adapter',),
    'mpath': (),
    'rbd': ('source.host', 'source.name'),
    'zfs': ('source.name',),
}
# Target paths libvirt insists on but that have one obvious value.
DEFAULT_TARGETS = {'disk': '/dev', 'iscsi': '/dev/disk/by-path', 'scsi': '/dev/disk/by-path', 'mpath': '/dev/mapper'}
# How building each type treats existing data:
# - directory: only makes the target directory, so it is safe before every start (a pool
#   redefined onto a new directory needs it); libvirt refuses NO_OVERWRITE here;
# - guarded: formats a device, so it runs with NO_OVERWRITE (and OVERWRITE only where the
#   device holds something else and the user allowed it), for newly defined pools only;
# - plain: creates something that must not exist yet (a zpool), for new pools only.
BUILD_MODES = {'dir': 'directory', 'netfs': 'directory', 'zfs': 'plain',
               'fs': 'guarded', 'logical': 'guarded', 'disk': 'guarded'}
# Types whose backend can delete volumes, and those that can delete the pool's storage.
VOLUME_DELETE_TYPES = frozenset(('dir', 'fs', 'netfs', 'logical', 'disk', 'rbd', 'zfs'))
STORAGE_DELETE_TYPES = frozenset(('dir', 'fs', 'netfs', 'logical', 'zfs'))
# Types whose volumes live below the target path (files, /dev/<vg>/<lv>, /dev/zvol/<pool>/<vol>).
PATH_TYPES = frozenset(('dir', 'fs', 'netfs', 'logical', 'zfs'))
# Elements of a stored definition that say nothing about what the pool is.
NOT_DEFINITION = _xml.RUNTIME_ELEMENTS | frozenset(('uuid',))


@dataclasses.dataclass(frozen=True)
class PoolSource:
    host: Optional[str] = None
    port: Optional[int] = None
    dir: Optional[str] = None
    devices: Tuple[str, ...] = ()
    name: Optional[str] = None
    format: Optional[str] = None
    iqn: Optional[str] = None
    initiator: Optional[str] = None
    adapter: Optional[str] = None
    auth_username: Optional[str] = None
    auth_secret_usage: Optional[str] = None
    auth_secret_uuid: Optional[str] = None

    def as_dict(self):
        return {
            'host': self.host, 'port': self.port, 'dir': self.dir, 'devices': list(self.devices),
            'name': self.name, 'format': self.format, 'iqn': self.iqn, 'initiator': self.initiator,
            'adapter': self.adapter,
            'auth': {'username': self.auth_username} if self.auth_username else None,
        }


@dataclasses.dataclass(frozen=True)
class PoolDefinition:
    name: str
    type: str
    target_path: Optional[str] = None
    source: PoolSource = PoolSource()
    uuid: Optional[str] = None


@dataclasses.dataclass
class DesiredPool:
    name: str
    state: str = 'present'
    definition: Optional[PoolDefinition] = None
    xml_tree: object = None        # the user's <pool>, when given as xml
    canonical_tree: object = None  # the same as libvirt parses and writes it back
    password: Optional[str] = None
    active: bool = True
    autostart: bool = True
    build: bool = True
    overwrite: bool = False
    purge: bool = False
    refresh: bool = False


@dataclasses.dataclass
class ObservedPool:
    definition: PoolDefinition
    xml_tree: object
    live_definition: Optional[PoolDefinition]
    active: bool
    persistent: bool
    autostart: bool
    volumes: Optional[Tuple[Tuple[str, str], ...]] = None
    users: Tuple[Tuple[str, object], ...] = ()
    live_tree: object = None


def secret_usage(pool_name):
    return 'virtops-pool/%s' % pool_name


def auth_kind(pool_type):
    return ('ceph', 'ceph') if pool_type == 'rbd' else ('chap', 'iscsi')


# ---------------------------------------------------------------------------------------
# XML
def _port(text):
    if text is None or text == '':
        return None
    try:
        return int(text)
    except ValueError:
        raise StorageError('INVALID_ARGUMENT', 'the port %r of the pool source is not a number' % text)


def parse_definition(root):
    """A PoolDefinition from a <pool> element (the user's, or libvirt's)."""
    source = root.find('source')
    host = source.find('host') if source is not None else None
    pool_type = root.get('type')
    device_paths = tuple(dev.get('path') for dev in (source.findall('device') if source is not None else []))
    iqn = None
    if pool_type in ('iscsi', 'iscsi-direct') and device_paths:
        iqn, device_paths = device_paths[0], ()
    auth = source.find('auth') if source is not None else None
    name = root.find('name')
    return PoolDefinition(
        name=name.text if name is not None else None,  # exactly as stored: spaces are part of a name
        type=pool_type,
        uuid=_xml.text_of(root, 'uuid'),
        target_path=_xml.text_of(root, 'target/path'),
        source=PoolSource(
            host=host.get('name') if host is not None else None,
            port=_port(host.get('port')) if host is not None else None,
            dir=_xml.attr_of(source, 'dir', 'path'),
            devices=device_paths,
            name=_xml.text_of(source, 'name'),
            format=_xml.attr_of(source, 'format', 'type'),
            iqn=iqn,
            initiator=_xml.attr_of(source, 'initiator/iqn', 'name'),
            adapter=_xml.attr_of(source, 'adapter', 'name'),
            auth_username=auth.get('username') if auth is not None else None,
            auth_secret_usage=_xml.attr_of(auth, 'secret', 'usage'),
            auth_secret_uuid=_xml.attr_of(auth, 'secret', 'uuid'),
        ))


def _set_auth(source, definition):
    src = definition.source
    auth = _xml.sub(source, 'auth', {'type': auth_kind(definition.type)[0], 'username': src.auth_username})
    _xml.sub(auth, 'secret', {'usage': src.auth_secret_usage, 'uuid': src.auth_secret_uuid})


def build_xml(definition):
    """The <pool> XML text of a new pool."""
    root = _xml.element('pool', {'type': definition.type})
    _xml.sub(root, 'name', text=definition.name)
    if definition.uuid:
        _xml.sub(root, 'uuid', text=definition.uuid)
    src = definition.source
    source = _xml.sub(root, 'source')
    if src.host:
        _xml.sub(source, 'host', {'name': src.host, 'port': src.port})
    for path in src.devices:
        _xml.sub(source, 'device', {'path': path})
    if src.iqn:
        _xml.sub(source, 'device', {'path': src.iqn})
    if src.dir:
        _xml.sub(source, 'dir', {'path': src.dir})
    if src.adapter:
        _xml.sub(source, 'adapter', {'type': 'scsi_host', 'name': src.adapter})
    if src.name:
        _xml.sub(source, 'name', text=src.name)
    if src.format:
        _xml.sub(source, 'format', {'type': src.format})
    if src.initiator:
        _xml.sub(_xml.sub(source, 'initiator'), 'iqn', {'name': src.initiator})
    if src.auth_username:
        _set_auth(source, definition)
    if definition.target_path:
        _xml.sub(_xml.sub(root, 'target'), 'path', text=definition.target_path)
    return _xml.to_string(root)


def _child(parent, tag, attrs=None):
    found = parent.find(tag)
    return found if found is not None else _xml.sub(parent, tag, attrs)


def patched_xml(stored, wanted):
    """The stored definition with the user's fields written over it: everything the user
    did not manage (permissions, further hosts, adapter details, mount options) stays."""
    root = _xml.parse(_xml.to_string(stored))
    for node in [child for child in root if child.tag in _xml.RUNTIME_ELEMENTS]:
        root.remove(node)
    src = wanted.source
    if wanted.target_path:
        _child(_child(root, 'target'), 'path').text = wanted.target_path
    source = _child(root, 'source')
    if src.host:
        host = _child(source, 'host')
        host.set('name', src.host)
        if src.port is not None:
            host.set('port', str(src.port))
    paths = src.devices + ((src.iqn,) if src.iqn else ())
    if paths and tuple(device.get('path') for device in source.findall('device')) != paths:
        for device in source.findall('device'):
            source.remove(device)
        for path in paths:
            _xml.sub(source, 'device', {'path': path})
    if src.dir:
        _child(source, 'dir').set('path', src.dir)
    if src.adapter:
        _child(source, 'adapter', {'type': 'scsi_host'}).set('name', src.adapter)
    if src.name:
        _child(source, 'name').text = src.name
    if src.format:
        _child(source, 'format').set('type', src.format)
    if src.initiator:
        _child(_child(source, 'initiator'), 'iqn').set('name', src.initiator)
    current = parse_definition(root).source
    if (current.auth_username, current.auth_secret_usage, current.auth_secret_uuid) != (
            src.auth_username, src.auth_secret_usage, src.auth_secret_uuid):
        for auth in source.findall('auth'):
            source.remove(auth)
        if src.auth_username:
            _set_auth(source, wanted)
    return _xml.to_string(root)


# ---------------------------------------------------------------------------------------
# From the module's options
def _normalize_path(path, option):
    if not path.startswith('/'):
        raise StorageError('INVALID_ARGUMENT', '%s must be an absolute path, got %r' % (option, path))
    return posixpath.normpath(path)


def desired_from_params(params):
    """Validate the module's options and return a DesiredPool."""
    name = validate_name(params['name'], 'pool name', DEFINITION_NAME_MAX_BYTES)
    desired = DesiredPool(
        name=name, state=params['state'], active=params['active'], autostart=params['autostart'],
        build=params['build'], overwrite=params['overwrite'], purge=params['purge'], refresh=params['refresh'])
    if params.get('xml'):
        desired.xml_tree, desired.definition = _definition_from_xml(params['xml'], name)
    elif params.get('type'):
        desired.definition, desired.password = _definition_from_options(name, params)
    elif params.get('target') or params.get('source'):
        raise StorageError('INVALID_ARGUMENT', 'type is required with target or source')
    if desired.purge and desired.state != 'absent':
        raise StorageError('INVALID_ARGUMENT', 'purge only applies with state=absent')
    return desired


def _definition_from_xml(text, name):
    root = _xml.parse(text, 'xml')
    if root.tag != 'pool':
        raise StorageError('INVALID_ARGUMENT', 'xml must be a <pool> definition, got <%s>' % root.tag)
    name_node = root.find('name')
    if name_node is None:
        name_node = _xml.element('name')
        root.insert(0, name_node)
        name_node.text = name
    elif name_node.text != name:
        raise StorageError('INVALID_ARGUMENT', 'the <name> in xml (%r) differs from name (%r)' % (name_node.text, name))
    if root.get('type') not in POOL_TYPES:
        raise StorageError('INVALID_ARGUMENT', 'xml: pool type %r is not one of %s' % (root.get('type'), ', '.join(POOL_TYPES)))
    return root, parse_definition(root)


def _definition_from_options(name, params):
    source = dict(params.get('source') or {})
    auth = source.pop('auth', None) or {}
    port = source.get('port')
    if port is not None and not 0 < port < 65536:
        raise StorageError('INVALID_ARGUMENT', 'source.port must be between 1 and 65535, got %s' % port)
    target = params.get('target')
    definition = PoolDefinition(
        name=name, type=params['type'],
        target_path=_normalize_path(target, 'target') if target else None,
        source=PoolSource(
            host=source.get('host'), port=port, dir=source.get('dir'),
            devices=tuple(_normalize_path(dev, 'source.devices') for dev in source.get('devices') or ()),
            name=source.get('name'), format=source.get('format'), iqn=source.get('iqn'),
            initiator=source.get('initiator'), adapter=source.get('adapter'),
            auth_username=auth.get('username'),
            auth_secret_usage=secret_usage(name) if auth.get('username') else None))
    return definition, auth.get('password')


def _check_complete(definition):
    """A new pool needs what its type cannot be defined without (an existing one keeps
    what it has, so only the fields given are managed)."""
    values = {'target': definition.target_path}
    values.update(('source.%s' % field.name, getattr(definition.source, field.name))
                  for field in dataclasses.fields(PoolSource))
    missing = [option for option in REQUIRED_FIELDS[definition.type] if not values.get(option)]
    if missing:
        raise StorageError('INVALID_ARGUMENT', 'a new pool of type %s needs %s' % (definition.type, ', '.join(missing)))
    if definition.source.port is not None and not definition.source.host:
        raise StorageError('INVALID_ARGUMENT', 'source.port needs source.host')


# ---------------------------------------------------------------------------------------
# Comparing
_SOURCE_FIELDS = ('host', 'port', 'dir', 'devices', 'name', 'format', 'iqn', 'initiator', 'adapter')


def definition_changes(desired, observed):
    """Names of the fields where `observed` differs from what `desired` asks for.

    A field the user left out is not managed and never differs, except authentication:
    leaving out source.auth asks for a pool without it.
    """
    changed = []
    if desired.target_path and desired.target_path != observed.target_path:
        changed.append('target')
    for field in _SOURCE_FIELDS:
        wanted = getattr(desired.source, field)
        if wanted not in (None, ()) and wanted != getattr(observed.source, field):
            changed.append('source.%s' % field)
    if desired.source.auth_username != observed.source.auth_username:
        changed.append('source.auth.username')
    elif desired.source.auth_username and (
            (desired.source.auth_secret_usage or None, desired.source.auth_secret_uuid or None) !=
            (observed.source.auth_secret_usage or None, observed.source.auth_secret_uuid or None)):
        changed.append('source.auth.secret')
    return changed


def pool_view(definition, active, autostart):
    """The managed fields, as shown in --diff (unset source fields left out)."""
    source = dict((key, value) for key, value in definition.source.as_dict().items() if value not in (None, []))
    return {'name': definition.name, 'state': 'present', 'type': definition.type,
            'target': definition.target_path, 'source': source,
            'active': active, 'autostart': autostart}


def merge_definition(desired, observed):
    """The definition the pool will have: the user's fields over the existing ones."""
    if observed is None:
        return dataclasses.replace(desired, target_path=desired.target_path or DEFAULT_TARGETS.get(desired.type))
    src = {}
    for field in dataclasses.fields(PoolSource):
        wanted = getattr(desired.source, field.name)
        src[field.name] = wanted if wanted not in (None, ()) else getattr(observed.source, field.name)
    if not desired.source.auth_username:
        src.update(auth_username=None, auth_secret_usage=None, auth_secret_uuid=None)
    return dataclasses.replace(desired, uuid=observed.uuid, target_path=desired.target_path or observed.target_path,
                               source=PoolSource(**src))


# ---------------------------------------------------------------------------------------
# Planning: pure functions of (desired, observed)
def plan_pool(desired, observed, secrets=None):
    """`secrets` maps a usage type ("iscsi", "ceph") to the pool's ObservedSecret."""
    secrets = dict((kind, secret) for kind, secret in (secrets or {}).items() if secret is not None)
    if desired.state == 'absent':
        return _plan_absent(desired, observed, secrets)
    return _plan_present(desired, observed, secrets)


def _without_filled_permissions(stored, wanted):
    """libvirt writes the target directory's real owner, group and mode into a pool's
    definition once it starts: those it filled in are not differences from the user's."""
    stored = _xml.parse(_xml.to_string(stored))
    kept = wanted.find('target/permissions')
    found = stored.find('target/permissions')
    if found is not None:
        if kept is None:
            found.getparent().remove(found)
        else:
            for child in list(found):
                if kept.find(child.tag) is None:
                    found.remove(child)
    return stored


def _same_as_xml(desired, stored):
    return _xml.same_tree(desired.canonical_tree, _without_filled_permissions(stored, desired.canonical_tree),
                          NOT_DEFINITION)


def _xml_mode_changes(desired, observed):
    """With xml, the whole definition is managed: libvirt's own rendering of the user's
    XML must equal what libvirt stores (UUID and sizes aside)."""
    wanted_uuid = _xml.text_of(desired.canonical_tree, 'uuid') if _xml.text_of(desired.xml_tree, 'uuid') else None
    if wanted_uuid and wanted_uuid != observed.definition.uuid:
        raise StorageError('INVALID_ARGUMENT', 'the <uuid> in xml (%s) is not the UUID of the existing pool %r (%s)'
                           % (wanted_uuid, desired.name, observed.definition.uuid))
    if _same_as_xml(desired, observed.xml_tree):
        return []
    return definition_changes(parse_definition(desired.canonical_tree), observed.definition) + ['xml']


def _plan_present(desired, observed, secrets):
    plan = Plan()
    name = desired.name
    wanted = desired.definition
    plan.extra['restart_required'] = False
    if observed is None:
        return _plan_new(plan, desired, secrets)

    current = observed.definition
    if wanted is not None and wanted.type != current.type:
        raise StorageError('INVALID_ARGUMENT', 'pool %r exists with type %s; remove it before defining it as %s'
                           % (name, current.type, wanted.type))
    kind = auth_kind(current.type)[1]
    plan.before = pool_view(current, observed.active, observed.autostart)
    after_definition = current
    changes = []
    secret_changed = False
    if wanted is not None:
        if desired.xml_tree is not None:
            changes = _xml_mode_changes(desired, observed)
            after_definition = parse_definition(desired.canonical_tree)
        else:
            changes = definition_changes(wanted, current)
            after_definition = merge_definition(wanted, current)
        after_definition = dataclasses.replace(after_definition, uuid=current.uuid)
        secret_changed = _plan_secret(plan, desired, secrets.get(kind), after_definition)
    if changes or not observed.persistent:
        # A transient pool is made persistent first: `state: present` means defined, and
        # stopping a transient pool would make it vanish.
        plan.add('%s pool %s%s' % ('redefine' if observed.persistent else 'persist', name,
                                   ' (%s)' % ', '.join(changes) if changes else ''),
                 'define', (_redefinition_xml(desired, observed),))
    if wanted is not None and observed.active and desired.active:
        if desired.xml_tree is not None:
            live_changes = [] if _same_as_xml(desired, observed.live_tree) \
                else (definition_changes(after_definition, observed.live_definition) or ['xml'])
        else:
            live_changes = definition_changes(wanted, observed.live_definition)
        if live_changes or secret_changed:
            plan.extra['restart_required'] = True
            plan.warnings.append('pool %s is active and still runs its previous definition (%s); stop and start it '
                                 'to use the new one' % (name, ', '.join(live_changes or ['source.auth.password'])))
    plan.after = pool_view(after_definition, desired.active, desired.autostart)
    if secrets.get(kind) is not None:
        _show_password(plan.before, 'stored')
        _show_password(plan.after, 'updated' if secret_changed else 'stored')
    if desired.active and not observed.active:
        if desired.build and BUILD_MODES.get(current.type) == 'directory':
            plan.add('build pool %s' % name, 'build', (name, 'directory', False))
        plan.add('start pool %s' % name, 'start', (name,))
    elif not desired.active and observed.active:
        plan.add('stop pool %s' % name, 'stop', (name,))
    if desired.autostart != observed.autostart:
        plan.add('%s autostart of pool %s' % ('enable' if desired.autostart else 'disable', name),
                 'set_autostart', (name, desired.autostart))
    if desired.refresh and desired.active:
        plan.add('refresh pool %s' % name, 'refresh', (name,), changes=False)
    if wanted is not None and after_definition.source.auth_secret_usage != secret_usage(name) \
            and secrets.get(kind) is not None:
        plan.add('remove the secret of pool %s' % name, 'remove_secret', (kind, secret_usage(name)))
    return plan


def _plan_new(plan, desired, secrets):
    name = desired.name
    wanted = desired.definition
    if wanted is None:
        raise StorageError('POOL_NOT_FOUND', 'storage pool %r does not exist; give type (with its options) '
                                             'or xml to define it' % name)
    if desired.xml_tree is None:
        wanted = merge_definition(wanted, None)
        _check_complete(wanted)
    kind = auth_kind(wanted.type)[1]
    if wanted.source.auth_secret_usage == secret_usage(name) and desired.password is None \
            and secrets.get(kind) is None:
        raise StorageError('INVALID_ARGUMENT', 'source.auth.password is required to define pool %r' % name)
    plan.before = {'name': name, 'state': 'absent'}
    plan.after = pool_view(wanted, desired.active, desired.autostart)
    if _plan_secret(plan, desired, secrets.get(kind), wanted):
        _show_password(plan.after, 'stored')
    xml = build_xml(wanted) if desired.xml_tree is None else _xml.to_string(desired.xml_tree)
    plan.add('define pool %s' % name, 'define', (xml,), undo=Action('undefine pool %s' % name, 'undefine', (name,)))
    mode = BUILD_MODES.get(wanted.type)
    if desired.build and mode:
        formatting = mode == 'guarded' and desired.overwrite
        plan.add('build pool %s%s' % (name, ' (formatting allowed)' if formatting else ''), 'build',
                 (name, mode, desired.overwrite))
    if desired.active:
        plan.add('start pool %s' % name, 'start', (name,), undo=Action('stop pool %s' % name, 'stop', (name,)))
    if desired.autostart:
        plan.add('enable autostart of pool %s' % name, 'set_autostart', (name, True))
    return plan


def _redefinition_xml(desired, observed):
    """The user's own XML (with the pool's UUID), or the stored XML with the user's fields
    written over it (a transient pool without a definition given: its own XML)."""
    if desired.definition is None:
        return patched_xml(observed.xml_tree, dataclasses.replace(observed.definition, target_path=None,
                                                                  source=observed.definition.source))
    if desired.xml_tree is None:
        return patched_xml(observed.xml_tree, desired.definition)
    root = _xml.parse(_xml.to_string(desired.xml_tree))
    if root.find('uuid') is None:
        _xml.sub(root, 'uuid', text=observed.definition.uuid)
    return _xml.to_string(root)


def _show_password(view, state):
    """A diff never holds the password; it says whether one is stored or being updated."""
    auth = (view.get('source') or {}).get('auth')
    if auth:
        auth['password'] = state


def _plan_secret(plan, desired, current, wanted):
    """Store the password in the pool's secret when the secret does not already hold it.
    A secret left from an earlier failed run is reused, keeping its UUID."""
    if not (wanted.source.auth_username and desired.password is not None):
        return False
    if wanted.source.auth_secret_usage != secret_usage(desired.name):
        return False
    if current is not None and current.matches:
        return False
    kind = auth_kind(wanted.type)[1]
    undo = None if current is not None else Action(
        'remove the secret of pool %s' % desired.name, 'remove_secret', (kind, secret_usage(desired.name)))
    plan.add('%s the secret of pool %s' % ('store' if current is None else 'update', desired.name), 'store_secret',
             (kind, secret_usage(desired.name), 'password of pool %s' % desired.name, desired.password,
              current.uuid if current else None), undo=undo)
    return True


def _plan_absent(desired, observed, secrets):
    plan = Plan()
    name = desired.name
    plan.after = {'name': name, 'state': 'absent'}
    if observed is None:
        plan.before = dict(plan.after)
        for kind in sorted(secrets):  # left behind by a failed create, or by hand
            plan.add('remove the secret of pool %s' % name, 'remove_secret', (kind, secret_usage(name)))
        return plan
    current = observed.definition
    plan.before = pool_view(current, observed.active, observed.autostart)
    persistent = observed.persistent
    if desired.purge:
        if current.type not in VOLUME_DELETE_TYPES:
            raise StorageError('INVALID_ARGUMENT', 'purge is not possible for pool %r: libvirt cannot delete the '
                                                   'volumes of a %s pool' % (name, current.type))
        if observed.users:
            raise _in_use(name, observed.users)
        if not persistent:  # a transient pool vanishes when stopped: keep it to delete its storage
            plan.add('persist pool %s to delete its storage' % name, 'define', (_xml.to_string(observed.xml_tree),))
            persistent = True
        if not observed.active:
            plan.add('start pool %s to list its volumes' % name, 'start', (name,),
                     undo=Action('stop pool %s' % name, 'stop', (name,)))
            plan.add('delete every volume of pool %s' % name, 'delete_all_volumes', (name,))
        else:
            for volume, _path in observed.volumes or ():
                plan.add('delete volume %s of pool %s' % (volume, name), 'delete_volume', (name, volume))
        plan.add('stop pool %s' % name, 'stop', (name,))
        if current.type in STORAGE_DELETE_TYPES:
            plan.add('delete the storage of pool %s' % name, 'delete_storage', (name,))
    elif observed.active:
        plan.add('stop pool %s' % name, 'stop', (name,))
    if persistent:
        plan.add('undefine pool %s' % name, 'undefine', (name,))
    for kind in sorted(secrets):
        plan.add('remove the secret of pool %s' % name, 'remove_secret', (kind, secret_usage(name)))
    return plan


def _in_use(name, users):
    return StorageError('POOL_IN_USE', 'pool %r cannot be purged: %s' % (name, '; '.join(
        'volume %s is used by domain %s' % (volume, use.domain) for volume, use in users)),
        used_by=[dict(use.as_dict(), volume=volume) for volume, use in users])


# ---------------------------------------------------------------------------------------
# Observing and applying: the only code here with side effects
def pool_users(definition, volumes, usage):
    """(volume, DiskUse) for every domain disk that lives in the pool, found by the
    volumes' paths and names and, so that an inactive pool is covered too, by where the
    pool's type keeps its volumes."""
    found = []
    seen = set()

    def add(volume, use):
        if (volume, use.domain) not in seen:
            seen.add((volume, use.domain))
            found.append((volume, use))

    by_path = dict((path, volume) for volume, path in volumes or ())
    for volume, path in volumes or ():
        for use in usage.users(path=path, pool=definition.name, volume=volume):
            add(volume, use)
    for volume, use in usage.pool_references(definition.name):
        add(volume, use)
    if definition.type in PATH_TYPES and definition.target_path:
        for path, use in usage.paths_under(definition.target_path):
            add(by_path.get(path, posixpath.basename(path)), use)
    if definition.type == 'disk':
        for device in definition.source.devices:
            for path, use in usage.paths_starting_with(device):
                add(by_path.get(path, posixpath.basename(path)), use)
    if definition.type == 'rbd' and definition.source.name:
        for image, use in usage.network_uses('rbd'):
            if image.startswith(definition.source.name + '/'):
                add(image.split('/', 1)[1], use)
    return tuple(found)


class PoolOps(object):
    """Reads pools from libvirt and carries out the planned steps."""

    def __init__(self, client):
        self.client = client
        self._usage = None  # who uses what: read from every domain once per run

    def usage(self):
        if self._usage is None:
            self._usage = UsageIndex.build(self.client)
        return self._usage

    def observe(self, name, with_usage=False):
        pool = self.client.lookup_pool(name)
        if pool is None:
            return None
        with self.client.errors('read pool %s' % name):
            active = bool(pool.isActive())
            persistent = bool(pool.isPersistent())
            stored_xml = self.client.pool_xml(pool, inactive=persistent)
            live_xml = self.client.pool_xml(pool) if active else None
            autostart = bool(pool.autostart()) if persistent else False
            volumes = None
            if active:
                if with_usage:  # what purge deletes must be what is there now
                    pool.refresh(0)
                volumes = tuple((vol.name(), vol.path()) for vol in pool.listAllVolumes(0))
        stored = _xml.parse(stored_xml, 'pool XML')
        live = _xml.parse(live_xml, 'pool XML') if live_xml else None
        observed = ObservedPool(
            definition=parse_definition(stored), xml_tree=stored, live_tree=live,
            live_definition=parse_definition(live) if live is not None else None,
            active=active, persistent=persistent, autostart=autostart, volumes=volumes)
        if with_usage:
            observed.users = pool_users(observed.definition, volumes, self.usage())
        return observed

    def observe_secrets(self, name, kinds, password=None):
        return dict((kind, _secrets.observe_secret(self.client, kind, secret_usage(name), password)) for kind in kinds)

    def define(self, xml):
        self.client.define_pool(xml)

    def undefine(self, name):
        with self.client.errors('undefine pool %s' % name):
            self.client.get_pool(name).undefine()

    def build(self, name, mode, overwrite):
        pool = self.client.get_pool(name)
        if mode != 'guarded':
            with self.client.errors('build pool %s' % name):
                pool.build(0)
            return
        try:
            pool.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
            return
        except libvirt.libvirtError as err:
            message = err.get_error_message() or str(err)
            if err.get_error_code() != libvirt.VIR_ERR_STORAGE_POOL_BUILT:
                raise StorageError('LIBVIRT_ERROR', 'build pool %s failed: %s' % (name, message),
                                   libvirt_code=err.get_error_code())
        # libvirt says STORAGE_POOL_BUILT both when the device already holds the wanted
        # format (use it as it is, even with overwrite: nothing needs formatting) and when
        # it holds something else (format it only if the user allowed it).
        if 'already formatted using' in message:
            return
        if not overwrite:
            raise StorageError('FORMAT_MISMATCH', 'build pool %s refused: %s; the device holds other data, which is '
                                                  'never formatted unless overwrite=true' % (name, message))
        with self.client.errors('build pool %s (formatting)' % name):
            pool.build(libvirt.VIR_STORAGE_POOL_BUILD_OVERWRITE)

    def start(self, name):
        with self.client.errors('start pool %s' % name):
            self.client.get_pool(name).create(0)

    def stop(self, name):
        with self.client.errors('stop pool %s' % name):
            pool = self.client.get_pool(name)
            if pool.isActive():
                pool.destroy()

    def set_autostart(self, name, enabled):
        with self.client.errors('set autostart of pool %s' % name):
            self.client.get_pool(name).setAutostart(1 if enabled else 0)

    def refresh(self, name):
        with self.client.errors('refresh pool %s' % name):
            self.client.get_pool(name).refresh(0)

    def delete_volume(self, pool_name, volume_name):
        self.client.delete_volume(pool_name, volume_name)

    def delete_all_volumes(self, pool_name):
        """Purge of a pool that was inactive: its volumes are known only now, so who uses
        them is checked again (against the domains read while planning) before anything
        is deleted."""
        pool = self.client.get_pool(pool_name)
        with self.client.errors('list the volumes of pool %s' % pool_name):
            pool.refresh(0)
            volumes = tuple((vol.name(), vol.path()) for vol in pool.listAllVolumes(0))
        definition = parse_definition(_xml.parse(self.client.pool_xml(pool), 'pool XML'))
        users = pool_users(definition, volumes, self.usage())
        if users:
            raise _in_use(pool_name, users)
        for volume_name, _path in volumes:
            self.delete_volume(pool_name, volume_name)

    def delete_storage(self, name):
        with self.client.errors('delete the storage of pool %s' % name):
            self.client.get_pool(name).delete(0)

    def store_secret(self, usage_type, usage_id, purpose, password, uuid):
        _secrets.store_secret(self.client, usage_type, usage_id, purpose, password, uuid)

    def remove_secret(self, usage_type, usage_id):
        _secrets.remove_secret(self.client, usage_type, usage_id)


# ---------------------------------------------------------------------------------------
# Results
def describe_pool(client, pool):
    """The SPEC's `pool` return shape, read from libvirt: the definition as stored (what
    the pool is configured to be), the state and sizes as they are now."""
    with client.errors('read pool %s' % pool.name()):
        active = bool(pool.isActive())
        persistent = bool(pool.isPersistent())
        xml = client.pool_xml(pool, inactive=persistent)
        _state, capacity, allocation, available = pool.info()
        autostart = bool(pool.autostart()) if persistent else False
        volume_count = pool.numOfVolumes() if active else None
        uuid = pool.UUIDString()
    definition = parse_definition(_xml.parse(xml, 'pool XML'))
    return {
        'name': definition.name, 'uuid': uuid, 'type': definition.type,
        'state': 'active' if active else 'inactive', 'persistent': persistent, 'autostart': autostart,
        'capacity': int(capacity), 'allocation': int(allocation), 'available': int(available),
        'target_path': definition.target_path, 'source': definition.source.as_dict(),
        'volume_count': volume_count,
    }


def predict_pool(desired, observed, current_description):
    """The `pool` a check-mode run would leave, from what exists and what was asked."""
    if desired.state == 'absent':
        return None
    if desired.canonical_tree is not None:
        definition = parse_definition(desired.canonical_tree)
    elif desired.definition is not None:
        definition = merge_definition(desired.definition, observed.definition if observed else None)
    else:
        definition = observed.definition
    predicted = dict(current_description or {
        'uuid': None, 'capacity': None, 'allocation': None, 'available': None, 'volume_count': None})
    predicted.update({
        'name': desired.name, 'type': definition.type, 'state': 'active' if desired.active else 'inactive',
        'autostart': desired.autostart, 'persistent': True,
        'target_path': definition.target_path, 'source': definition.source.as_dict()})
    return predicted


def secret_kinds(desired, observed):
    """Which of the pool's own secrets are worth looking up: only where authentication
    is asked for or was set up by this module, or to clean up after a pool that is gone."""
    usage = secret_usage(desired.name)
    wanted = desired.definition
    if observed is None:
        if wanted is not None:
            return [auth_kind(wanted.type)[1]] if wanted.source.auth_secret_usage == usage else []
        return sorted(_secrets.USAGE_TYPES) if desired.state == 'absent' else []
    uses_own = usage in (observed.definition.source.auth_secret_usage,
                         wanted.source.auth_secret_usage if wanted is not None else None)
    return [auth_kind(observed.definition.type)[1]] if uses_own else []


def run_pool_module(module):
    """storage_pool's main flow: observe, plan, apply (unless check mode), report."""
    client = module.client()
    desired = desired_from_params(module.params)
    if desired.xml_tree is not None:
        desired.canonical_tree = _xml.parse(client.canonical_pool_xml(_xml.to_string(desired.xml_tree)))
    ops = PoolOps(client)
    observed = ops.observe(desired.name, with_usage=desired.purge)
    plan = plan_pool(desired, observed, ops.observe_secrets(desired.name, secret_kinds(desired, observed),
                                                            desired.password))
    module.apply(plan, ops)
    pool = client.lookup_pool(desired.name)
    if module.check_mode:
        result = predict_pool(desired, observed, describe_pool(client, pool) if pool is not None else None)
    else:
        result = describe_pool(client, pool) if pool is not None else None
    module.exit_plan(plan, pool=result)


def run_pool_info_module(module):
    client = module.client()
    params = module.params
    if params.get('name') is not None:
        found = client.lookup_pool(validate_name(params['name'], 'pool name'))
        candidates = [found] if found is not None else []
    else:
        candidates = client.list_pools()
    pools = []
    for pool in candidates:
        described = describe_pool(client, pool)
        if params.get('type') and described['type'] != params['type']:
            continue
        if params.get('state') and described['state'] != params['state']:
            continue
        pools.append(described)
    pools.sort(key=lambda item: item['name'])
    module.exit_info(pools=pools)
