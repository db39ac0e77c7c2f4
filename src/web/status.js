// foolock status page: takes over from the server-rendered table (its state is embedded as
// JSON), follows /events, ticks the countdowns, and reconnects with Last-Event-ID whenever the
// stream ends (the server restarted, the network dropped, the phone slept).
//
// The stream is read with fetch rather than EventSource so it can send the access token in
// an Authorization header (EventSource cannot send headers); the same code runs whether or not
// the server wants a token. With one, the page arrives without locks ("locked") and asks for
// it; the token is kept in localStorage and sent with every request. A token the server
// refuses (401) is forgotten and asked for again.
'use strict';
(function () {
  var RECENT = 20; // as RECENT in log.rs
  var WATCHDOG_MS = 45000; // three keep-alives (every 15 s) missed: the connection is dead
  var MAX_DELAY_MS = 5000;

  var $ = function (id) { return document.getElementById(id); };
  var admin = document.body.dataset.admin === 'true';
  var locked = document.body.dataset.locked === 'true';
  var tbody = $('job-rows');
  var jobs = new Map(); // name -> {job, holder, token, expires, graceUntil, waiting} (ms)
  var recent = []; // newest first
  var server = null;
  // The server's clock minus ours, estimated from the server times we receive. A time
  // arrives late by the transfer, so each sample underestimates: keep the largest of the
  // current connection's samples.
  var offsetMs = 0;
  var connection = 0; // counts connections; samples of an older one are replaced
  var offsetConnection = -1;
  var uptimeBase = 0; // our clock when the server's uptime was 0
  var lastId = null;
  var token = storage('get');
  var tokenWanted = null;
  var rejected = false; // the last token was refused: say so when asking again
  var stream = null; // the current connection's AbortController
  var delay = 1000; // before the next reconnection attempt; reset by every message

  function storage(op, value) {
    try {
      if (op === 'get') return localStorage.getItem('foolock-token') || '';
      if (op === 'remove') localStorage.removeItem('foolock-token');
      else localStorage.setItem('foolock-token', value);
    } catch (e) { /* storage disabled: keep the token for this page only */ }
    return '';
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  // A short span, as span() in page.rs.
  function span(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    var sec = s % 60;
    var two = function (n) { return n < 10 ? '0' + n : String(n); };
    if (s < 60) return sec + ' s';
    if (s < 3600) return m + ' min ' + two(sec) + ' s';
    if (s < 86400) return h + ' h ' + two(m) + ' min';
    return d + ' d ' + h + ' h';
  }

  function serverNow() { return Date.now() + offsetMs; }

  function sampleClock(serverMs) {
    var sample = serverMs - Date.now();
    if (isNaN(sample)) return;
    if (offsetConnection !== connection || sample > offsetMs) offsetMs = sample;
    offsetConnection = connection;
  }

  function localTime(ms) {
    var d = new Date(ms), today = new Date();
    return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function job(j) {
    return {
      job: j.job, holder: j.holder, token: j.token, waiting: j.waiting,
      expires: Date.parse(j.expires_at), graceUntil: Date.parse(j.grace_until)
    };
  }

  function setServer(s, now) {
    server = s;
    sampleClock(Date.parse(now));
    uptimeBase = Date.now() - s.uptime_ms;
    $('addrs').textContent = s.addrs.join(', ');
    $('addrs-item').hidden = s.addrs.length === 0;
    $('version').textContent = s.version;
    var started = $('started');
    started.setAttribute('datetime', s.started_at);
    started.textContent = localTime(Date.parse(s.started_at));
  }

  function applySnapshot(s) {
    setServer(s.server, s.now);
    jobs = new Map(s.jobs.map(function (j) { return [j.job, job(j)]; }));
    recent = s.recent.map(function (r) { return Object.assign({}, r, { at: Date.parse(r.at) }); });
    lastId = s.id;
  }

  function applyEntry(e) {
    switch (e.kind) {
      case 'acquired': case 'renewed': case 'taken_over': case 'expired':
        sampleClock(Date.parse(e.at));
        jobs.set(e.job, job(e));
        break;
      case 'released': case 'force_released':
        jobs.delete(e.job);
        break;
      case 'waiting':
        if (jobs.has(e.job)) jobs.get(e.job).waiting = e.waiting;
        return;
      default:
        return;
    }
    // Renewals of one lease share a line, as in log.rs.
    var count = e.count || 1;
    if (e.kind === 'renewed') {
      var i = recent.findIndex(function (r) {
        return r.kind === 'renewed' && r.job === e.job && r.token === e.token;
      });
      if (i >= 0) count += recent.splice(i, 1)[0].count;
    }
    recent.unshift({
      kind: e.kind, job: e.job, holder: e.holder, token: e.token,
      at: Date.parse(e.at), previous: e.previous, count: count
    });
    recent.length = Math.min(recent.length, RECENT);
  }

  function stateOf(j, now) {
    if (now < j.expires) return 'held';
    if (now < j.graceUntil) return 'grace';
    return null;
  }

  function countdown(j, state, now) {
    return state === 'grace' ? 'grace ends in ' + span(j.graceUntil - now) : span(j.expires - now);
  }

  // The same markup as job_row in page.rs.
  function jobRow(j, state, now) {
    var cell = function (label, cls) {
      var attrs = { role: 'cell', 'data-label': label };
      if (cls) attrs.class = cls;
      return el.apply(null, ['td', attrs].concat(Array.prototype.slice.call(arguments, 2)));
    };
    var row = el('tr', { role: 'row', 'data-job': j.job },
      el('th', { role: 'rowheader', scope: 'row' }, j.job),
      cell('Holder', '', j.holder),
      cell('Token', 'num', String(j.token)),
      cell('Expires in', 'countdown',
        el('time', { datetime: new Date(j.expires).toISOString() }, countdown(j, state, now))),
      cell('State', '', el('span', { class: 'badge ' + state }, state)),
      cell('Waiting', 'num', String(j.waiting)));
    if (admin) {
      row.append(el('td', { role: 'cell', class: 'actions' },
        el('details', { class: 'force' },
          el('summary', {}, 'Force release', el('span', { class: 'visually-hidden' }, ' ' + j.job)),
          el('form', { method: 'post', action: '/admin/force-release?job=' + encodeURIComponent(j.job) },
            el('p', {}, 'Take ', el('strong', {}, j.job), ' away from ' + j.holder + ' now?'),
            el('button', { type: 'submit', class: 'danger' }, 'Force release')))));
    }
    return row;
  }

  // Brings the table to the state: rows whose facts changed are rebuilt, the others only get
  // a new countdown, so an open "Force release" confirmation stays open.
  function renderJobs() {
    var now = serverNow();
    var existing = new Map();
    Array.prototype.forEach.call(tbody.rows, function (r) { existing.set(r.dataset.job, r); });
    var names = Array.from(jobs.keys()).filter(function (n) {
      return stateOf(jobs.get(n), now) !== null;
    }).sort();
    var before = null;
    names.forEach(function (name) {
      var j = jobs.get(name), state = stateOf(j, now);
      var key = [j.holder, j.token, j.waiting, state, admin].join('\n');
      var row = existing.get(name);
      existing.delete(name);
      if (!row || row.dataset.key !== key) {
        var fresh = jobRow(j, state, now);
        fresh.dataset.key = key;
        if (row) row.replaceWith(fresh);
        row = fresh;
      } else {
        var time = row.querySelector('.countdown time');
        time.textContent = countdown(j, state, now);
        time.setAttribute('datetime', new Date(j.expires).toISOString());
      }
      var next = before ? before.nextElementSibling : tbody.firstElementChild;
      if (next !== row) tbody.insertBefore(row, next);
      before = row;
    });
    existing.forEach(function (r) { r.remove(); });
    $('job-count').textContent = '(' + names.length + ')';
    $('no-jobs').hidden = names.length > 0;
  }

  var LABELS = {
    acquired: 'acquired', renewed: 'renewed', released: 'released',
    force_released: 'force-released', expired: 'expired', taken_over: 'taken over'
  };

  // The same markup as event_item in page.rs, with local times.
  function eventItem(r) {
    var li = el('li', {},
      el('time', { datetime: new Date(r.at).toISOString() }, localTime(r.at)), ' ',
      el('span', { class: 'kind' }, LABELS[r.kind] || r.kind), ' ',
      el('strong', {}, r.job));
    switch (r.kind) {
      case 'force_released': li.append(' from ' + r.holder); break;
      case 'expired': li.append(', held by ' + r.holder); break;
      case 'taken_over': li.append(' by ' + r.holder + ' from ' + (r.previous || '?')); break;
      default: li.append(' by ' + r.holder);
    }
    li.append(', token ' + r.token + (r.kind === 'renewed' && r.count > 1 ? ' (×' + r.count + ')' : ''));
    return li;
  }

  function renderEvents() {
    $('events').replaceChildren.apply($('events'), recent.map(eventItem));
    $('no-events').hidden = recent.length > 0;
  }

  function renderUptime() {
    if (server) $('uptime').textContent = span(Date.now() - uptimeBase);
  }

  function render() {
    renderJobs();
    renderEvents();
    renderUptime();
  }

  function status(kind, text) {
    var p = $('connection');
    p.className = 'connection ' + kind;
    p.textContent = text;
  }

  function notice(text) {
    var p = $('notice');
    p.textContent = text;
    p.hidden = !text;
  }

  function AuthNeeded() {}

  // Shows or hides the "Force release" controls, as the server decides for this viewer.
  function setAdmin(allowed) {
    if (allowed === admin) return;
    admin = allowed;
    document.querySelector('#jobs thead th.actions').hidden = !admin;
    renderJobs();
  }

  // Hides everything about locks (the server wants a token this page does not have).
  function lock() {
    locked = true;
    lastId = null;
    jobs = new Map();
    recent = [];
    setAdmin(false);
    render();
    $('jobs-section').hidden = true;
    $('events-section').hidden = true;
  }

  function unlock() {
    locked = false;
    $('auth').hidden = true;
    $('jobs-section').hidden = false;
    $('events-section').hidden = false;
  }

  // Forgets a token the server refused.
  function rejectToken() {
    if (token) rejected = true;
    token = '';
    storage('remove');
  }

  // Reads one connection's events until it ends; throws on failure.
  async function follow() {
    connection++;
    var ctrl = new AbortController();
    stream = ctrl;
    var watchdog = setTimeout(function () { ctrl.abort(); }, WATCHDOG_MS);
    var headers = { Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = lastId;
    if (token) headers.Authorization = 'Bearer ' + token;
    try {
      var res = await fetch('/events', { headers: headers, cache: 'no-store', signal: ctrl.signal });
      if (res.status === 401) throw new AuthNeeded();
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      var allowed = res.headers.get('X-Foolock-Admin');
      if (allowed !== null) setAdmin(allowed === 'true');
      if (locked) unlock();
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buf = '', name = '', data = [], id = null;
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(function () { ctrl.abort(); }, WATCHDOG_MS);
        buf += decoder.decode(chunk.value, { stream: true });
        var nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          var line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data.length) dispatch(name || 'message', data.join('\n'), id);
            name = ''; data = []; id = null;
            continue;
          }
          if (line[0] === ':') continue; // keep-alive
          var colon = line.indexOf(':');
          var field = colon < 0 ? line : line.slice(0, colon);
          var value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') name = value;
          else if (field === 'data') data.push(value);
          else if (field === 'id') id = value;
        }
      }
    } finally {
      clearTimeout(watchdog);
      ctrl.abort();
    }
  }

  function dispatch(name, data, id) {
    var msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (name === 'snapshot') applySnapshot(msg);
    else if (name === 'hello') setServer(msg.server, msg.now);
    else { applyEntry(msg); if (id) lastId = id; }
    delay = 1000;
    status('live', 'Live');
    render();
  }

  function askToken() {
    var error = $('auth-error');
    error.textContent = rejected
      ? 'The server did not accept that access token. Check it and enter it again.'
      : '';
    error.hidden = !rejected;
    $('auth').hidden = false;
    if (rejected) $('token').focus();
    status('down', 'Waiting for the access token.');
    return new Promise(function (resolve) { tokenWanted = resolve; });
  }

  $('auth').addEventListener('submit', function (e) {
    e.preventDefault();
    var entered = $('token').value.trim();
    if (!entered) return;
    token = entered;
    storage('set', token);
    rejected = false;
    $('token').value = '';
    $('auth-error').hidden = true;
    $('auth').hidden = true;
    if (tokenWanted) { tokenWanted(); tokenWanted = null; }
  });

  tbody.addEventListener('submit', async function (e) {
    var form = e.target.closest('form');
    if (!form) return;
    e.preventDefault();
    var headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    try {
      var res = await fetch(form.action, { method: 'POST', headers: headers });
      if (res.ok || res.status === 404) {
        notice(''); // the stream removes the row (404: it was already free)
      } else if (res.status === 401) {
        // The token changed under us: the stream's reconnection asks for the new one.
        notice('');
        rejectToken();
        if (stream) stream.abort();
      } else {
        var body = await res.json().catch(function () { return {}; });
        notice(body.error || 'Force release failed (HTTP ' + res.status + ').');
      }
    } catch (err) {
      notice('Force release failed: the server cannot be reached.');
    }
  });

  async function run() {
    for (;;) {
      try {
        if (locked && !token) await askToken();
        status('down', 'Connecting…');
        await follow();
      } catch (e) {
        if (e instanceof AuthNeeded) {
          rejectToken();
          lock();
          await askToken();
          continue;
        }
      }
      status('down', 'Reconnecting…');
      await new Promise(function (r) { setTimeout(r, delay); });
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  applySnapshot(JSON.parse($('state').textContent));
  // A page without locks has nothing to resume from: the stream starts with a snapshot.
  if (locked) lastId = null;
  // A kept token is tried before anything is asked.
  if (locked && token) $('auth').hidden = true;
  render();
  setInterval(function () { renderJobs(); renderUptime(); }, 1000);
  run();
})();
