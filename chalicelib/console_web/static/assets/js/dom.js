// Building the DOM: every string goes in as text (textContent / text nodes), never as HTML.
export const STATUSES = ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED'];
export const ACTIVE = STATUSES.slice(0, 5);
export const TERMINAL = ['SUCCEEDED', 'FAILED'];

export function h(tag, attrs, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const link = (href, ...children) => h('a', { href }, ...children);
export const jobHref = (id) => `/console/jobs/${encodeURIComponent(id)}`;
export const queueHref = (name) => `/console/queues/${encodeURIComponent(name)}`;
export const jobsHref = (query) => `/console/jobs?${new URLSearchParams(query)}`;
export const defHref = (name) => `/console/job-definitions/${encodeURIComponent(name)}`;

export function badge(status) {
  return h('span', { class: `badge s-${String(status).toLowerCase()}` }, status);
}

export function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function took(start, stop) {
  if (!start) return '–';
  const s = ((stop || Date.now()) - start) / 1000;
  return s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}

export const short = (id) => {
  const m = /^(.*):(\d+)$/.exec(id);
  return m ? `${m[1].slice(0, 8)}:${m[2]}` : id.slice(0, 8);
};

export function table(caption, columns, rows, empty = 'None.') {
  const t = h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.length ? rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))
      : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty))));
  return t;
}

export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function section(title, ...children) {
  return h('section', { 'aria-label': title }, h('h2', {}, title), ...children);
}

export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, `${err.type || 'Error'}: ${err.message}`);
}
