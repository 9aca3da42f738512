# -*- coding: utf-8 -*-
"""The iscsiadm runner against a scripted stand-in: open-iscsi 2.1.8's output and exit codes.

`FakeRun` records every argv it is handed (the real command line, secrets included: it is
what run_command would get) and answers from a script of (rc, stdout, stderr). The texts
are open-iscsi 2.1.8's (Debian 12): "ip:port,tpgt iqn" records, "tcp: [sid] ip:port,tpgt
iqn (non-flash)" sessions, "key = value" node records between BEGIN/END RECORD comments.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.virtops.storage.plugins.module_utils import _iscsiadm
from ansible_collections.virtops.storage.plugins.module_utils._errors import StorageError
from ansible_collections.virtops.storage.plugins.module_utils._iscsiadm import Iscsiadm, Node, Session

T1 = 'iqn.2003-01.org.example.storage:target1'
T2 = 'iqn.2003-01.org.example.storage:target2'
PORTAL = '192.0.2.10:3260'
SECRET = 'S3cr3t-Chap-Pw!'
DISCOVERY_SECRET = 'D1sc0very-Pw'

OK = (0, '', '')
NO_RECORDS = (21, '', 'iscsiadm: No records found\n')
NO_SESSIONS = (21, '', 'iscsiadm: No active sessions.\n')
NO_MATCHING_SESSIONS = (21, '', 'iscsiadm: No matching sessions found\n')
SESSION_EXISTS = (15, '', 'iscsiadm: default: 1 session requested, but 1 already present.\n'
                          'iscsiadm: Could not log into all portals\n')
LOGIN_OUT = 'Logging in to [iface: default, target: %s, portal: 192.0.2.10,3260]\n' % T1
LOGIN_OK = (0, LOGIN_OUT + 'Login to [iface: default, target: %s, portal: 192.0.2.10,3260] successful.\n' % T1, '')
AUTH_FAILED = (24, LOGIN_OUT,
               'iscsiadm: Could not login to [iface: default, target: %s, portal: 192.0.2.10,3260].\n'
               'iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n'
               'iscsiadm: Could not log into all portals\n' % T1)
TIMED_OUT = (8, LOGIN_OUT,
             'iscsiadm: Could not login to [iface: default, target: %s, portal: 192.0.2.10,3260].\n'
             'iscsiadm: initiator reported error (8 - connection timed out)\n'
             'iscsiadm: Could not log into all portals\n' % T1)
PDU_TIMEOUT = (11, '', 'iscsiadm: cannot make connection to 192.0.2.10: No route to host\n'
                       'iscsiadm: connection login retries (reopen_max) 5 exceeded\n'
                       'iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out\n')
CONN_FAILURE = (4, '', 'iscsiadm: connect to 192.0.2.10 timed out\n'
                       'iscsiadm: Could not perform SendTargets discovery: encountered connection failure\n')
INVALID = (7, '', 'iscsiadm: Could not update discovery record: Use discoverydb mode\n')
DISCOVERED = (0, '192.0.2.10:3260,1 %s\n192.0.2.10:3260,1 %s\n[2001:db8::10]:3260,1 %s\n' % (T1, T2, T1), '')

NODE_RECORD = """# BEGIN RECORD 2.1.8
node.name = %s
node.tpgt = 1
node.startup = automatic
node.leading_login = No
iface.iscsi_ifacename = default
iface.net_ifacename = <empty>
iface.ipaddress = <empty>
iface.transport_name = tcp
iface.initiatorname = <empty>
node.discovery_address = 192.0.2.10
node.discovery_port = 3260
node.discovery_type = send_targets
node.session.initial_cmdsn = 0
node.session.auth.authmethod = CHAP
node.session.auth.username = alice
node.session.auth.password = %s
node.session.auth.username_in = <empty>
node.session.auth.password_in = <empty>
node.session.timeo.replacement_timeout = 120
node.conn[0].address = 192.0.2.10
node.conn[0].port = 3260
node.conn[0].startup = manual
# END RECORD
"""


class FakeRun(object):
    """A scripted `run(argv) -> (rc, out, err)`; records the argv it gets."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.argv = []

    def __call__(self, argv):
        self.argv.append(list(argv))
        if not self.answers:
            raise AssertionError('unexpected command: %r' % (argv,))
        return self.answers.pop(0)


