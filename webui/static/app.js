// keygate status page: polls /status.json and redraws. Plain JavaScript, no
// dependencies; every value is written with textContent, never as HTML.
(function () {
  'use strict';
  var body = document.body;
  var tokenRequired = body.dataset.tokenRequired === 'true';
  var adminEnabled = body.dataset.adminEnabled === 'true';
  var pollMs = parseInt(body.dataset.poll, 10) || 1500;
  var STORE = 'keygate-token';
  var timer = null;
  var gen = 0; // the latest refresh; an older one that ends late schedules nothing
  var isAdmin = false;

  function $(id) { return document.getElementById(id); }
  function token() { return sessionStorage.getItem(STORE) || ''; }
  function authHeaders() {
    var t = token();
    return t ? { 'Authorization': 'Bearer ' + t } : {};
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // Formats, as the server's first paint writes them.
  function usd(x) { return x === null || x === undefined ? '∞' : '$' + x.toFixed(2); }
  function count(x) { return x === null || x === undefined ? '—' : String(x); }
  function dur(s) {
    if (!s || s <= 0) return '—';
    var d = Math.max(1, Math.round(s));
    var h = Math.floor(d / 3600), m = Math.floor(d % 3600 / 60), sec = d % 60;
    var p2 = function (n) { return n < 10 ? '0' + n : String(n); };
    if (h > 0) return h + 'h' + p2(m) + 'm';
    if (m > 0) return m + 'm' + p2(sec) + 's';
    return sec + 's';
  }
  function latency(s) {
    if (!s || s <= 0) return '—';
    if (s < 1) return Math.floor(s * 1000) + ' ms';
    return s.toFixed(2) + ' s';
  }
  function failures(f) {
    var classes = Object.keys(f || {}).filter(function (c) { return f[c] > 0; }).sort();
    if (classes.length === 0) return '0';
    return classes.map(function (c) { return c + ' ' + f[c]; }).join(', ');
  }

  // kind: 'info', 'error', or 'conn' (keygate unreachable: cleared by the
  // next good poll).
  function message(text, kind) {
    var m = $('message');
    m.textContent = text;
    m.className = kind && kind !== 'info' ? 'message error' : 'message';
    m.dataset.kind = kind || 'info';
    m.hidden = !text;
  }

  function showLogin(rejected) {
    $('login').hidden = false;
    $('login-error').hidden = !rejected;
    $('token').focus();
  }

  function clearData() {
    $('data').hidden = true;
    ['meta', 'pool'].forEach(function (id) { $(id).replaceChildren(); });
    document.querySelectorAll('#keys tbody, #accounts tbody').forEach(function (t) { t.replaceChildren(); });
    isAdmin = false;
    setButtons();
  }

  function setButtons() {
    var t = token() !== '';
    $('signout').hidden = !t;
    $('signin').hidden = t || tokenRequired || !adminEnabled;
    $('reload').hidden = !isAdmin;
    body.classList.toggle('is-admin', isAdmin);
  }

  function cell(row, label, content) {
    var td = el('td');
    td.dataset.label = label;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
    return td;
  }

  function keyRow(k) {
    var tr = el('tr');
    tr.dataset.key = k.id;
    tr.dataset.state = k.state;
    cell(tr, 'id', '#' + k.id);
    cell(tr, 'key', el('code', k.masked));
    cell(tr, 'account', k.account || '—');
    var st = el('span');
    st.appendChild(el('span', k.state, 'state state-' + k.state));
    if (k.rest_reason) { st.appendChild(document.createTextNode(' ')); st.appendChild(el('span', k.rest_reason, 'reason')); }
    if (k.free_blocked_left > 0) {
      st.appendChild(document.createTextNode(' '));
      st.appendChild(el('span', 'free models blocked ' + dur(k.free_blocked_left), 'reason free-blocked'));
    }
    cell(tr, 'state', st);
    cell(tr, 'rest left', dur(k.rest_left));
    var b = k.budget;
    cell(tr, 'budget left', b ? usd(b.limit_remaining) + (b.limit !== null ? ' of ' + usd(b.limit) : '') : '—');
    // While the account's free-model calls are blocked, none is left now
    // whatever the last poll said.
    cell(tr, 'free req. left', k.free_blocked_left > 0 ? '0' : (b ? count(b.free_requests_remaining) : '—'));
    var calls = el('span', k.calls);
    if (k.in_flight) { calls.appendChild(document.createTextNode(' ')); calls.appendChild(el('span', '(' + k.in_flight + ' now)', 'inflight')); }
    cell(tr, 'calls', calls);
    cell(tr, 'failures', failures(k.failures));
    cell(tr, 'latency', latency(k.latency_mean));
    var act = el('td', null, 'admin-col');
    if (isAdmin) {
      var toggle = k.disabled ? 'enable' : 'disable';
      [toggle, 'check'].forEach(function (a) {
        var btn = el('button', a === 'check' ? 'Check' : (a === 'enable' ? 'Enable' : 'Disable'), 'admin');
        btn.type = 'button';
        btn.dataset.action = a;
        btn.dataset.id = k.id;
        act.appendChild(btn);
      });
    }
    tr.appendChild(act);
    return tr;
  }

  function render(v) {
    isAdmin = !!v.admin;
    var meta = $('meta');
    meta.replaceChildren(
      el('span', 'replica ' + v.replica),
      el('span', v.strategy),
      el('span', v.redis_up === null ? 'no Redis' : (v.redis_up ? 'Redis up' : 'Redis down'), v.redis_up === false ? 'bad' : ''));
    var pool = $('pool');
    pool.replaceChildren();
    [['keys', v.pool.keys], ['in rotation', v.pool.in_rotation], ['resting', v.pool.resting],
      ['disabled', v.pool.disabled], ['in flight', v.pool.in_flight], ['calls', v.pool.calls],
      ['failures', v.pool.failures]].forEach(function (p) {
      var d = el('div');
      d.appendChild(el('dt', p[0]));
      d.appendChild(el('dd', p[1]));
      pool.appendChild(d);
    });
    $('keys').tBodies[0].replaceChildren.apply($('keys').tBodies[0], v.keys.map(keyRow));
    var acc = $('accounts').tBodies[0];
    acc.replaceChildren.apply(acc, v.accounts.map(function (a) {
      var tr = el('tr');
      tr.dataset.account = a.account;
      cell(tr, 'account', a.account);
      cell(tr, 'keys', a.keys);
      cell(tr, 'in rotation', a.in_rotation);
      cell(tr, 'calls', a.calls);
      cell(tr, 'failures', a.failures);
      cell(tr, 'free req. left', count(a.free_requests_remaining));
      return tr;
    }));
    var at = new Date(v.at);
    $('at').textContent = isNaN(at) ? '' : at.toISOString().slice(11, 19) + ' UTC';
    $('data').hidden = false;
    setButtons();
  }

  async function refresh() {
    clearTimeout(timer);
    var mine = ++gen;
    if (tokenRequired && !token()) {
      clearData();
      showLogin(false);
      return;
    }
    try {
      var res = await fetch('/status.json', { headers: authHeaders(), cache: 'no-store' });
      if (mine !== gen) return;
      if (res.status === 401) {
        sessionStorage.removeItem(STORE);
        clearData();
        showLogin(true);
        return;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      var v = await res.json();
      if (mine !== gen) return;
      if (token() && !tokenRequired && !v.admin) {
        // The page is open to all; a token is only asked for as the admin's.
        sessionStorage.removeItem(STORE);
        showLogin(true);
      }
      render(v);
      if ($('message').dataset.kind === 'conn') message('');
    } catch (e) {
      if (mine !== gen) return;
      message('keygate is not answering (' + e.message + '); retrying', 'conn');
    }
    if (mine === gen) timer = setTimeout(refresh, pollMs);
  }

  async function adminCall(path, what) {
    try {
      var res = await fetch(path, { method: 'POST', headers: authHeaders(), cache: 'no-store' });
      var v = await res.json();
      if (!res.ok) {
        message(what + ': ' + (v.error && v.error.message || 'HTTP ' + res.status), 'error');
        return null;
      }
      return v;
    } catch (e) {
      message(what + ': ' + e.message, 'error');
      return null;
    } finally {
      refresh();
    }
  }

  $('keys').addEventListener('click', async function (ev) {
    var btn = ev.target.closest('button[data-action]');
    if (!btn) return;
    var id = btn.dataset.id, a = btn.dataset.action;
    var v = await adminCall('/admin/keys/' + encodeURIComponent(id) + '/' + a, a + ' key #' + id);
    if (!v) return;
    if (a === 'check') {
      var b = v.budget;
      message('Key #' + id + ': ' + usd(b.limit_remaining) + (b.limit !== null ? ' of ' + usd(b.limit) : '') +
        ' left, ' + count(b.free_requests_remaining) + ' free requests left');
    } else {
      message('Key #' + id + (v.disabled ? ' disabled' : ' enabled'));
    }
  });

  $('reload').addEventListener('click', async function () {
    var v = await adminCall('/admin/reload', 'reload');
    if (v) message('Reloaded: ' + v.keys + ' keys (+' + v.added.length + ' added, −' + v.removed.length + ' removed, ' + v.kept.length + ' kept)');
  });

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token').value.trim();
    $('token').value = '';
    if (!t) return;
    sessionStorage.setItem(STORE, t);
    $('login').hidden = true;
    $('login-error').hidden = true;
    refresh();
  });

  $('signin').addEventListener('click', function () { showLogin(false); });
  $('signout').addEventListener('click', function () {
    sessionStorage.removeItem(STORE);
    isAdmin = false;
    if (tokenRequired) clearData();
    refresh();
  });

  setButtons();
  refresh();
})();
