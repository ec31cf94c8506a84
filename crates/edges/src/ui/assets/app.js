// mcp-health status page: keeps the server-rendered snapshot live over
// Server-Sent Events (/events) and filters it as you type. Every text from the
// daemon goes into the page as a text node or an attribute value, never as
// markup (no innerHTML anywhere).
'use strict';
(() => {
  const body = document.body;
  const scope = { group: body.dataset.group || '', backend: body.dataset.backend || '' };
  const groups = new Map();
  let skew = 0; // server clock minus ours, in ms
  let rendered = false;
  const TIMELINE_MAX = 64;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) if (c !== null && c !== undefined) e.append(c); // strings become text nodes
    return e;
  }
  const seg = (s) => encodeURIComponent(s);
  const backendHref = (g, b) => `/g/${seg(g)}/b/${seg(b)}`;

  // The icon and tone of each status and phase come with the data (the
  // daemon's one table of them, `model::shown`), never from a list kept here.
  function badge(kind, name, look) {
    return el('span', { class: `badge ${kind}-${name.toLowerCase()}`, 'data-tone': look.tone },
      el('span', { 'aria-hidden': 'true' }, look.icon), ' ' + name);
  }

  function pad(n) { return String(n).padStart(2, '0'); }
  function iso(ms) {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
  }
  function ago(ms) {
    const s = Math.max(0, Math.floor((Date.now() + skew - ms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }
  function time(ms) {
    return el('time', { datetime: iso(ms), 'data-ms': ms, title: iso(ms) }, ago(ms));
  }

  function sparkline(points) {
    if (!points.length) return null;
    const NS = 'http://www.w3.org/2000/svg';
    const W = 60, H = 16;
    const max = Math.max(...points, 0);
    const y = (v) => (max > 0 ? H - 1 - (v / max) * (H - 2) : H - 1);
    const svg = document.createElementNS(NS, 'svg');
    for (const [k, v] of Object.entries({ class: 'spark', viewBox: '-2 0 64 16', width: 64, height: 16, role: 'img' })) svg.setAttribute(k, String(v));
    svg.setAttribute('aria-label', `latency per minute over the last hour, max ${max.toFixed(1)} ms`);
    let shape;
    if (points.length === 1) {
      // One minute so far: a dot at "now" on a faint axis of the hour.
      const axis = document.createElementNS(NS, 'line');
      for (const [k, v] of Object.entries({ x1: 0, y1: H - 1, x2: W, y2: H - 1, stroke: 'currentColor', 'stroke-opacity': '0.3' })) axis.setAttribute(k, String(v));
      svg.append(axis);
      shape = document.createElementNS(NS, 'circle');
      shape.setAttribute('cx', String(W));
      shape.setAttribute('cy', y(points[0]).toFixed(1));
      shape.setAttribute('r', '2');
      shape.setAttribute('fill', 'currentColor');
    } else {
      const step = W / (points.length - 1);
      shape = document.createElementNS(NS, 'polyline');
      shape.setAttribute('fill', 'none');
      shape.setAttribute('stroke', 'currentColor');
      shape.setAttribute('stroke-width', '1.5');
      shape.setAttribute('points', points.map((v, i) => `${(i * step).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
    }
    svg.append(shape);
    return svg;
  }

  function backendRow(g, b) {
    const key = `${g.name}/${b.name}`;
    const status = b.status.toLowerCase();
    return el('tr', { id: `b-${key}`, class: `backend st-${status}`, 'data-backend': key, 'data-status': b.status, 'data-tone': b.status_badge.tone },
      el('th', { scope: 'row' }, el('a', { href: backendHref(g.name, b.name) }, b.name), el('div', { class: 'origin' }, b.origin)),
      el('td', {}, badge('st', b.status, b.status_badge), el('div', { class: 'routable' }, b.ejected ? `ejected: ${b.ejected}` : b.routable ? 'routable' : 'not routable')),
      el('td', {}, el('code', {}, b.reason), el('div', { class: 'msg' }, b.message)),
      el('td', {}, b.protocol || '–'),
      el('td', { class: 'latency' }, b.latency_ms == null ? '–' : `${b.latency_ms.toFixed(1)} ms`, ' ', sparkline(b.spark)),
      el('td', {}, b.last_transition_ms == null ? '–' : time(b.last_transition_ms)),
      el('td', { class: 'server' }, b.server));
  }

  // A discovered backend's endpoints, one row each under it. They carry
  // data-endpoint-of, not data-backend: the backend stays one row.
  function endpointRow(g, b, e) {
    const key = `${g.name}/${b.name}`;
    return el('tr', { class: `endpoint st-${e.status.toLowerCase()}`, 'data-endpoint-of': key, 'data-address': e.address, 'data-status': e.status, 'data-tone': e.status_badge.tone },
      el('th', { scope: 'row' }, el('span', { class: 'endpoint-address' }, '↳ ' + e.address)),
      el('td', {}, badge('st', e.status, e.status_badge), el('div', { class: 'routable' }, e.place ? e.place : e.routable ? 'routable' : 'not routable')),
      el('td', {}, el('code', {}, e.reason), el('div', { class: 'msg' }, e.message)),
      el('td', {}, '–'),
      el('td', { class: 'latency' }, e.latency_ms == null ? '–' : `${e.latency_ms.toFixed(1)} ms`),
      el('td', {}, '–'),
      el('td', { class: 'server' }));
  }

  function groupArticle(g) {
    const phase = g.phase.toLowerCase();
    const a = el('article', { class: `group ph-${phase}`, id: `g-${g.name}`, 'data-group': g.name, 'data-phase': g.phase, 'data-tone': g.phase_badge.tone },
      el('h3', {}, el('a', { href: `/g/${seg(g.name)}` }, g.name), ' ', badge('ph', g.phase, g.phase_badge)),
      el('p', { class: 'meta' }, `${g.routable} of ${g.total} routable${g.source ? ' · from the ' + g.source : ''}`),
      el('p', { class: 'msg' }, g.message));
    const backends = g.backends.filter((b) => !scope.backend || b.name === scope.backend);
    if (backends.length) {
      const head = el('tr', {}, ...['Backend', 'Status', 'Reason', 'Protocol', 'Latency', 'Last transition', 'Server'].map((h) => el('th', { scope: 'col' }, h)));
      a.append(el('table', { class: 'backends' }, el('thead', {}, head), el('tbody', {}, ...backends.flatMap((b) => [backendRow(g, b), ...(b.endpoints || []).map((e) => endpointRow(g, b, e))]))));
    }
    return a;
  }

  function timelineItem(t) {
    return el('li', { 'data-group': t.group, 'data-backend': `${t.group}/${t.backend}`, 'data-seq': t.seq },
      time(t.at_ms), ' ',
      el('a', { href: backendHref(t.group, t.backend) }, `${t.group}/${t.backend}`), ' ',
      t.endpoint ? el('span', { class: 'endpoint-address' }, `endpoint ${t.endpoint}`) : null, t.endpoint ? ' ' : null,
      badge('st', t.from, t.from_badge), ' → ', badge('st', t.to, t.to_badge), ' ',
      el('code', {}, t.reason), ' ',
      el('span', { class: 'msg' }, t.message + (t.latency_ms == null ? '' : ` (${t.latency_ms.toFixed(1)} ms)`)));
  }

  function renderGroups() {
    const box = document.getElementById('groups');
    const names = [...groups.keys()].sort();
    const articles = names.map((n) => groupArticle(groups.get(n)));
    box.replaceChildren(...(articles.length ? articles : [el('p', { class: 'empty' }, 'Nothing to show.')]));
  }

  function addTimeline(entries, replace) {
    const list = document.getElementById('timeline');
    const items = entries.slice().reverse().map(timelineItem); // newest first
    if (replace) list.replaceChildren(...items);
    else list.prepend(...items);
    while (list.children.length > TIMELINE_MAX) list.lastElementChild.remove();
    const empty = document.getElementById('timeline-empty');
    if (empty && list.children.length) empty.remove();
  }

  function applyFilter() {
    const input = document.getElementById('q');
    const words = (input ? input.value : '').toLowerCase().split(/\s+/).filter(Boolean);
    const hit = (text) => words.every((w) => text.toLowerCase().includes(w));
    for (const article of document.querySelectorAll('#groups article.group')) {
      const head = article.querySelector('h3').textContent + ' ' + article.dataset.phase + ' ' + article.querySelector('p.msg').textContent;
      let shown = 0;
      let backendShown = false; // endpoint rows follow the backend row above them
      for (const row of article.querySelectorAll('tr.backend, tr.endpoint')) {
        if (row.classList.contains('endpoint')) {
          row.hidden = !backendShown;
          continue;
        }
        backendShown = hit(article.dataset.group + ' ' + row.textContent);
        row.hidden = !backendShown;
        if (backendShown) shown += 1;
      }
      article.hidden = !(shown > 0 || hit(head));
    }
    for (const li of document.querySelectorAll('#timeline li')) li.hidden = !hit(li.textContent);
  }

  // Re-rendered nodes lose :target, so the deep-linked group or backend
  // (#g-NAME, #b-GROUP/BACKEND) is marked with a class as well.
  function markTarget(scroll) {
    for (const e of document.querySelectorAll('.targeted')) e.classList.remove('targeted');
    if (!location.hash) return;
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!target) return;
    target.classList.add('targeted');
    if (scroll) target.scrollIntoView();
  }
  window.addEventListener('hashchange', () => markTarget(true));

  function tick() {
    for (const t of document.querySelectorAll('time[data-ms]')) t.textContent = ago(Number(t.dataset.ms));
  }

  function setLive(text) {
    const live = document.getElementById('live');
    if (live) live.textContent = text;
  }

  function onUpdate(ev) {
    const u = JSON.parse(ev.data);
    skew = u.now_ms - Date.now();
    if (u.kind === 'snapshot') groups.clear();
    for (const g of u.groups) groups.set(g.name, g);
    for (const name of u.deleted) groups.delete(name);
    renderGroups();
    addTimeline(u.timeline, u.kind === 'snapshot');
    applyFilter();
    body.dataset.revision = String(u.revision);
    setLive(`Live: updated ${iso(u.now_ms)} (revision ${u.revision}).`);
    markTarget(!rendered);
    if (!rendered) {
      rendered = true;
      body.dataset.live = '1';
    }
  }

  function connect() {
    const params = new URLSearchParams();
    if (scope.group) params.set('group', scope.group);
    if (scope.backend) params.set('backend', scope.backend);
    const source = new EventSource(`/events?${params}`);
    for (const kind of ['snapshot', 'changed', 'deleted']) source.addEventListener(kind, onUpdate);
    source.addEventListener('open', () => setLive('Live: connected.'));
    source.addEventListener('error', () => setLive('Live updates interrupted; reconnecting… (the page shows the last state it received)'));
  }

  const form = document.querySelector('form.filter');
  const input = document.getElementById('q');
  if (form && input) {
    form.addEventListener('submit', (e) => { e.preventDefault(); applyFilter(); });
    input.addEventListener('input', () => {
      applyFilter();
      const url = new URL(location.href);
      if (input.value) url.searchParams.set('q', input.value); else url.searchParams.delete('q');
      history.replaceState(null, '', url);
    });
  }
  applyFilter();
  setInterval(tick, 1000);
  connect();
})();