def runner(*answers):
    run = FakeRun(*answers)
    return Iscsiadm(run), run


def fails(call, *args):
    with pytest.raises(StorageError) as caught:
        call(*args)
    return caught.value


def is_discovery(argv):
    return '-m' in argv and (argv[argv.index('-m') + 1] == 'discovery'
                             or (argv[argv.index('-m') + 1] == 'discoverydb' and '-D' in argv))


def op_of(argv):
    return argv[argv.index('-o') + 1] if '-o' in argv else None


# ---------------------------------------------------------------------------------------
# portals and masking
@pytest.mark.parametrize('portal,expected', [
    ('192.0.2.10', '192.0.2.10:3260'), ('192.0.2.10:3261', '192.0.2.10:3261'), ('storage.example', 'storage.example:3260'),
    ('[2001:db8::10]', '[2001:db8::10]:3260'), ('[::1]:3262', '[::1]:3262'),
])
def test_normal_portal(portal, expected):
    assert _iscsiadm.normal_portal(portal) == expected


@pytest.mark.parametrize('key', ['node.session.auth.password', 'node.session.auth.password_in',
                                 'discovery.sendtargets.auth.password', 'discovery.sendtargets.auth.password_in'])
def test_masked_hides_every_password_value(key):
    shown = _iscsiadm.masked(['iscsiadm', '-m', 'node', '-T', T1, '-o', 'update', '-n', key, '-v', SECRET])
    assert SECRET not in shown
    assert shown.endswith('-n %s -v ********' % key)


def test_masked_keeps_other_values_and_survives_a_trailing_v():
    argv = ['iscsiadm', '-m', 'node', '-o', 'update', '-n', 'node.session.auth.username', '-v', 'alice']
    assert _iscsiadm.masked(argv) == ' '.join(argv)
    assert _iscsiadm.masked(['iscsiadm', '-n', 'node.session.auth.password', '-v']) == \
        'iscsiadm -n node.session.auth.password -v'


# ---------------------------------------------------------------------------------------
# discovery
def test_discover_adds_new_records_only():
    iscsiadm, run = runner(DISCOVERED)
    nodes = iscsiadm.discover('192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL, '-o', 'new']]
    assert nodes == [Node('192.0.2.10:3260', 1, T1), Node('192.0.2.10:3260', 1, T2), Node('[2001:db8::10]:3260', 1, T1)]


def test_discover_for_info_writes_nothing():
    iscsiadm, run = runner(DISCOVERED)
    iscsiadm.discover('[2001:db8::10]', persistent=False)
    assert run.argv == [['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', '[2001:db8::10]:3260',
                         '-o', 'nonpersistent']]


def test_discover_through_the_discovery_record():
    iscsiadm, run = runner(DISCOVERED, DISCOVERED)
    nodes = iscsiadm.discover('192.0.2.10', with_record=True)
    iscsiadm.discover('192.0.2.10', persistent=False, with_record=True)
    base = ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-D']
    assert run.argv == [base + ['-o', 'new'], base + ['-o', 'nonpersistent']]
    assert [node.target for node in nodes] == [T1, T2, T1]


PORTAL_OFFERS_NOTHING = (21, '', 'iscsiadm: No portals found\n')


@pytest.mark.parametrize('persistent', [True, False], ids=['new', 'nonpersistent'])
@pytest.mark.parametrize('with_record', [False, True], ids=['plain', 'discoverydb'])
def test_a_portal_that_offers_nothing_is_an_empty_answer(persistent, with_record):
    iscsiadm, _run = runner(PORTAL_OFFERS_NOTHING)
    assert iscsiadm.discover('192.0.2.10', persistent=persistent, with_record=with_record) == []


DISCOVERY_RECORD = """# BEGIN RECORD 2.1.8
discovery.startup = manual
discovery.type = sendtargets
discovery.sendtargets.address = 192.0.2.10
discovery.sendtargets.port = 3260
discovery.sendtargets.auth.authmethod = CHAP
discovery.sendtargets.auth.username = disco
discovery.sendtargets.auth.password = %s
discovery.sendtargets.auth.username_in = <empty>
discovery.sendtargets.auth.password_in = <empty>
discovery.sendtargets.timeo.login_timeout = 15
# END RECORD
"""
RECORD_NOT_FOUND = (6, '', 'iscsiadm: Discovery record [192.0.2.10,3260] not found.\n')


def test_discovery_settings_reads_the_record_with_its_secrets():
    iscsiadm, run = runner((0, DISCOVERY_RECORD % DISCOVERY_SECRET, ''))
    settings = iscsiadm.discovery_settings('192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-o', 'show', '-S']]
    assert settings['discovery.sendtargets.auth.authmethod'] == 'CHAP'
    assert settings['discovery.sendtargets.auth.username'] == 'disco'
    assert settings['discovery.sendtargets.auth.password'] == DISCOVERY_SECRET
    assert settings['discovery.sendtargets.auth.password_in'] == '<empty>'
    assert len(settings) == DISCOVERY_RECORD.count(' = ')
    assert all(DISCOVERY_SECRET not in line for line in iscsiadm.calls)


