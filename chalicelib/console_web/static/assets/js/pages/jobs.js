// Jobs: one queue's jobs in one state (or by name prefix / job definition, which list every state, as ListJobs does),
// a page at a time, live; select several to cancel or terminate them.
import { batch, queues } from '../api.js';
import { h, replace, table, badge, link, jobHref, when, short, errorBox, STATUSES } from '../dom.js';
import { act, confirmAction } from './actions.js';

const PAGE = 50;

export async function mount(main, ctx) {
  const q = ctx.query;
  const jqs = await queues();
  const queue = q.get('queue') || jqs[0]?.jobQueueName || '';
  const status = q.get('status') || 'RUNNING';
  const name = q.get('name') || '';
  const definition = q.get('definition') || '';
  const filtered = Boolean(name || definition);

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('label', {}, 'Queue ', h('select', { name: 'queue' },
      jqs.map((j) => h('option', { value: j.jobQueueName, selected: j.jobQueueName === queue }, j.jobQueueName)))),
    h('label', {}, 'Status ', h('select', { name: 'status', disabled: filtered },
      STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)))),
    h('label', {}, 'Name prefix ', h('input', { name: 'name', type: 'search', value: name, size: 16 })),
    h('label', {}, 'Job definition ', h('input', { name: 'definition', type: 'search', value: definition, size: 16, placeholder: 'name or name:rev' })),
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const key of ['queue', 'status', 'name', 'definition']) {
      const value = (data.get(key) || (key === 'status' ? status : '')).trim();
      if (value) next.set(key, value);
    }
    ctx.navigate(`/console/jobs?${next}`);
  });
  for (const select of form.querySelectorAll('select')) select.addEventListener('change', () => form.requestSubmit());

  const selected = new Set();
  const tokens = [undefined]; // tokens[i]: the nextToken that starts page i
  let pageNo = 0;
  const box = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const result = h('div', { 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', disabled: true, onclick: () => { pageNo -= 1; timer.now(); } }, '← Previous page');
  const next = h('button', { type: 'button', disabled: true, onclick: () => { pageNo += 1; timer.now(); } }, 'Next page →');
  const pageLabel = h('span', { class: 'muted' });
  const cancel = h('button', { type: 'button', disabled: true, onclick: () => run('Cancel') }, 'Cancel selected');
  const terminate = h('button', { type: 'button', class: 'danger', disabled: true, onclick: () => run('Terminate') }, 'Terminate selected');

  async function run(verb) {
    const ids = [...selected];
    const reason = await confirmAction(verb, `${ids.length} job${ids.length === 1 ? '' : 's'}`);
    if (reason === null) return;
    const errors = await act(verb, ids, reason);
    replace(result, errors.length ? h('ul', { class: 'error', role: 'alert' }, errors.map((e) => h('li', {}, e)))
      : h('p', { class: 'ok' }, `${verb} requested for ${ids.length} job${ids.length === 1 ? '' : 's'}.`));
    selected.clear();
    timer.now();
  }

  function sync() {
    cancel.disabled = terminate.disabled = selected.size === 0;
  }

  const title = filtered ? `Jobs in ${queue}` : `${status} jobs in ${queue}`;
  ctx.title(title);
  main.append(h('h1', {}, title), form, h('div', { class: 'toolbar' }, cancel, terminate, result), box,
    h('div', { class: 'pager' }, prev, pageLabel, next));
  if (!queue) { replace(box, h('p', {}, 'No job queue yet.')); return; }

  const timer = ctx.every(3000, async () => {
    const body = { jobQueue: queue, maxResults: PAGE };
    if (filtered) {
      body.filters = [];
      if (name) body.filters.push({ name: 'JOB_NAME', values: [`${name}*`] });
      if (definition) body.filters.push({ name: 'JOB_DEFINITION', values: [definition] });
    } else body.jobStatus = status;
    if (tokens[pageNo]) body.nextToken = tokens[pageNo];
    let page;
    try { page = await batch('ListJobs', body); } catch (e) { replace(box, errorBox(e)); throw e; }
    if (!ctx.alive()) return;
    tokens[pageNo + 1] = page.nextToken;
    prev.disabled = pageNo === 0;
    next.disabled = !page.nextToken;
    pageLabel.textContent = ` Page ${pageNo + 1} `;
    const jobs = page.jobSummaryList;
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select every job on this page',
      checked: jobs.length > 0 && jobs.every((j) => selected.has(j.jobId)),
      onchange: (e) => { for (const j of jobs) e.target.checked ? selected.add(j.jobId) : selected.delete(j.jobId); timer.now(); } });
    const t = table(`${jobs.length} job${jobs.length === 1 ? '' : 's'} on this page`,
      [all, 'Name', 'Id', 'Status', 'Created', 'Started', 'Stopped', 'Reason'],
      jobs.map((j) => [
        h('input', { type: 'checkbox', 'aria-label': `Select ${j.jobName}`, checked: selected.has(j.jobId),
          onchange: (e) => { e.target.checked ? selected.add(j.jobId) : selected.delete(j.jobId); sync(); } }),
        link(jobHref(j.jobId), j.jobName), h('code', { title: j.jobId }, short(j.jobId)), badge(j.status), when(j.createdAt),
        when(j.startedAt), when(j.stoppedAt), j.statusReason || '',
      ]), 'No job matches.');
    t.classList.add('jobs');
    const focused = document.activeElement?.getAttribute('aria-label');
    replace(box, t);
    if (focused) box.querySelector(`input[aria-label="${CSS.escape(focused)}"]`)?.focus();
    sync();
  });
}
