# -*- coding: utf-8 -*-
"""direct_lun and direct_lun_info, transport qemu, against the lab's real tgtd (127.0.0.1:3260).

The facts each test checks against come from outside the module: a LUN's WWID from the raw
VPD page 0x83 decoded by a parser of this file (multipath's preference), its size from the
backing file of tgtd, the disks from libvirt's live and inactive XML, and what QEMU opened
from its monitor. Each change: check mode (nothing moves: both XML views of every watched
domain, the libvirt secrets and pools) -> apply -> verify through libvirt -> re-run
unchanged. Each refusal: in check mode and for real, nothing moves.

The lab's LUNs are one shared resource: the tests of this file take turns (no xdist
spreading; see the xdist_group mark) and wait, at the start, for LUNs another user left
attached to go away."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import subprocess
import time

import libvirt
import pytest
from lxml import etree

import _lab
from _disks import DISK_FIELDS, INACTIVE, disks_of, views
from _lab import LAB, ModuleRun, define_domain, monitor
from ansible_collections.virtops.storage.plugins.module_utils._libiscsi import Connection

pytestmark = pytest.mark.xdist_group('lab-iscsi-luns')

PORTAL = LAB['LAB_ISCSI_PORTAL']
HOST, PORT = PORTAL.rsplit(':', 1)
CLOSED = LAB['LAB_ISCSI_CLOSED_PORTAL']
OPEN, CHAP = LAB['LAB_OPEN_IQN'], LAB['LAB_CHAP_IQN']
USER, PASSWORD = LAB['LAB_CHAP_USER'], LAB['LAB_CHAP_PASSWORD']
WRONG_PASSWORD = 'not-the-lab-chap-secret-4711'
AUTH = {'username': USER, 'password': PASSWORD}
INITIATOR = LAB['LAB_INITIATOR_IQN']
SECRET_PREFIX = 'virtops.storage/direct_lun/'
DIGEST_KEY = 'virtops.storage/digest-key'
# (target, LUN, backing file short name, unit serial); vendor/product are set by scripts/lab.sh
LAB_LUNS = ((OPEN, 1, 'open', LAB['LAB_OPEN_LUN1_SCSI_SN']), (OPEN, 2, 'open', LAB['LAB_OPEN_LUN2_SCSI_SN']),
            (CHAP, 1, 'chap', LAB['LAB_CHAP_LUN1_SCSI_SN']))
VENDOR, MODEL = 'VIRTOPS', 'LABDISK'
QEMU = dict(portal=PORTAL, transport='qemu')
SECURE = libvirt.VIR_DOMAIN_XML_SECURE
POOL_INACTIVE = libvirt.VIR_STORAGE_XML_INACTIVE


# ---------------------------------------------------------------------------------------
# the independent truth about the lab's LUNs
def page83_designators(page):
    """(association, designator type, value) of each designator of a raw VPD page 0x83."""
    assert len(page) >= 4 and page[1] == 0x83, 'not a VPD page 0x83: %r' % page[:4]
    end = 4 + int.from_bytes(page[2:4], 'big')
    found, offset = [], 4
    while offset + 4 <= end:
        kind, length = page[offset + 1], page[offset + 3]
        found.append(((kind >> 4) & 0x3, kind & 0xf, bytes(page[offset + 4:offset + 4 + length])))
        offset += 4 + length
    return found


def multipath_wwid(page):
    """The WWID by multipath's rule: among the LUN's own designators, NAA type 6 > 5 > 2 >
    SCSI name (eui./naa./iqn.) > EUI-64 > T10 vendor id > NAA type 3; the first of the best
    kind. NAA -> "3" + hex, EUI-64 -> "2" + hex, SCSI name -> "8" + name (eui./naa. mapped to
    2/3), T10 -> "1" + id with blank runs as "_"."""
    best = None
    for association, kind, value in page83_designators(page):
        if association != 0 or not value:
            continue
        if kind == 3:
            rank, text = {6: 0, 5: 1, 2: 2, 3: 6}.get(value[0] >> 4), '3' + value.hex()
        elif kind == 8:
            name = value.split(b'\0')[0].decode('ascii')
            prefix = name[:4].lower()
            rank = 3 if prefix in ('eui.', 'naa.', 'iqn.') else None
            text = {'eui.': '2' + name[4:].lower(), 'naa.': '3' + name[4:].lower()}.get(prefix, '8' + name)
        elif kind == 2:
            rank, text = 4, '2' + value.hex()
        elif kind == 1:
            rank, text = 5, '1' + '_'.join(value.split(b'\0')[0].decode('ascii').split())
        else:
            rank = None
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, text)
    return best and best[1]


@pytest.fixture(scope='module')
def truth():
    """{(target, lun): {wwid, size, serial, designators}} from the target's raw answers and tgtd's files."""
    found = {}
    for target, lun, short, serial in LAB_LUNS:
        username, password = (USER, PASSWORD) if target == CHAP else (None, None)
        with Connection(PORTAL, INITIATOR, target, username, password) as connection:
            page = connection.inquiry(lun, 0x83)
        size = os.stat(os.path.join(LAB['LAB_STATE_DIR'], 'tgt', '%s-lun%d.img' % (short, lun))).st_size
        found[(target, lun)] = {'wwid': multipath_wwid(page), 'size': size, 'serial': serial,
                                'designators': page83_designators(page)}
    return found


def test_the_lab_luns_make_the_designator_preference_matter(truth):
    """The preference is really exercised: every lab LUN names itself by a T10 id, an NAA 3
    and an NAA 6 designator, and the three WWIDs differ."""
    for key, lun in truth.items():
        kinds = [(kind, value[0] >> 4 if kind == 3 else None) for _assoc, kind, value in lun['designators']]
        assert (1, None) in kinds and (3, 3) in kinds and (3, 6) in kinds, (key, kinds)
        assert lun['wwid'].startswith('36') and len(lun['wwid']) == 33, lun['wwid']
    assert len(set(lun['wwid'] for lun in truth.values())) == len(truth)


# ---------------------------------------------------------------------------------------
# the shared lab: wait for other users, remove what these tests made
def lab_users(conn):
    """Who holds the lab's targets: domains with a disk on them, pools built on them."""
    users = []
    for dom in conn.listAllDomains(0):
        try:
            xmls = set(x for x in views(conn, dom.name()) if x)
        except libvirt.libvirtError as err:  # a domain another test removes meanwhile
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue
            raise
        for xml in xmls:
            for source in etree.fromstring(xml).findall("devices/disk[@type='network']/source[@protocol='iscsi']"):
                if (source.get('name') or '').split('/')[0] in (OPEN, CHAP):
                    users.append('domain %s (%s)' % (dom.name(), source.get('name')))
    for pool in conn.listAllStoragePools(0):
        for device in etree.fromstring(pool.XMLDesc(POOL_INACTIVE)).findall('source/device'):
            if device.get('path') in (OPEN, CHAP):
                users.append('pool %s' % pool.name())
    return sorted(set(users))


