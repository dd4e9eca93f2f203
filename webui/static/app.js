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
  // A token is printable ASCII. A header value is bytes: a curly quote or
  // an ellipsis pasted with the token made fetch throw before any request,
  // which read as keygate not answering, for ever.
  var TOKEN_CHARS = /^[\x20-\x7e]+$/;
  // authHeaders throws for a stored token no request can carry.
  function authHeaders() {
    var t = token();
    if (t && !TOKEN_CHARS.test(t)) throw new TypeError('the token is not printable ASCII');
    return new Headers(t ? { 'Authorization': 'Bearer ' + t } : {});
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // Formats, as the server's first paint writes them.
  // usd writes dollars as budget.USD does: cents, and below ten cents two
  // significant digits (at most six places), so that $0.005 left is not
  // "$0.01" and $0.001 not "$0.00".
  function usd(x) {
    if (x === null || x === undefined) return '∞';
    var p = 2;
    for (var a = Math.abs(x); a !== 0 && a < 0.1 && p < 6; a *= 10) p++;
    var s = x.toFixed(p);
    if (p > 2) {
      s = s.replace(/0+$/, '');
      var d = s.length - s.indexOf('.') - 1;
      if (d < 2) s += '00'.slice(d);
    }
    return s.charAt(0) === '-' ? '-$' + s.slice(1) : '$' + s;
  }
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

  var REFUSED = $('login-error').textContent;
  var NOT_ASCII = 'That token was not accepted: a token is plain ASCII (a curly quote or an ellipsis pasted with it?).';

  // showLogin asks for a token; rejected says the last one was refused,
  // why (optional) how.
  function showLogin(rejected, why) {
    $('login').hidden = false;
    $('login-error').textContent = why || REFUSED;
    $('login-error').hidden = !rejected;
    $('token').focus();
  }

  // badToken drops a stored token no request can carry and asks for
  // another.
  function badToken() {
    sessionStorage.removeItem(STORE);
    isAdmin = false;
    if (tokenRequired) clearData();
    showLogin(true, NOT_ASCII);
  }

  function clearData() {
    $('data').hidden = true;
    ['meta', 'pool', 'at'].forEach(function (id) { $(id).replaceChildren(); $(id)._sig = undefined; });
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

  // The page is updated in place, never redrawn: a row is its key's from
  // the first poll on, and a cell's nodes change only when its text does.
  // A redraw every poll lost a click whose press and release straddled it
  // (the button was another node by the release) and wiped any selection.

  // part is a cell's piece: a string (text) or {t, c, tag} (an element).
  function partText(p) { return typeof p === 'string' ? p : p.t; }
  function partNode(p) { return typeof p === 'string' ? document.createTextNode(p) : el(p.tag || 'span', p.t, p.c); }

  // fill gives node the parts, touching it only when they differ from the
  // last ones; a node the server painted is kept when its text matches.
  function fill(node, parts) {
    var sig = JSON.stringify(parts);
    if (node._sig === sig) return;
    var known = node._sig !== undefined;
    node._sig = sig;
    if (!known && node.textContent === parts.map(partText).join('')) return;
    if (parts.length === 1 && typeof parts[0] === 'string') node.textContent = parts[0];
    else node.replaceChildren.apply(node, parts.map(partNode));
  }

  // cells returns row's cells by label, made on first use.
  function cells(tr, labels) {
    if (!tr._cells) {
      tr._cells = {};
      labels.forEach(function (label) {
        var td = tr.querySelector('td[data-label="' + label + '"]');
        if (!td) {
          td = el('td');
          td.dataset.label = label;
          tr.appendChild(td);
        }
        tr._cells[label] = td;
      });
    }
    return tr._cells;
  }

  function setData(node, name, value) {
    value = String(value);
    if (node.dataset[name] !== value) node.dataset[name] = value;
  }

  var KEY_CELLS = ['id', 'key', 'account', 'state', 'rest left', 'budget left', 'free req. left', 'calls', 'failures', 'latency'];
  var ACCOUNT_CELLS = ['account', 'keys', 'in rotation', 'calls', 'failures', 'free req. left'];
  var LABELS = { enable: 'Enable', disable: 'Disable', check: 'Check' };

  function updateKey(tr, k) {
    setData(tr, 'state', k.state);
    var c = cells(tr, KEY_CELLS);
    fill(c['id'], ['#' + k.id]);
    fill(c['key'], [{ t: k.masked, tag: 'code' }]);
    fill(c['account'], [k.account || '—']);
    var st = [{ t: k.state, c: 'state state-' + k.state }];
    if (k.rest_reason) st.push(' ', { t: k.rest_reason, c: 'reason' });
    if (k.free_blocked_left > 0) st.push(' ', { t: 'free models blocked ' + dur(k.free_blocked_left), c: 'reason free-blocked' });
    fill(c['state'], st);
    fill(c['rest left'], [dur(k.rest_left)]);
    var b = k.budget;
    fill(c['budget left'], [b ? usd(b.limit_remaining) + (b.limit !== null ? ' of ' + usd(b.limit) : '') : '—']);
    // While the account's free-model calls are blocked, none is left now
    // whatever the last poll said.
    fill(c['free req. left'], [k.free_blocked_left > 0 ? '0' : (b ? count(b.free_requests_remaining) : '—')]);
    var calls = [String(k.calls)];
    if (k.in_flight) calls.push(' ', { t: '(' + k.in_flight + ' now)', c: 'inflight' });
    fill(c['calls'], calls);
    fill(c['failures'], [failures(k.failures)]);
    fill(c['latency'], [latency(k.latency_mean)]);
    var act = tr.querySelector('td.admin-col');
    if (!act) act = tr.appendChild(el('td', null, 'admin-col'));
    var want = isAdmin ? [k.disabled ? 'enable' : 'disable', 'check'] : [];
    var btns = act.querySelectorAll('button[data-action]');
    if (btns.length !== want.length) {
      act.replaceChildren.apply(act, want.map(function () {
        var btn = el('button', null, 'admin');
        btn.type = 'button';
        return btn;
      }));
      btns = act.querySelectorAll('button');
    }
    want.forEach(function (a, i) {
      setData(btns[i], 'action', a);
      setData(btns[i], 'id', k.id);
      setData(btns[i], 'key', k.fingerprint);
      if (btns[i].textContent !== LABELS[a]) btns[i].textContent = LABELS[a];
    });
  }

  function updateAccount(tr, a) {
    var c = cells(tr, ACCOUNT_CELLS);
    fill(c['account'], [a.account]);
    fill(c['keys'], [String(a.keys)]);
    fill(c['in rotation'], [String(a.in_rotation)]);
    fill(c['calls'], [String(a.calls)]);
    fill(c['failures'], [String(a.failures)]);
    fill(c['free req. left'], [count(a.free_requests_remaining)]);
  }

  // syncRows makes tbody's rows those of items, in their order: a row
  // named (data-<attr>) as an item is kept and updated, a new item gets a
  // new row, a row no item names goes.
  function syncRows(tbody, items, attr, name, update) {
    var want = {};
    items.forEach(function (it) { want[name(it)] = true; });
    var have = {};
    Array.prototype.slice.call(tbody.rows).forEach(function (tr) {
      var n = tr.dataset[attr];
      if (!want[n] || have[n]) tr.remove(); else have[n] = tr;
    });
    items.forEach(function (it, i) {
      var n = name(it), tr = have[n];
      if (!tr) {
        tr = el('tr');
        tr.dataset[attr] = n;
      }
      update(tr, it);
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });
  }

  function render(v) {
    isAdmin = !!v.admin;
    var meta = $('meta');
    fill(meta, [{ t: 'replica ' + v.replica }, { t: v.strategy },
      { t: v.redis_up === null ? 'no Redis' : (v.redis_up ? 'Redis up' : 'Redis down'), c: v.redis_up === false ? 'bad' : '' }]);
    var pool = $('pool');
    [['keys', v.pool.keys], ['in rotation', v.pool.in_rotation], ['resting', v.pool.resting],
      ['disabled', v.pool.disabled], ['in flight', v.pool.in_flight], ['calls', v.pool.calls],
      ['failures', v.pool.failures]].forEach(function (p, i) {
      var d = pool.children[i];
      if (!d) {
        d = pool.appendChild(el('div'));
        d.appendChild(el('dt'));
        d.appendChild(el('dd'));
      }
      fill(d.children[0], [p[0]]);
      fill(d.children[1], [String(p[1])]);
    });
    syncRows($('keys').tBodies[0], v.keys, 'key', function (k) { return String(k.id); }, updateKey);
    syncRows($('accounts').tBodies[0], v.accounts, 'account', function (a) { return a.account; }, updateAccount);
    var at = new Date(v.at);
    fill($('at'), [isNaN(at) ? '' : at.toISOString().slice(11, 19) + ' UTC']);
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
    var headers;
    try {
      headers = authHeaders();
    } catch (e) {
      badToken();
      if (tokenRequired) return;
      headers = authHeaders(); // the page is open to all: on without one
    }
    try {
      // A keygate that takes the request and never answers must not
      // freeze the page on old figures: after three polls' time the poll
      // fails, says so, and is tried again.
      var res = await fetch('/status.json', { headers: headers, cache: 'no-store', signal: AbortSignal.timeout(3 * pollMs) });
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
      if (token()) {
        // Signed in: the prompt the first paint shows (the server cannot
        // see the session's token) has no business above the data.
        $('login').hidden = true;
        $('login-error').hidden = true;
      }
      if ($('message').dataset.kind === 'conn') message('');
    } catch (e) {
      if (mine !== gen) return;
      var why = e.name === 'TimeoutError' ? 'no answer in ' + 3 * pollMs / 1000 + ' s' : e.message;
      message('keygate is not answering (' + why + '); retrying', 'conn');
    }
    if (mine === gen) timer = setTimeout(refresh, pollMs);
  }

  async function adminCall(path, what) {
    try {
      var headers;
      try {
        headers = authHeaders();
      } catch (e) {
        badToken();
        return null;
      }
      var res = await fetch(path, { method: 'POST', headers: headers, cache: 'no-store' });
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
    // The key as this page shows it: after a reload that renumbered the
    // pool, the id may name another key, and keygate refuses (409).
    var v = await adminCall('/admin/keys/' + encodeURIComponent(id) + '/' + a + '?key=' + encodeURIComponent(btn.dataset.key), a + ' key #' + id);
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
    if (!v) return;
    var text = 'Reloaded: ' + v.keys + ' keys (+' + v.added.length + ' added, −' + v.removed.length + ' removed, ' + v.kept.length + ' kept)';
    if (v.renumbered && v.renumbered.length) {
      // As the console says it: kept keys whose id changed.
      text += ', ' + v.renumbered.length + ' renumbered: ' + v.renumbered.map(function (m) { return '#' + m.from + '→#' + m.to; }).join(', ');
    }
    message(text);
  });

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token').value.trim();
    $('token').value = '';
    if (!t) return;
    if (!TOKEN_CHARS.test(t)) {
      showLogin(true, NOT_ASCII);
      return;
    }
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
