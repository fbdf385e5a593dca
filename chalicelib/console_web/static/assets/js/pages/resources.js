// Queues (and one queue with GetJobQueueSnapshot's order and fair-share usage), compute environments, job
// definitions (and one definition's revisions as JSON), scheduling policies.
import { all, batch, describeJobs, queues as listQueues, definitions as listDefinitions } from '../api.js';
import { h, replace, section, table, facts, badge, link, jobHref, jobsHref, queueHref, defHref, when, STATUSES } from '../dom.js';

const nameOf = (arn) => String(arn).split('/').pop();

export async function queues(main, ctx) {
  const box = h('div');
  main.append(h('h1', {}, 'Job queues'), box);
  ctx.every(5000, async () => {
    const jqs = await listQueues();
    replace(box, table('Job queues', ['Name', 'State', 'Status', 'Priority', 'Scheduling policy', 'Compute environments (in order)'],
      jqs.sort((a, b) => a.jobQueueName.localeCompare(b.jobQueueName)).map((q) => [
        link(queueHref(q.jobQueueName), q.jobQueueName), q.state, q.status || '–', String(q.priority),
        q.schedulingPolicyArn ? nameOf(q.schedulingPolicyArn) : 'FIFO',
        (q.computeEnvironmentOrder || []).sort((a, b) => a.order - b.order).map((c) => nameOf(c.computeEnvironment)).join(', '),
      ]), 'No job queue yet.'));
  });
}

export async function queue(main, ctx) {
  const name = ctx.params[0];
  ctx.title(`Queue ${name}`);
  const info = h('div');
  const front = h('div');
  const usage = h('div');
  main.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/console/queues', 'Queues'), ' / '),
    h('h1', {}, `Queue ${name}`),
    h('p', {}, 'Jobs: ', STATUSES.map((s) => [link(jobsHref({ queue: name, status: s }), s), ' '])),
    section('Details', info), section('Front of the queue (the order RUNNABLE jobs will start in)', front), section('Capacity in use', usage));
  ctx.every(3000, async () => {
    const [{ jobQueues }, snap] = await Promise.all([batch('DescribeJobQueues', { jobQueues: [name] }), batch('GetJobQueueSnapshot', { jobQueue: name })]);
    const q = jobQueues[0];
    if (!q) { replace(info, h('p', { class: 'error' }, `No job queue is named ${name}.`)); return; }
    replace(info, facts([['State', q.state], ['Status', q.status || '–'], ['Priority', String(q.priority)],
      ['Scheduling', q.schedulingPolicyArn ? `fair share (${nameOf(q.schedulingPolicyArn)})` : 'FIFO'],
      ['Compute environments', (q.computeEnvironmentOrder || []).map((c) => `${c.order}: ${nameOf(c.computeEnvironment)}`).join(', ')]]));
    const jobs = snap.frontOfQueue?.jobs || [];
    const ids = jobs.map((j) => nameOf(j.jobArn));
    const details = ids.length ? await describeJobs(ids) : {};
    replace(front, table(`${jobs.length} RUNNABLE job${jobs.length === 1 ? '' : 's'} at the front`, ['#', 'Job', 'Share', 'Status', 'Reason', 'At this position since'],
      jobs.map((j, i) => {
        const d = details[ids[i]] || {};
        return [String(i + 1), link(jobHref(ids[i]), d.jobName || ids[i]), d.shareIdentifier || '–', d.status ? badge(d.status) : '–', d.statusReason || '', when(j.earliestTimeAtPosition)];
      }), 'No RUNNABLE job.'));
    const u = snap.queueUtilization || {};
    const total = (u.totalCapacityUsage || []).map((c) => `${c.quantity} ${c.capacityUnit}`).join(', ') || '0';
    const fair = u.fairshareUtilization;
    replace(usage, facts([['In use', total], fair && ['Active shares', String(fair.activeShareCount)]]),
      fair ? table('Fair-share usage by share', ['Share', 'In use'], (fair.topCapacityUtilization || []).map((s) => [s.shareIdentifier,
        s.capacityUsage.map((c) => `${c.quantity} ${c.capacityUnit}`).join(', ')]), 'No share is using capacity.') : '');
  });
}

