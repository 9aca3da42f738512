# -*- coding: utf-8 -*-
"""The direct_lun_host role: its two molecule scenarios, run whole, and refusals run with
ansible-playbook over two (or three) hypervisors that are all this machine.

qemu transport: for real against the lab's tgtd; a host's initiator name lives in a file of
the test. kernel transport: each host has its own root of the iscsiadm stand-in
(tests/fakes/iscsiadm, VIRTOPS_STORAGE_SYSROOT), so the hosts have their own records,
sessions and devices. What the tests check comes from outside the role: libvirt's secrets
(libvirt-python), the stand-in's records, sessions, devices and call log (through the
stand-in itself and its files), the name files, tgtd.

The lab's LUNs are one shared resource: these tests take turns with the other iSCSI tests
(xdist_group). What must differ between hosts (a LUN added to a target after one host logged
in) happens on a private tgtd target of the test, bound to the test hosts' initiator names."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import random
import re
import subprocess
import sys
import time
import uuid

import pytest

from _lab import ANSIBLE_PLAYBOOK, ISCSID_CONF, LAB, ansible_env, attached_loops, define_domain
from _support import REPO

pytestmark = pytest.mark.xdist_group('lab-iscsi-luns')

MOLECULE = os.path.join(os.path.dirname(sys.executable), 'molecule')
FAKES = os.path.join(REPO, 'tests', 'fakes')
STANDIN = os.path.join(FAKES, 'iscsiadm')
PORTAL = LAB['LAB_ISCSI_PORTAL']
OPEN, CHAP = LAB['LAB_OPEN_IQN'], LAB['LAB_CHAP_IQN']
USER, PASSWORD = LAB['LAB_CHAP_USER'], LAB['LAB_CHAP_PASSWORD']
CHAP_SECRET = 'virtops.storage/direct_lun/' + CHAP
# the lab's LUNs, by the fixed SCSI identities scripts/lab.sh gives them
LAB_WWIDS = ['36000000000000000000000000e000001', '36000000000000000000000000e000002',
             '360000000000000000000000c0a000001']
NOT_THERE = '36000000000000000000000000e0000ff'
TARGETS = [{'portal': PORTAL, 'target': OPEN},
           {'portal': PORTAL, 'target': CHAP, 'auth': {'username': USER, 'password': PASSWORD}}]
PLAYBOOK = """---
- name: Prepare the hypervisors for direct LUNs
  hosts: hypervisors
  gather_facts: false
  environment: "{{ test_environment | default({}) }}"
  roles:
    - role: virtops.storage.direct_lun_host
"""
ANSI = re.compile(r'\x1b\[[0-9;]*m')


def env_path():
    """The venv's commands first: molecule runs ansible-playbook by name."""
    return os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')