def lab_secrets(conn):
    """[(usage, uuid, XML)] of the secrets direct_lun keeps for the lab's targets, and the digest key it makes."""
    wanted = (SECRET_PREFIX + OPEN, SECRET_PREFIX + CHAP, DIGEST_KEY)
    return sorted((secret.usageID(), secret.UUIDString(), secret.XMLDesc(0)) for secret in conn.listAllSecrets(0)
                  if secret.usageID() in wanted)


def chap_secret(conn, target=CHAP):
    """The libvirt secret of a target's CHAP password, or None."""
    found = [secret for secret in conn.listAllSecrets(0)
             if secret.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_ISCSI
             and secret.usageID() == SECRET_PREFIX + target]
    assert len(found) <= 1
    return found[0] if found else None


def remove_target_secrets(conn):
    for target in (OPEN, CHAP):
        secret = chap_secret(conn, target)
        if secret is not None:
            secret.undefine()


@pytest.fixture(scope='module')
def lab_turn():
    """The lab's LUNs for this file alone, as far as other runs take the same lock; and how
    long, for the whole file, the tests wait for others to let go of them."""
    os.makedirs(os.path.join(LAB['LAB_STATE_DIR'], 'tests'), exist_ok=True)
    with open(os.path.join(LAB['LAB_STATE_DIR'], 'tests', '.iscsi-luns.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield time.monotonic() + 60


@pytest.fixture(autouse=True)
def lab_free(conn, lab_turn):
    """Every test starts with the lab's LUNs free (other test files and people use them too,
    and a LUN another domain holds changes what these tests see), and without a CHAP secret
    of the lab's targets (a leftover only ever holds the lab's published password; no domain
    uses it once the LUNs are free). It ends without those secrets either."""
    deadline = lab_turn
    while lab_users(conn):
        if time.monotonic() > deadline:
            pytest.fail('the lab iSCSI LUNs are held by others: %s' % ', '.join(lab_users(conn)))
        time.sleep(2)
    remove_target_secrets(conn)
    yield
    remove_target_secrets(conn)


@pytest.fixture
def run():
    """ModuleRun, remembering every output: no run of this file may show a CHAP password."""
    made = []

    def _run(module, args, **kwargs):
        result = ModuleRun(module, args, **kwargs)
        made.append(result)
        return result
    yield _run
    for result in made:
        for text in (result.stdout, result.stderr, json.dumps(result.result)):
            assert PASSWORD not in text and WRONG_PASSWORD not in text, 'a CHAP password in the output'


# ---------------------------------------------------------------------------------------
# helpers
def make_domain(conn, names, suffix='vm', start=True):
    """A guest-less domain with a small root disk (vda), so a hot-plugged LUN is a data disk."""
    path = names.path('%s-root.qcow2' % suffix)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '16M'], check=True)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/><boot order='1'/></disk>" % path)
    return define_domain(conn, names(suffix), disk, start=start)


