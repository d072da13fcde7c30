#!/usr/bin/env python3
"""web_browser.py - privmta's web console in headless Chromium, end to end.

    python3 web_browser.py URL USER PASSWORD_FILE SHOTS_DIR WORK_DIR

Run by tests/integration/test_web.sh against the demo cluster
(deploy/cluster.sh up: nodes mx1..mx3, each with its real Postfix on
NET.11-13 port 2525, NET from $PM_CLUSTER_NET, default 127.0.0; the
controller; privmta-web on URL, HTTPS with a self-signed certificate).
Chromium is driven over the DevTools protocol (cdp.py, next to this file).

It checks, in order, the way an administrator uses the page:
  a. without a login the login form shows, and the API answers 401;
  b. logging in (the password from PASSWORD_FILE);
  c. invalid input (a mynetworks entry with host bits, a bad relay host, a
     signature file libclamav refuses) shows the validator's message next
     to its field, and Save saves nothing; Discard clears it;
  d. a real change (block .iso and the often prohibited extensions, a relay
     host, antispam level High, a custom signature file) is shown in the
     review dialog, key by key, saved, and acknowledged by all 3 nodes;
  e. Privacy Instances shows the new revision applied by every node;
  f. every node's Postfix refuses a report.iso attachment (swaks: 554), and
     the History names the author "web (USER)";
  g. a change made meanwhile by another session is shown as a conflict,
     naming it, and nothing of the page's edit is committed;
  h. forged cross-site POSTs with the page's cookie are refused (403);
  i. screenshots of every section (1280x800, and two at 375 wide) are in
     SHOTS_DIR, and the page logged no JS or CSP error.

One line per check: "ok - what" or "FAIL - what (details)"; lines starting
with "#" are notes. Exit 0 when every check passed, 1 otherwise, 77 when
Chromium is missing. No check depends on timing: every wait is for a
condition, with a generous deadline. The script can run again on the same
cluster: it first takes back (through the API) what an earlier run, or
test_web.sh, already changed, so that the page has the same change to make.
"""
import json
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, CDPError, find_chromium  # noqa: E402

WAIT = 30                       # seconds: the deadline of every wait
NODES = ('mx1', 'mx2', 'mx3')
WIDTH, HEIGHT, PHONE = 1280, 800, 375
GOOD_SIG = 'PrivmtaTest.Marker:0:*:5052495644544d41544553544d41524b4552\n'
BAD_SIG = 'not a signature\n'
CHANGED_KEYS = {'inbound.blocked_extensions', 'outbound.relay_host', 'antispam.level',
                'antispam.tag_percent', 'antispam.kill_percent',
                'antivirus.custom_signatures'}
RELAY = '[relay.example]:25'
# failed loads the page provokes on purpose (or handles): not errors
EXPECTED_LOG = re.compile(r'Failed to load resource: the server responded with a status of '
                          r'(401|403|409|422|429|503)\b')


