/* privmta-web: the Privacy MTA admin console (browser side).
 *
 * Plain ES2020, no framework, no inline code (the server's CSP forbids it).
 * Text that comes from the server (node names, errors, signature names,
 * authors, messages) only ever reaches the page through textContent.
 *
 * State: the policy as loaded (orig) and the admin's working copy (cur),
 * both maps from public key name to JSON value; custom signatures are
 * edited with add/remove operations instead. Every change is checked by
 * the server (POST /api/policy/check, debounced) and the server's problem
 * texts are shown next to the fields they name.
 */
'use strict';

(() => {
  /* ------------------------------------------------------------------ */
  /* constants                                                          */
  /* ------------------------------------------------------------------ */

  const LEVELS = { low: [40, 90], medium: [33, 75], high: [16, 66] };
  const SPAM_KEYS = ['antispam.tag_percent', 'antispam.kill_percent', 'antispam.level'];
  const SIG_KEY = 'antivirus.custom_signatures';
  const COMMON_FALLBACK = ('asd bat chm cmd com dll do exe hlp hta js jse lnk ocx pif reg ' +
    'scr shb shm shs vbe vbs vbx vxd wsf wsh xl').split(' ');
  const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const UNIT_ORDER = ['w', 'd', 'h', 'm', 's'];
  const EFFECT_RANK = { live: 0, engine: 1, reload: 2, restart: 3 };
  const EFFECT_TEXT = {
    live: 'Takes effect with the next message; nothing is reloaded.',
    engine: 'The scanning engine reloads on each node; no restart needed.',
    reload: 'Postfix reloads its configuration on each node; no restart needed.',
    restart: 'Needs a service restart on each node: run a rolling restart (privmta-ctl restart --rolling).',
  };
  const TABS = ['inbound', 'outbound', 'avas', 'nodes', 'history'];
  const FORM_TABS = ['inbound', 'outbound', 'avas'];
  const CHECK_DELAY_MS = 300;
  const NODES_EVERY_MS = 2000;
  const ACK_EVERY_MS = 1000;
  const ACK_FOR_MS = 15000;
  const HISTORY_PAGE = 50;
  const SIG_MAX_BYTES = 10 * 1024 * 1024;

  /* ------------------------------------------------------------------ */
  /* state                                                              */
  /* ------------------------------------------------------------------ */

  const S = {
    user: null,
    csrf: null,
    base: null,            // {rev, digest, author, message, time}
    keys: new Map(),       // key name -> {name, type, default, help, choices, node, effect}
    common: COMMON_FALLBACK,
    orig: new Map(),       // key -> value as loaded
    cur: new Map(),        // key -> value being edited
    sigAdds: new Map(),    // signature name -> {name, content, size}
    sigRemoves: new Set(), // signature names
    overrides: [],         // [{node, key, value}]
    binders: new Map(),    // key -> {render(), focus(), field}
    errEls: new Map(),     // key -> .field-error element
    labels: new Map(),     // key -> human label
    problems: [],
    checkTimer: null,
    checkSeq: 0,
    tab: 'inbound',
    nodesLoop: null,
    ack: null,
    history: [],
    histHead: null,
    pendingSave: null,
    pendingRollback: null,
    keepEdits: null,
    statusTimer: null,
    loginTimer: null,
    busy: false,
  };

  /* ------------------------------------------------------------------ */
  /* small helpers                                                      */
  /* ------------------------------------------------------------------ */

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  /* el('td', {class: 'x', text: 'y', dataset: {node: n}}, child...) */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'checked' || k === 'value') e[k] = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + 's')}`;
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const cssEsc = (s) => (window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&'));

  function getPath(obj, dotted) {
    let o = obj;
    for (const part of dotted.split('.')) {
      if (!isObj(o) || !(part in o)) return undefined;
      o = o[part];
    }
    return o;
  }

  function tabOfKey(key) {
    if (!key) return null;
    if (key.startsWith('inbound.')) return 'inbound';
    if (key.startsWith('outbound.')) return 'outbound';
    if (key.startsWith('antispam.') || key.startsWith('antivirus.') || key.startsWith('dkim.')) return 'avas';
    return null;
  }

  function now() { return Math.floor(Date.now() / 1000); }

  /* "12 s ago", "3 min ago", "in 5 min"; 0 or missing: "never" */
  function ago(t, never = 'never') {
    if (!t) return never;
    let d = now() - Number(t);
    const future = d < 0;
    d = Math.abs(d);
    let text;
    if (d < 5 && !future) return 'just now';
    if (d < 60) text = `${d} s`;
    else if (d < 3600) text = `${Math.floor(d / 60)} min`;
    else if (d < 86400) text = `${Math.floor(d / 3600)} h`;
    else text = `${Math.floor(d / 86400)} d`;
    return future ? `in ${text}` : `${text} ago`;
  }

  function when(t) {
    if (!t) return '';
    try { return new Date(Number(t) * 1000).toLocaleString(); } catch (e) { return String(t); }
  }

  /* SpamAssassin score of a percent, one decimal, no float rounding:
   * 33 -> "6.6", 75 -> "15.0". */
  function score(p) {
    if (!Number.isInteger(p) || p < 0) return null;
    const tenths = p * 2;
    return `${Math.floor(tenths / 10)}.${tenths % 10}`;
  }

  function durationSeconds(text) {
    if (typeof text !== 'string') return NaN;
    const re = /(\d+)\s*([smhdw])/g;
    let total = 0, m, used = 0;
    while ((m = re.exec(text))) { total += Number(m[1]) * UNITS[m[2]]; used += m[0].length; }
    return used && used === text.replace(/\s+/g, '').length ? total : NaN;
  }

  /* "2h" -> {n: "2", u: "h"}; "90m" stays minutes; compound text is
   * shown in the largest unit that divides it. */
  function durationParts(text) {
    const m = /^(\d+)([smhdw])$/.exec(typeof text === 'string' ? text.trim() : '');
    if (m) return { n: m[1], u: m[2] };
    const secs = durationSeconds(text);
    if (Number.isFinite(secs) && secs > 0) {
      for (const u of UNIT_ORDER) if (secs % UNITS[u] === 0) return { n: String(secs / UNITS[u]), u };
    }
    return { n: '', u: 'h' };
  }

  /* ------------------------------------------------------------------ */
  /* status line                                                        */
  /* ------------------------------------------------------------------ */

  function status(text, kind = 'info') {
    const bar = $('#status-bar');
    const s = $('#status');
    s.textContent = text || '';
    s.dataset.kind = kind;
    bar.dataset.kind = kind;
    bar.hidden = !text;
    clearTimeout(S.statusTimer);
    if (text && (kind === 'ok' || kind === 'info')) {
      S.statusTimer = setTimeout(() => { bar.hidden = true; }, 10000);
    }
  }

  /* ------------------------------------------------------------------ */
  /* API                                                                */
  /* ------------------------------------------------------------------ */

  class ApiError extends Error {
    constructor(status, body) {
      super((body && typeof body.error === 'string' && body.error) ||
            (status ? `the server answered HTTP ${status}` : 'the console server cannot be reached'));
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body, retried = false) {
    const opt = {
      method,
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    };
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    if (method !== 'GET' && S.csrf) opt.headers['X-CSRF-Token'] = S.csrf;
    let res;
    try {
      res = await fetch(path, opt);
    } catch (e) {
      throw new ApiError(0, { error: 'the console server cannot be reached' });
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!isObj(data)) data = res.ok ? {} : { error: `the server answered HTTP ${res.status}` };
    if (res.status === 401 && path !== '/api/login') {
      onUnauthorized();
      throw new ApiError(401, data);
    }
    if (res.status === 403 && method !== 'GET' && !retried && path !== '/api/login') {
      /* the CSRF token may have been renewed: fetch it once and retry */
      try {
        const s = await api('GET', '/api/session');
        if (s && s.csrf) {
          S.csrf = s.csrf;
          return api(method, path, body, true);
        }
      } catch (e) { /* fall through to the 403 */ }
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  /* The generic answer to an error nobody handled specifically. */
  function reportError(e, what) {
    if (e && e.status === 401) return; /* the login form is up */
    const text = e && e.message ? e.message : String(e);
    status(what ? `${what}: ${text}` : text, 'error');
  }

  /* ------------------------------------------------------------------ */
  /* session                                                            */
  /* ------------------------------------------------------------------ */

  function isDirty() { return changedKeys().length > 0; }

  function onUnauthorized() {
    if (!S.user) return;
    const dirty = S.base && isDirty();
    S.keepEdits = dirty ? snapshotEdits() : null;
    S.user = null;
    S.csrf = null;
    stopNodes();
    stopAck();
    clearTimeout(S.checkTimer);
    for (const d of $$('dialog')) if (d.open) d.close();
    showLogin(dirty ? 'Your session has ended. Sign in again; your unsaved changes are kept.'
                    : 'Your session has ended; sign in again.');
  }

  function showLogin(message) {
    $('#app-view').hidden = true;
    $('#savebar').hidden = true;
    $('#whoami').hidden = true;
    $('#login-view').hidden = false;
    document.body.classList.remove('signed-in');
    const err = $('#login-error');
    err.textContent = message || '';
    err.dataset.kind = message ? 'info' : '';
    const user = $('#login-user');
    (user.value ? $('#login-password') : user).focus();
  }

  function enterApp() {
    $('#login-view').hidden = true;
    $('#app-view').hidden = false;
    $('#savebar').hidden = false;
    $('#whoami').hidden = false;
    $('#user-name').textContent = S.user;
    document.body.classList.add('signed-in');
    const fromHash = location.hash.replace(/^#/, '');
    selectTab(TABS.includes(fromHash) ? fromHash : S.tab, { push: false });
    loadPolicy({ restore: S.keepEdits });
    S.keepEdits = null;
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const user = $('#login-user').value.trim();
    const password = $('#login-password').value;
    const err = $('#login-error');
    if (!user || !password) {
      err.textContent = 'Enter your user name and password.';
      err.dataset.kind = 'error';
      (user ? $('#login-password') : $('#login-user')).focus();
      return;
    }
    const btn = $('#login-submit');
    btn.disabled = true;
    err.textContent = '';
    try {
      const r = await api('POST', '/api/login', { user, password });
      clearInterval(S.loginTimer);
      S.user = r.user || user;
      S.csrf = r.csrf || null;
      $('#login-password').value = '';
      btn.disabled = false;
      status('');
      enterApp();
    } catch (e) {
      $('#login-password').value = '';
      err.dataset.kind = 'error';
      if (e.status === 429) {
        loginCountdown(Number(e.body.retry_after) || 30, e.message);
        return;
      }
      btn.disabled = false;
      err.textContent = e.status === 401 ? (e.message || 'Wrong user name or password.') : `Cannot sign in: ${e.message}`;
      $('#login-password').focus();
    }
  }

  function loginCountdown(seconds, text) {
    const btn = $('#login-submit');
    const err = $('#login-error');
    const until = Date.now() + seconds * 1000;
    clearInterval(S.loginTimer);
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(S.loginTimer);
        S.loginTimer = null;
        btn.disabled = false;
        err.textContent = 'You can try again now.';
        err.dataset.kind = 'info';
        return;
      }
      btn.disabled = true;
      err.textContent = `${text || 'Too many failed logins'}. Try again in ${left} s.`;
    };
    tick();
    S.loginTimer = setInterval(tick, 1000);
  }

  async function onLogout() {
    try { await api('POST', '/api/logout', {}); } catch (e) { /* signed out either way */ }
    S.user = null;
    S.csrf = null;
    S.base = null;
    S.keepEdits = null;
    S.orig = new Map();
    S.cur = new Map();
    S.sigAdds.clear();
    S.sigRemoves.clear();
    stopNodes();
    stopAck();
    clearTimeout(S.checkTimer);
    $('#conflict').hidden = true;
    status('Signed out.', 'info');
    showLogin('');
  }

  /* ------------------------------------------------------------------ */
  /* loading the policy                                                 */
  /* ------------------------------------------------------------------ */

  function snapshotEdits() {
    const values = new Map();
    for (const k of changedKeys()) if (k !== SIG_KEY) values.set(k, clone(S.cur.get(k)));
    return {
      rev: S.base ? S.base.rev : null,
      values,
      sigAdds: new Map(S.sigAdds),
      sigRemoves: new Set(S.sigRemoves),
    };
  }

  function flattenOverrides(nodes) {
    const out = [];
    if (!isObj(nodes)) return out;
    const walk = (node, obj, prefix) => {
      for (const [k, v] of Object.entries(obj)) {
        const name = prefix ? `${prefix}.${k}` : k;
        if (isObj(v) && !S.keys.has(name)) walk(node, v, name);
        else out.push({ node, key: name, value: v });
      }
    };
    for (const [node, obj] of Object.entries(nodes)) if (isObj(obj)) walk(node, obj, '');
    return out;
  }

  /* restore: a snapshot of edits to put back (same revision only), or
   * {rebase: snapshot, skip: Set of keys} to keep edits on a new head. */
  async function loadPolicy({ restore = null, rebase = null } = {}) {
    let data;
    try {
      data = await api('GET', '/api/policy');
    } catch (e) {
      if (e.status === 401) return false;
      if (!S.base) {
        $('#policy-unavailable').hidden = false;
        $('#policy-unavailable-text').textContent = `The policy could not be loaded: ${e.message}`;
        $('#policy-form').hidden = true;
      }
      status(`Cannot load the policy: ${e.message}`, 'error');
      return false;
    }
    S.base = {
      rev: Number(data.rev) || 0,
      digest: data.digest || '',
      author: data.author || '',
      message: data.message || '',
      time: data.time || 0,
    };
    S.keys = new Map((Array.isArray(data.keys) ? data.keys : []).map((k) => [k.name, k]));
    S.common = Array.isArray(data.common_extensions) && data.common_extensions.length
      ? data.common_extensions : COMMON_FALLBACK;
    const policy = isObj(data.policy) ? data.policy : {};
    S.orig = new Map();
    const names = S.keys.size ? Array.from(S.keys.keys()) : Array.from(S.binders.keys());
    for (const k of names) {
      const v = getPath(policy, k);
      if (v !== undefined) S.orig.set(k, clone(v));
    }
    S.cur = new Map(Array.from(S.orig, ([k, v]) => [k, clone(v)]));
    S.sigAdds.clear();
    S.sigRemoves.clear();
    S.overrides = flattenOverrides(policy.nodes);

    let note = '';
    if (restore) {
      if (restore.rev === S.base.rev) {
        applySnapshot(restore, new Set());
        note = 'Your unsaved changes were kept.';
      } else if (restore.values.size || restore.sigAdds.size || restore.sigRemoves.size) {
        note = `The policy changed while you were signed out (now revision ${S.base.rev}); your unsaved changes were dropped.`;
      }
    }
    if (rebase) {
      const dropped = applySnapshot(rebase.snapshot, rebase.skip);
      note = dropped.length
        ? `Reloaded revision ${S.base.rev}. Your changes to ${dropped.join(', ')} were dropped (changed by someone else); the others are kept: review and save.`
        : `Reloaded revision ${S.base.rev}; your changes are kept: review and save.`;
    }

    $('#policy-unavailable').hidden = true;
    $('#policy-form').hidden = false;
    ensureGenericFields();
    syncAvailability();
    renderAll();
    renderRevInfo();
    showProblems([]);
    updateDirty();
    if (isDirty()) scheduleCheck();
    if (note) status(note, 'info');
    return true;
  }

  /* Puts SNAP's edits back except for keys in SKIP; returns the keys
   * dropped. The three antispam keys travel together. */
  function applySnapshot(snap, skip) {
    const dropped = [];
    const spamHit = SPAM_KEYS.some((k) => skip.has(k));
    for (const [k, v] of snap.values) {
      if (!S.keys.has(k) && S.keys.size) continue;
      if (skip.has(k) || (spamHit && SPAM_KEYS.includes(k))) { dropped.push(k); continue; }
      S.cur.set(k, clone(v));
    }
    if (snap.sigAdds.size || snap.sigRemoves.size) {
      if (skip.has(SIG_KEY)) {
        dropped.push(SIG_KEY);
      } else {
        const names = new Set((S.orig.get(SIG_KEY) || []).map((s) => s.name));
        for (const n of snap.sigRemoves) if (names.has(n)) S.sigRemoves.add(n);
        for (const [n, s] of snap.sigAdds) S.sigAdds.set(n, s);
      }
    }
    return dropped;
  }

  function renderRevInfo() {
    const p = $('#rev-info');
    p.textContent = '';
    const b = S.base;
    if (!b) return;
    if (!b.rev) {
      p.append('No revision saved yet: these are the defaults.');
      return;
    }
    p.append(el('strong', { text: `Revision ${b.rev}` }));
    if (b.author) p.append(`, saved by ${b.author}`);
    if (b.time) p.append(' ', el('time', { text: ago(b.time), title: when(b.time), datetime: new Date(b.time * 1000).toISOString() }));
    if (b.message) p.append(': ', el('q', { text: b.message }));
  }

  /* A field whose key the server does not know is shown disabled. */
  function syncAvailability() {
    for (const [key, b] of S.binders) {
      const known = !S.keys.size || S.keys.has(key);
      const loaded = S.orig.has(key);
      b.field.classList.toggle('unavailable', !(known && loaded));
      for (const c of $$('input, select, button', b.field)) {
        if (!(known && loaded)) c.disabled = true;
        else if (c.dataset.lockedByLevel === undefined) c.disabled = false;
      }
    }
  }

  function renderAll() {
    for (const b of S.binders.values()) b.render();
    renderOverrides();
  }

  function renderOverrides() {
    const card = $('#node-overrides-card');
    const list = $('#node-overrides');
    list.textContent = '';
    for (const n of $$('.override-note')) n.remove();
    card.hidden = S.overrides.length === 0;
    const byKey = new Map();
    for (const o of S.overrides) {
      const text = typeof o.value === 'string' ? o.value : JSON.stringify(o.value);
      list.append(el('li', { dataset: { node: o.node, key: o.key } },
        el('strong', { text: o.node }), ': ', el('code', { text: o.key }), ' = ', el('code', { text })));
      if (!byKey.has(o.key)) byKey.set(o.key, []);
      byKey.get(o.key).push(`${o.node} (${text})`);
    }
    for (const [key, nodes] of byKey) {
      const b = S.binders.get(key);
      if (!b) continue;
      const note = el('p', { class: 'override-note', text: `Overridden on ${nodes.join(', ')}` });
      const err = S.errEls.get(key);
      b.field.insertBefore(note, err || null);
    }
  }

  /* ------------------------------------------------------------------ */
  /* change tracking                                                    */
  /* ------------------------------------------------------------------ */

  function changedKeys() {
    const out = [];
    for (const [k, v] of S.cur) if (k !== SIG_KEY && !same(v, S.orig.get(k))) out.push(k);
    if (S.sigAdds.size || S.sigRemoves.size) out.push(SIG_KEY);
    return out;
  }

  function changeCount() {
    let n = 0;
    for (const k of changedKeys()) n += k === SIG_KEY ? sigOps().length : 1;
    return n;
  }

  function sigOps() {
    const ops = [];
    for (const name of S.sigRemoves) ops.push({ key: SIG_KEY, op: 'remove', value: name });
    for (const s of S.sigAdds.values()) ops.push({ key: SIG_KEY, op: 'add', value: { name: s.name, content: s.content } });
    return ops;
  }

  /* Every changed key as a "set" of its whole value; the level and both
   * percents always travel together (and consistent); signatures as
   * add/remove. */
  function buildEdits() {
    const changed = new Set(changedKeys());
    const edits = [];
    const spam = SPAM_KEYS.some((k) => changed.has(k));
    for (const k of S.cur.keys()) {
      if (k === SIG_KEY || SPAM_KEYS.includes(k)) continue;
      if (changed.has(k)) edits.push({ key: k, op: 'set', value: clone(S.cur.get(k)) });
    }
    if (spam) {
      for (const k of SPAM_KEYS) if (S.cur.has(k)) edits.push({ key: k, op: 'set', value: clone(S.cur.get(k)) });
    }
    return edits.concat(sigOps());
  }

  function setValue(key, value) {
    S.cur.set(key, value);
    afterChange();
  }

  function afterChange() {
    updateDirty();
    scheduleCheck();
  }

  function updateDirty() {
    const changed = changedKeys();
    const n = changeCount();
    const perTab = { inbound: 0, outbound: 0, avas: 0 };
    for (const k of changed) {
      const t = tabOfKey(k);
      if (t in perTab) perTab[t] += k === SIG_KEY ? sigOps().length : 1;
    }
    for (const [key, b] of S.binders) b.field.classList.toggle('changed', changed.includes(key));
    for (const t of FORM_TABS) {
      const tab = $(`#tab-${t}`);
      const badge = $('.tab-badge', tab);
      if (badge) badge.textContent = perTab[t] ? String(perTab[t]) : '';
      tab.dataset.changes = String(perTab[t]);
    }
    $('#pending').textContent = n ? `${plural(n, 'change')} pending` : 'No changes';
    $('#save').disabled = n === 0 || S.busy;
    $('#discard').disabled = n === 0 || S.busy;
    $('#savebar').classList.toggle('dirty', n > 0);
  }

  function discard() {
    S.cur = new Map(Array.from(S.orig, ([k, v]) => [k, clone(v)]));
    S.sigAdds.clear();
    S.sigRemoves.clear();
    clearTimeout(S.checkTimer);
    S.checkSeq++;
    renderAll();
    showProblems([]);
    updateDirty();
    status('Changes discarded.', 'info');
  }

  /* ------------------------------------------------------------------ */
  /* server-side checking                                               */
  /* ------------------------------------------------------------------ */

  function scheduleCheck() {
    clearTimeout(S.checkTimer);
    S.checkTimer = setTimeout(() => { runCheck().catch(() => {}); }, CHECK_DELAY_MS);
  }

  /* Asks the server to check the edits; returns its answer, or null when
   * there was nothing to check, the answer is stale, or the call failed. */
  async function runCheck() {
    clearTimeout(S.checkTimer);
    const seq = ++S.checkSeq;
    const edits = buildEdits();
    if (!edits.length || !S.base) {
      showProblems([]);
      return null;
    }
    let r;
    try {
      r = await api('POST', '/api/policy/check', { rev: S.base.rev, edits });
    } catch (e) {
      if (seq !== S.checkSeq) return null;
      if (e.status === 409) showConflict(e.body, { focus: S.busy });
      else if (e.status === 422) showProblems(e.body.problems || [{ key: null, problem: e.message }]);
      else reportError(e, 'Cannot check the changes');
      return null;
    }
    if (seq !== S.checkSeq) return null;
    showProblems(Array.isArray(r.problems) ? r.problems : []);
    return r;
  }

  function showProblems(problems) {
    S.problems = problems || [];
    for (const [key, errEl] of S.errEls) {
      errEl.textContent = '';
      errEl.hidden = true;
      const b = S.binders.get(key);
      if (b) {
        b.field.classList.remove('invalid');
        for (const c of $$('[aria-invalid]', b.field)) c.removeAttribute('aria-invalid');
      }
    }
    const list = $('#general-error-list');
    list.textContent = '';
    const tabsWithErrors = new Set();
    for (const p of S.problems) {
      const key = typeof p.key === 'string' ? p.key : null;
      const text = typeof p.problem === 'string' ? p.problem : String(p.problem || p.error || 'invalid');
      const errEl = key ? S.errEls.get(key) : null;
      if (errEl) {
        errEl.textContent = errEl.textContent ? `${errEl.textContent}\n${text}` : text;
        errEl.hidden = false;
        const b = S.binders.get(key);
        b.field.classList.add('invalid');
        const ctl = b.control && b.control();
        if (ctl) ctl.setAttribute('aria-invalid', 'true');
        const t = tabOfKey(key);
        if (t) tabsWithErrors.add(t);
      } else {
        let label = '';
        const m = key && /^nodes\.([^.]+)\.(.+)$/.exec(key);
        if (m) label = `Override of ${m[2]} on node ${m[1]}: `;
        else if (key) label = `${key}: `;
        list.append(el('li', { dataset: key ? { key } : {} }, label ? el('code', { text: label }) : null, text));
      }
    }
    $('#general-errors').hidden = list.children.length === 0;
    for (const t of FORM_TABS) $(`#tab-${t}`).classList.toggle('has-error', tabsWithErrors.has(t));
  }

  function focusFirstProblem() {
    for (const p of S.problems) {
      const b = p.key && S.binders.get(p.key);
      if (b) {
        const t = tabOfKey(p.key);
        if (t && t !== S.tab) selectTab(t);
        b.focus();
        return;
      }
    }
    if (!$('#general-errors').hidden) $('#general-errors').scrollIntoView({ block: 'nearest' });
  }

  /* ------------------------------------------------------------------ */
  /* field widgets                                                      */
  /* ------------------------------------------------------------------ */

  function fieldLabel(field) {
    const lab = $('label:not(.radio):not(.sr-only), .label, legend', field);
    return lab ? lab.textContent.replace(/\s+/g, ' ').trim() : field.dataset.field;
  }

  function registerField(field) {
    const key = field.dataset.field;
    const widget = field.dataset.widget;
    const make = WIDGETS[widget];
    if (!make || S.binders.has(key)) return;
    let errEl = $(`.field-error[data-key="${cssEsc(key)}"]`, field);
    if (!errEl) {
      errEl = el('p', { class: 'field-error', id: `err-${key.replace(/[^a-z0-9_-]/gi, '-')}`, hidden: true, dataset: { key } });
      field.append(errEl);
    }
    S.errEls.set(key, errEl);
    S.labels.set(key, fieldLabel(field));
    const b = make(field, key);
    b.field = field;
    S.binders.set(key, b);
    const ctl = b.control && b.control();
    if (ctl) {
      const ids = (ctl.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
      if (!ids.includes(errEl.id)) ids.push(errEl.id);
      ctl.setAttribute('aria-describedby', ids.join(' '));
    }
  }

  /* A list of strings shown as chips with a text input; Space, Enter or a
   * comma adds what was typed. */
  function chipsWidget(field, key) {
    const box = $('.chips', field);
    const list = $('.chip-list', box);
    const input = $('.chip-input', box);
    const normalize = field.dataset.normalize === 'ext'
      ? (s) => s.trim().toLowerCase().replace(/^\.+/, '')
      : (s) => s.trim();
    const value = () => (Array.isArray(S.cur.get(key)) ? S.cur.get(key) : []);

    function add(tokens) {
      const arr = value().slice();
      let added = 0;
      for (const t of tokens) {
        const v = normalize(t);
        if (!v) continue;
        if (arr.includes(v)) { flash(v); continue; }
        arr.push(v);
        added++;
      }
      if (added) {
        setValue(key, arr);
        render();
      }
      return added;
    }
    function remove(v) {
      const arr = value().filter((x) => x !== v);
      setValue(key, arr);
      render();
    }
    function flash(v) {
      const chip = $(`.chip[data-value="${cssEsc(v)}"]`, list);
      if (!chip) return;
      chip.classList.remove('flash');
      void chip.offsetWidth; /* restart the animation */
      chip.classList.add('flash');
    }
    function render() {
      const orig = Array.isArray(S.orig.get(key)) ? S.orig.get(key) : [];
      list.textContent = '';
      for (const v of value()) {
        list.append(el('li', { class: orig.includes(v) ? 'chip' : 'chip chip-new', dataset: { value: v } },
          el('span', { class: 'chip-text', text: v }),
          el('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${v}`, title: `Remove ${v}`, text: '×' })));
      }
      box.classList.toggle('empty', value().length === 0);
    }

    input.addEventListener('keydown', (e) => {
      if (e.isComposing) return;
      if (e.key === ' ' || e.key === 'Enter' || e.key === ',' || e.key === 'Tab') {
        const text = input.value;
        if (text.trim()) {
          if (e.key !== 'Tab') e.preventDefault();
          add([text]);
          input.value = '';
        } else if (e.key !== 'Tab') {
          e.preventDefault();
        }
      } else if (e.key === 'Backspace' && !input.value) {
        const last = $('.chip:last-child .chip-remove', list);
        if (last) { e.preventDefault(); last.focus(); }
      }
    });
    /* pasted "exe bat com" or a trailing separator */
    input.addEventListener('input', () => {
      if (!/[\s,;]/.test(input.value)) return;
      const parts = input.value.split(/[\s,;]+/);
      const rest = parts.pop();
      add(parts);
      input.value = rest;
    });
    input.addEventListener('blur', () => {
      if (input.value.trim()) { add([input.value]); input.value = ''; }
    });
    list.addEventListener('click', (e) => {
      const btn = e.target.closest('.chip-remove');
      if (!btn) return;
      const chip = btn.closest('.chip');
      const next = chip.nextElementSibling || chip.previousElementSibling;
      const nextValue = next ? next.dataset.value : null;
      remove(chip.dataset.value);
      const target = nextValue !== null ? $(`.chip[data-value="${cssEsc(nextValue)}"] .chip-remove`, list) : null;
      (target || input).focus();
    });
    list.addEventListener('keydown', (e) => {
      const btn = e.target.closest('.chip-remove');
      if (!btn) return;
      const chip = btn.closest('.chip');
      if (e.key === 'ArrowLeft' && chip.previousElementSibling) { e.preventDefault(); $('.chip-remove', chip.previousElementSibling).focus(); }
      if (e.key === 'ArrowRight') { e.preventDefault(); (chip.nextElementSibling ? $('.chip-remove', chip.nextElementSibling) : input).focus(); }
      if (e.key === 'Backspace' || e.key === 'Delete') { e.preventDefault(); btn.click(); }
    });
    box.addEventListener('click', (e) => { if (e.target === box || e.target === list) input.focus(); });

    return { render, add, focus: () => input.focus(), control: () => input };
  }

  /* A list of URLs, one per row with a Remove button, and an Add row. */
  function mirrorsWidget(field, key) {
    const list = $('#mirror-list', field);
    const input = $('#mirror-input', field);
    const addBtn = $('#mirror-add', field);
    const value = () => (Array.isArray(S.cur.get(key)) ? S.cur.get(key) : []);
    function add() {
      const v = input.value.trim();
      if (!v) { input.focus(); return; }
      if (value().includes(v)) {
        status(`${v} is already in the list.`, 'info');
        return;
      }
      setValue(key, value().concat([v]));
      input.value = '';
      render();
      input.focus();
    }
    function render() {
      const orig = Array.isArray(S.orig.get(key)) ? S.orig.get(key) : [];
      list.textContent = '';
      const vals = value();
      if (!vals.length) list.append(el('li', { class: 'empty-note', text: 'No mirror: signatures cannot be updated.' }));
      for (const v of vals) {
        list.append(el('li', { class: orig.includes(v) ? 'item' : 'item item-new', dataset: { value: v } },
          el('span', { class: 'item-text', text: v }),
          el('button', { type: 'button', class: 'btn btn-small item-remove', 'aria-label': `Remove mirror ${v}`, text: 'Remove' })));
      }
    }
    addBtn.addEventListener('click', add);
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(); } });
    list.addEventListener('click', (e) => {
      const btn = e.target.closest('.item-remove');
      if (!btn) return;
      const v = btn.closest('li').dataset.value;
      setValue(key, value().filter((x) => x !== v));
      render();
      input.focus();
    });
    return { render, focus: () => input.focus(), control: () => input };
  }

  /* Custom signature files: the saved ones (name + sha256), uploads and
   * removals pending until Save. */
  function signaturesWidget(field, key) {
    const list = $('#sig-list', field);
    const file = $('#sig-file', field);
    const upload = $('#sig-upload', field);
    function current() {
      const saved = Array.isArray(S.orig.get(key)) ? S.orig.get(key) : [];
      const out = [];
      for (const s of saved) {
        if (!S.sigRemoves.has(s.name)) out.push({ name: s.name, sha256: s.sha256 || '', state: 'saved' });
      }
      for (const s of S.sigAdds.values()) {
        const replaced = saved.some((x) => x.name === s.name);
        out.push({ name: s.name, size: s.size, state: replaced ? 'replaced' : 'new' });
      }
      return out;
    }
    function render() {
      list.textContent = '';
      const items = current();
      if (!items.length) list.append(el('li', { class: 'empty-note', text: 'No custom signatures.' }));
      for (const s of items) {
        let meta;
        if (s.state === 'saved') meta = el('span', { class: 'item-meta', title: s.sha256, text: s.sha256 ? `sha256 ${s.sha256.slice(0, 12)}…` : '' });
        else meta = el('span', { class: 'item-meta pending-note', text: `${s.state === 'replaced' ? 'new version' : 'new'}, ${plural(s.size || 0, 'byte')}, not saved yet` });
        list.append(el('li', { class: s.state === 'saved' ? 'item' : 'item item-new', dataset: { name: s.name } },
          el('span', { class: 'item-text', text: s.name }), meta,
          el('button', { type: 'button', class: 'btn btn-small item-remove', 'aria-label': `Remove signature file ${s.name}`, text: 'Remove' })));
      }
    }
    list.addEventListener('click', (e) => {
      const btn = e.target.closest('.item-remove');
      if (!btn) return;
      const name = btn.closest('li').dataset.name;
      if (S.sigAdds.has(name)) S.sigAdds.delete(name);
      else S.sigRemoves.add(name);
      render();
      afterChange();
      file.focus();
    });
    upload.addEventListener('click', async () => {
      const f = file.files && file.files[0];
      if (!f) {
        status('Choose a signature file first.', 'info');
        file.focus();
        return;
      }
      if (f.size > SIG_MAX_BYTES) {
        showLocalProblem(key, `${f.name} is larger than 10 MiB`);
        return;
      }
      let content;
      try {
        content = await f.text();
      } catch (e) {
        showLocalProblem(key, `${f.name} cannot be read: ${e.message}`);
        return;
      }
      const saved = Array.isArray(S.orig.get(key)) ? S.orig.get(key) : [];
      if (saved.some((s) => s.name === f.name)) S.sigRemoves.add(f.name);
      S.sigAdds.set(f.name, { name: f.name, content, size: f.size });
      file.value = '';
      render();
      afterChange();
      status(`${f.name} added; it is checked now and published when you save.`, 'info');
    });
    return { render, focus: () => file.focus(), control: () => file };
  }

  function showLocalProblem(key, text) {
    showProblems(S.problems.concat([{ key, problem: text }]));
  }

  function switchWidget(field, key) {
    const input = $('input[type="checkbox"]', field);
    input.addEventListener('change', () => setValue(key, input.checked));
    return {
      render() { input.checked = S.cur.get(key) === true; },
      focus: () => input.focus(),
      control: () => input,
    };
  }

  function textWidget(field, key) {
    const input = $('input, textarea', field);
    input.addEventListener('input', () => setValue(key, input.value));
    input.addEventListener('change', () => {
      const t = input.value.trim();
      if (t !== input.value) { input.value = t; setValue(key, t); }
    });
    return {
      render() {
        const v = S.cur.get(key);
        const text = v === null || v === undefined ? '' : String(v);
        if (input.value !== text) input.value = text;
      },
      focus: () => input.focus(),
      control: () => input,
    };
  }

  function percentWidget(field, key) {
    const input = $('input', field);
    const out = $('output', field);
    const isSpam = SPAM_KEYS.includes(key);
    function showScore() {
      if (!out) return;
      const v = S.cur.get(key);
      const sc = score(v);
      out.textContent = sc === null ? '' : `score ${sc}`;
    }
    input.addEventListener('input', () => {
      const raw = input.value.trim();
      const v = /^\d+$/.test(raw) ? parseInt(raw, 10) : raw;
      S.cur.set(key, v);
      if (isSpam && S.cur.get('antispam.level') !== 'custom' && S.cur.has('antispam.level')) {
        S.cur.set('antispam.level', 'custom');
        const lb = S.binders.get('antispam.level');
        if (lb) lb.render();
      }
      showScore();
      afterChange();
    });
    return {
      render() {
        const v = S.cur.get(key);
        const text = v === null || v === undefined ? '' : String(v);
        if (input.value !== text) input.value = text;
        if (isSpam) {
          const locked = S.cur.has('antispam.level') && S.cur.get('antispam.level') !== 'custom';
          input.disabled = locked || field.classList.contains('unavailable');
          if (locked) input.dataset.lockedByLevel = ''; else delete input.dataset.lockedByLevel;
          field.classList.toggle('locked', locked);
        }
        showScore();
      },
      focus: () => input.focus(),
      control: () => input,
    };
  }

  /* Low / Medium / High fill both percents; Custom unlocks them. */
  function levelWidget(field, key) {
    const radios = $$('input[type="radio"]', field);
    for (const r of radios) {
      r.addEventListener('change', () => {
        if (!r.checked) return;
        const lv = r.value;
        S.cur.set(key, lv);
        if (LEVELS[lv]) {
          S.cur.set('antispam.tag_percent', LEVELS[lv][0]);
          S.cur.set('antispam.kill_percent', LEVELS[lv][1]);
        }
        for (const k of ['antispam.tag_percent', 'antispam.kill_percent']) {
          const b = S.binders.get(k);
          if (b) b.render();
        }
        afterChange();
      });
    }
    return {
      render() {
        const v = S.cur.get(key);
        for (const r of radios) r.checked = r.value === v;
        for (const k of ['antispam.tag_percent', 'antispam.kill_percent']) {
          const b = S.binders.get(k);
          if (b) b.render();
        }
      },
      focus: () => (radios.find((r) => r.checked) || radios[0]).focus(),
      control: () => $('fieldset', field),
    };
  }

  function radiosWidget(field, key) {
    const radios = $$('input[type="radio"]', field);
    for (const r of radios) r.addEventListener('change', () => { if (r.checked) setValue(key, r.value); });
    return {
      render() { const v = S.cur.get(key); for (const r of radios) r.checked = r.value === v; },
      focus: () => (radios.find((r) => r.checked) || radios[0]).focus(),
      control: () => $('fieldset', field),
    };
  }

  /* A number and a unit; sends "15m". A value equal in seconds to the
   * saved one counts as unchanged (120m is 2h). */
  function durationWidget(field, key) {
    const num = $('input[type="number"]', field);
    const unit = $('select', field);
    function read() {
      const raw = num.value.trim();
      let v = `${raw}${unit.value}`;
      const orig = S.orig.get(key);
      if (/^\d+$/.test(raw)) {
        v = `${parseInt(raw, 10)}${unit.value}`;
        if (typeof orig === 'string' && durationSeconds(orig) === durationSeconds(v)) v = orig;
      }
      setValue(key, v);
    }
    num.addEventListener('input', read);
    unit.addEventListener('change', read);
    return {
      render() {
        const { n, u } = durationParts(S.cur.get(key));
        if (num.value !== n) num.value = n;
        unit.value = u;
      },
      focus: () => num.focus(),
      control: () => num,
    };
  }

  function dkimWidget(field, key) {
    const list = $('ul', field);
    return {
      render() {
        list.textContent = '';
        const v = Array.isArray(S.cur.get(key)) ? S.cur.get(key) : [];
        if (!v.length) list.append(el('li', { class: 'empty-note', text: 'No DKIM-enabled domain.' }));
        for (const d of v) {
          if (!isObj(d)) continue;
          list.append(el('li', { dataset: { domain: String(d.domain || '') } },
            el('strong', { text: String(d.domain || '') }),
            el('span', { class: 'item-meta', text: ` selector ${d.selector || '?'}` })));
        }
      },
      focus: () => field.scrollIntoView({ block: 'nearest' }),
      control: () => null,
    };
  }

  /* Read-only rendering of a value no widget knows (a future key type). */
  function jsonWidget(field, key) {
    const pre = $('pre', field);
    return {
      render() { pre.textContent = JSON.stringify(S.cur.get(key), null, 1); },
      focus: () => field.scrollIntoView({ block: 'nearest' }),
      control: () => null,
    };
  }

  const WIDGETS = {
    chips: chipsWidget,
    mirrors: mirrorsWidget,
    signatures: signaturesWidget,
    switch: switchWidget,
    text: textWidget,
    percent: percentWidget,
    level: levelWidget,
    radios: radiosWidget,
    duration: durationWidget,
    dkim: dkimWidget,
    json: jsonWidget,
  };

  /* Keys the server declares that this page has no field for (a newer
   * server) still get a plain control under "More settings". */
  function ensureGenericFields() {
    for (const [name, meta] of S.keys) {
      if (S.binders.has(name) || !S.orig.has(name)) continue;
      const tab = tabOfKey(name) || 'avas';
      const box = $(`.more-settings[data-more="${tab}"]`);
      if (!box) continue;
      const id = `f-${name.replace(/[^a-z0-9_]/gi, '-')}`;
      const label = name;
      let field;
      switch (meta.type) {
        case 'bool':
          field = el('div', { class: 'field switch-field', dataset: { field: name, widget: 'switch' } },
            el('input', { type: 'checkbox', role: 'switch', id, dataset: { key: name } }),
            el('label', { for: id, text: label }));
          break;
        case 'percent':
          field = el('div', { class: 'field', dataset: { field: name, widget: 'percent' } },
            el('label', { for: id, text: `${label} (%)` }),
            el('input', { type: 'number', id, min: 0, max: 100, step: 1, dataset: { key: name } }));
          break;
        case 'duration':
          field = el('div', { class: 'field', dataset: { field: name, widget: 'duration' } },
            el('label', { for: id, text: label }),
            el('div', { class: 'duration-row' },
              el('input', { type: 'number', id, min: 1, step: 1, dataset: { key: name } }),
              el('select', { 'aria-label': `Unit of ${name}` },
                ...['s', 'm', 'h', 'd', 'w'].map((u) => el('option', { value: u, text: { s: 'seconds', m: 'minutes', h: 'hours', d: 'days', w: 'weeks' }[u] })))));
          break;
        case 'enum':
          field = el('div', { class: 'field', dataset: { field: name, widget: 'radios' } },
            el('fieldset', { class: 'radio-group', dataset: { key: name } },
              el('legend', { text: label }),
              el('div', { class: 'radio-row' }, ...(meta.choices || []).map((c) =>
                el('label', { class: 'radio' }, el('input', { type: 'radio', name: id, value: c }), ` ${c}`)))));
          break;
        case 'list':
          field = el('div', { class: 'field', dataset: { field: name, widget: 'chips', normalize: 'trim' } },
            el('span', { class: 'label', id: `${id}-lbl`, text: label }),
            el('div', { class: 'chips', dataset: { key: name }, role: 'group', 'aria-labelledby': `${id}-lbl` },
              el('ul', { class: 'chip-list', 'aria-label': label }),
              el('input', { class: 'chip-input', type: 'text', id, 'aria-label': `Add to ${name}`, autocomplete: 'off' })));
          break;
        case 'string':
          field = el('div', { class: 'field', dataset: { field: name, widget: 'text' } },
            el('label', { for: id, text: label }),
            el('input', { type: 'text', id, autocomplete: 'off', dataset: { key: name } }));
          break;
        default:
          field = el('div', { class: 'field', dataset: { field: name, widget: 'json' } },
            el('span', { class: 'label', text: `${label} (read-only here)` }), el('pre', { class: 'json' }));
      }
      if (meta.help) field.append(el('p', { class: 'hint', text: meta.help }));
      box.append(field);
      box.hidden = false;
      registerField(field);
    }
  }

  /* ------------------------------------------------------------------ */
  /* diff rendering                                                     */
  /* ------------------------------------------------------------------ */

  function valueCell(text) {
    if (text === null || text === undefined) return el('td', { class: 'val val-none' }, el('em', { text: '(none)' }));
    let s = typeof text === 'string' ? text : JSON.stringify(text);
    const full = s;
    if (s.length > 400) s = `${s.slice(0, 400)}… (${s.length - 400} more characters)`;
    return el('td', { class: 'val', dataset: { length: String(full.length) } }, el('code', { text: s }));
  }

  function listDelta(before, after) {
    let a, b;
    try { a = JSON.parse(before); b = JSON.parse(after); } catch (e) { return null; }
    if (!Array.isArray(a) || !Array.isArray(b)) return null;
    const key = (x) => (isObj(x) && 'name' in x ? String(x.name) : isObj(x) && 'domain' in x ? String(x.domain) : typeof x === 'string' ? x : JSON.stringify(x));
    const ka = a.map(key), kb = b.map(key);
    const added = kb.filter((x) => !ka.includes(x));
    const removed = ka.filter((x) => !kb.includes(x));
    const parts = [];
    if (added.length) parts.push(`added ${added.join(', ')}`);
    if (removed.length) parts.push(`removed ${removed.join(', ')}`);
    return parts.length ? parts.join('; ') : null;
  }

  function fillDiff(tbody, diff) {
    tbody.textContent = '';
    const rows = Array.isArray(diff) ? diff : [];
    if (!rows.length) {
      tbody.append(el('tr', { class: 'no-diff' }, el('td', { colspan: 3, text: 'No differences.' })));
      return;
    }
    for (const d of rows) {
      const key = String(d.key || '');
      const label = S.labels.get(key);
      const keyCell = el('th', { scope: 'row', class: 'diff-key' }, el('code', { text: key }));
      if (label && label !== key) keyCell.append(el('span', { class: 'diff-label', text: label }));
      const delta = (d.before != null && d.after != null) ? listDelta(d.before, d.after) : null;
      if (delta) keyCell.append(el('span', { class: 'diff-delta', text: delta }));
      tbody.append(el('tr', { dataset: { key } }, keyCell, valueCell(d.before), valueCell(d.after)));
    }
  }

  /* ------------------------------------------------------------------ */
  /* saving                                                             */
  /* ------------------------------------------------------------------ */

  function setBusy(on) {
    S.busy = on;
    updateDirty();
  }

  async function onSave() {
    if (S.busy) return;
    const edits = buildEdits();
    if (!edits.length) return;
    setBusy(true);
    status('Checking your changes…', 'busy');
    let r;
    try {
      r = await runCheck();
    } finally {
      setBusy(false);
    }
    if (!r) {
      if (S.problems.length) status('The changes have problems: see the messages in red.', 'error');
      return;
    }
    if (r.ok === false || (Array.isArray(r.problems) && r.problems.length)) {
      const n = (r.problems || []).length;
      status(n ? `Not saved: ${plural(n, 'problem')} to fix (shown in red next to the settings).` : 'Not saved: the server refused the changes.', 'error');
      focusFirstProblem();
      return;
    }
    const diff = Array.isArray(r.diff) ? r.diff : [];
    if (!diff.length) {
      status('Nothing to save: these values are already the policy.', 'info');
      return;
    }
    status('');
    openDiffDialog(r, edits);
  }

  function effectOf(check, edits) {
    if (check && typeof check.effect === 'string' && check.effect) return check.effect;
    let best = null;
    for (const e of edits) {
      const m = S.keys.get(e.key);
      if (m && m.effect && (best === null || (EFFECT_RANK[m.effect] || 0) > (EFFECT_RANK[best] || 0))) best = m.effect;
    }
    return best;
  }

  function openDiffDialog(check, edits) {
    const dlg = $('#diff-dialog');
    S.pendingSave = { edits, rev: S.base.rev };
    fillDiff($('#diff-table tbody'), check.diff);
    const n = check.diff.length;
    $('#diff-summary').textContent = `${plural(n, 'setting')} will change: revision ${S.base.rev} becomes revision ${S.base.rev + 1}.`;
    const eff = effectOf(check, edits);
    const effP = $('#diff-effect');
    effP.textContent = eff ? (EFFECT_TEXT[eff] || `Effect: ${eff}.`) : '';
    effP.dataset.effect = eff || '';
    $('#diff-error').textContent = '';
    $('#diff-confirm').disabled = false;
    $('#diff-cancel').disabled = false;
    dlg.showModal();
    $('#diff-confirm').focus();
  }

  function closeDialog(id) {
    const d = $(id);
    if (d.open) d.close();
  }

  async function onConfirmSave(ev) {
    ev.preventDefault();
    const p = S.pendingSave;
    if (!p || S.busy) return;
    const message = $('#diff-message').value.trim();
    $('#diff-confirm').disabled = true;
    $('#diff-cancel').disabled = true;
    $('#diff-error').textContent = '';
    setBusy(true);
    status('Saving…', 'busy');
    let r;
    try {
      r = await api('POST', '/api/policy', { rev: p.rev, edits: p.edits, message });
    } catch (e) {
      setBusy(false);
      $('#diff-confirm').disabled = false;
      $('#diff-cancel').disabled = false;
      if (e.status === 401) return;
      if (e.status === 409) {
        closeDialog('#diff-dialog');
        S.pendingSave = null;
        showConflict(e.body);
        return;
      }
      if (e.status === 422) {
        closeDialog('#diff-dialog');
        S.pendingSave = null;
        showProblems(Array.isArray(e.body.problems) && e.body.problems.length ? e.body.problems : [{ key: null, problem: e.message }]);
        status(`Not saved: ${e.message}. See the messages in red.`, 'error');
        focusFirstProblem();
        return;
      }
      $('#diff-error').textContent = `Not saved: ${e.message}`;
      status(`Not saved: ${e.message}`, 'error');
      return;
    }
    setBusy(false);
    closeDialog('#diff-dialog');
    S.pendingSave = null;
    $('#diff-message').value = '';
    if (r.unchanged) {
      status('Nothing changed: the policy already had these values.', 'info');
      await loadPolicy();
      return;
    }
    await loadPolicy();
    status(`Saved: revision ${r.rev}. Waiting for the nodes to apply it…`, 'ok');
    startAck(Number(r.rev));
  }

  /* ------------------------------------------------------------------ */
  /* conflicts                                                          */
  /* ------------------------------------------------------------------ */

  function showConflict(body, { focus = true } = {}) {
    body = body || {};
    S.conflict = body;
    const box = $('#conflict');
    const head = body.head !== undefined ? Number(body.head) : null;
    const who = body.author ? body.author : 'another administrator';
    const base = S.base ? S.base.rev : '?';
    $('#conflict-text').textContent = head !== null
      ? `Revision ${head} was saved by ${who} after you loaded revision ${base}. Their changes:`
      : `${body.error || 'The policy changed meanwhile'}.`;
    const diff = Array.isArray(body.diff) ? body.diff : [];
    fillDiff($('#conflict-diff tbody'), diff);
    $('#conflict-diff').hidden = !diff.length;
    box.hidden = false;
    if (!focus) return;
    box.scrollIntoView({ block: 'nearest' });
    status(`Not saved: the policy changed meanwhile (revision ${head !== null ? head : '?'} by ${who}).`, 'error');
    $('#conflict-reload').focus();
  }

  async function conflictReload(keep) {
    const body = S.conflict || {};
    const skip = new Set((Array.isArray(body.diff) ? body.diff : []).map((d) => d.key));
    const snapshot = keep ? snapshotEdits() : null;
    $('#conflict').hidden = true;
    S.conflict = null;
    const ok = await loadPolicy(keep ? { rebase: { snapshot, skip } } : {});
    if (ok && !keep) status(`Reloaded revision ${S.base.rev}.`, 'info');
  }

  /* ------------------------------------------------------------------ */
  /* node acknowledgements after a save                                 */
  /* ------------------------------------------------------------------ */

  function stopAck() {
    if (S.ack) clearTimeout(S.ack.timer);
    S.ack = null;
  }

  function startAck(rev) {
    stopAck();
    const panel = $('#ack-panel');
    panel.hidden = false;
    panel.dataset.rev = String(rev);
    panel.classList.remove('done', 'late');
    $('#ack-title').textContent = `Revision ${rev}: node acknowledgements`;
    $('#ack-summary').textContent = 'Waiting for the nodes…';
    $('#ack-list').textContent = '';
    S.ack = { rev, start: Date.now(), timer: null };
    pollAck(S.ack);
  }

  async function pollAck(a) {
    if (S.ack !== a) return;
    let data = null;
    try {
      data = await api('GET', '/api/nodes');
    } catch (e) {
      if (e.status === 401 || S.ack !== a) return;
      $('#ack-summary').textContent = `Cannot read the nodes' state: ${e.message}`;
    }
    if (S.ack !== a) return;
    const panel = $('#ack-panel');
    if (data) {
      const nodes = Array.isArray(data.nodes) ? data.nodes : [];
      renderAck(a.rev, nodes);
      const acked = nodes.filter((n) => hasTaken(n, a.rev));
      if (!nodes.length) {
        $('#ack-summary').textContent = 'No node has registered yet; nobody to wait for.';
        panel.classList.add('done');
        return;
      }
      if (acked.length === nodes.length) {
        const secs = ((Date.now() - a.start) / 1000).toFixed(1);
        $('#ack-summary').textContent = `All ${plural(nodes.length, 'node')} acknowledged revision ${a.rev} (within ${secs} s).`;
        panel.classList.add('done');
        status(`Saved: revision ${a.rev}, applied by every node.`, 'ok');
        return;
      }
      if (Date.now() - a.start >= ACK_FOR_MS) {
        const late = nodes.filter((n) => !hasTaken(n, a.rev)).map((n) => n.name);
        $('#ack-summary').textContent = `${acked.length} of ${plural(nodes.length, 'node')} acknowledged revision ${a.rev} after ${ACK_FOR_MS / 1000} s; not yet: ${late.join(', ')}. See Privacy Instances.`;
        panel.classList.add('late');
        return;
      }
      $('#ack-summary').textContent = `${acked.length} of ${plural(nodes.length, 'node')} acknowledged revision ${a.rev}…`;
    } else if (Date.now() - a.start >= ACK_FOR_MS) {
      panel.classList.add('late');
      return;
    }
    a.timer = setTimeout(() => pollAck(a), ACK_EVERY_MS);
  }

  /* Whether node N has taken revision REV: applied it, and no error since
   * (the CLI's rule, pm_ctl_policy.c): a node that could not undo a hand
   * edit keeps its revision and reports an error. */
  function hasTaken(n, rev) {
    return Number(n.applied_rev) >= rev && !n.last_error;
  }

  function renderAck(rev, nodes) {
    const list = $('#ack-list');
    const seen = new Set();
    for (const n of nodes) {
      const name = String(n.name || '?');
      seen.add(name);
      let li = $(`li[data-node="${cssEsc(name)}"]`, list);
      if (!li) { li = el('li', { dataset: { node: name } }); list.append(li); }
      const applied = Number(n.applied_rev) || 0;
      const acked = hasTaken(n, rev);
      li.classList.toggle('acked', acked);
      li.classList.toggle('failed', !acked && !!n.last_error);
      li.textContent = '';
      li.append(el('strong', { text: name }), ': ');
      if (acked) li.append(`acknowledged rev ${rev}`);
      else if (n.last_error) li.append(`error on rev ${applied}: `, el('span', { class: 'err-text', text: n.last_error }));
      else li.append(`waiting (applied rev ${applied}${n.liveness && n.liveness !== 'up' ? `, ${n.liveness}` : ''})`);
    }
    for (const li of $$('li[data-node]', list)) if (!seen.has(li.dataset.node)) li.remove();
  }

  /* ------------------------------------------------------------------ */
  /* Privacy Instances                                                  */
  /* ------------------------------------------------------------------ */

  function stopNodes() {
    if (S.nodesLoop) clearTimeout(S.nodesLoop.timer);
    S.nodesLoop = null;
  }

  function startNodes() {
    if (S.nodesLoop) return;
    const loop = { timer: null };
    S.nodesLoop = loop;
    nodesTick(loop);
  }

  async function nodesTick(loop) {
    if (S.nodesLoop !== loop) return;
    if (S.tab !== 'nodes' || document.hidden || !S.user) { S.nodesLoop = null; return; }
    try {
      const data = await api('GET', '/api/nodes');
      if (S.nodesLoop !== loop) return;
      renderNodes(data);
    } catch (e) {
      if (e.status === 401 || S.nodesLoop !== loop) return;
      $('#nodes-summary').textContent = `Cannot read the nodes' state: ${e.message}`;
      $('#nodes-summary').dataset.kind = 'error';
    }
    if (S.nodesLoop === loop) loop.timer = setTimeout(() => nodesTick(loop), NODES_EVERY_MS);
  }

  function badge(state, text) {
    const s = String(state || 'unknown').toLowerCase();
    return el('span', { class: `badge state-${s.replace(/[^a-z0-9_-]/g, '')}`, text: text || s });
  }

  function serviceCell(label, svc) {
    const td = el('td', { dataset: { label } });
    const s = isObj(svc) ? svc : {};
    td.append(badge(s.state || 'unknown'));
    if (s.detail) td.append(el('span', { class: 'detail', text: s.detail }));
    return td;
  }

  function compact(n) {
    n = Number(n) || 0;
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
    if (n >= 1e4) return `${Math.round(n / 1e3)} k`;
    return String(n);
  }

  function databasesList(dbs) {
    if (!Array.isArray(dbs) || !dbs.length) return null;
    const ul = el('ul', { class: 'db-list' });
    for (const d of dbs) {
      if (!isObj(d)) continue;
      const li = el('li', { dataset: { db: String(d.name || '') } });
      li.append(el('strong', { text: String(d.name || '?') }), ` v${d.version || 0}`);
      if (d.loaded_version && d.loaded_version !== d.version) li.append(` (loaded v${d.loaded_version})`);
      const bits = [`built ${ago(d.built, 'unknown')}`];
      if (d.sigs) bits.push(`${compact(d.sigs)} sigs`);
      if (d.source) bits.push(String(d.source));
      li.append(el('span', { class: 'detail', text: bits.join(' · '), title: d.sigs ? `${Number(d.sigs).toLocaleString()} signatures` : null }));
      if (d.error) li.append(el('span', { class: 'err-text', text: d.error }));
      ul.append(li);
    }
    return ul;
  }

  function renderNodes(data) {
    const nodes = Array.isArray(data.nodes) ? data.nodes : [];
    const head = Number(data.head) || 0;
    const body = $('#nodes-body');
    body.textContent = '';
    const alive = nodes.filter((n) => n.liveness === 'up').length; /* the controller's up, stale, down, never */
    const current = nodes.filter((n) => hasTaken(n, head)).length;
    const sum = $('#nodes-summary');
    sum.dataset.kind = '';
    sum.textContent = nodes.length
      ? `Head revision ${head}. ${alive} of ${plural(nodes.length, 'node')} alive, ${current} up to date. Updated ${new Date().toLocaleTimeString()}.`
      : `Head revision ${head}. No node has reported yet.`;
    if (!nodes.length) {
      body.append(el('tr', { class: 'empty-row' }, el('td', { colspan: 11, text: 'No mail node has registered with the controller yet.' })));
    }
    for (const n of nodes) {
      const name = String(n.name || '?');
      const applied = Number(n.applied_rev) || 0;
      const lag = n.lag !== undefined ? Number(n.lag) : Math.max(0, head - applied);
      const tr = el('tr', { dataset: { node: name, liveness: String(n.liveness || 'unknown') } });
      tr.append(el('th', { scope: 'row', class: 'node-name', dataset: { label: 'Node' } },
        el('strong', { text: name }), n.address ? el('span', { class: 'detail', text: String(n.address) }) : null));
      tr.append(el('td', { class: 'liveness', dataset: { label: 'Liveness' } },
        badge(n.liveness || 'unknown'), el('span', { class: 'detail', text: `seen ${ago(n.last_seen)}` })));
      tr.append(el('td', { class: 'applied-rev', dataset: { label: 'Applied rev' }, text: String(applied) }));
      tr.append(el('td', { class: `lag${lag ? ' behind' : ''}`, dataset: { label: 'Lag' }, text: lag ? `${lag} behind` : 'up to date' }));
      tr.append(el('td', { class: 'postfix', dataset: { label: 'Postfix' } },
        badge(n.postfix_running ? 'ok' : 'down', n.postfix_running ? 'running' : 'stopped')));
      tr.append(serviceCell('Antispam', n.antispam));
      const av = serviceCell('Antivirus', n.antivirus);
      av.classList.add('antivirus');
      const dbs = databasesList(n.databases);
      if (dbs) av.append(dbs);
      tr.append(av);
      tr.append(serviceCell('Auth', n.auth));
      tr.append(serviceCell('DKIM', n.dkim));
      const relay = el('td', { class: 'relay', dataset: { label: 'Relay overrides' } });
      const ro = Array.isArray(n.relay_overrides) ? n.relay_overrides : [];
      if (ro.length) relay.append(el('ul', { class: 'plain-list' }, ...ro.map((r) => el('li', {}, el('code', { text: String(r) })))));
      else relay.append(el('span', { class: 'muted', text: 'none' }));
      tr.append(relay);
      const probs = el('td', { class: 'problems', dataset: { label: 'Problems' } });
      const lines = [];
      if (n.last_error) lines.push(['error', String(n.last_error)]);
      for (const d of Array.isArray(n.drift) ? n.drift : []) {
        if (isObj(d)) lines.push(['drift', `${d.parameter}: found ${JSON.stringify(d.found)}, policy says ${JSON.stringify(d.applied)}${d.reverted ? ' (reverted)' : ''}`]);
      }
      for (const c of Array.isArray(n.cooldowns) ? n.cooldowns : []) {
        if (isObj(c)) lines.push(['cooldown', `${c.mirror} answered HTTP ${c.http_status}; paused until ${when(c.until)}`]);
      }
      for (const d of Array.isArray(n.distrusted) ? n.distrusted : []) {
        if (isObj(d)) lines.push(['distrust', `peer ${d.peer} distrusted: ${d.reason}`]);
      }
      if (lines.length) probs.append(el('ul', { class: 'plain-list' }, ...lines.map(([k, t]) => el('li', { class: `prob-${k}`, text: t }))));
      else probs.append(el('span', { class: 'muted', text: 'none' }));
      tr.append(probs);
      body.append(tr);
    }
    const notes = $('#cluster-notes');
    notes.textContent = '';
    const cds = isObj(data.cluster) && Array.isArray(data.cluster.cooldowns) ? data.cluster.cooldowns : [];
    for (const c of cds) {
      if (!isObj(c)) continue;
      notes.append(el('li', { text: `Mirror ${c.mirror} answered HTTP ${c.http_status}${c.node ? ` to ${c.node}` : ''}: the cluster waits until ${when(c.until)}.` }));
    }
    notes.hidden = notes.children.length === 0;
  }

  /* ------------------------------------------------------------------ */
  /* History                                                            */
  /* ------------------------------------------------------------------ */

  const revOf = (r) => Number(r.rev !== undefined ? r.rev : r.revision);

  async function loadHistory(more = false) {
    let url = `/api/history?limit=${HISTORY_PAGE}`;
    if (more && S.history.length) url += `&before=${revOf(S.history[S.history.length - 1])}`;
    let data;
    try {
      data = await api('GET', url);
    } catch (e) {
      reportError(e, 'Cannot load the history');
      return;
    }
    const revs = Array.isArray(data.revisions) ? data.revisions.filter(isObj) : [];
    const keepA = selectedRev('hist-a');
    const keepB = selectedRev('hist-b');
    if (more) S.history = S.history.concat(revs);
    else S.history = revs;
    if (!more) {
      const head = Number(data.head);
      S.histHead = Number.isFinite(head) && head > 0 ? head : (S.history.length ? revOf(S.history[0]) : null);
    }
    renderHistory(keepA, keepB);
    $('#history-more').hidden = revs.length < HISTORY_PAGE;
  }

  function selectedRev(name) {
    const r = $(`input[name="${name}"]:checked`);
    return r ? Number(r.value) : null;
  }

  function renderHistory(keepA, keepB) {
    const body = $('#history-body');
    body.textContent = '';
    const revs = S.history.map(revOf);
    const a = revs.includes(keepA) ? keepA : (revs.length > 1 ? revs[1] : revs[0]);
    const b = revs.includes(keepB) ? keepB : revs[0];
    if (!S.history.length) {
      body.append(el('tr', { class: 'empty-row' }, el('td', { colspan: 8, text: 'No revision saved yet.' })));
    }
    for (const r of S.history) {
      const rev = revOf(r);
      const isHead = rev === S.histHead;
      const tr = el('tr', { dataset: { rev: String(rev) }, class: isHead ? 'head' : null });
      tr.append(el('td', { class: 'pick', dataset: { label: 'A' } },
        el('input', { type: 'radio', name: 'hist-a', value: String(rev), checked: rev === a, 'aria-label': `Compare from revision ${rev} (A)` })));
      tr.append(el('td', { class: 'pick', dataset: { label: 'B' } },
        el('input', { type: 'radio', name: 'hist-b', value: String(rev), checked: rev === b, 'aria-label': `Compare to revision ${rev} (B)` })));
      tr.append(el('td', { class: 'rev', dataset: { label: 'Rev' }, text: String(rev) }));
      tr.append(el('td', { dataset: { label: 'When' } }, el('time', { text: ago(r.time), title: when(r.time) })));
      tr.append(el('td', { dataset: { label: 'Author' }, text: String(r.author || '') }));
      const msg = el('td', { class: 'message', dataset: { label: 'Message' }, text: String(r.message || '') });
      if (r.rollback_of) msg.append(el('span', { class: 'detail', text: `roll-back to revision ${r.rollback_of}` }));
      tr.append(msg);
      tr.append(el('td', { dataset: { label: 'Digest' }, class: 'digest', text: String(r.digest || '').slice(0, 12) }));
      const act = el('td', { class: 'actions', dataset: { label: '' } });
      if (isHead) act.append(el('span', { class: 'badge state-ok', text: 'current' }));
      else act.append(el('button', { type: 'button', class: 'btn btn-small rollback', dataset: { rev: String(rev) }, text: 'Roll back to this', 'aria-label': `Roll back to revision ${rev}` }));
      tr.append(act);
      body.append(tr);
    }
  }

  async function compareHistory() {
    const a = selectedRev('hist-a');
    const b = selectedRev('hist-b');
    if (a === null || b === null) {
      status('Pick two revisions: A and B.', 'info');
      return;
    }
    let data;
    try {
      data = await api('GET', `/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    } catch (e) {
      reportError(e, 'Cannot compare the revisions');
      return;
    }
    const sec = $('#history-diff-section');
    sec.hidden = false;
    sec.dataset.a = String(a);
    sec.dataset.b = String(b);
    $('#history-diff-title').textContent = a === b ? `Revision ${a} compared with itself` : `Changes from revision ${a} to revision ${b}`;
    fillDiff($('#history-diff tbody'), data.diff);
    sec.scrollIntoView({ block: 'nearest' });
  }

  async function loadRollout() {
    const line = $('#rollout-line');
    let data;
    try {
      data = await api('GET', '/api/rollout');
    } catch (e) {
      line.hidden = true;
      return;
    }
    const r = data && data.rollout;
    if (!isObj(r)) { line.hidden = true; return; }
    const parts = [];
    const pick = ['state', 'status', 'phase', 'service', 'batch', 'current', 'done', 'total', 'failed', 'started_by'];
    for (const k of pick) {
      if (r[k] !== undefined && r[k] !== null && typeof r[k] !== 'object') parts.push(`${k} ${r[k]}`);
    }
    if (!parts.length) {
      for (const [k, v] of Object.entries(r)) {
        if (parts.length >= 6) break;
        if (v !== null && typeof v !== 'object') parts.push(`${k} ${v}`);
      }
    }
    line.textContent = `Rolling restart: ${parts.join(', ') || 'in progress'}.`;
    line.hidden = false;
  }

  function openRollback(rev) {
    const r = S.history.find((x) => revOf(x) === rev) || {};
    S.pendingRollback = { rev, expect: S.histHead };
    const by = r.author ? ` by ${r.author}` : '';
    const at = r.time ? `, ${ago(r.time)}` : '';
    const msg = r.message ? `: “${r.message}”` : '';
    $('#rollback-title').textContent = `Roll back to revision ${rev}`;
    $('#rollback-text').textContent = `Revision ${rev}${by}${at}${msg}. A new revision ${S.histHead !== null ? S.histHead + 1 : ''} will be saved with its settings; the nodes apply it within a second.`;
    $('#rollback-message').value = `Roll back to revision ${rev}`;
    $('#rollback-dirty').hidden = !isDirty();
    $('#rollback-error').textContent = '';
    $('#rollback-confirm').disabled = false;
    $('#rollback-cancel').disabled = false;
    $('#rollback-dialog').showModal();
    $('#rollback-confirm').focus();
  }

  async function onConfirmRollback(ev) {
    ev.preventDefault();
    const p = S.pendingRollback;
    if (!p || S.busy) return;
    $('#rollback-confirm').disabled = true;
    $('#rollback-cancel').disabled = true;
    setBusy(true);
    let r;
    try {
      r = await api('POST', '/api/rollback', { rev: p.rev, expect_rev: p.expect, message: $('#rollback-message').value.trim() });
    } catch (e) {
      setBusy(false);
      $('#rollback-confirm').disabled = false;
      $('#rollback-cancel').disabled = false;
      if (e.status === 401) return;
      if (e.status === 409) {
        closeDialog('#rollback-dialog');
        showConflict(e.body);
        loadHistory();
        return;
      }
      const probs = Array.isArray(e.body.problems) ? e.body.problems.map((x) => x.problem).filter(Boolean) : [];
      $('#rollback-error').textContent = `Not rolled back: ${e.message}${probs.length ? ` (${probs.join('; ')})` : ''}`;
      status(`Not rolled back: ${e.message}`, 'error');
      return;
    }
    setBusy(false);
    closeDialog('#rollback-dialog');
    S.pendingRollback = null;
    await loadPolicy();
    await loadHistory();
    if (r.unchanged) {
      status(`Nothing changed: the policy already has the settings of revision ${p.rev}.`, 'info');
      return;
    }
    status(`Rolled back: revision ${r.rev} has the settings of revision ${p.rev}.`, 'ok');
    startAck(Number(r.rev));
  }

  /* ------------------------------------------------------------------ */
  /* tabs                                                               */
  /* ------------------------------------------------------------------ */

  function selectTab(name, { focus = false, push = true } = {}) {
    if (!TABS.includes(name)) name = 'inbound';
    S.tab = name;
    for (const t of TABS) {
      const tab = $(`#tab-${t}`);
      const on = t === name;
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.tabIndex = on ? 0 : -1;
      $(`#panel-${t}`).hidden = !on;
    }
    if (focus) $(`#tab-${name}`).focus();
    if (push && location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    if (name === 'nodes') startNodes(); else stopNodes();
    if (name === 'history' && S.user) { loadHistory(); loadRollout(); }
  }

  function onTabKey(e) {
    const cur = TABS.indexOf(S.tab);
    let next = null;
    if (e.key === 'ArrowRight') next = (cur + 1) % TABS.length;
    else if (e.key === 'ArrowLeft') next = (cur + TABS.length - 1) % TABS.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = TABS.length - 1;
    if (next === null) return;
    e.preventDefault();
    selectTab(TABS[next], { focus: true });
  }

  /* ------------------------------------------------------------------ */
  /* start                                                              */
  /* ------------------------------------------------------------------ */

  function bind() {
    for (const f of $$('.field[data-field][data-widget]')) registerField(f);

    $('#login-form').addEventListener('submit', onLogin);
    /* the throttle is per user name: another name may try at once */
    $('#login-user').addEventListener('input', () => {
      if (!S.loginTimer) return;
      clearInterval(S.loginTimer);
      S.loginTimer = null;
      $('#login-submit').disabled = false;
      $('#login-error').textContent = '';
    });
    $('#logout').addEventListener('click', onLogout);
    $('#status-close').addEventListener('click', () => { $('#status-bar').hidden = true; });
    $('#policy-form').addEventListener('submit', (e) => e.preventDefault());
    $('#policy-retry').addEventListener('click', () => loadPolicy());

    for (const t of TABS) $(`#tab-${t}`).addEventListener('click', () => selectTab(t));
    $('.tabs').addEventListener('keydown', onTabKey);
    window.addEventListener('hashchange', () => {
      const h = location.hash.replace(/^#/, '');
      if (TABS.includes(h) && h !== S.tab && S.user) selectTab(h, { push: false });
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && S.tab === 'nodes' && S.user) startNodes();
    });

    $('#ext-preset').addEventListener('click', () => {
      const b = S.binders.get('inbound.blocked_extensions');
      if (!b) return;
      const added = b.add(S.common);
      status(added ? `Added ${plural(added, 'often prohibited extension')}.` : 'All often prohibited extensions are already in the list.', 'info');
    });

    $('#save').addEventListener('click', onSave);
    $('#discard').addEventListener('click', discard);
    $('#diff-form').addEventListener('submit', onConfirmSave);
    $('#diff-cancel').addEventListener('click', () => { closeDialog('#diff-dialog'); S.pendingSave = null; status('Not saved: your changes are still pending.', 'info'); });
    $('#diff-dialog').addEventListener('cancel', (e) => { if (S.busy) e.preventDefault(); else S.pendingSave = null; });

    $('#conflict-reload').addEventListener('click', () => conflictReload(false));
    $('#conflict-rebase').addEventListener('click', () => conflictReload(true));
    $('#conflict-dismiss').addEventListener('click', () => { $('#conflict').hidden = true; });
    $('#ack-close').addEventListener('click', () => { stopAck(); $('#ack-panel').hidden = true; });

    $('#history-compare').addEventListener('click', compareHistory);
    $('#history-refresh').addEventListener('click', () => { loadHistory(); loadRollout(); });
    $('#history-more').addEventListener('click', () => loadHistory(true));
    $('#history-body').addEventListener('click', (e) => {
      const btn = e.target.closest('button.rollback');
      if (btn) openRollback(Number(btn.dataset.rev));
    });
    $('#rollback-form').addEventListener('submit', onConfirmRollback);
    $('#rollback-cancel').addEventListener('click', () => { closeDialog('#rollback-dialog'); S.pendingRollback = null; });
    $('#rollback-dialog').addEventListener('cancel', (e) => { if (S.busy) e.preventDefault(); });

    window.addEventListener('beforeunload', (e) => {
      if (S.user && S.base && isDirty()) { e.preventDefault(); e.returnValue = ''; }
    });
  }

  async function start() {
    bind();
    try {
      const s = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      const data = await s.json().catch(() => ({}));
      if (s.ok && data.user) {
        S.user = data.user;
        S.csrf = data.csrf || null;
        enterApp();
        return;
      }
      showLogin('');
    } catch (e) {
      showLogin('The console server cannot be reached; try again later.');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