def state_of(conn, *domains):
    """What a run may change: both views of each domain, the secrets of the lab's targets
    (and the digest key), the pools built on them."""
    def state():
        pools = sorted((pool.name(), pool.XMLDesc(POOL_INACTIVE)) for pool in conn.listAllStoragePools(0)
                       if any(device.get('path') in (OPEN, CHAP) for device in
                              etree.fromstring(pool.XMLDesc(POOL_INACTIVE)).findall('source/device')))
        return [views(conn, dom.name()) for dom in domains], lab_secrets(conn), pools
    return state


def lun_disks(conn, dom, name):
    """(live, persistent) <disk> elements whose iSCSI source is `name` (iqn/lun)."""
    found = []
    for xml in views(conn, dom.name()):
        match = [disk for disk in disks_of(xml).values() if disk.get('type') == 'network'
                 and disk.find('source').get('protocol') == 'iscsi' and disk.find('source').get('name') == name]
        assert len(match) <= 1, 'the LUN is attached twice'
        found.append(match[0] if match else None)
    return tuple(found)


def qemu_iscsi_drives(dom):
    """{(target, lun): block node description} of the iSCSI drives QEMU has open."""
    drives = {}
    for line in monitor(dom, 'info block').splitlines():
        if '"driver": "iscsi"' in line:
            spec = json.loads(line.split('json:', 1)[1].rsplit(' (', 1)[0])['file']
            drives[(spec['target'], spec['lun'])] = spec
    return drives


def converge(run, args, state, verify=None):
    checked, applied = _lab.converge(run, 'direct_lun', args, state, 'disk', DISK_FIELDS, verify)
    assert checked['disk'] == applied['disk'], 'check mode predicted another disk'
    return checked, applied


def refused(run, args, code, state):
    return _lab.refused(run, 'direct_lun', args, code, state)


def lun_args(truth, dom, target=OPEN, lun=1, **extra):
    args = dict(QEMU, target=target, wwid=truth[(target, lun)]['wwid'], domain=dom.name())
    if target == CHAP:
        args['auth'] = AUTH
    args.update(extra)
    return args


def by_key(luns):
    return dict(((lun['target'], lun['lun']), lun) for lun in luns)


def check_lun(reported, truth, target, lun):
    fact = truth[(target, lun)]
    assert reported['wwid'] == fact['wwid']
    assert reported['size'] == fact['size'], 'size must be the backing file\'s, exactly'
    assert (reported['vendor'], reported['model'], reported['serial']) == (VENDOR, MODEL, fact['serial'])
    assert reported['portal'] == PORTAL
    assert reported['source'] == 'iscsi://%s/%s/%d' % (PORTAL, target, lun)


