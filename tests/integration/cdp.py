#!/usr/bin/env python3
"""cdp.py - headless Chromium driven over the DevTools protocol on a pipe.

Standard library only. Chromium is started with --remote-debugging-pipe:
it reads JSON commands, each ended by a NUL byte, from its fd 3 and writes
the answers and events to its fd 4; no TCP port is opened.

    from cdp import Browser
    with Browser(work_dir='/tmp/w', ignore_cert_errors=True) as b:
        p = b.new_page()
        p.goto('https://127.0.0.1:7443/')
        p.wait("!document.querySelector('#login-view').hidden")
        p.fill('#login-user', 'admin')
        p.key('Enter')
        p.screenshot('/tmp/w/login.png')
        print(p.errors())   # JS exceptions, console errors, CSP violations

Browser(work_dir, chromium=None, headless=True, width=1280, height=800,
        ignore_cert_errors=False, extra_args=(), timeout=30)
    Starts Chromium with a fresh profile (--user-data-dir) made under
    WORK_DIR. Chromium runs in a process group of its own; close() (also
    called on leaving the `with` block, at interpreter exit, and by
    close_all()) ends that group, by its id, and removes the profile, even
    after an exception. Should this process be killed outright, Chromium
    gets SIGKILL too (PR_SET_PDEATHSIG). Every protocol call, and every
    wait, gives up after TIMEOUT seconds (CDPError) rather than hang.
Browser methods: new_page, send, wait_event, cookies, stderr_tail, close.
Page methods: goto, reload, eval, wait, click, focus, type, key (press),
    fill, set_files, screenshot, set_viewport, settle, errors,
    clear_errors, events.
"""
import atexit
import base64
import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

DEFAULT_TIMEOUT = 30.0

CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def find_chromium():
    """The Chromium binary: $CHROMIUM, else the first of CHROMIUM_NAMES on
    the PATH; None when there is none."""
    env = os.environ.get('CHROMIUM')
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(Exception):
    pass


# key name -> (windowsVirtualKeyCode, code, text)
KEYS = {
    'Enter': (13, 'Enter', '\r'), ' ': (32, 'Space', ' '), 'Space': (32, 'Space', ' '),
    'Tab': (9, 'Tab', None), 'Escape': (27, 'Escape', None), 'Backspace': (8, 'Backspace', None),
    'Delete': (46, 'Delete', None), 'ArrowLeft': (37, 'ArrowLeft', None),
    'ArrowRight': (39, 'ArrowRight', None), 'ArrowUp': (38, 'ArrowUp', None),
    'ArrowDown': (40, 'ArrowDown', None), 'Home': (36, 'Home', None), 'End': (35, 'End', None),
    ',': (188, 'Comma', ','),
}

