// A job: status and why it waits, what it runs, its attempts, the log of the selected attempt (followed live while
// it runs), its dependency graph and, for an array, its children by state. Live: polled every POLL_MS.
import { all, batch, describeJobs, logs } from '../api.js';
import { h, replace, section, table, facts, badge, link, jobHref, queueHref, defHref, when, took, short, errorBox,
  STATUSES, TERMINAL } from '../dom.js';
import { build, draw } from '../graph.js';
import { act, confirmAction } from './actions.js';

const POLL_MS = 2000;
const LOG_GROUP = '/aws/batch/job';
const GRAPH_EVERY = 3; // polls between walks of the dependency graph

// What a job that is not running waits for (chalicelib/console/views.py why_waiting).
export function whyWaiting(job, deps) {
  if (job.status === 'RUNNABLE') return job.statusReason || 'waiting for room on a compute environment of its queue';
  if (job.status === 'PENDING' || job.status === 'SUBMITTED') {
    if (job.arrayProperties?.size !== undefined) return 'an array job: it finishes when its children do';
    const waiting = Object.values(deps).filter((d) => d.status !== 'SUCCEEDED');
    if (waiting.length) return `waiting for ${waiting.map((d) => `${d.jobName} (${short(d.jobId)}, ${d.status})`).join(', ')}`;
  }
  return null;
}

// The containers of a multi-container job's task (ecsProperties), or of one of its attempts; [] otherwise.
export function containersOf(holder) {
  const tasks = holder?.ecsProperties?.taskProperties || holder?.taskProperties || [];
  return tasks[0]?.containers || [];
}

// The log stream of `name` (a multi-container job's container; null: its first essential one) in `holder`.
function streamOf(job, holder, name) {
  const defined = containersOf(job);
  if (!defined.length) return holder?.container?.logStreamName;
  const wanted = name || (defined.find((c) => c.essential !== false) || defined[0]).name;
  return containersOf(holder).find((c) => c.name === wanted)?.logStreamName;
}

// The attempts a job has had, plus the one running now: [{n, stream, attempt|null}].
function attemptsOf(job, container = null) {
  const list = (job.attempts || []).map((a, i) => ({ n: i + 1, stream: streamOf(job, a, container), attempt: a }));
  if (['STARTING', 'RUNNING'].includes(job.status)) list.push({ n: list.length + 1, stream: streamOf(job, job, container), attempt: null });
  return list;
}

function resources(container) {
  const req = Object.fromEntries((container?.resourceRequirements || []).map((r) => [r.type, r.value]));
  const parts = [];
  if (req.VCPU || container?.vcpus) parts.push(`${req.VCPU || container.vcpus} vCPU`);
  if (req.MEMORY || container?.memory) parts.push(`${req.MEMORY || container.memory} MiB`);
  if (req.GPU) parts.push(`${req.GPU} GPU`);
  return parts.join(', ') || '–';
}