def test_discovery_settings_without_secrets():
    iscsiadm, run = runner((0, DISCOVERY_RECORD % '********', ''))
    settings = iscsiadm.discovery_settings('192.0.2.10:3260', secrets=False)
    assert run.argv == [['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-o', 'show']]
    assert settings['discovery.sendtargets.auth.password'] == '********'


@pytest.mark.parametrize('answer', [RECORD_NOT_FOUND, NO_RECORDS], ids=['2.1.8-exit-6', 'exit-21'])
def test_discovery_settings_of_a_missing_record_is_none(answer):
    iscsiadm, _run = runner(answer)
    assert iscsiadm.discovery_settings('192.0.2.10') is None


def test_discovery_settings_other_failures_raise():
    iscsiadm, _run = runner((7, '', 'iscsiadm: Invalid command. Possibly missing discovery --type.\n'))
    error = fails(iscsiadm.discovery_settings, '192.0.2.10')
    assert error.code == 'ISCSI_LOGIN_FAILED' and 'missing discovery --type' in error.msg


def test_the_discovery_record_created_and_updated():
    iscsiadm, run = runner(OK, OK, OK, OK)
    iscsiadm.new_discovery_record('192.0.2.10')
    iscsiadm.update_discovery_record('192.0.2.10', 'discovery.sendtargets.auth.authmethod', 'CHAP')
    iscsiadm.update_discovery_record('192.0.2.10', 'discovery.sendtargets.auth.username', 'disco')
    iscsiadm.update_discovery_record('192.0.2.10:3260', 'discovery.sendtargets.auth.password', DISCOVERY_SECRET)
    base = ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL]
    assert run.argv == [
        base + ['-o', 'new'],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.authmethod', '-v', 'CHAP'],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.username', '-v', 'disco'],
        base + ['-o', 'update', '-n', 'discovery.sendtargets.auth.password', '-v', DISCOVERY_SECRET],
    ]
    assert all('-D' not in argv for argv in run.argv)  # none of them discovers


def test_the_discovery_password_is_never_shown():
    iscsiadm, run = runner(OK)
    iscsiadm.update_discovery_record('192.0.2.10', 'discovery.sendtargets.auth.password', DISCOVERY_SECRET)
    assert DISCOVERY_SECRET in run.argv[0]  # iscsiadm itself gets it
    assert all(DISCOVERY_SECRET not in line for line in iscsiadm.calls)
    assert iscsiadm.calls[0].endswith('-n discovery.sendtargets.auth.password -v ********')