class Run:
    """The arguments, the browser page, what was learnt on the way, and
    the checks' results."""

    def __init__(self, url, user, password, shots, work):
        self.url = url.rstrip('/')
        self.user = user
        self.password = password
        self.shots = shots
        self.work = work
        self.net = os.environ.get('PM_CLUSTER_NET', '127.0.0')
        self.page = None
        self.browser = None
        self.failed = 0
        self.base_rev = None    # the revision before the page's change
        self.new_rev = None     # the page's change

    # -- reporting ---------------------------------------------------------
    def ok(self, what):
        print(f'ok - {what}', flush=True)

    def fail(self, what, details=''):
        self.failed += 1
        print(f'FAIL - {what}' + (f' ({details})' if details else ''), flush=True)

    def check(self, cond, what, details=''):
        (self.ok(what) if cond else self.fail(what, details))
        return bool(cond)

    def note(self, text):
        print(f'# {text}', flush=True)

    # -- the page ------------------------------------------------------------
    def text(self, sel):
        return self.page.eval(f"(e => e ? e.textContent.trim() : null)(document.querySelector({json.dumps(sel)}))")

    def visible(self, sel):
        """JS: whether SEL exists and is not hidden."""
        return f"(e => !!e && !e.hidden && e.getClientRects().length > 0)(document.querySelector({json.dumps(sel)}))"

    def field_error(self, key):
        return self.text(f'.field-error[data-key="{key}"]')

    def wait_field_error(self, key, contains=''):
        """Waits until the error next to KEY shows (containing CONTAINS);
        returns its text."""
        sel = json.dumps(f'.field-error[data-key="{key}"]')
        return self.page.wait(f"""(e => e && !e.hidden && e.textContent.trim() &&
            e.textContent.includes({json.dumps(contains)}) ? e.textContent.trim() : null)
            (document.querySelector({sel}))""", WAIT)

    def fetch(self, method, path, body=None):
        """METHOD PATH from the page itself (its cookie, its CSRF token
        from /api/session for a POST): {status, body}."""
        return self.page.eval(f"""(async () => {{
            const opt = {{method: {json.dumps(method)}, credentials: 'same-origin', cache: 'no-store',
                          headers: {{Accept: 'application/json'}}}};
            if ({json.dumps(method)} !== 'GET') {{
                const s = await (await fetch('/api/session', {{cache: 'no-store'}})).json();
                opt.headers['X-CSRF-Token'] = s.csrf;
                opt.headers['Content-Type'] = 'application/json';
                opt.body = JSON.stringify({json.dumps(body)});
            }}
            const r = await fetch({json.dumps(path)}, opt);
            let b = null;
            try {{ b = await r.json(); }} catch (e) {{ }}
            return {{status: r.status, body: b}};
        }})()""")

    def head_rev(self):
        r = self.fetch('GET', '/api/policy')
        return r['body']['rev'] if r['status'] == 200 else None

    def tab(self, name):
        self.page.click(f'#tab-{name}')
        self.page.wait(self.visible(f'#panel-{name}'), WAIT)

    def shot(self, name, top='.tabs'):
        """A viewport screenshot SHOTS_DIR/NAME, scrolled so that TOP (a
        selector; None: the page's top) is at the top."""
        if top:
            # just below the sticky top bar
            self.page.eval(f"""(() => {{ document.querySelector({json.dumps(top)}).scrollIntoView({{block: 'start'}});
                const bar = document.querySelector('.topbar');
                window.scrollBy(0, -((bar ? bar.getBoundingClientRect().height : 0) + 12)); }})()""")
        else:
            self.page.eval('window.scrollTo(0, 0)')
        self.page.settle()
        self.page.screenshot(os.path.join(self.shots, name))

    # -- the API from here (a second session, forged requests) ---------------
    def http(self, method, path, body=None, headers=None):
        """METHOD PATH straight to the server, certificate unchecked:
        (status, JSON body or None)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header('Accept', 'application/json')
        if data is not None:
            req.add_header('Content-Type', 'application/json')
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=WAIT) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def api_login(self):
        """A session of its own, as a script has: its bearer token."""
        status, body = self.http('POST', '/api/login', {'user': self.user, 'password': self.password})
        if status != 200:
            raise RuntimeError(f'POST /api/login from Python: HTTP {status} {body}')
        return body['token']

    def bearer(self, token):
        return {'Authorization': f'Bearer {token}'}


# ---- before the checks -------------------------------------------------------------

def undo_earlier_changes(run):
    """Takes back, through the API, what the page is about to change, when
    an earlier run (or test_web.sh's own "block iso") already did: .iso
    blocked, the relay host, antispam level High, local.ndb."""
    token = run.api_login()
    try:
        status, pol = run.http('GET', '/api/policy', headers=run.bearer(token))
        if status != 200:
            raise RuntimeError(f'GET /api/policy from Python: HTTP {status}')
        p = pol['policy']
        edits = []
        exts = p['inbound']['blocked_extensions']
        if 'iso' in exts:
            edits.append({'key': 'inbound.blocked_extensions', 'op': 'set',
                          'value': [e for e in exts if e != 'iso']})
        if p['outbound'].get('relay_host'):
            edits.append({'key': 'outbound.relay_host', 'op': 'set', 'value': ''})
        spam = p['antispam']
        if (spam['level'], spam['tag_percent'], spam['kill_percent']) != ('medium', 33, 75):
            edits += [{'key': 'antispam.level', 'op': 'set', 'value': 'medium'},
                      {'key': 'antispam.tag_percent', 'op': 'set', 'value': 33},
                      {'key': 'antispam.kill_percent', 'op': 'set', 'value': 75}]
        if any(s.get('name') == 'local.ndb' for s in p['antivirus'].get('custom_signatures') or []):
            edits.append({'key': 'antivirus.custom_signatures', 'op': 'remove', 'value': 'local.ndb'})
        if not edits:
            return
        status, r = run.http('POST', '/api/policy',
                             {'rev': pol['rev'], 'edits': edits,
                              'message': 'web_browser.py: take back an earlier run'},
                             headers=run.bearer(token))
        if status != 200:
            raise RuntimeError(f'taking back {[e["key"] for e in edits]}: HTTP {status} {r}')
        run.note(f'took back {", ".join(sorted({e["key"] for e in edits}))} (revision {r.get("rev")})')
    finally:
        run.http('POST', '/api/logout', {}, headers=run.bearer(token))


# ---- the checks --------------------------------------------------------------------

def check_logged_out(run):
    """a. Without a login: the login form; the API answers 401."""
    p = run.page
    p.goto(run.url + '/')
    p.wait(f"{run.visible('#login-view')} && document.querySelector('#app-view').hidden", WAIT)
    run.ok('without a login the login form shows (and not the application)')
    r = run.fetch('GET', '/api/policy')
    run.check(r['status'] == 401, "fetch('/api/policy') from the page without a login is refused (401)",
              f"HTTP {r['status']}")
    run.shot('login.png', top=None)


def check_login(run):
    """b. Log in with the password from the file."""
    p = run.page
    p.fill('#login-user', run.user)
    p.fill('#login-password', run.password)
    p.click('#login-submit')
    p.wait(f"{run.visible('#app-view')} && document.querySelector('#rev-info').textContent.trim() !== ''"
           f" && document.querySelectorAll('.chips[data-key=\"inbound.blocked_extensions\"] .chip').length > 0",
           WAIT)
    who = run.text('#user-name')
    run.check(who == run.user, f'logged in as {run.user}: the policy is shown ({run.text("#rev-info")})',
              f'signed in as {who!r}')
    run.base_rev = run.head_rev()


def check_invalid_input(run):
    """c. Invalid input: the validator's message next to each field, and
    nothing saved."""
    p = run.page
    rev = run.head_rev()
    run.tab('outbound')
    p.click('#net-input')
    p.type('10.0.0.1/8')
    p.key('Enter')
    text = run.wait_field_error('outbound.mynetworks', 'host bits')
    run.ok(f'mynetworks 10.0.0.1/8: "{text}" next to the field')

    p.fill('#f-outbound-relay_host', 'bad host:99999')
    text = run.wait_field_error('outbound.relay_host')
    run.ok(f'relay host "bad host:99999": "{text}" next to the field')
    run.shot('outbound-invalid.png')

    run.tab('avas')
    bad = os.path.join(run.work, 'bad.ndb')
    with open(bad, 'w') as f:
        f.write(BAD_SIG)
    p.set_files('#sig-file', [bad])
    p.click('#sig-upload')
    p.wait(f"!!document.querySelector('#sig-list li[data-name=\"bad.ndb\"]')", WAIT)
    text = run.wait_field_error('antivirus.custom_signatures')
    run.ok(f'signature file bad.ndb: "{text}" next to the field')

    p.click('#save')
    p.wait("document.querySelector('#status').dataset.kind === 'error' && "
           "document.querySelector('#status').textContent.includes('Not saved')", WAIT)
    opened = p.eval("document.querySelector('#diff-dialog').open")
    run.check(not opened, f'Save with problems does not open the review dialog ("{run.text("#status")}")',
              'the dialog opened')
    after = run.head_rev()
    run.check(after == rev, f'and saves nothing (the policy is still revision {rev})', f'now revision {after}')

    p.click('#discard')
    p.wait("document.querySelector('#pending').textContent === 'No changes' && "
           "[...document.querySelectorAll('.field-error')].every(e => e.hidden)", WAIT)
    run.ok('Discard clears the edits and their messages')


def check_change(run):
    """d. The real change, reviewed in the dialog, saved, acknowledged."""
    p = run.page
    rev = run.head_rev()
    run.tab('inbound')
    p.click('#ext-input')
    p.type('iso')
    p.key(' ')
    p.wait("!!document.querySelector('.chips[data-key=\"inbound.blocked_extensions\"] .chip[data-value=\"iso\"]')", WAIT)
    p.click('#ext-preset')
    common = p.eval("""(async () => (await (await fetch('/api/policy', {cache: 'no-store'})).json()).common_extensions)()""")
    p.wait(f"""(() => {{ const have = new Set([...document.querySelectorAll(
        '.chips[data-key="inbound.blocked_extensions"] .chip')].map(c => c.dataset.value));
        return {json.dumps(common)}.every(x => have.has(x)); }})()""", WAIT)
    run.ok(f'Inbound: "iso" + Space adds the chip iso; the preset adds the {len(common)} often prohibited extensions')
    run.shot('inbound.png')

    run.tab('outbound')
    p.fill('#f-outbound-relay_host', RELAY)
    p.wait(f"document.querySelector('#f-outbound-relay_host').value === {json.dumps(RELAY)}", WAIT)
    run.shot('outbound.png')

    run.tab('avas')
    p.click('#level-high')
    scores = p.wait("""(() => { const t = document.querySelector('#score-tag').textContent,
        k = document.querySelector('#score-kill').textContent;
        return t.includes('3.2') && k.includes('13.2') ? [t, k] : null; })()""", WAIT)
    run.ok(f'Antispam level High: {scores[0]} / {scores[1]}')
    good = os.path.join(run.work, 'local.ndb')
    with open(good, 'w') as f:
        f.write(GOOD_SIG)
    p.set_files('#sig-file', [good])
    p.click('#sig-upload')
    p.wait("!!document.querySelector('#sig-list li[data-name=\"local.ndb\"]')", WAIT)
    run.shot('avas.png', top='#panel-avas')

    p.click('#save')
    p.wait("document.querySelector('#diff-dialog').open || "
           "document.querySelector('#status').dataset.kind === 'error'", WAIT)
    if not p.eval("document.querySelector('#diff-dialog').open"):
        errs = p.eval("[...document.querySelectorAll('.field-error:not([hidden])')]"
                      ".map(e => e.dataset.key + ': ' + e.textContent)")
        raise RuntimeError(f'Save did not open the review dialog: {run.text("#status")} {errs}')
    sig_err = run.field_error('antivirus.custom_signatures')
    run.check(not sig_err, 'the good signature file local.ndb passes libclamav (no message next to the field)',
              sig_err)
    keys = set(p.eval("[...document.querySelectorAll('#diff-dialog tr[data-key]')].map(r => r.dataset.key)"))
    run.check(keys == CHANGED_KEYS, f'Save opens the review dialog listing what changed: {", ".join(sorted(keys))}',
              f'missing {sorted(CHANGED_KEYS - keys)}, extra {sorted(keys - CHANGED_KEYS)}')
    rows = p.eval("""Object.fromEntries([...document.querySelectorAll('#diff-dialog tr[data-key]')]
        .map(r => [r.dataset.key, r.textContent]))""")
    run.check('iso' in rows.get('inbound.blocked_extensions', '') and RELAY in rows.get('outbound.relay_host', '')
              and 'high' in rows.get('antispam.level', '') and 'local.ndb' in rows.get('antivirus.custom_signatures', ''),
              'its rows show the new values (iso, the relay host, high, local.ndb)', json.dumps(rows)[:400])
    run.shot('diff.png', top=None)

    p.fill('#diff-message', 'block iso images, relay, antispam high (web_browser.py)')
    p.click('#diff-confirm')
    acked = p.wait("""(() => { const l = [...document.querySelectorAll('#ack-list li[data-node]')];
        return l.length && l.every(li => li.classList.contains('acked')) ? l.map(li => li.dataset.node) : null; })()""",
                   WAIT)
    run.new_rev = int(p.eval("document.querySelector('#ack-panel').dataset.rev"))
    run.check(sorted(acked) == sorted(NODES) and run.new_rev == rev + 1,
              f'Saved as revision {run.new_rev}; every node acknowledges it: {", ".join(sorted(acked))}',
              f'acknowledged by {acked}, revision {run.new_rev} after {rev}')
    pol = run.fetch('GET', '/api/policy')['body']['policy']
    run.check('iso' in pol['inbound']['blocked_extensions'] and pol['outbound']['relay_host'] == RELAY and
              (pol['antispam']['level'], pol['antispam']['tag_percent'], pol['antispam']['kill_percent']) ==
              ('high', 16, 66) and
              any(s.get('name') == 'local.ndb' for s in pol['antivirus']['custom_signatures']),
              'the saved policy has them', json.dumps({k: pol[k] for k in ('outbound', 'antispam')})[:300])


def check_nodes(run):
    """e. Privacy Instances: every node applied the new revision."""
    p = run.page
    run.tab('nodes')
    want = str(run.new_rev)
    revs = p.wait(f"""(() => {{ const r = [...document.querySelectorAll('#nodes-body tr[data-node]')]
        .map(tr => [tr.dataset.node, tr.querySelector('td.applied-rev').textContent.trim()]);
        return r.length === {len(NODES)} && r.every(x => x[1] === {json.dumps(want)}) ? r : null; }})()""", WAIT)
    run.ok(f'Privacy Instances: {", ".join(f"{n} applied {r}" for n, r in revs)}')
    n = len(NODES)
    summary = p.wait(f"""(t => t.includes('{n} of {n} nodes alive, {n} up to date') ? t : null)
        (document.querySelector('#nodes-summary').textContent)""", WAIT)
    run.ok(f'and says every node is up: "{summary}"')
    run.shot('nodes.png')


def check_enforced(run):
    """f. Every node's Postfix refuses a .iso attachment; the History names
    the web user."""
    iso = os.path.join(run.work, 'report.iso')
    with open(iso, 'w') as f:
        f.write('ISO image\n')
    for i, node in enumerate(NODES, 1):
        cmd = ['swaks', '--server', f'{run.net}.1{i}:2525', '--from', 'a@remote.example',
               '--to', f'postmaster@{node}.test', '--attach-type', 'application/octet-stream',
               '--attach-name', 'report.iso', '--attach', f'@{iso}', '--timeout', '20']
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=WAIT * 2, text=True)
            rc, out = r.returncode, r.stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, out = None, str(e)
        line = next((ln for ln in out.splitlines() if ' 554' in ln or ln.startswith('<** 554')), '')
        run.check(rc == 26 and '554' in out, f'{node} refuses report.iso (swaks exit {rc}: {line.strip()})',
                  out.strip().splitlines()[-3:] if out else rc)
    h = run.fetch('GET', '/api/history?limit=5')['body']
    top = h['revisions'][0]
    run.check(top.get('revision') == run.new_rev and top.get('author') == f'web ({run.user})',
              f'the History names the author of revision {run.new_rev}: {top.get("author")}',
              json.dumps(top)[:200])
    p = run.page
    run.tab('history')
    p.wait(f"(r => r && r.dataset.rev === {json.dumps(str(run.new_rev))})"
           "(document.querySelector('#history-body tr[data-rev]'))", WAIT)
    run.shot('history.png')


def check_conflict(run):
    """g. A change made meanwhile elsewhere is shown, not overwritten."""
    p = run.page
    before = run.fetch('GET', '/api/policy')['body']
    scan = before['policy']['antispam']['scan_outbound']
    run.tab('avas')
    p.click('#f-antispam-scan_outbound')
    p.wait("document.querySelector('#pending').textContent === '1 change pending'", WAIT)

    token = run.api_login()
    try:
        status, pol = run.http('GET', '/api/policy', headers=run.bearer(token))
        prefix = f'[SPAM r{pol["rev"] + 1}]'
        status, r = run.http('POST', '/api/policy',
                             {'rev': pol['rev'], 'message': 'meanwhile, another session',
                              'edits': [{'key': 'antispam.subject_prefix', 'op': 'set', 'value': prefix}]},
                             headers=run.bearer(token))
    finally:
        run.http('POST', '/api/logout', {}, headers=run.bearer(token))
    if status != 200:
        raise RuntimeError(f'the concurrent change from Python: HTTP {status} {r}')
    other = r['rev']
    run.ok(f'meanwhile another session saves revision {other} (antispam.subject_prefix = {prefix})')

    p.click('#save')
    p.wait(f"document.querySelector('#diff-dialog').open || {run.visible('#conflict')}", WAIT)
    if p.eval("document.querySelector('#diff-dialog').open"):
        p.click('#diff-confirm')
    p.wait(run.visible('#conflict'), WAIT)
    text = run.text('#conflict-text')
    row = p.eval("!!document.querySelector('#conflict-diff tr[data-key=\"antispam.subject_prefix\"]')")
    run.check(row and str(other) in text,
              f'Save shows the conflict, naming the other change: "{text}" (a row for antispam.subject_prefix)',
              f'row: {row}')
    run.shot('conflict.png', top='#conflict')
    after = run.fetch('GET', '/api/policy')['body']
    run.check(after['rev'] == other and after['policy']['antispam']['scan_outbound'] == scan and
              after['policy']['antispam']['subject_prefix'] == prefix,
              f"nothing of the page's edit was committed (head {after['rev']}, scan_outbound still {scan})",
              f"head {after['rev']}, scan_outbound {after['policy']['antispam']['scan_outbound']}")
    p.click('#conflict-reload')
    p.wait("document.querySelector('#pending').textContent === 'No changes' && "
           "document.querySelector('#conflict').hidden", WAIT)


def check_cross_site(run):
    """h. A forged cross-site POST with the page's cookie is refused."""
    cookie = next((c for c in run.browser.cookies() if c['name'] == '__Host-pm_session'), None)
    if not cookie:
        raise RuntimeError('no __Host-pm_session cookie in the browser')
    jar = {'Cookie': f"__Host-pm_session={cookie['value']}"}
    csrf = run.fetch('GET', '/api/session')['body']['csrf']
    rev = run.head_rev()
    change = {'rev': rev, 'edits': [{'key': 'antispam.subject_prefix', 'op': 'set', 'value': '[forged]'}]}
    status, _ = run.http('POST', '/api/policy/check', change, headers={**jar, 'X-CSRF-Token': csrf})
    run.check(status == 200, "the page's cookie and token are good (POST /api/policy/check: 200)", f'HTTP {status}')
    status, _ = run.http('POST', '/api/policy', change,
                         headers={**jar, 'X-CSRF-Token': csrf, 'Origin': 'https://evil.example'})
    run.check(status == 403, 'a POST with the cookie from Origin https://evil.example is refused (403)',
              f'HTTP {status}')
    status, _ = run.http('POST', '/api/policy', change, headers=jar)
    run.check(status == 403, 'a POST with the cookie but no X-CSRF-Token is refused (403)', f'HTTP {status}')
    after = run.head_rev()
    run.check(after == rev, f'nothing was committed (still revision {rev})', f'now revision {after}')


def check_screens_and_errors(run):
    """i. Phone-width screenshots, every screenshot in place, no JS error."""
    p = run.page
    p.set_viewport(PHONE, HEIGHT, mobile=True)
    run.tab('nodes')
    p.wait(f"document.querySelectorAll('#nodes-body tr[data-node]').length === {len(NODES)}", WAIT)
    run.shot('nodes-375.png')
    run.tab('inbound')
    run.shot('inbound-375.png')
    p.set_viewport(WIDTH, HEIGHT)
    sizes = {}
    for name in ('login', 'inbound', 'outbound', 'avas', 'nodes', 'history', 'diff'):
        sizes[f'{name}.png'] = (WIDTH, HEIGHT)
    sizes['nodes-375.png'] = sizes['inbound-375.png'] = (PHONE, HEIGHT)
    wrong = {n: png_size(os.path.join(run.shots, n)) for n in sizes}
    wrong = {n: s for n, s in wrong.items() if s != sizes[n]}
    run.check(not wrong, f'screenshots in {run.shots}: {", ".join(sizes)}',
              ', '.join(f'{n}: {s}' for n, s in wrong.items()))
    errors = [e for e in p.errors() if not EXPECTED_LOG.search(e)]
    run.check(not errors, 'the page logged no JS error, console error or CSP violation',
              ' | '.join(errors)[:1000])


def png_size(path):
    """(width, height) of a PNG, or None."""
    try:
        with open(path, 'rb') as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b'\x89PNG\r\n\x1a\n':
        return None
    return struct.unpack('>II', head[16:24])


# ---- main --------------------------------------------------------------------------

CHECKS = [  # (what, function, whether the rest can run without it)
    ('a. the page without a login', check_logged_out, True),
    ('b. logging in', check_login, True),
    ('c. invalid input', check_invalid_input, False),
    ('d. the change', check_change, True),
    ('e. Privacy Instances', check_nodes, False),
    ('f. the nodes enforce it', check_enforced, False),
    ('g. a concurrent change', check_conflict, False),
    ('h. cross-site POSTs', check_cross_site, False),
    ('i. screenshots and page errors', check_screens_and_errors, False),
]


def main(argv):
    if len(argv) != 6:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    url, user, pwfile, shots, work = argv[1:]
    if not find_chromium():
        print('# chromium is not installed: skipped')
        return 77
    with open(pwfile) as f:
        password = f.read().rstrip('\n')
    os.makedirs(shots, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    # a SIGTERM (a test's timeout) still closes Chromium and its profile
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(url, user, password, shots, work)
    started = time.monotonic()
    try:
        undo_earlier_changes(run)
    except Exception as e:
        run.fail('taking back an earlier run through the API', f'{type(e).__name__}: {e}')
        return 1
    with Browser(work_dir=work, width=WIDTH, height=HEIGHT, ignore_cert_errors=True,
                 timeout=WAIT) as browser:
        run.browser = browser
        run.page = browser.new_page(WIDTH, HEIGHT)
        for what, fn, essential in CHECKS:
            try:
                fn(run)
            except Exception as e:  # a wait that timed out, a missing element
                run.fail(what, f'{type(e).__name__}: {e}')
                if essential:
                    run.note('the checks after this one cannot run')
                    break
    run.note(f'{run.failed} failed; {time.monotonic() - started:.0f} s')
    return 1 if run.failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