# ---------------------------------------------------------------------------------------
# molecule
def molecule(scenario):
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK='default', PATH=env_path(), NO_COLOR='1')
    started = time.monotonic()
    proc = subprocess.run([MOLECULE, 'test', '-s', scenario], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    return proc, ANSI.sub('', proc.stdout + proc.stderr), time.monotonic() - started


def executed(output, scenario):
    """{action: outcome} from molecule's DETAILS lines ("<scenario> ➜ <action>: Executed: <outcome>"); the
    last line of an action wins (destroy runs first and last)."""
    found = {}
    for match in re.finditer(r'^%s \S+ (\w+): Executed: (\w+)' % re.escape(scenario), output, re.M):
        found[match.group(1)] = match.group(2)
    return found


@pytest.mark.parametrize('scenario', ['direct_lun_host', 'direct_lun_host_kernel'])
def test_molecule_scenario(scenario):
    proc, output, seconds = molecule(scenario)
    # what failed, wherever it is in the output, and how molecule summed up
    fatal = [output[max(0, match.start() - 1500):match.start() + 1500]
             for match in re.finditer(r'fatal: \[|ERROR!|\[ERROR\]', output)][:2]
    tail = '\n...\n'.join(fatal + [output[-2500:]])
    assert proc.returncode == 0, tail
    steps = executed(output, scenario)
    for action in ('prepare', 'check', 'converge', 'idempotence', 'verify', 'destroy'):
        assert steps.get(action) == 'Successful', '%s: %s\n%s' % (action, steps.get(action), tail)
    assert 'Skipping' not in output, 'molecule skipped a step:\n%s' % tail
    assert 'failed=0' in output and not re.search(r'failed=[1-9]', output), tail
    assert PASSWORD not in output, 'the CHAP password is in the output of molecule test'
    # the scenarios verify through libvirt and the stand-in themselves (verify.yml); their cleanup
    # checks that the CHAP secret the qemu scenario made is gone, and that no loop device is left
    print('molecule test -s %s: %.0f s' % (scenario, seconds))


# ---------------------------------------------------------------------------------------
# ansible-playbook over an inventory of this test
def secrets(conn):
    """The usage names of libvirt's secrets, but those of storage pools (tests of other files,
    which may run at the same time, make and remove them)."""
    return sorted(secret.usageID() for secret in conn.listAllSecrets(0)
                  if not (secret.usageID() or '').startswith('virtops-pool/'))


def name_of(path):
    with open(path) as handle:
        found = re.findall(r'^InitiatorName=(\S+)$', handle.read(), re.M)
    return found[0] if found else None


class Play(object):
    """An inventory (group hypervisors, every host local) and the role's playbook in a directory
    of the test, and its runs."""

    def __init__(self, directory, hosts, group_vars):
        self.dir = directory
        inventory = {'all': {'children': {'hypervisors': {
            'hosts': dict((name, dict(values, ansible_connection='local',
                                      ansible_python_interpreter=sys.executable))
                          for name, values in hosts.items()),
            'vars': group_vars}}}}
        self.inventory = os.path.join(directory, 'inventory.json')
        with open(self.inventory, 'w') as handle:
            json.dump(inventory, handle)
        self.playbook = os.path.join(directory, 'play.yml')
        with open(self.playbook, 'w') as handle:
            handle.write(PLAYBOOK)
        self.outputs = []

    def run(self, *options, **extra_vars):
        command = [ANSIBLE_PLAYBOOK, '-i', self.inventory, self.playbook] + list(options)
        if extra_vars:
            command += ['-e', json.dumps(extra_vars)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                              env=ansible_env(ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_FORCE_COLOR='0'))
        self.outputs.append(proc.stdout + proc.stderr)
        return proc, proc.stdout + proc.stderr

    def texts(self):
        return list(self.outputs)


def recap(output, host):
    """{ok, changed, failed, ...} of the host's PLAY RECAP line."""
    line = re.search(r'^%s\s+:\s+(.*)$' % re.escape(host), output, re.M)
    assert line, output[-3000:]
    return dict((key, int(value)) for key, value in re.findall(r'(\w+)=(\d+)', line.group(1)))


def failure(output, host):
    """The message of the host's last failure (the rescue's fail task)."""
    starts = [match.end() for match in re.finditer(r'^fatal: \[%s\]: FAILED! => ' % re.escape(host), output, re.M)]
    assert starts, 'no failure of %s:\n%s' % (host, output[-4000:])
    message = json.JSONDecoder().raw_decode(output, starts[-1])[0]['msg']
    print('%s: %s' % (host, message))
    return message


# ---------------------------------------------------------------------------------------
# the iscsiadm stand-in: one root per host
class Root(object):
    """A stand-in root: a host's /etc/iscsi, sysfs and /dev."""

    def __init__(self, path, initiator_file_text, startup='manual'):
        self.path = path
        os.makedirs(self.p('etc/iscsi'))
        with open(self.p('etc/iscsi/iscsid.conf'), 'w') as handle:
            handle.write(ISCSID_CONF % startup)
        with open(self.name_file, 'w') as handle:
            handle.write(initiator_file_text)
        self.seen_loops = set()

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def name_file(self):
        return self.p('etc/iscsi/initiatorname.iscsi')

    @property
    def environment(self):
        return {'PATH': FAKES + os.pathsep + env_path(), 'VIRTOPS_STORAGE_SYSROOT': self.path}

    def iscsiadm(self, *args):
        done = subprocess.run([STANDIN] + list(args), capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, **self.environment))
        self.remember_loops()
        return done

    def remember_loops(self):
        try:
            with open(self.p('run/iscsiadm-standin/state.json')) as handle:
                state = json.load(handle)
        except (IOError, OSError):
            return
        for item in list(state['devices'].values()) + list(state['maps'].values()):
            if item.get('loop'):
                self.seen_loops.add(item['loop'])

    def view(self):
        """What iscsiadm itself says of the host: node records, sessions, discovery records."""
        return dict((what, (done.returncode, done.stdout, done.stderr)) for what, done in (
            ('nodes', self.iscsiadm('-m', 'node')), ('sessions', self.iscsiadm('-m', 'session')),
            ('discovery', self.iscsiadm('-m', 'discovery'))))

    def state(self):
        """Every file a run may change under /etc/iscsi (with contents), the sessions, SCSI and
        block devices, device nodes and udev links (empty directories, which open-iscsi and udev
        keep, are no state)."""
        snap = {}
        for top in ('etc/iscsi', 'sys/class/iscsi_session', 'sys/bus/scsi/devices', 'sys/block', 'dev'):
            for directory, dirs, files in os.walk(self.p(top)):
                for name in files + [entry for entry in dirs if os.path.islink(os.path.join(directory, entry))]:
                    full = os.path.join(directory, name)
                    rel = os.path.relpath(full, self.path)
                    if os.path.islink(full):
                        snap[rel] = '-> ' + os.readlink(full)
                    elif top == 'etc/iscsi':
                        with open(full) as handle:
                            snap[rel] = handle.read()
                    else:
                        snap[rel] = 'node'
        return snap

    def calls(self):
        try:
            with open(self.p('var/log/iscsiadm-standin.jsonl')) as handle:
                return [json.loads(line)['argv'] for line in handle]
        except (IOError, OSError):
            return []

    def logins(self):
        return [argv for argv in self.calls() if '--login' in argv or '-l' in argv]

    def cleanup(self):
        self.remember_loops()
        done = self.iscsiadm('--standin-cleanup')
        assert done.returncode == 0, done.stderr
        left = self.seen_loops & attached_loops()
        assert not left, 'loop devices left attached: %s' % sorted(left)


