"""Drives Ward's Pebble daemon with Canonical's Python client, ops.pebble.Client (ops 3.9).

Usage: python pebble_ops_client.py <socket> <scratch-dir>

Run by crates/pebble/tests/ops_client.rs, which starts `ward-pebble` on a temporary socket.
Every step asserts on what the client returns; any failure exits non-zero with a traceback.
"""

import io
import os
import sys
import time

import ops.pebble as pebble

socket, scratch = sys.argv[1], sys.argv[2]
client = pebble.Client(socket_path=socket)

# System info and layers.
info = client.get_system_info()
assert info.version, info

layer = {
    'summary': 'ops client test',
    'services': {
        'web': {
            'override': 'replace',
            'command': f'python3 -m http.server 0 --bind 127.0.0.1 --directory {scratch}',
            'startup': 'enabled',
            'environment': {'GREETING': 'hello'},
        },
        'idle': {
            'override': 'replace',
            'command': 'sleep 1000',
        },
    },
    'checks': {
        'always-up': {
            'override': 'replace',
            'level': 'alive',
            'period': '200ms',
            'threshold': 2,
            'exec': {'command': 'true'},
        },
    },
}
client.add_layer('base', layer)
try:
    client.add_layer('base', layer)
    raise AssertionError('re-adding a label without combine must fail')
except pebble.APIError as e:
    assert e.code == 400 and 'already exists' in e.message, e

# combine=True merges in place.
client.add_layer(
    'base',
    {'services': {'idle': {'override': 'merge', 'environment': {'X': '1'}}}},
    combine=True,
)
plan = client.get_plan()
assert set(plan.services) == {'web', 'idle'}, plan.services
assert plan.services['idle'].environment == {'X': '1'}, plan.services['idle'].to_dict()
assert plan.services['web'].startup == 'enabled'

# Replan starts the enabled service; get_services reports it.
client.replan_services(timeout=10)
web = client.get_services(['web'])[0]
assert web.name == 'web' and web.is_running(), web
idle = client.get_services(['idle'])[0]
assert not idle.is_running(), idle

client.start_services(['idle'], timeout=10)
assert client.get_services(['idle'])[0].is_running()
client.stop_services(['idle'], timeout=15)
assert not client.get_services(['idle'])[0].is_running()

try:
    client.start_services(['nonexistent'])
    raise AssertionError('starting an unknown service must fail')
except pebble.APIError as e:
    assert e.code == 400 and 'does not exist' in e.message, e

# Files: push, pull, list, make_dir, remove.
target = os.path.join(scratch, 'conf', 'app.conf')
client.push(target, 'key = value\n', make_dirs=True, permissions=0o600)
assert client.pull(target).read() == 'key = value\n'
client.push(target, io.BytesIO(b'\x00\x01binary'), permissions=0o640)
assert client.pull(target, encoding=None).read() == b'\x00\x01binary'
entries = client.list_files(os.path.join(scratch, 'conf'))
assert [e.name for e in entries] == ['app.conf'], entries
assert entries[0].permissions == 0o640, oct(entries[0].permissions)
assert entries[0].type == pebble.FileType.FILE and entries[0].size == 8
itself = client.list_files(os.path.join(scratch, 'conf'), itself=True)
assert itself[0].type == pebble.FileType.DIRECTORY
client.make_dir(os.path.join(scratch, 'a', 'b', 'c'), make_parents=True, permissions=0o750)
assert oct(os.stat(os.path.join(scratch, 'a', 'b', 'c')).st_mode & 0o777) == '0o750'
assert [e.name for e in client.list_files(scratch, pattern='a*')] == ['a']
client.remove_path(os.path.join(scratch, 'a'), recursive=True)
assert not os.path.exists(os.path.join(scratch, 'a'))
try:
    client.pull(os.path.join(scratch, 'missing'))
    raise AssertionError('pulling a missing file must fail')
except pebble.PathError as e:
    assert e.kind == 'not-found', e
try:
    client.push('relative/path', 'x')
    raise AssertionError('a relative path must fail')
except pebble.PathError as e:
    assert e.kind == 'generic-file-error', e

# Exec: stdout, stdin, exit code, environment, working dir, timeout.
out, err = client.exec(['echo', 'hello world']).wait_output()
assert out == 'hello world\n' and err == '', (out, err)
out, _ = client.exec(['cat'], stdin='from stdin\n').wait_output()
assert out == 'from stdin\n', out
out, err = client.exec(['sh', '-c', 'echo out; echo err >&2']).wait_output()
assert (out, err) == ('out\n', 'err\n'), (out, err)
out, _ = client.exec(
    ['sh', '-c', 'echo $GREETING-$EXTRA; pwd'],
    environment={'EXTRA': 'there', 'GREETING': 'hi'},
    working_dir=scratch,
).wait_output()
assert out == f'hi-there\n{scratch}\n', out
try:
    client.exec(['sh', '-c', 'echo failing; exit 7']).wait_output()
    raise AssertionError('a non-zero exit must raise ExecError')
except pebble.ExecError as e:
    assert e.exit_code == 7 and e.stdout == 'failing\n', e
started = time.monotonic()
try:
    client.exec(['sleep', '10'], timeout=0.5).wait()
    raise AssertionError('a timed-out exec must raise')
except pebble.ChangeError as e:
    assert 'timed out' in e.err, e.err
assert time.monotonic() - started < 5
try:
    client.exec(['no-such-binary-here'])
    raise AssertionError('exec of a missing binary must fail')
except pebble.APIError as e:
    assert e.code == 400 and 'cannot find executable' in e.message, e

# Checks.
deadline = time.monotonic() + 5
while True:
    checks = client.get_checks()
    assert [c.name for c in checks] == ['always-up'], checks
    if checks[0].successes >= 1:
        break
    assert time.monotonic() < deadline, checks
    time.sleep(0.1)
assert checks[0].status == pebble.CheckStatus.UP and checks[0].level == pebble.CheckLevel.ALIVE

# Notices.
nid = client.notify(pebble.NoticeType.CUSTOM, 'example.com/ward/test', data={'a': 'b'})
again = client.notify(pebble.NoticeType.CUSTOM, 'example.com/ward/test')
assert nid == again, (nid, again)
notices = client.get_notices(types=[pebble.NoticeType.CUSTOM])
assert len(notices) == 1 and notices[0].key == 'example.com/ward/test', notices
assert notices[0].occurrences == 2, notices[0]
assert client.get_notice(nid).id == nid
try:
    client.notify(pebble.NoticeType.CUSTOM, 'not a valid key')
    raise AssertionError('an invalid key must fail')
except pebble.APIError as e:
    assert e.code == 400, e

# Signals: to a running service, and refused for a stopped one.
client.start_services(['idle'], timeout=10)
client.send_signal('SIGCONT', ['idle'])
client.stop_services(['idle'], timeout=15)
try:
    client.send_signal('SIGHUP', ['idle'])
    raise AssertionError('signalling a stopped service must fail')
except pebble.APIError as e:
    assert e.code == 500 and 'not running' in e.message, e

client.stop_services(['web'], timeout=15)
assert not client.get_services(['web'])[0].is_running()
print('ops.pebble.Client: all checks passed')