def test_discovery_always_says_how_to_treat_node_records():
    """Plain discovery rebuilds existing node records (node.startup and CHAP lost)."""
    iscsiadm, run = runner(DISCOVERED, DISCOVERED, DISCOVERED, DISCOVERED)
    iscsiadm.discover('192.0.2.10')
    iscsiadm.discover('192.0.2.10', persistent=False)
    iscsiadm.discover('192.0.2.10', with_record=True)
    iscsiadm.discover('192.0.2.10', persistent=False, with_record=True)
    discoveries = [argv for argv in run.argv if is_discovery(argv)]
    assert len(discoveries) == 4
    assert [op_of(argv) for argv in discoveries] == ['new', 'nonpersistent', 'new', 'nonpersistent']


def test_discovery_through_the_record_with_wrong_credentials():
    failure = (24, '', 'iscsiadm: Login failed to authenticate with target\n'
                       'iscsiadm: discovery login to 192.0.2.10 rejected: initiator error (02/01), non-retryable, '
                       'giving up\niscsiadm: Could not perform SendTargets discovery: iSCSI login failed due to '
                       'authorization failure\n')
    iscsiadm, _run = runner(OK, failure)
    iscsiadm.update_discovery_record('192.0.2.10', 'discovery.sendtargets.auth.password', DISCOVERY_SECRET)
    error = fails(iscsiadm.discover, '192.0.2.10', False, True)
    assert error.code == 'ISCSI_AUTH_FAILED'
    assert DISCOVERY_SECRET not in error.msg and DISCOVERY_SECRET not in str(error.details)
    assert 'authorization failure' in error.msg
    assert 'iscsiadm -m discoverydb -t sendtargets -p %s -D -o nonpersistent' % PORTAL in error.msg


def test_a_failing_discovery_record_update_masks_the_secret():
    iscsiadm, _run = runner(INVALID)
    error = fails(iscsiadm.update_discovery_record, '192.0.2.10', 'discovery.sendtargets.auth.password',
                  DISCOVERY_SECRET)
    assert error.code == 'ISCSI_LOGIN_FAILED'
    assert DISCOVERY_SECRET not in error.msg and DISCOVERY_SECRET not in str(error)
    assert '-n discovery.sendtargets.auth.password -v ********' in error.msg
    assert 'Use discoverydb mode' in error.msg


def test_parse_settings():
    out = ('# BEGIN RECORD 2.1.8\nnode.name = %s\n# node.startup = commented\nnot a setting\n'
           '  node.session.auth.username = alice  \nweird.value = a = b\nempty.value = <empty>\n# END RECORD\n' % T1)
    assert _iscsiadm.parse_settings(out) == {'node.name': T1, 'node.session.auth.username': 'alice',
                                             'weird.value': 'a = b', 'empty.value': '<empty>'}
    assert _iscsiadm.parse_settings('') == {}


def fake_resolver(monkeypatch, answers):
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append((host, port))
        if host not in answers:
            raise _iscsiadm.socket.gaierror(-2, 'Name or service not known')
        return [(family, 1, 6, '', (address, port) if family == _iscsiadm.socket.AF_INET else (address, port, 0, 0))
                for family, address in answers[host]]
    monkeypatch.setattr(_iscsiadm.socket, 'getaddrinfo', getaddrinfo)
    return calls


def test_portal_addresses_of_a_host_name(monkeypatch):
    calls = fake_resolver(monkeypatch, {'storage.example': [(_iscsiadm.socket.AF_INET, '192.0.2.10'),
                                                            (_iscsiadm.socket.AF_INET6, '2001:db8::10'),
                                                            (_iscsiadm.socket.AF_INET, '192.0.2.10')]})
    assert _iscsiadm.portal_addresses('storage.example:3261') == {
        'storage.example:3261', '192.0.2.10:3261', '[2001:db8::10]:3261'}
    assert calls == [('storage.example', 3261)]


def test_portal_addresses_of_an_ipv6_literal(monkeypatch):
    calls = fake_resolver(monkeypatch, {'2001:db8::10': [(_iscsiadm.socket.AF_INET6, '2001:db8::10')]})
    assert _iscsiadm.portal_addresses('[2001:db8::10]') == {'[2001:db8::10]:3260'}
    assert calls == [('2001:db8::10', 3260)]  # looked up without the brackets