export async function computeEnvironments(main, ctx) {
  const box = h('div');
  main.append(h('h1', {}, 'Compute environments'), box);
  ctx.every(5000, async () => {
    const ces = await all('DescribeComputeEnvironments', {}, 'computeEnvironments');
    replace(box, table('Compute environments', ['Name', 'Type', 'State', 'Status', 'Reason', 'vCPUs min / desired / max', 'Instance types'],
      ces.sort((a, b) => a.computeEnvironmentName.localeCompare(b.computeEnvironmentName)).map((ce) => {
        const r = ce.computeResources || {};
        return [ce.computeEnvironmentName, `${ce.type}${r.type ? ` · ${r.type}` : ''}`, ce.state, ce.status || '–', ce.statusReason || '',
          r.maxvCpus !== undefined ? `${r.minvCpus ?? 0} / ${r.desiredvCpus ?? 0} / ${r.maxvCpus}` : '–', (r.instanceTypes || []).join(', ') || '–'];
      }), 'No compute environment yet.'));
  });
}

export async function definitions(main, ctx) {
  const box = h('div');
  main.append(h('h1', {}, 'Job definitions'), box);
  ctx.every(10000, async () => {
    const defs = await listDefinitions();
    const byName = new Map();
    for (const d of defs) byName.set(d.jobDefinitionName, [...(byName.get(d.jobDefinitionName) || []), d]);
    replace(box, table('Active job definitions', ['Name', 'Latest revision', 'Active revisions', 'Type', 'Image', ''],
      [...byName.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, revs]) => {
        const latest = revs.reduce((a, b) => (a.revision > b.revision ? a : b));
        return [link(defHref(name), name), String(latest.revision), String(revs.length), latest.type,
          h('code', {}, latest.containerProperties?.image || '–'),
          link(`/console/submit?definition=${encodeURIComponent(`${name}:${latest.revision}`)}`, 'Submit a job')];
      }), 'No active job definition.'));
  });
}

export async function definition(main, ctx) {
  const name = ctx.params[0];
  ctx.title(`Job definition ${name}`);
  const revs = (await listDefinitions({ jobDefinitionName: name })).sort((a, b) => b.revision - a.revision);
  const json = h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Revision as JSON' });
  const picker = h('select', { id: 'revision' }, revs.map((d) => h('option', { value: String(d.revision) }, `${d.revision} (${d.status})`)));
  const submit = h('a', { class: 'button' }, 'Submit a job from this revision');
  const show = () => {
    const d = revs.find((r) => String(r.revision) === picker.value);
    json.textContent = JSON.stringify(d, null, 2);
    submit.setAttribute('href', `/console/submit?definition=${encodeURIComponent(`${name}:${d.revision}`)}`);
  };
  picker.addEventListener('change', show);
  main.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/console/job-definitions', 'Job definitions'), ' / '),
    h('h1', {}, `Job definition ${name}`),
    table('Revisions', ['Revision', 'Status', 'Type', 'Image', 'Command'], revs.map((d) => [String(d.revision), d.status, d.type,
      h('code', {}, d.containerProperties?.image || '–'), h('code', {}, JSON.stringify(d.containerProperties?.command || []))]), 'No revision.'),
    revs.length ? h('p', {}, h('label', { for: 'revision' }, 'Revision '), picker, ' ', submit) : '', json);
  if (revs.length) show();
}

export async function policies(main, ctx) {
  const box = h('div');
  main.append(h('h1', {}, 'Scheduling policies'), box);
  ctx.every(10000, async () => {
    const arns = (await all('ListSchedulingPolicies', {}, 'schedulingPolicies')).map((p) => p.arn);
    const found = arns.length ? (await batch('DescribeSchedulingPolicies', { arns })).schedulingPolicies : [];
    replace(box, table('Scheduling policies', ['Name', 'Share decay (s)', 'Compute reservation', 'Share weights'],
      found.sort((a, b) => a.name.localeCompare(b.name)).map((p) => {
        const f = p.fairsharePolicy || {};
        return [p.name, String(f.shareDecaySeconds ?? 0), String(f.computeReservation ?? 0),
          (f.shareDistribution || []).map((s) => `${s.shareIdentifier}: ${s.weightFactor ?? 1}`).join(', ') || '–'];
      }), 'No scheduling policy.'));
  });
}