# ---------------------------------------------------------------------------------------
# direct_lun_info
def test_info_lists_the_portal_targets_and_luns_with_their_real_identity(run, conn, truth):
    before = lab_secrets(conn)
    info = run('direct_lun_info', QEMU)
    assert not info.failed and not info.changed and info['actions'] == [], info.get('msg')
    assert sorted(info['targets']) == sorted([OPEN, CHAP])
    luns = by_key(info['luns'])
    assert sorted(luns) == [(OPEN, 1), (OPEN, 2)], 'the controller LUN 0 is no disk; the CHAP target is unreadable'
    for key, lun in luns.items():
        check_lun(lun, truth, *key)
        assert lun['used_by'] == [] and lun['in_pool'] is False and lun['held_by'] == []
    assert info['sessions'] == [{'target': OPEN, 'portal': PORTAL, 'transport': 'qemu'}]
    (unreadable,) = info['unreadable']
    assert unreadable['target'] == CHAP and unreadable['error_code'] == 'ISCSI_AUTH_FAILED', unreadable
    assert 'CHAP' in unreadable['msg']

    # with CHAP: the protected target's LUN too (and nothing stored: an info module changes nothing)
    with_auth = run('direct_lun_info', dict(QEMU, auth=AUTH), diff=True)
    assert not with_auth.failed and with_auth['unreadable'] == []
    luns = by_key(with_auth['luns'])
    assert sorted(luns) == [(CHAP, 1), (OPEN, 1), (OPEN, 2)]
    for key, lun in luns.items():
        check_lun(lun, truth, *key)
    assert lab_secrets(conn) == before, 'direct_lun_info stored or changed a secret'


# ---------------------------------------------------------------------------------------
# attach, in use, shareable, detach
def test_attach_by_wwid_hot_plugs_a_network_lun_refused_elsewhere_then_detach(run, conn, names, truth):
    dom, other = make_domain(conn, names), make_domain(conn, names, 'other')
    args = lun_args(truth, dom)
    name = '%s/1' % OPEN
    state = state_of(conn, dom)

    def verify(applied):
        disk = applied['disk']
        assert (disk['device'], disk['bus'], disk['target']) == ('lun', 'scsi', 'sda')
        assert disk['live'] is True and disk['persistent'] is True and disk['role'] == 'data'
        assert disk['wwid'] == truth[(OPEN, 1)]['wwid']
        assert disk['source']['network'] == {'protocol': 'iscsi', 'name': name,
                                             'hosts': [{'name': HOST, 'port': int(PORT)}]}
        for element in lun_disks(conn, dom, name):
            assert element is not None, 'the LUN must be in both views'
            assert (element.get('type'), element.get('device')) == ('network', 'lun')
            (host,) = element.findall('source/host')
            assert (host.get('name'), host.get('port')) == (HOST, PORT)
            assert element.find('source/auth') is None, 'the open target needs no CHAP'
            assert element.find('target').get('bus') == 'scsi'
        for xml in views(conn, dom.name()):
            assert [c.get('model') for c in etree.fromstring(xml).findall("devices/controller[@type='scsi']")] == \
                ['virtio-scsi']
        # QEMU's own initiator opened the LUN, as SCSI passthrough
        drives = qemu_iscsi_drives(dom)
        assert drives[(OPEN, 1)]['portal'] == PORTAL and drives[(OPEN, 1)]['transport'] == 'tcp'
        assert 'dev: scsi-block' in monitor(dom, 'info qtree')

    checked, applied = converge(run, args, state, verify)
    assert [action.split(' ')[0] for action in checked['actions']] == ['add', 'attach', 'add', 'hot-plug'], \
        checked['actions']
    assert all(dom.name() in action for action in checked['actions'])
    lun = by_key(applied['luns'])[(OPEN, 1)]
    assert lun['used_by'] == [dom.name()]

    # the LUN is one disk whatever names it: by number it is the same, unchanged
    by_number = run('direct_lun', dict(QEMU, target=OPEN, lun=1, domain=dom.name()))
    assert not by_number.failed and not by_number.changed and by_number['disk']['target'] == 'sda'

    # info: unused drops the LUN a domain uses
    unused = run('direct_lun_info', dict(QEMU, unused=True))
    assert sorted(by_key(unused['luns'])) == [(OPEN, 2)] and unused['luns'][0]['used_by'] == []

    # the same LUN to a second domain: LUN_IN_USE, also when shareable only there; neither domain moves
    both = state_of(conn, dom, other)
    result = refused(run, lun_args(truth, other), 'LUN_IN_USE', both)
    assert dom.name() in result['msg'] and [use['domain'] for use in result['used_by']] == [dom.name()]
    refused(run, lun_args(truth, other, shareable=True), 'LUN_IN_USE', both)

    # detach: check mode, apply, gone from both views, re-run unchanged
    def gone(applied):
        assert applied['disk'] is None
        assert lun_disks(conn, dom, name) == (None, None)
        assert (OPEN, 1) not in qemu_iscsi_drives(dom), 'QEMU still has the LUN open'

    detach = dict(args, attached=False)
    checked, _applied = _lab.converge(run, 'direct_lun', detach, state, 'disk', DISK_FIELDS, gone)
    assert checked['disk'] is None
    assert [action.split(' ')[0] for action in checked['actions']] == ['detach', 'detach'], checked['actions']