def test_portal_addresses_of_a_name_that_does_not_resolve(monkeypatch):
    fake_resolver(monkeypatch, {})
    assert _iscsiadm.portal_addresses('nowhere.example') == {'nowhere.example:3260'}


@pytest.mark.parametrize('answer', [PDU_TIMEOUT, CONN_FAILURE], ids=['2.1.8-pdu-timeout', '2.0.874-conn-failure'])
def test_unreachable_discovery_portal(answer):
    iscsiadm, _run = runner(answer)
    error = fails(iscsiadm.discover, '192.0.2.10')
    assert error.code == 'ISCSI_UNREACHABLE'
    assert 'iscsiadm -m discovery -t sendtargets -p 192.0.2.10:3260 -o new' in error.msg
    assert answer[2].strip().splitlines()[-1] in error.msg


def test_delete_discovery_record_accepts_no_record():
    iscsiadm, run = runner(NO_RECORDS, OK)
    iscsiadm.delete_discovery_record('192.0.2.10')
    iscsiadm.delete_discovery_record('192.0.2.10')
    assert run.argv[0] == ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', PORTAL, '-o', 'delete']


# ---------------------------------------------------------------------------------------
# node records
def test_nodes_parses_records():
    iscsiadm, run = runner((0, '192.0.2.10:3260,1 %s\n[2001:db8::10]:3260,1 %s\n198.51.100.7:3260,-1 %s\n'
                               % (T1, T1, T2), ''))
    assert iscsiadm.nodes() == [Node('192.0.2.10:3260', 1, T1), Node('[2001:db8::10]:3260', 1, T1),
                                Node('198.51.100.7:3260', -1, T2)]
    assert run.argv == [['iscsiadm', '-m', 'node']]


def test_nodes_none():
    iscsiadm, _run = runner(NO_RECORDS)
    assert iscsiadm.nodes() == []


