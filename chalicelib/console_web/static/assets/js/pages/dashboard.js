// Dashboard: every queue with its jobs counted by state (each count links to that list), the compute environments'
// vCPUs, and the latest failures. Counts stop at COUNT_LIMIT per state (shown as "1000+").
import { all, batch, queues } from '../api.js';
import { h, replace, section, table, link, jobHref, jobsHref, queueHref, when, STATUSES } from '../dom.js';

const COUNT_LIMIT = 1000;
const FAILURES = 10;

async function count(queue, status) {
  const page = await batch('ListJobs', { jobQueue: queue, jobStatus: status, maxResults: COUNT_LIMIT });
  return { n: page.jobSummaryList.length, more: Boolean(page.nextToken), jobs: page.jobSummaryList };
}

function vcpus(snapshot) {
  const usage = snapshot?.queueUtilization?.totalCapacityUsage || [];
  return usage.map((u) => `${u.quantity}`).join(' ') || '0';
}

export async function mount(main, ctx) {
  const queuesBox = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const cesBox = h('div');
  const failedBox = h('div');
  main.append(h('h1', {}, 'Dashboard'), section('Job queues', queuesBox), section('Compute environments', cesBox),
    section('Recent failures', failedBox));
  ctx.every(3000, async () => {
    const [jqs, ces] = await Promise.all([queues(), all('DescribeComputeEnvironments', {}, 'computeEnvironments')]);
    const rows = [];
    const failures = [];
    const usedByCe = {}; // CE name -> [vCPUs, shared]: a queue's usage counts for its CE when it has only one
    const attribute = (q, used) => {
      const order = q.computeEnvironmentOrder || [];
      for (const c of order) {
        const ce = c.computeEnvironment.split('/').pop();
        const [n, shared] = usedByCe[ce] || [0, false];
        usedByCe[ce] = order.length === 1 ? [n + used, shared] : [n, shared || used > 0];
      }
    };
    await Promise.all(jqs.map(async (q) => {
      const [counts, snapshot] = await Promise.all([
        Promise.all(STATUSES.map((s) => count(q.jobQueueName, s))),
        batch('GetJobQueueSnapshot', { jobQueue: q.jobQueueName }).catch(() => null),
      ]);
      failures.push(...counts[6].jobs.map((j) => ({ ...j, queue: q.jobQueueName })));
      attribute(q, Number(vcpus(snapshot)) || 0);
      rows.push([q.jobQueueName, [
        link(queueHref(q.jobQueueName), q.jobQueueName),
        h('span', { class: q.state === 'ENABLED' ? '' : 'muted' }, q.state),
        ...counts.map((c, i) => h('a', {
          href: jobsHref({ queue: q.jobQueueName, status: STATUSES[i] }),
          class: `count${c.n ? ` s-${STATUSES[i].toLowerCase()}` : ' zero'}`,
          'aria-label': `${c.n}${c.more ? '+' : ''} ${STATUSES[i]} jobs in ${q.jobQueueName}`,
        }, `${c.n}${c.more ? '+' : ''}`)),
        vcpus(snapshot),
      ]]);
    }));
    if (!ctx.alive()) return;
    rows.sort((a, b) => a[0].localeCompare(b[0]));
    replace(queuesBox, table('Jobs by state in each queue (select a count for the list)',
      ['Queue', 'State', ...STATUSES, 'vCPUs in use'], rows.map((r) => r[1]),
      'No job queue yet: create one with the API (CreateJobQueue).'));
    replace(cesBox, table('vCPUs in use: the jobs running from the queues that use only this environment'
      + ' (+: a queue with several environments also runs jobs)', ['Name', 'Type', 'State', 'Status', 'vCPUs in use / max'],
      ces.map((ce) => {
        const r = ce.computeResources || {};
        const max = r.maxvCpus ?? 0;
        const [used, shared] = usedByCe[ce.computeEnvironmentName] || [0, false];
        return [
          ce.computeEnvironmentName, `${ce.type}${r.type ? ` · ${r.type}` : ''}`, ce.state, ce.status || '–',
          h('span', { class: 'vcpus' },
            h('meter', { min: 0, max: Math.max(max, 1), value: used, 'aria-label': `${used} of ${max} vCPUs in use` }),
            ` ${used}${shared ? '+' : ''} / ${max}`),
        ];
      }), 'No compute environment yet.'));
    failures.sort((a, b) => (b.stoppedAt || b.createdAt || 0) - (a.stoppedAt || a.createdAt || 0));
    replace(failedBox, table(`The last ${FAILURES} failed jobs`, ['Job', 'Queue', 'Stopped', 'Reason'],
      failures.slice(0, FAILURES).map((j) => [
        link(jobHref(j.jobId), j.jobName), j.queue, when(j.stoppedAt), j.statusReason || '–',
      ]), 'No failed job.'));
  });
}