def test_shareable_on_both_domains_then_one_without(run, conn, names, truth):
    one, two = make_domain(conn, names, 'one'), make_domain(conn, names, 'two')
    three = make_domain(conn, names, 'three', start=False)
    name = '%s/2' % OPEN
    first = run('direct_lun', lun_args(truth, one, lun=2, shareable=True))
    assert not first.failed and first['disk']['shareable'] is True, first.get('msg')

    def verify(applied):
        assert applied['disk']['shareable'] is True
        for dom in (one, two):
            for element in lun_disks(conn, dom, name):
                assert element is not None and element.find('shareable') is not None
            assert (OPEN, 2) in qemu_iscsi_drives(dom)
        assert 'share-rw = true' in monitor(two, 'info qtree')

    _checked, applied = converge(run, lun_args(truth, two, lun=2, shareable=True), state_of(conn, one, two), verify)
    assert by_key(applied['luns'])[(OPEN, 2)]['used_by'] == sorted([one.name(), two.name()])
    watched = state_of(conn, one, two, three)
    result = refused(run, lun_args(truth, three, lun=2), 'LUN_IN_USE', watched)
    assert one.name() in result['msg'] and two.name() in result['msg']
    # one of the two sharing it turning sharing off: the other still uses it
    refused(run, lun_args(truth, one, lun=2, shareable=False), 'LUN_IN_USE', watched)


# ---------------------------------------------------------------------------------------
# CHAP
def test_chap_attach_keeps_the_password_in_a_private_secret_and_out_of_every_output(run, conn, names, truth):
    dom = make_domain(conn, names)
    name = '%s/1' % CHAP
    state = state_of(conn, dom)
    args = lun_args(truth, dom, target=CHAP)

    # the wrong password: refused before anything is stored or attached
    for check in (True, False):
        before = state()
        wrong = run('direct_lun', dict(args, auth=dict(AUTH, password=WRONG_PASSWORD)), check=check, diff=True,
                    verbosity=3)
        assert wrong.failed and wrong['error_code'] == 'ISCSI_AUTH_FAILED', wrong.get('msg')
        assert not wrong.changed and state() == before
        assert chap_secret(conn) is None
        assert 'ESTABLISH LOCAL CONNECTION' in wrong.stdout, 'not the -vvv output'
        for text in (wrong.stdout, wrong.stderr, json.dumps(wrong.result)):
            assert WRONG_PASSWORD not in text and PASSWORD not in text

    def verbose(module, margs, **kwargs):
        kwargs.update(diff=True, verbosity=3)
        return run(module, margs, **kwargs)

    def verify(applied):
        secret = chap_secret(conn)
        assert secret is not None, 'no libvirt secret for the CHAP password'
        xml = etree.fromstring(secret.XMLDesc(0))
        assert (xml.get('private'), xml.get('ephemeral')) == ('yes', 'no')
        assert xml.find('usage').get('type') == 'iscsi'
        assert PASSWORD not in secret.XMLDesc(0)
        with pytest.raises(libvirt.libvirtError):
            secret.value(0)  # private: libvirt never gives it back
        for element in lun_disks(conn, dom, name):
            assert element is not None and element.get('device') == 'lun'
            auth = element.find('source/auth')
            assert auth.get('username') == USER
            secret_ref = auth.find('secret')
            assert (secret_ref.get('type'), secret_ref.get('usage')) == ('iscsi', SECRET_PREFIX + CHAP)
            assert secret_ref.get('uuid') is None, 'named by usage'
        # QEMU logged in with it (a private secret is proven by a login)
        drive = qemu_iscsi_drives(dom)[(CHAP, 1)]
        assert drive['user'] == USER and 'password-secret' in drive
        texts = [dom.XMLDesc(flags) for flags in (0, SECURE, INACTIVE, INACTIVE | SECURE)]
        texts += [monitor(dom, 'info block'), monitor(dom, 'info qtree')]
        with open('/var/log/libvirt/qemu/%s.log' % dom.name()) as handle:
            texts.append(handle.read())
        for text in texts:
            assert PASSWORD not in text, 'the CHAP password in the domain XML, QEMU monitor or log'

    checked, applied = converge(verbose, args, state, verify)
    assert 'ESTABLISH LOCAL CONNECTION' in applied.stdout and checked['diff'], 'not a -vvv --diff run'
    assert checked['actions'][0] == 'store the CHAP secret of target %s' % CHAP, checked['actions']
    assert [action.split(' ')[0] for action in checked['actions'][1:]] == ['add', 'attach', 'add', 'hot-plug']
    headers = [entry['before_header'] for entry in checked['diff']]
    assert 'libvirt secret %s%s' % (SECRET_PREFIX, CHAP) in headers
    assert by_key(applied['luns'])[(CHAP, 1)]['used_by'] == [dom.name()]
    # a wrong password once the secret is there: refused, the secret is not touched
    refused(run, dict(args, auth=dict(AUTH, password=WRONG_PASSWORD)), 'ISCSI_AUTH_FAILED', state)