@pytest.fixture
def roots(names):
    """Root(...) factory in the test's vtest- directory; every root is logged out and its loop
    devices detached, whatever happened."""
    made = []

    def make(host, initiator_file_text, startup='manual'):
        made.append(Root(names.path('root-' + host), initiator_file_text, startup))
        return made[-1]
    yield make
    errors = []
    for root in made:
        try:
            root.cleanup()
        except AssertionError as err:
            errors.append(str(err))
    assert not errors, errors


def kernel_hosts(roots, names, count=2, startup='manual'):
    """hv1.. with roots of their own and unique valid names (no name change to muddle the run)."""
    hosts = {}
    for index in range(1, count + 1):
        host = 'hv%d' % index
        root = roots(host, 'InitiatorName=iqn.2026-11.lab.virtops:%shv%d\n' % (names.prefix, index), startup)
        hosts[host] = {'test_environment': root.environment, 'direct_lun_host_initiator_file': root.name_file,
                       'test_root': root}
    return hosts


def inventory_hosts(hosts):
    return dict((host, dict((key, value) for key, value in values.items() if key != 'test_root'))
                for host, values in hosts.items())


KERNEL_VARS = {'direct_lun_host_transport': 'kernel', 'direct_lun_host_manage_packages': False,
               'direct_lun_host_manage_services': False}


# ---------------------------------------------------------------------------------------
# refusals change nothing
def tgtadm(*args):
    return subprocess.run(['tgtadm', '--lld', 'iscsi'] + list(args), capture_output=True, text=True, check=True)