_open_browsers = set()


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    """In the child, before exec: SIGKILL when this process dies, however
    it dies (Linux; best effort). Chromium ends its helpers when it goes."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _group_alive(pgid):
    """Whether process group PGID has a process that is not a zombie
    (dead, waiting for init to reap it)."""
    try:
        pids = [d for d in os.listdir('/proc') if d.isdigit()]
    except OSError:  # no /proc: ask the kernel, zombies count
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] not in ('Z', 'X'):
            return True
    return False


def close_all():
    """Closes every Browser still open (also run at interpreter exit)."""
    for b in list(_open_browsers):
        b.close()


atexit.register(close_all)


class Browser:
    def __init__(self, work_dir, chromium=None, headless=True, width=1280, height=800,
                 ignore_cert_errors=False, extra_args=(), timeout=DEFAULT_TIMEOUT,
                 auto_dialogs=True):
        self.chromium = chromium or find_chromium()
        if not self.chromium:
            raise CDPError('no Chromium found (set $CHROMIUM)')
        os.makedirs(work_dir, exist_ok=True)
        self.profile = tempfile.mkdtemp(prefix='chromium-profile-', dir=work_dir)
        self.timeout = timeout
        self.auto_dialogs = auto_dialogs
        self.width, self.height = width, height
        self.proc = None
        self.w = self.r = None
        self.cv = threading.Condition()
        self.wlock = threading.Lock()
        self.next_id = 0
        self.replies = {}
        self.events = []
        self.alive = False
        self.closed = False
        _open_browsers.add(self)
        try:
            self._start(headless, ignore_cert_errors, extra_args)
        except BaseException:
            self.close()
            raise

    # -- process ---------------------------------------------------------
    def _start(self, headless, ignore_cert_errors, extra_args):
        to_r, to_w = os.pipe()      # we write commands -> Chromium's fd 3
        from_r, from_w = os.pipe()  # Chromium's fd 4 -> we read
        # high, close-on-exec copies so that dup2 onto 3 and 4 cannot collide
        hi_in = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 100)
        hi_out = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 100)
        for fd in (to_r, from_w):
            os.close(fd)
        self.w, self.r = to_w, from_r
        os.set_blocking(self.w, False)
        args = [self.chromium, '--remote-debugging-pipe', f'--user-data-dir={self.profile}',
                '--no-first-run', '--no-default-browser-check', '--disable-extensions',
                '--disable-gpu', '--no-sandbox', '--disable-dev-shm-usage',
                '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--metrics-recording-only', '--password-store=basic',
                '--use-mock-keychain', f'--window-size={self.width},{self.height}']
        if headless:
            args.append('--headless=new')
        if ignore_cert_errors:
            args.append('--ignore-certificate-errors')
        args += list(extra_args) + ['about:blank']

        def child():
            os.dup2(hi_in, 3)
            os.dup2(hi_out, 4)
            _die_with_parent()

        try:
            with open(os.path.join(self.profile, 'stderr.log'), 'wb') as err:
                # its own session, so that close() can end Chromium's helpers
                # (zygote, renderers, GPU) with it: a group, by its id
                self.proc = subprocess.Popen(args, preexec_fn=child, close_fds=False,
                                             start_new_session=True,
                                             stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err)
        finally:
            os.close(hi_in)
            os.close(hi_out)
        self.alive = True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self):
        """Ends Chromium (politely, then its whole process group) and
        removes its profile. Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        _open_browsers.discard(self)
        if self.proc is not None:
            if self.proc.poll() is None and self.alive:
                try:
                    self.send('Browser.close', timeout=5)
                except Exception:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._end_group()
        for fd in (self.w, self.r):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.w = self.r = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def _end_group(self):
        """SIGTERM, then SIGKILL, to what is left of Chromium's process
        group (its id is Chromium's pid: start_new_session), until the
        group is gone (a few seconds at most)."""
        pgid = self.proc.pid
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            except PermissionError:  # the id was reused: not ours any more
                break
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not _group_alive(pgid):
                    return
                time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stderr_tail(self, n=20):
        """The last N lines Chromium wrote to stderr (while it is open)."""
        try:
            with open(os.path.join(self.profile, 'stderr.log'), errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    # -- protocol plumbing -----------------------------------------------
    def _read(self):
        buf = b''
        r = self.r
        while True:
            try:
                chunk = os.read(r, 1 << 16)
            except OSError:
                chunk = b''
            if not chunk:
                break
            buf += chunk
            while b'\0' in buf:
                raw, buf = buf.split(b'\0', 1)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                with self.cv:
                    if 'id' in msg:
                        self.replies[msg['id']] = msg
                    else:
                        self.events.append(msg)
                        if self.auto_dialogs and msg.get('method') == 'Page.javascriptDialogOpening':
                            threading.Thread(target=self._accept_dialog,
                                             args=(msg.get('sessionId'),), daemon=True).start()
                    self.cv.notify_all()
        with self.cv:
            self.alive = False
            self.cv.notify_all()

    def _accept_dialog(self, session):
        try:
            self.send('Page.handleJavaScriptDialog', {'accept': True}, session=session, timeout=5)
        except CDPError:
            pass

    def _write(self, data, deadline):
        with self.wlock:
            while data:
                left = deadline - time.monotonic()
                if left <= 0 or self.w is None:
                    raise CDPError('cannot write to Chromium (timed out or closed)')
                _, ready, _ = select.select([], [self.w], [], left)
                if not ready:
                    continue
                try:
                    n = os.write(self.w, data)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise CDPError(f'cannot write to Chromium: {e}')
                data = data[n:]

    def send(self, method, params=None, session=None, timeout=None):
        """One protocol command; its result, or CDPError on an error answer,
        after TIMEOUT seconds (default: the browser's), or if Chromium
        exited."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self.alive:
            raise CDPError(f'{method}: Chromium is not running')
        with self.cv:
            self.next_id += 1
            mid = self.next_id
        msg = {'id': mid, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = session
        self._write(json.dumps(msg).encode() + b'\0', deadline)
        with self.cv:
            while mid not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    raise CDPError(f'{method}: no answer within {timeout:g} s'
                                   if self.alive else f'{method}: Chromium exited')
                self.cv.wait(left)
            reply = self.replies.pop(mid)
        if 'error' in reply:
            err = reply['error']
            raise CDPError(f"{method}: {err.get('message')} {err.get('data', '')}".rstrip())
        return reply.get('result', {})

    def wait_event(self, method, session=None, timeout=None, since=0, pred=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events[since:]:
                    if e.get('method') == method and \
                            (session is None or e.get('sessionId') == session) and \
                            (pred is None or pred(e)):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    raise CDPError(f'no {method} within {timeout:g} s'
                                   if self.alive else f'waiting for {method}: Chromium exited')
                self.cv.wait(left)

    def new_page(self, width=None, height=None, mobile=False):
        tid = self.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        sid = self.send('Target.attachToTarget', {'targetId': tid, 'flatten': True})['sessionId']
        p = Page(self, tid, sid)
        for domain in ('Page', 'Runtime', 'Log'):
            self.send(f'{domain}.enable', {}, session=sid)
        p.set_viewport(width or self.width, height or self.height, mobile=mobile)
        return p

    def cookies(self):
        """Every cookie of the browser (Storage.getCookies)."""
        return self.send('Storage.getCookies').get('cookies', [])


class Page:
    def __init__(self, browser, target, session):
        self.b = browser
        self.target = target
        self.sid = session
        self.err_mark = 0

    def send(self, method, params=None, timeout=None):
        return self.b.send(method, params, session=self.sid, timeout=timeout)

    def set_viewport(self, width, height, mobile=False, scale=1):
        self.send('Emulation.setDeviceMetricsOverride',
                  {'width': width, 'height': height, 'deviceScaleFactor': scale, 'mobile': mobile})

    def goto(self, url, timeout=None):
        mark = len(self.b.events)
        r = self.send('Page.navigate', {'url': url})
        if r.get('errorText'):
            raise CDPError(f"navigate {url}: {r['errorText']}")
        self.b.wait_event('Page.loadEventFired', session=self.sid, timeout=timeout, since=mark)

    def reload(self, timeout=None):
        mark = len(self.b.events)
        self.send('Page.reload', {'ignoreCache': True})
        self.b.wait_event('Page.loadEventFired', session=self.sid, timeout=timeout, since=mark)

    def eval(self, expr, await_promise=True, timeout=None):
        """EXPR's value (JSON), promises awaited; CDPError if it throws."""
        r = self.send('Runtime.evaluate', {'expression': expr, 'returnByValue': True,
                                           'awaitPromise': await_promise, 'userGesture': True},
                      timeout=timeout)
        if 'exceptionDetails' in r:
            d = r['exceptionDetails']
            raise CDPError(f"eval failed: {d.get('exception', {}).get('description') or d.get('text')}"
                           f"\n  in: {expr}")
        return r.get('result', {}).get('value')

    def wait(self, expr, timeout=None, interval=0.1):
        """Polls EXPR until it is truthy; returns its value, or CDPError
        after TIMEOUT seconds (default: the browser's) with the last value."""
        timeout = self.b.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                last = self.eval(expr, timeout=max(left, 1))
                if last:
                    return last
            except CDPError as e:
                last = e
                if not self.b.alive:
                    break
            time.sleep(interval)
        raise CDPError(f'timed out after {timeout:g} s waiting for: {expr} (last: {last!r})')

    def settle(self):
        """Returns once the page has painted twice (after a DOM change,
        before a screenshot)."""
        self.eval('new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))')

    def _center(self, selector):
        js = f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center', inline: 'center'}});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; }})()"""
        c = self.eval(js)
        if not c:
            raise CDPError(f'no element {selector}')
        if c[2] == 0 and c[3] == 0:
            raise CDPError(f'element {selector} is not visible')
        return c[0], c[1]

    def click(self, selector):
        """A real mouse click at the element's centre (what a user does)."""
        x, y = self._center(selector)
        self.send('Input.dispatchMouseEvent', {'type': 'mouseMoved', 'x': x, 'y': y})
        for kind in ('mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent',
                      {'type': kind, 'x': x, 'y': y, 'button': 'left', 'clickCount': 1})

    def focus(self, selector):
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")

    def type(self, text):
        """Inserts TEXT into the focused element (fires 'input')."""
        self.send('Input.insertText', {'text': text})

    def fill(self, selector, text):
        """Focus SELECTOR, select all, replace with TEXT (fires 'input')."""
        self.focus(selector)
        self.eval(f"(e => e.select && e.select())(document.querySelector({json.dumps(selector)}))")
        if text == '':
            self.key('Backspace')
        else:
            self.type(text)

    def key(self, key, modifiers=0):
        """Presses and releases KEY (a name of KEYS or one character)."""
        default = (ord(key.upper()) if len(key) == 1 else 0, key, key if len(key) == 1 else None)
        code, kcode, text = KEYS.get(key, default)
        down = {'type': 'keyDown' if text else 'rawKeyDown', 'key': key if key != 'Space' else ' ',
                'code': kcode, 'windowsVirtualKeyCode': code, 'nativeVirtualKeyCode': code,
                'modifiers': modifiers}
        if text:
            down['text'] = text
            down['unmodifiedText'] = text
        self.send('Input.dispatchKeyEvent', down)
        self.send('Input.dispatchKeyEvent', {'type': 'keyUp', 'key': down['key'], 'code': kcode,
                                             'windowsVirtualKeyCode': code,
                                             'nativeVirtualKeyCode': code, 'modifiers': modifiers})

    press = key

    def set_files(self, selector, paths):
        """Puts the files PATHS into the <input type=file> SELECTOR (fires
        'change')."""
        obj = self.send('Runtime.evaluate', {'expression': f"document.querySelector({json.dumps(selector)})"})
        oid = obj.get('result', {}).get('objectId')
        if not oid:
            raise CDPError(f'no element {selector}')
        self.send('DOM.setFileInputFiles', {'files': [os.path.abspath(p) for p in paths],
                                            'objectId': oid})

    def screenshot(self, path, full_page=False):
        """A PNG of the viewport (or of the whole page) into PATH."""
        params = {'format': 'png'}
        if full_page:
            m = self.send('Page.getLayoutMetrics')
            size = m.get('cssContentSize') or m['contentSize']
            params['clip'] = {'x': 0, 'y': 0, 'width': size['width'], 'height': size['height'],
                              'scale': 1}
            params['captureBeyondViewport'] = True
        data = self.send('Page.captureScreenshot', params)['data']
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))
        return path

    def events(self, method=None):
        with self.b.cv:
            evs = list(self.b.events)
        return [e for e in evs if e.get('sessionId') == self.sid and
                (method is None or e.get('method') == method)]

    def errors(self):
        """JS exceptions, console.error calls and the browser's error log
        (CSP violations, failed loads) since the last clear_errors()."""
        out = []
        for e in self.events()[self.err_mark:]:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.exceptionThrown':
                d = p.get('exceptionDetails', {})
                out.append('exception: ' + (d.get('exception', {}).get('description') or d.get('text', '')))
            elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
                out.append('console.error: ' + ' '.join(
                    str(a.get('value', a.get('description', ''))) for a in p.get('args', [])))
            elif m == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
                en = p['entry']
                out.append(f"log[{en.get('source')}]: {en.get('text')} {en.get('url', '')}".rstrip())
        return out

    def clear_errors(self):
        self.err_mark = len(self.events())