def test_a_rotated_chap_password_updates_the_secret(run, conn, names, truth):
    """The secret holds an older password (the target's was changed): the run updates it in
    place, and QEMU logs in with what it now holds (a private secret is proven by a login)."""
    stale = conn.secretDefineXML("<secret ephemeral='no' private='yes'><description>an older CHAP password"
                                 "</description><usage type='iscsi'><target>%s%s</target></usage></secret>"
                                 % (SECRET_PREFIX, CHAP))
    stale.setValue(b'the-password-before-rotation', 0)
    uuid = stale.UUIDString()
    args = dict(QEMU, target=CHAP, auth=AUTH)

    def verify(applied):
        secret = chap_secret(conn)
        assert secret.UUIDString() == uuid, 'domains name it by usage; its UUID stays'
        assert 'an older CHAP password' not in secret.XMLDesc(0)

    checked, _applied = _lab.converge(run, 'direct_lun', args, state_of(conn), 'luns', (), verify)
    assert checked['actions'] == ['update the CHAP secret of target %s' % CHAP]
    dom = make_domain(conn, names)
    attach = run('direct_lun', lun_args(truth, dom, target=CHAP))
    assert not attach.failed and attach['actions'][0] != 'update the CHAP secret of target %s' % CHAP, attach.get('msg')
    assert (CHAP, 1) in qemu_iscsi_drives(dom)


def test_state_absent_refused_while_a_lun_is_attached_then_removes_the_secret(run, conn, names, truth):
    dom = make_domain(conn, names)
    attach = run('direct_lun', lun_args(truth, dom, target=CHAP))
    assert not attach.failed and chap_secret(conn) is not None, attach.get('msg')
    state = state_of(conn, dom)
    absent = dict(QEMU, target=CHAP, state='absent')
    result = refused(run, absent, 'LUN_IN_USE', state)
    assert result['used_by'] == [dom.name()] and dom.name() in result['msg']
    detached = run('direct_lun', lun_args(truth, dom, target=CHAP, attached=False))
    assert not detached.failed and detached.changed and lun_disks(conn, dom, '%s/1' % CHAP) == (None, None)
    digest_key = [entry for entry in lab_secrets(conn) if entry[0] == DIGEST_KEY]

    def verify(applied):
        assert chap_secret(conn) is None, 'the CHAP secret is still defined'
        assert applied['sessions'] == [] and applied['luns'] == []

    checked, _applied = _lab.converge(run, 'direct_lun', absent, state, 'luns', (), verify)
    assert checked['actions'] == ['remove the CHAP secret of target %s' % CHAP]
    assert [entry for entry in lab_secrets(conn) if entry[0] == DIGEST_KEY] == digest_key, 'the digest key stays'