class PrivateTarget(object):
    """A tgtd target of one test (LUN 1 of 8 MiB), seen only by the initiator names it is bound
    to (`bind`): other users of the lab never see it, never use its LUNs (no pool or domain of
    theirs holds them) and its CHAP secret is the test's own. `add_lun` adds a LUN later, as an
    array does; `chap` makes it ask for CHAP."""

    def __init__(self, names, suffix):
        self.names = names
        self.name = 'iqn.2026-11.lab.virtops:%s%s' % (names.prefix, suffix)
        self.secret = 'virtops.storage/direct_lun/' + self.name
        self.suffix = suffix
        self.accounts = []
        for attempt in range(5):  # another user may take the same free tid first
            shown = tgtadm('--mode', 'target', '--op', 'show').stdout
            used = set(int(tid) for tid in re.findall(r'^Target (\d+):', shown, re.M))
            self.tid = random.choice([number for number in range(700, 1000) if number not in used])
            made = subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid',
                                   str(self.tid), '-T', self.name], capture_output=True, text=True, check=False)
            if made.returncode == 0:
                break
            assert attempt < 4, made.stderr
        self.add_lun(1)

    def add_lun(self, lun, mib=8):
        image = self.names.path('%s-lun%d.img' % (self.suffix, lun))
        with open(image, 'wb') as handle:
            handle.truncate(mib * 1024 * 1024)
        tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(self.tid), '--lun', str(lun), '-b', image)

    def bind(self, *initiators):
        for initiator in initiators:
            tgtadm('--mode', 'target', '--op', 'bind', '--tid', str(self.tid), '--initiator-name', initiator)

    def chap(self):
        """{username, password} the target asks for from now on."""
        user, password = '%s%s-chap' % (self.names.prefix, self.suffix), 'vtest-%s' % uuid.uuid4().hex
        tgtadm('--mode', 'account', '--op', 'new', '--user', user, '--password', password)
        self.accounts.append(user)
        tgtadm('--mode', 'account', '--op', 'bind', '--tid', str(self.tid), '--user', user)
        return {'username': user, 'password': password}

    def delete(self):
        subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid',
                        str(self.tid)], capture_output=True, check=False)
        for user in self.accounts:
            subprocess.run(['tgtadm', '--lld', 'iscsi', '--mode', 'account', '--op', 'delete', '--user', user],
                           capture_output=True, check=False)


@pytest.fixture
def private_targets(names):
    """PrivateTarget factory. Tests ask for it before `roots`, so their roots have logged out
    before the targets go."""
    made = []

    def make(suffix='dlh'):
        made.append(PrivateTarget(names, suffix))
        return made[-1]
    yield make
    for target in made:
        target.delete()


@pytest.fixture
def private_target(private_targets):
    return private_targets()


def test_qemu_an_expected_wwid_not_visible_fails_the_host_and_removes_the_secret_it_stored(
        names, conn, private_target):
    name = 'iqn.2026-11.lab.virtops:%shv1' % names.prefix
    private_target.bind(name)
    auth = private_target.chap()
    name_file = names.path('hv1-initiatorname.iscsi')
    with open(name_file, 'w') as handle:
        handle.write('InitiatorName=%s\n' % name)
    play = Play(names.dir, {'hv1': {'direct_lun_host_initiator_file': name_file}}, {
        'direct_lun_host_transport': 'qemu', 'direct_lun_host_manage_packages': False,
        'direct_lun_host_manage_services': False,
        'direct_lun_host_targets': [{'portal': PORTAL, 'target': private_target.name, 'auth': auth}],
        'direct_lun_host_expected_wwids': [NOT_THERE]})
    assert private_target.secret not in secrets(conn)
    proc, output = play.run('-vvv')  # the most the output shows: still no password
    assert proc.returncode != 0, output[-3000:]
    message = failure(output, 'hv1')
    assert 'host hv1 does not see the expected LUN %s' % NOT_THERE in message, message
    # the logins read the LUN through CHAP and stored the secret; the refusal took it back
    assert 'it sees: 3' in message, message
    assert 'Undone: remove the CHAP secret of target %s' % private_target.name in message, message
    assert private_target.secret not in secrets(conn), 'the refused run left its CHAP secret'
    assert name_of(name_file) == name
    assert recap(output, 'hv1')['rescued'] == 1
    assert auth['password'] not in output, 'the CHAP password is in the output'