const kv = (caption, obj, empty) => table(caption, ['Name', 'Value'],
  Object.entries(obj || {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [h('code', {}, k), h('code', {}, v)]), empty);

export async function mount(main, ctx) {
  const jobId = ctx.params[0];
  let job = (await describeJobs([jobId]))[jobId];
  if (!job) { main.append(h('h1', {}, 'Job not found'), h('p', {}, `No job has the id ${jobId}.`)); return; }
  ctx.title(job.jobName);

  const isArray = job.arrayProperties?.size !== undefined;
  const heading = h('h1', {});
  const status = h('div', { class: 'status-line' });
  const message = h('div', { 'aria-live': 'polite' });
  const cancel = h('button', { type: 'button', onclick: () => run('Cancel') }, 'Cancel');
  const terminate = h('button', { type: 'button', class: 'danger', onclick: () => run('Terminate') }, 'Terminate');
  const clone = h('a', { class: 'button', href: `/console/submit?clone=${encodeURIComponent(jobId)}` }, 'Clone and submit');
  const factsBox = h('div');
  const specBox = h('div');
  const attemptsBox = h('div');
  const logBox = h('pre', { class: 'log', tabindex: 0, 'aria-label': 'Log lines', 'aria-live': 'off' });
  const logTitle = h('h2', { id: 'log-title' }, 'Log');
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  const logStatus = h('p', { class: 'muted' });
  const followLabel = h('p', { hidden: true }, h('label', { for: 'follow' }, follow, ' Follow the log while the job runs'));
  const graphBox = h('div', { class: 'graph' }, h('p', { class: 'muted' }, 'Loading the graph…'));
  const arrayBox = h('div');
  const membersBox = h('div'); // a multi-container job's containers, a multi-node job's nodes

  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/console/jobs', 'Jobs'), ' / '),
    heading, status, h('div', { class: 'toolbar' }, cancel, terminate, clone, message),
    h('div', { class: 'columns' }, h('div', {}, section('Details', factsBox)), h('div', {}, section('Container', specBox))),
    arrayBox, membersBox,
    h('div', { hidden: isArray }, section('Attempts', attemptsBox)),
    h('section', { 'aria-labelledby': 'log-title', hidden: isArray }, logTitle,
      followLabel, logBox, logStatus),
    section('Dependencies', graphBox));

  async function run(verb) {
    const reason = await confirmAction(verb, `job ${job.jobName}`);
    if (reason === null) return;
    const errors = await act(verb, [jobId], reason);
    replace(message, errors.length ? h('p', { class: 'error', role: 'alert' }, errors.join('; '))
      : h('p', { class: 'ok' }, `${verb} requested.`));
    timer.now();
  }

  // -- the log of the selected attempt ------------------------------------------------------------------------
  let selected = null; // attempt number chosen by the user; null follows the latest
  let container = null; // a multi-container job's container whose log is shown; null: the first essential one
  let shown = { stream: undefined, token: undefined };
  async function pollLog() {
    if (job.arrayProperties?.size !== undefined) {
      logStatus.textContent = 'An array job: its children have the logs (select one in the grid below).';
      return;
    }
    if (job.nodeProperties?.numNodes && !job.jobId.includes('#')) {
      logStatus.textContent = 'A multi-node job: its nodes have the logs (select one in the list above).';
      return;
    }
    const attempts = attemptsOf(job, container);
    const pick = selected ? attempts.find((a) => a.n === selected) : attempts[attempts.length - 1];
    const stream = pick?.stream;
    const shownContainer = containersOf(job).length ? ` (container ${container || (containersOf(job).find((c) => c.essential !== false) || {}).name})` : '';
    logTitle.textContent = pick ? `Log of attempt ${pick.n}${shownContainer}` : 'Log';
    if (stream !== shown.stream) { shown = { stream, token: undefined }; logBox.replaceChildren(); }
    if (!stream) {
      logStatus.textContent = TERMINAL.includes(job.status) ? 'The job ended without running: no log.' : `No log yet: the job is ${job.status}.`;
      return;
    }
    const live = pick.attempt === null;
    followLabel.hidden = !live;
    if (!live && shown.done) return;
    for (let pages = 0; pages < 20; pages += 1) {
      let resp;
      try {
        resp = await logs('GetLogEvents', { logGroupName: LOG_GROUP, logStreamName: stream, startFromHead: true,
          ...(shown.token ? { nextToken: shown.token } : {}) });
      } catch (e) {
        if (e.type === 'ResourceNotFoundException') { logStatus.textContent = 'No log lines yet.'; return; }
        throw e;
      }
      if (shown.stream !== stream) return;
      const stick = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
      for (const ev of resp.events) logBox.append(h('span', { class: 'line', title: when(ev.timestamp) }, ev.message), '\n');
      if (stick && follow.checked) logBox.scrollTop = logBox.scrollHeight;
      const nextToken = resp.nextForwardToken;
      if (!resp.events.length || nextToken === shown.token) { shown.token = nextToken || shown.token; break; }
      shown.token = nextToken;
    }
    if (!live) shown.done = true;
    const lines = logBox.querySelectorAll('.line').length;
    logStatus.textContent = `${lines} line${lines === 1 ? '' : 's'}${live ? (follow.checked ? ' · following' : ' · paused') : ''}`;
  }

  // -- drawing ----------------------------------------------------------------------------------------------
  // batchplane's batchplaneCost (docs/adr/0030): the finished attempts' resource-seconds, priced on AWS.
  function costText(c) {
    const secs = (n) => (n < 3600 ? `${n.toFixed(1)} s` : `${(n / 3600).toFixed(2)} h`);
    const parts = [`${secs(c.vcpuSeconds || 0)} vCPU`, `${secs(c.memoryGiBSeconds || 0)} GiB`];
    if (c.gpuSeconds) parts.push(`${secs(c.gpuSeconds)} GPU`);
    if (c.costUsd !== undefined) parts.push(`$${c.costUsd < 0.01 ? c.costUsd.toFixed(6) : c.costUsd.toFixed(2)}${c.estimated ? ' (estimate)' : ''}`);
    return parts.join(' · ');
  }
  let deps = {};
  function drawJob() {
    replace(heading, job.jobName, ' ', badge(job.status));
    const why = whyWaiting(job, deps);
    replace(status, job.statusReason && job.statusReason !== why ? h('p', {}, h('strong', {}, 'Reason: '), job.statusReason) : '',
      why ? h('p', { class: 'why' }, h('strong', {}, 'Why it is not running: '), why) : '');
    const terminal = TERMINAL.includes(job.status);
    cancel.disabled = terminate.disabled = terminal;
    const retry = job.retryStrategy?.attempts || 1;
    const array = job.arrayProperties || {};
    replace(factsBox, facts([
      ['Job id', h('code', {}, job.jobId)],
      ['Queue', link(queueHref(job.jobQueue.split('/').pop()), job.jobQueue.split('/').pop())],
      ['Definition', link(defHref(job.jobDefinition.split('/').pop().split(':')[0]), job.jobDefinition.split('/').pop())],
      ['Created', when(job.createdAt)], ['Started', when(job.startedAt)],
      ['Stopped', job.stoppedAt ? `${when(job.stoppedAt)} (ran ${took(job.startedAt, job.stoppedAt)})` : '–'],
      ['Attempts', `${attemptsOf(job).length} of at most ${retry}`],
      job.batchplaneCost && ['Cost', costText(job.batchplaneCost)],
      job.shareIdentifier && ['Share', job.shareIdentifier],
      job.schedulingPriority !== undefined && ['Scheduling priority', String(job.schedulingPriority)],
      array.index !== undefined && ['Array child', [`index ${array.index} of `,
        link(jobHref(job.jobId.replace(/:\d+$/, '')), `array ${short(job.jobId.replace(/:\d+$/, ''))}`)]],
      array.size !== undefined && ['Array size', String(array.size)],
      job.timeout?.attemptDurationSeconds && ['Timeout', `${job.timeout.attemptDurationSeconds} s`],
      (job.dependsOn || []).length && ['Depends on', h('ul', { class: 'plain' }, job.dependsOn.map((d) => h('li', {},
        d.jobId ? link(jobHref(d.jobId), deps[d.jobId]?.jobName || d.jobId) : '(the previous child)', ' ',
        d.type ? `(${d.type}) ` : '', deps[d.jobId] ? badge(deps[d.jobId].status) : '')))],
    ]));
    const c = job.container || {};
    const env = Object.fromEntries((c.environment || []).map((e) => [e.name, e.value]));
    const defined = containersOf(job);
    if (defined.length) drawContainers(defined);
    replace(specBox, defined.length ? h('p', {}, `${defined.length} containers in one task: see Containers below.`) : job.container ? facts([
      ['Image', h('code', {}, c.image || '–')],
      ['Command', h('code', {}, JSON.stringify(c.command || []))],
      ['Resources', resources(c)],
    ]) : h('p', { class: 'muted' }, 'An array job: each child runs the container.'), kv('Parameters', job.parameters, 'No parameter.'), kv('Environment', env, 'No environment variable.'));
    const attempts = attemptsOf(job, container);
    replace(attemptsBox, table('Attempts (choose one to see its log)', ['#', 'Exit code', 'Status reason', 'Started', 'Duration', 'Log stream', 'Log'],
      attempts.map(({ n, stream, attempt }) => {
        const cont = attempt?.container || {};
        const current = (selected ?? attempts.length) === n;
        return [String(n), cont.exitCode ?? '–',
          attempt ? `${attempt.statusReason || ''}${cont.reason ? ` (${cont.reason})` : ''}` : `${job.status} now`,
          when(attempt ? attempt.startedAt : job.startedAt), took(attempt ? attempt.startedAt : job.startedAt, attempt?.stoppedAt),
          h('code', {}, stream || '–'),
          h('button', { type: 'button', 'aria-pressed': String(current), disabled: !stream,
            onclick: () => { selected = n === attempts.length ? null : n; drawJob(); logTimer.now(); } }, current ? 'Shown' : 'Show log')];
      }), 'No attempt yet.'));
  }

  function drawContainers(defined) {
    const current = container || (defined.find((c) => c.essential !== false) || defined[0]).name;
    replace(membersBox, section('Containers', table('Containers of the task (choose one to see its log)',
      ['Name', 'Essential', 'Depends on', 'Image', 'Exit code', 'Reason', 'Log stream', 'Log'],
      defined.map((c) => [h('code', {}, c.name), c.essential === false ? 'no' : 'yes',
        (c.dependsOn || []).map((d) => `${d.containerName} ${d.condition}`).join(', ') || '–',
        h('code', {}, c.image || '–'), c.exitCode ?? '–', c.reason || '', h('code', {}, c.logStreamName || '–'),
        h('button', { type: 'button', 'aria-pressed': String(c.name === current),
          'aria-label': `Show the log of container ${c.name}`,
          onclick: () => { container = c.name; drawJob(); logTimer.now(); } }, c.name === current ? 'Shown' : 'Show log')]),
      'No container.')));
  }

  async function refreshNodes() {
    const count = job.nodeProperties?.numNodes;
    if (!count || job.jobId.includes('#')) return;
    const ids = Array.from({ length: count }, (_, i) => `${job.jobId}#${i}`);
    const nodes = await describeJobs(ids);
    if (!ctx.alive()) return;
    replace(membersBox, section(`Nodes (${count}, main node ${job.nodeProperties.mainNode ?? 0})`,
      table('Nodes of the job (each is a job of its own, with its log)', ['Node', 'Job', 'Status', 'Exit code', 'Reason', 'Log stream'],
        ids.map((id, i) => {
          const n = nodes[id];
          const main = n?.nodeDetails?.isMainNode ? ' (main)' : '';
          return [`node ${i}${main}`, link(jobHref(id), short(id)), n ? badge(n.status) : '–',
            n?.container?.exitCode ?? '–', n?.statusReason || '', h('code', {}, n?.container?.logStreamName || '–')];
        }), 'No node yet.')));
  }

  let polls = 0;
  let graphKey = '';
  async function refreshGraph() {
    const graph = await build(job);
    const key = JSON.stringify([graph.edges, Object.values(graph.jobs).map((j) => [j.jobId, j.status, j.arrayProperties?.statusSummary])]);
    if (key === graphKey) return;
    graphKey = key;
    if (Object.keys(graph.jobs).length < 2) replace(graphBox, h('p', { class: 'muted' }, 'No dependencies and no dependents.'));
    else replace(graphBox, draw(graph));
  }

  async function refreshArray() {
    const size = job.arrayProperties?.size;
    if (size === undefined) return;
    const children = [];
    await Promise.all(STATUSES.map(async (s) => children.push(...await all('ListJobs', { arrayJobId: job.jobId, jobStatus: s }, 'jobSummaryList', 10000))));
    if (!ctx.alive()) return;
    const byIndex = new Map(children.map((c) => [c.arrayProperties?.index ?? Number(c.jobId.split(':').pop()), c]));
    const summary = job.arrayProperties.statusSummary || {};
    replace(arrayBox, section(`Array children (${size})`,
      h('p', { class: 'summary' }, `${(summary.SUCCEEDED || 0) + (summary.FAILED || 0)} of ${size} finished: `,
        STATUSES.filter((s) => summary[s]).map((s) => [badge(s), ` ${summary[s]}  `])),
      h('div', { class: 'grid', role: 'list', 'aria-label': 'Array children by index' },
        Array.from({ length: size }, (_, i) => {
          const child = byIndex.get(i);
          const st = child?.status || 'SUBMITTED';
          return h('a', { role: 'listitem', class: `cell s-${st.toLowerCase()}`, href: jobHref(`${job.jobId}:${i}`),
            title: `index ${i}: ${st}`, 'aria-label': `child ${i}: ${st}` });
        }))));
  }

  const timer = ctx.every(POLL_MS, async () => {
    const found = await describeJobs([jobId]);
    if (!ctx.alive() || !found[jobId]) return;
    job = found[jobId];
    const depIds = (job.dependsOn || []).map((d) => d.jobId).filter(Boolean);
    deps = depIds.length ? await describeJobs(depIds) : {};
    drawJob();
    const work = [];
    if (polls % GRAPH_EVERY === 0) work.push(refreshGraph().catch((e) => replace(graphBox, errorBox(e))));
    if (polls === 0 || !TERMINAL.includes(job.status)) work.push(refreshArray(), refreshNodes());
    polls += 1;
    await Promise.all(work);
  });
  const logTimer = ctx.every(1000, pollLog);
  follow.addEventListener('change', () => { if (follow.checked) logBox.scrollTop = logBox.scrollHeight; });
}