# ---------------------------------------------------------------------------------------
# refusals
def test_a_closed_portal_is_unreachable(run, conn, names, truth):
    dom = make_domain(conn, names, start=False)
    state = state_of(conn, dom)
    closed = dict(QEMU, portal=CLOSED)
    # discovery, and a login to a named target (with CHAP, to attach)
    for args in (closed, dict(lun_args(truth, dom, target=CHAP), portal=CLOSED)):
        result = refused(run, args, 'ISCSI_UNREACHABLE', state)
        assert CLOSED in result['msg']
    info = run('direct_lun_info', closed)
    assert info.failed and info['error_code'] == 'ISCSI_UNREACHABLE' and CLOSED in info['msg']


def test_info_of_one_target_at_a_closed_portal_is_unreachable(run):
    info = run('direct_lun_info', dict(QEMU, portal=CLOSED, target=OPEN))
    assert info.failed and info['error_code'] == 'ISCSI_UNREACHABLE'


def test_a_target_the_portal_does_not_offer_is_a_login_failure(run, conn):
    result = refused(run, dict(QEMU, target=OPEN + '-typo'), 'ISCSI_LOGIN_FAILED', state_of(conn))
    assert OPEN + '-typo' in result['msg']


def test_an_unknown_wwid_is_not_found_and_the_visible_ones_are_listed(run, conn, names, truth):
    dom = make_domain(conn, names, start=False)
    state = state_of(conn, dom)
    unknown = '36000000000000000000000000deadbeef'
    open_wwids = sorted(truth[(OPEN, lun)]['wwid'] for lun in (1, 2))
    result = refused(run, dict(QEMU, target=OPEN, wwid=unknown, domain=dom.name()), 'LUN_NOT_FOUND', state)
    assert sorted(result['visible_wwids']) == open_wwids
    assert unknown in result['msg'] and all(wwid in result['msg'] for wwid in open_wwids)
    # every target of the portal (CHAP opens the protected one), no domain: asserting a LUN is visible
    everywhere = refused(run, dict(QEMU, wwid=unknown, auth=AUTH), 'LUN_NOT_FOUND', state)
    assert sorted(everywhere['visible_wwids']) == sorted(lun['wwid'] for lun in truth.values())
    seen = run('direct_lun', dict(QEMU, target=OPEN, wwid=truth[(OPEN, 2)]['wwid'].upper()))  # udev prints lowercase
    assert not seen.failed and not seen.changed and seen['actions'] == [], seen.get('msg')


def test_a_lun_of_a_target_a_libvirt_pool_uses_is_refused(run, conn, names, truth):
    dom = make_domain(conn, names)
    early = run('direct_lun', lun_args(truth, dom, lun=2))  # attached before the pool came
    assert not early.failed, early.get('msg')
    root = etree.Element('pool', type='iscsi-direct')
    etree.SubElement(root, 'name').text = names('iscsi')
    source = etree.SubElement(root, 'source')
    etree.SubElement(source, 'host', name=HOST, port=PORT)
    etree.SubElement(source, 'device', path=OPEN)
    etree.SubElement(etree.SubElement(source, 'initiator'), 'iqn', name=INITIATOR)
    pool = conn.storagePoolDefineXML(etree.tostring(root, encoding='unicode'), 0)
    try:
        state = state_of(conn, dom)
        result = refused(run, lun_args(truth, dom), 'LUN_IN_POOL', state)
        assert pool.name() in result['msg']
        info = by_key(run('direct_lun_info', dict(QEMU, auth=AUTH))['luns'])
        for lun in (1, 2):
            assert info[(OPEN, lun)]['in_pool'] is True
            assert any(pool.name() in why for why in info[(OPEN, lun)]['held_by'])
        assert info[(CHAP, 1)]['in_pool'] is False
        unused = run('direct_lun_info', dict(QEMU, auth=AUTH, unused=True))
        assert sorted(by_key(unused['luns'])) == [(CHAP, 1)]
        # taking a LUN away from a domain is always possible
        away = run('direct_lun', lun_args(truth, dom, lun=2, attached=False))
        assert not away.failed and away.changed and lun_disks(conn, dom, '%s/2' % OPEN) == (None, None), \
            away.get('msg')
    finally:
        pool.undefine()