def test_qemu_an_initiator_name_never_changes_while_domains_read_the_targets(names, conn, private_target):
    """A domain (defined, not running) has a network disk of the target's LUN 1: the host's name
    does not change to the one asked for, the host fails naming the domain."""
    name = 'iqn.2026-11.lab.virtops:%shv1' % names.prefix
    private_target.bind(name)
    private_target.bind(name + '-new')
    define_domain(conn, names('vm'), disks_xml=(
        "<disk type='network' device='lun'><source protocol='iscsi' name='%s/1'><host name='%s' port='%s'/>"
        "<initiator><iqn name='%s'/></initiator></source><target dev='sda' bus='scsi'/></disk>"
        % (private_target.name, PORTAL.rsplit(':', 1)[0], PORTAL.rsplit(':', 1)[1], name)))
    name_file = names.path('hv1-initiatorname.iscsi')
    with open(name_file, 'w') as handle:
        handle.write('InitiatorName=%s\n' % name)
    play = Play(names.dir, {'hv1': {'direct_lun_host_initiator_file': name_file,
                                    'direct_lun_host_initiator_name': name + '-new'}}, {
        'direct_lun_host_transport': 'qemu', 'direct_lun_host_manage_packages': False,
        'direct_lun_host_manage_services': False,
        'direct_lun_host_targets': [{'portal': PORTAL, 'target': private_target.name}]})
    proc, output = play.run()
    assert proc.returncode != 0, output[-3000:]
    message = failure(output, 'hv1')
    assert 'host hv1 has iSCSI sessions (domain %s reading LUNs of the targets)' % names('vm') in message, message
    assert name_of(name_file) == name
    # without the domain, the name changes
    conn.lookupByName(names('vm')).undefine()
    proc, output = play.run()
    assert proc.returncode == 0, output[-3000:]
    assert name_of(name_file) == name + '-new'


def test_kernel_an_expected_wwid_not_visible_fails_each_host_and_logs_it_out(names, private_targets, roots):
    hosts = kernel_hosts(roots, names)
    plain, guarded = private_targets('plain'), private_targets('chap')
    for values in hosts.values():
        plain.bind(name_of(values['direct_lun_host_initiator_file']))
        guarded.bind(name_of(values['direct_lun_host_initiator_file']))
    auth = guarded.chap()
    targets = [{'portal': PORTAL, 'target': plain.name}, {'portal': PORTAL, 'target': guarded.name, 'auth': auth}]
    play = Play(names.dir, inventory_hosts(hosts), dict(
        KERNEL_VARS, direct_lun_host_targets=targets, direct_lun_host_expected_wwids=[NOT_THERE]))
    before = dict((host, (values['test_root'].view(), values['test_root'].state())) for host, values in hosts.items())
    proc, output = play.run()
    assert proc.returncode != 0, output[-3000:]
    for host, values in hosts.items():
        root = values['test_root']
        message = failure(output, host)
        assert 'host %s does not see the expected LUN %s' % (host, NOT_THERE) in message, message
        # the logins happened (the stand-in's call log) and were taken back
        logged_in = set(argv[argv.index('-T') + 1] for argv in root.logins() if '-T' in argv)
        assert logged_in == {plain.name, guarded.name}, root.calls()
        for target in (plain, guarded):
            assert 'log out of %s' % target.name in message, message
        assert 'delete the discovery record of %s' % PORTAL in message, message
        assert 'Could not undo' not in message, message
        view, state = before[host]
        assert root.view() == view, 'records or sessions of %s changed' % host
        assert root.state() == state, 'the root of %s changed' % host
        assert recap(output, host)['rescued'] == 1
    assert auth['password'] not in output


def test_kernel_a_refused_login_undoes_the_other_logins_and_shows_no_password(names, private_targets, roots):
    """The CHAP target refuses a wrong password: the host fails saying so (the login task's own
    output is hidden by no_log, the role says what failed), and the other target it logged in
    to in this run is logged out again."""
    hosts = kernel_hosts(roots, names, count=1)
    plain, guarded = private_targets('plain'), private_targets('chap')
    name = name_of(hosts['hv1']['direct_lun_host_initiator_file'])
    plain.bind(name)
    guarded.bind(name)
    right = guarded.chap()
    wrong = dict(right, password='not-the-secret-%s' % uuid.uuid4().hex)
    targets = [{'portal': PORTAL, 'target': plain.name}, {'portal': PORTAL, 'target': guarded.name, 'auth': wrong}]
    play = Play(names.dir, inventory_hosts(hosts), dict(KERNEL_VARS, direct_lun_host_targets=targets))
    root = hosts['hv1']['test_root']
    view, state = root.view(), root.state()
    proc, output = play.run('-v')
    assert proc.returncode != 0, output[-3000:]
    message = failure(output, 'hv1')
    assert 'host hv1 could not log in to %s at %s: ISCSI_AUTH_FAILED: ' % (guarded.name, PORTAL) in message, message
    assert 'log out of %s' % plain.name in message, message
    assert root.view() == view and root.state() == state
    assert plain.name in set(argv[argv.index('-T') + 1] for argv in root.logins() if '-T' in argv)
    assert wrong['password'] not in output and right['password'] not in output