def test_node_settings_parses_key_value_lines():
    iscsiadm, run = runner((0, NODE_RECORD % (T1, '********'), ''))
    settings = iscsiadm.node_settings(T1, '192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '-o', 'show']]
    assert settings['node.name'] == T1
    assert settings['node.startup'] == 'automatic'
    assert settings['node.session.auth.username'] == 'alice'
    assert settings['node.session.auth.password'] == '********'
    assert settings['node.session.auth.username_in'] == '<empty>'
    assert settings['node.conn[0].address'] == '192.0.2.10'
    assert not any(key.startswith('#') for key in settings)
    assert len(settings) == NODE_RECORD.count(' = ')


def test_node_settings_with_secrets_asks_for_them():
    iscsiadm, run = runner((0, NODE_RECORD % (T1, SECRET), ''))
    settings = iscsiadm.node_settings(T1, '192.0.2.10:3260', secrets=True)
    assert run.argv[0][-1] == '-S'
    assert settings['node.session.auth.password'] == SECRET
    assert all(SECRET not in line for line in iscsiadm.calls)


def test_node_settings_of_a_missing_record_is_none():
    iscsiadm, _run = runner(NO_RECORDS)
    assert iscsiadm.node_settings(T1, '192.0.2.10') is None


def test_update_node_masks_the_password():
    iscsiadm, run = runner(OK, INVALID)
    iscsiadm.update_node(T1, '192.0.2.10', 'node.session.auth.password', SECRET)
    assert run.argv[0] == ['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '-o', 'update',
                           '-n', 'node.session.auth.password', '-v', SECRET]
    error = fails(iscsiadm.update_node, T1, '192.0.2.10', 'node.session.auth.password', SECRET)
    assert error.code == 'ISCSI_LOGIN_FAILED'
    assert SECRET not in error.msg and SECRET not in str(error)
    assert '-n node.session.auth.password -v ********' in error.msg
    assert all(SECRET not in line for line in iscsiadm.calls)


def test_delete_node_accepts_no_record():
    iscsiadm, run = runner(NO_RECORDS)
    iscsiadm.delete_node(T1, '192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '-o', 'delete']]


def test_delete_node_with_a_session_fails():
    iscsiadm, _run = runner((15, '', 'iscsiadm: This command will remove the record [iface: default, target: %s, '
                                     'portal: 192.0.2.10,3260], but a session is using it. Logout session then '
                                     'rerun command to remove record.\niscsiadm: Could not execute operation on all '
                                     'records: session exists\n' % T1))
    error = fails(iscsiadm.delete_node, T1, '192.0.2.10')
    assert error.code == 'ISCSI_LOGIN_FAILED'
    assert 'session exists' in error.msg


# ---------------------------------------------------------------------------------------
# sessions
def test_sessions_parses_ipv4_and_ipv6():
    out = ('tcp: [1] 192.0.2.10:3260,1 %s (non-flash)\n'
           'tcp: [12] [2001:db8::10]:3260,1 %s (non-flash)\n'
           'iser: [3] 198.51.100.7:3261,2 %s (non-flash)\n' % (T1, T2, T1))
    iscsiadm, run = runner((0, out, ''))
    assert iscsiadm.sessions() == [Session(1, '192.0.2.10:3260', 1, T1), Session(12, '[2001:db8::10]:3260', 1, T2),
                                   Session(3, '198.51.100.7:3261', 2, T1)]
    assert run.argv == [['iscsiadm', '-m', 'session']]


def test_sessions_none():
    iscsiadm, _run = runner(NO_SESSIONS)
    assert iscsiadm.sessions() == []


def test_sessions_skip_lines_that_are_not_sessions():
    iscsiadm, _run = runner((0, '\niscsiadm: some warning\ntcp: [4] 192.0.2.10:3260,1 %s (non-flash)\n' % T1, ''))
    assert iscsiadm.sessions() == [Session(4, '192.0.2.10:3260', 1, T1)]


# ---------------------------------------------------------------------------------------
# login, logout, rescan
@pytest.mark.parametrize('answer', [LOGIN_OK, SESSION_EXISTS], ids=['logged-in', 'already'])
def test_login_accepts_success_and_an_existing_session(answer):
    iscsiadm, run = runner(answer)
    iscsiadm.login(T1, '192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '--login']]


@pytest.mark.parametrize('answer', [OK, NO_MATCHING_SESSIONS], ids=['logged-out', 'no-session'])
def test_logout_accepts_success_and_no_session(answer):
    iscsiadm, run = runner(answer)
    iscsiadm.logout(T1, '192.0.2.10')
    assert run.argv == [['iscsiadm', '-m', 'node', '-T', T1, '-p', PORTAL, '--logout']]


def test_rescan():
    iscsiadm, run = runner(OK)
    iscsiadm.rescan(7)
    assert run.argv == [['iscsiadm', '-m', 'session', '-r', '7', '--rescan']]


@pytest.mark.parametrize('answer,code', [
    (AUTH_FAILED, 'ISCSI_AUTH_FAILED'),
    (TIMED_OUT, 'ISCSI_UNREACHABLE'),
    (PDU_TIMEOUT, 'ISCSI_UNREACHABLE'),
    (CONN_FAILURE, 'ISCSI_UNREACHABLE'),
    (NO_RECORDS, 'ISCSI_LOGIN_FAILED'),
    (INVALID, 'ISCSI_LOGIN_FAILED'),
    ((19, LOGIN_OUT, 'iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)\n'),
     'ISCSI_LOGIN_FAILED'),
    ((1, '', ''), 'ISCSI_LOGIN_FAILED'),
], ids=['24', '8', '11', '4', '21', '7', '19', '1'])
def test_login_error_mapping(answer, code):
    iscsiadm, _run = runner(answer)
    error = fails(iscsiadm.login, T1, '192.0.2.10')
    assert error.code == code
    assert 'iscsiadm -m node -T %s -p %s --login' % (T1, PORTAL) in error.msg
    assert 'exited %d' % answer[0] in error.msg
    for line in answer[2].strip().splitlines():
        assert line in error.msg  # iscsiadm's own words, every line
    if not answer[2]:
        assert 'no output' in error.msg


def test_error_falls_back_to_stdout():
    iscsiadm, _run = runner((7, 'iscsiadm: something only on stdout\n', ''))
    assert 'something only on stdout' in fails(iscsiadm.nodes).msg


def test_login_failure_names_what_failed():
    iscsiadm, _run = runner((19, '', 'iscsiadm: Could not log into all portals\n'))
    assert 'login to %s at 192.0.2.10 failed' % T1 in fails(iscsiadm.login, T1, '192.0.2.10').msg


@pytest.mark.parametrize('answer', [AUTH_FAILED, TIMED_OUT, INVALID, (3, '', 'iscsiadm: %s\n' % 'boom')],
                         ids=['24', '8', '7', '3'])
def test_the_secret_never_reaches_an_error_or_the_call_log(answer):
    iscsiadm, run = runner(OK, OK, OK, answer)
    iscsiadm.update_node(T1, '192.0.2.10', 'node.session.auth.authmethod', 'CHAP')
    iscsiadm.update_node(T1, '192.0.2.10', 'node.session.auth.username', 'alice')
    iscsiadm.update_node(T1, '192.0.2.10', 'node.session.auth.password', SECRET)
    error = fails(iscsiadm.update_node, T1, '192.0.2.10', 'node.session.auth.password_in', SECRET)
    assert SECRET not in error.msg and SECRET not in str(error) and SECRET not in repr(error.details)
    assert '********' in error.msg
    assert all(SECRET not in line for line in iscsiadm.calls)
    assert sum(SECRET in argv for argv in run.argv) == 2


def test_calls_log_every_command_in_order():
    iscsiadm, _run = runner(NO_SESSIONS, LOGIN_OK, OK)
    iscsiadm.sessions()
    iscsiadm.login(T1, '192.0.2.10')
    iscsiadm.logout(T1, '192.0.2.10')
    assert iscsiadm.calls == ['iscsiadm -m session',
                              'iscsiadm -m node -T %s -p %s --login' % (T1, PORTAL),
                              'iscsiadm -m node -T %s -p %s --logout' % (T1, PORTAL)]


def test_another_binary_name():
    run = FakeRun(NO_SESSIONS)
    Iscsiadm(run, binary='/usr/sbin/iscsiadm').sessions()
    assert run.argv == [['/usr/sbin/iscsiadm', '-m', 'session']]


@pytest.mark.parametrize('call', ['discovery', 'node'])
def test_a_failing_show_with_secrets_never_quotes_its_output(call):
    # `-o show -S` prints the stored passwords on stdout: a failure quotes only stderr
    printed = DISCOVERY_RECORD % DISCOVERY_SECRET if call == 'discovery' else NODE_RECORD % (T1, DISCOVERY_SECRET)
    iscsiadm, _run = runner((3, printed, ''))
    if call == 'discovery':
        error = fails(iscsiadm.discovery_settings, '192.0.2.10')
    else:
        error = fails(iscsiadm.node_settings, T1, '192.0.2.10', True)
    assert DISCOVERY_SECRET not in error.msg and DISCOVERY_SECRET not in str(error.details)
    assert 'exited 3: no output' in error.msg


def test_a_failing_show_with_secrets_still_quotes_stderr():
    iscsiadm, _run = runner((3, DISCOVERY_RECORD % DISCOVERY_SECRET, 'iscsiadm: something broke\n'))
    error = fails(iscsiadm.discovery_settings, '192.0.2.10')
    assert 'something broke' in error.msg and DISCOVERY_SECRET not in error.msg


def test_a_failing_show_without_secrets_quotes_stdout():
    iscsiadm, _run = runner((3, 'iscsiadm: only on stdout\n', ''))
    assert 'only on stdout' in fails(iscsiadm.discovery_settings, '192.0.2.10', False).msg


def test_discovery_chap_is_the_callers_plan_not_one_call():
    # the planner compares the record and sets what differs, step by step
    assert not hasattr(Iscsiadm, 'discover_with_auth')
