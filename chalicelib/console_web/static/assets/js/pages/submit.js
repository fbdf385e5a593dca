// Submit: a SubmitJob form from a job definition (its parameters pre-filled with the definition's defaults) with
// container overrides; or a clone of an existing job (?clone=<jobId>). The API validates; its messages are shown
// as they come.
import { batch, describeJobs, queues as listQueues, definitions as listDefinitions } from '../api.js';
import { h, replace, jobHref } from '../dom.js';

function rows(kind, entries) {
  const body = h('tbody');
  const add = (k = '', v = '') => {
    const i = body.children.length;
    body.append(h('tr', {},
      h('td', {}, h('input', { type: 'text', class: `${kind}-name`, value: k, 'aria-label': `${kind} ${i + 1} name` })),
      h('td', {}, h('input', { type: 'text', class: `${kind}-value`, value: v, size: 40, 'aria-label': `${kind} ${i + 1} value` })),
      h('td', {}, h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${kind} ${i + 1}`, onclick: (e) => e.target.closest('tr').remove() }, 'Remove'))));
  };
  for (const [k, v] of entries) add(k, v);
  const t = h('table', { class: 'kv' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value'), h('th', {}, ''))), body);
  const read = () => Object.fromEntries([...body.children].map((tr) => [tr.querySelector(`.${kind}-name`).value.trim(), tr.querySelector(`.${kind}-value`).value])
    .filter(([k]) => k));
  return { el: h('div', {}, t, h('button', { type: 'button', onclick: () => add() }, `Add ${kind}`)), read };
}

const field = (id, label, input, hint) => h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', { id: `${id}-hint` }, hint) : '');

export async function mount(main, ctx) {
  const [jqs, defs] = await Promise.all([listQueues(), listDefinitions()]);
  const cloneId = ctx.query.get('clone');
  const source = cloneId ? (await describeJobs([cloneId]))[cloneId] : null;
  const wanted = source ? source.jobDefinition.split('/').pop() : ctx.query.get('definition');
  defs.sort((a, b) => a.jobDefinitionName.localeCompare(b.jobDefinitionName) || b.revision - a.revision);

  const name = h('input', { id: 'job-name', required: true, value: source ? source.jobName : '', size: 40, 'aria-describedby': 'job-name-hint' });
  const queue = h('select', { id: 'job-queue', required: true }, jqs.map((q) => h('option', { value: q.jobQueueName,
    selected: source && source.jobQueue.split('/').pop() === q.jobQueueName }, q.jobQueueName)));
  const definition = h('select', { id: 'job-definition', required: true }, defs.map((d) => {
    const ref = `${d.jobDefinitionName}:${d.revision}`;
    return h('option', { value: ref, selected: ref === wanted || d.jobDefinitionName === wanted }, ref);
  }));
  const command = h('textarea', { id: 'command', rows: 3, cols: 60, 'aria-describedby': 'command-hint' });
  const vcpus = h('input', { id: 'vcpus', type: 'text', size: 6, inputmode: 'decimal' });
  const memory = h('input', { id: 'memory', type: 'text', size: 8, inputmode: 'numeric' });
  const arraySize = h('input', { id: 'array-size', type: 'text', size: 6, inputmode: 'numeric', value: source?.arrayProperties?.size ?? '' });
  const attempts = h('input', { id: 'attempts', type: 'text', size: 4, inputmode: 'numeric', value: source?.retryStrategy?.attempts ?? '' });
  const dependsOn = h('input', { id: 'depends-on', type: 'text', size: 60, 'aria-describedby': 'depends-on-hint',
    value: (source?.dependsOn || []).map((d) => d.jobId).filter(Boolean).join(' ') });
  const paramsBox = h('div');
  const envBox = h('div');
  let params = rows('parameter', []);
  let env = rows('variable', []);
  const out = h('div', { 'aria-live': 'polite' });

  function fromDefinition() {
    const d = defs.find((x) => `${x.jobDefinitionName}:${x.revision}` === definition.value);
    const c = d?.containerProperties || {};
    const sc = source?.container || {};
    params = rows('parameter', Object.entries(source ? source.parameters || {} : d?.parameters || {}));
    replace(paramsBox, params.el);
    const envs = source ? sc.environment || [] : [];
    env = rows('variable', envs.map((e) => [e.name, e.value]));
    replace(envBox, env.el);
    // A clone keeps the source's command only where it differs from the definition's (an override).
    const same = JSON.stringify(sc.command || []) === JSON.stringify(c.command || []);
    command.value = source && sc.command && !same ? sc.command.join('\n') : '';
    command.placeholder = (c.command || []).join('\n');
    const req = Object.fromEntries(((source ? sc : c).resourceRequirements || []).map((r) => [r.type, r.value]));
    vcpus.value = req.VCPU || ''; memory.value = req.MEMORY || '';
  }
  definition.addEventListener('change', fromDefinition);

  const form = h('form', { class: 'submit', 'aria-label': 'Submit a job', novalidate: true },
    field('job-name', 'Job name', name, 'Letters, numbers, hyphens and underscores; up to 128.'),
    field('job-queue', 'Job queue', queue),
    field('job-definition', 'Job definition', definition),
    h('fieldset', {}, h('legend', {}, 'Parameters (Ref::name in the command)'), paramsBox),
    h('fieldset', {}, h('legend', {}, 'Container overrides'),
      field('command', 'Command, one argument per line', command, 'Empty: the definition’s command. No shell: each line is one argument.'),
      h('div', { class: 'row' }, field('vcpus', 'vCPUs', vcpus), field('memory', 'Memory (MiB)', memory)),
      h('p', {}, 'Environment'), envBox),
    h('div', { class: 'row' }, field('array-size', 'Array size (2–10,000; empty: not an array)', arraySize), field('attempts', 'Attempts (retry strategy)', attempts)),
    field('depends-on', 'Depends on (job ids, space-separated)', dependsOn, 'Each must be an existing job.'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Submit job')), out);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { jobName: name.value.trim(), jobQueue: queue.value, jobDefinition: definition.value };
    const p = params.read();
    if (Object.keys(p).length) body.parameters = p;
    const overrides = {};
    const args = command.value.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
    if (args.length) overrides.command = args;
    const envs = Object.entries(env.read()).map(([k, v]) => ({ name: k, value: v }));
    if (envs.length) overrides.environment = envs;
    const req = [];
    if (vcpus.value.trim()) req.push({ type: 'VCPU', value: vcpus.value.trim() });
    if (memory.value.trim()) req.push({ type: 'MEMORY', value: memory.value.trim() });
    if (req.length) overrides.resourceRequirements = req;
    if (Object.keys(overrides).length) body.containerOverrides = overrides;
    const number = (el) => (/^-?\d+$/.test(el.value.trim()) ? Number(el.value.trim()) : el.value.trim());
    if (arraySize.value.trim()) body.arrayProperties = { size: number(arraySize) };
    if (attempts.value.trim()) body.retryStrategy = { attempts: number(attempts) };
    const deps = dependsOn.value.split(/[\s,]+/).filter(Boolean);
    if (deps.length) body.dependsOn = deps.map((jobId) => ({ jobId }));
    if (source?.shareIdentifier) body.shareIdentifier = source.shareIdentifier;
    if (source?.schedulingPriority !== undefined) body.schedulingPriorityOverride = source.schedulingPriority;
    replace(out, h('p', { class: 'muted' }, 'Submitting…'));
    try {
      const resp = await batch('SubmitJob', body);
      ctx.navigate(jobHref(resp.jobId));
    } catch (err) {
      replace(out, h('p', { class: 'error', role: 'alert' }, `${err.type}: ${err.message}`));
    }
  });

  main.append(h('h1', {}, source ? `Clone ${source.jobName}` : 'Submit a job'),
    defs.length ? form : h('p', {}, 'No active job definition: register one with the API (RegisterJobDefinition).'));
  if (defs.length) fromDefinition();
  name.focus();
}