def wwid_of_lun(root, target, lun):
    """The WWID the stand-in's udev gave a LUN of a session of the root (by-path -> sdX <- by-id)."""
    by_path = root.p('dev/disk/by-path', 'ip-%s-iscsi-%s-lun-%d' % (PORTAL, target, lun))
    device = os.path.realpath(by_path)
    by_id = root.p('dev/disk/by-id')
    for name in sorted(os.listdir(by_id)):
        if name.startswith('scsi-') and os.path.realpath(os.path.join(by_id, name)) == device:
            return name[len('scsi-'):]
    raise AssertionError('no by-id link for %s LUN %d under %s' % (target, lun, root.path))


def test_kernel_a_host_that_lacks_a_lun_another_host_sees_fails_naming_itself_and_the_wwid(
        names, private_target, roots):
    hosts = kernel_hosts(roots, names, startup='automatic')
    for host, values in hosts.items():
        private_target.bind(name_of(values['direct_lun_host_initiator_file']))
    hv1, hv2 = hosts['hv1']['test_root'], hosts['hv2']['test_root']
    # hv2 logged in before the array got LUN 2, and has not rescanned since
    assert hv2.iscsiadm('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
    login = hv2.iscsiadm('-m', 'node', '-T', private_target.name, '-p', PORTAL, '--login')
    assert login.returncode == 0, login.stderr
    private_target.add_lun(2, mib=4)
    view, state = hv2.view(), hv2.state()
    play = Play(names.dir, inventory_hosts(hosts), dict(
        KERNEL_VARS, direct_lun_host_targets=[{'portal': PORTAL, 'target': private_target.name}]))
    proc, output = play.run()
    assert proc.returncode != 0, output[-3000:]
    lun2 = wwid_of_lun(hv1, private_target.name, 2)  # what hv1 sees, named by the stand-in's udev
    message = failure(output, 'hv2')
    assert 'host hv2 does not see LUN %s' % lun2 in message, message
    assert 'which hv1 sees through the same target' in message, message
    assert wwid_of_lun(hv1, private_target.name, 1) not in message  # hv2 sees LUN 1: not named
    assert recap(output, 'hv1')['failed'] == 0 and recap(output, 'hv2')['failed'] == 1
    # hv2 was logged in before the run: nothing of it is taken back, nothing changed
    assert hv2.view() == view and hv2.state() == state
    # hv1 passed and stays logged in
    assert private_target.name in hv1.iscsiadm('-m', 'session').stdout
    # a rescan brings LUN 2 to hv2: then every host sees the same LUNs and the run passes
    proc, output = play.run('-e', '{"direct_lun_host_rescan": true}')
    assert proc.returncode == 0, output[-3000:]
    assert os.path.exists(hv2.p('dev/disk/by-id', 'scsi-' + lun2))


def test_kernel_an_initiator_name_never_changes_under_live_sessions(names, roots):
    """hv1 and hv2 share a name (cloned), hv1 is logged in: hv1 keeps it, hv2 gets its own. hv3 has
    a placeholder name and sessions: refused, naming hv3, its file untouched."""
    shared = 'iqn.2026-11.lab.virtops:%scloned' % names.prefix
    hv1 = roots('hv1', 'InitiatorName=%s\n' % shared)
    hv2 = roots('hv2', 'InitiatorName=%s\n' % shared)
    hv3 = roots('hv3', '## DO NOT EDIT OR REMOVE THIS FILE!\nGenerateName=yes\n')
    for root in (hv1, hv3):
        assert root.iscsiadm('-m', 'discovery', '-t', 'st', '-p', PORTAL, '-o', 'new').returncode == 0
        assert root.iscsiadm('-m', 'node', '-T', OPEN, '-p', PORTAL, '--login').returncode == 0
    hosts = dict((host, {'test_environment': root.environment, 'direct_lun_host_initiator_file': root.name_file})
                 for host, root in (('hv1', hv1), ('hv2', hv2), ('hv3', hv3)))
    play = Play(names.dir, hosts, dict(KERNEL_VARS, direct_lun_host_initiator_prefix='iqn.2026-11.lab.virtops.test'))
    with open(hv3.name_file) as handle:
        placeholder = handle.read()
    sessions = hv3.iscsiadm('-m', 'session').stdout
    proc, output = play.run()
    assert proc.returncode != 0
    message = failure(output, 'hv3')
    assert 'host hv3 has iSCSI sessions' in message and 'a session to %s' % OPEN in message, message
    with open(hv3.name_file) as handle:
        assert handle.read() == placeholder
    assert hv3.iscsiadm('-m', 'session').stdout == sessions
    assert name_of(hv1.name_file) == shared, 'the logged-in clone lost its name'
    assert name_of(hv2.name_file) == 'iqn.2026-11.lab.virtops.test:hv2'
    assert recap(output, 'hv1')['failed'] == 0 and recap(output, 'hv2')['failed'] == 0
    # and again: nothing left to do
    proc, output = play.run('--limit', 'hv1,hv2')
    assert proc.returncode == 0 and recap(output, 'hv1')['changed'] == 0 and recap(output, 'hv2')['changed'] == 0


@pytest.mark.parametrize('transport', ['kernel', 'qemu'])
def test_check_mode_changes_nothing(transport, names, private_target, roots, conn):
    """Fresh hosts (hv1 with a placeholder name) in check mode: the run predicts changes and
    makes none - no name written, no record, session or secret."""
    placeholder = '## DO NOT EDIT OR REMOVE THIS FILE!\nGenerateName=yes\n'
    prefix = 'iqn.2026-11.lab.virtops:%s' % names.prefix.rstrip('-')
    password = PASSWORD
    if transport == 'kernel':
        hosts = kernel_hosts(roots, names)
        with open(hosts['hv1']['direct_lun_host_initiator_file'], 'w') as handle:
            handle.write(placeholder)
        group = dict(KERNEL_VARS, direct_lun_host_targets=TARGETS, direct_lun_host_expected_wwids=LAB_WWIDS)
    else:
        hosts = {}
        for host in ('hv1', 'hv2'):
            hosts[host] = {'direct_lun_host_initiator_file': names.path(host + '.iscsi')}
            with open(hosts[host]['direct_lun_host_initiator_file'], 'w') as handle:
                handle.write(placeholder if host == 'hv1' else 'InitiatorName=%s:hv2\n' % prefix)
            private_target.bind('%s:%s' % (prefix, host))  # hv1's name as it would be, hv2's own
        auth = private_target.chap()
        password = auth['password']
        group = {'direct_lun_host_transport': 'qemu', 'direct_lun_host_manage_packages': False,
                 'direct_lun_host_manage_services': False,
                 'direct_lun_host_targets': [{'portal': PORTAL, 'target': private_target.name, 'auth': auth}]}
    group['direct_lun_host_initiator_prefix'] = prefix
    play = Play(names.dir, inventory_hosts(hosts), group)

    def state():
        files = {}
        for host, values in sorted(hosts.items()):
            with open(values['direct_lun_host_initiator_file']) as handle:
                files[host] = handle.read()
            if 'test_root' in values:
                files[host + ' root'] = (values['test_root'].view(), values['test_root'].state())
        return files, private_target.secret in secrets(conn)

    before = state()
    proc, output = play.run('--check', '--diff')
    assert proc.returncode == 0, output[-3000:]
    assert recap(output, 'hv1')['changed'] > 0, 'check mode predicted no change for a placeholder name'
    assert '+InitiatorName=%s:hv1' % prefix in output, 'the diff does not show the name hv1 would get'
    assert state() == before, 'check mode changed something'
    if transport == 'kernel':
        assert 'check mode: hv1 is not logged in to every target yet' in output
        for values in hosts.values():
            assert not values['test_root'].logins(), 'check mode logged in'
    else:  # the qemu transport reads the LUNs in check mode too: the checks ran
        assert 'Check that the host sees every LUN the other hosts see' in output
    assert password not in output
