// The dependency graph around a job: ancestors from dependsOn, descendants from batchplane's ListJobDependents (the
// walk of chalicelib/console/dag.py: an array is one node; its children's links are followed through child 0), laid
// out by dagre and drawn as SVG whose nodes link to their jobs.
import dagre from '../vendor/dagre.esm.js';
import { batch, describeJobs } from './api.js';
import { h, jobHref, short } from './dom.js';

const MAX_NODES = 200;
const NODE_W = 190;
const NODE_H = 46;

export const jobLevel = (id) => { const m = /^(.*):(\d+)$/.exec(id); return m ? m[1] : id; };

// The condition the dependent `b` puts on `a` (batchplane's conditional dependencies: AFTER_ANY, AFTER_NOT_OK), or
// null for AWS's own (a must succeed); chalicelib/domain/conditions.py.
export const CONDITIONS = { AFTER_ANY: 'after any end', AFTER_NOT_OK: 'only if it failed' };
export const conditionOf = (graph, a, b) =>
  (graph.jobs[b]?.dependsOn || []).find((d) => d.jobId === a && CONDITIONS[d.type])?.type || null;

async function dependents(jobId) {
  const ids = [];
  let token;
  do {
    const page = await batch('ListJobDependents', token ? { jobId, nextToken: token } : { jobId });
    ids.push(...page.dependents.map((d) => d.jobId));
    token = page.nextToken;
  } while (token);
  return ids;
}

export async function build(rootJob) {
  const root = jobLevel(rootJob.jobId);
  const jobs = { [root]: rootJob.jobId === root ? rootJob : (await describeJobs([root]))[root] };
  const edges = new Set(); // "parent\nchild"
  const link = (parent, child) => { if (parent !== child) edges.add(`${parent}\n${child}`); };
  let up = [root];
  while (up.length && Object.keys(jobs).length < MAX_NODES) {
    const wanted = [];
    for (const node of up) {
      for (const dep of jobs[node]?.dependsOn || []) {
        if (!dep.jobId) continue;
        const parent = jobLevel(dep.jobId);
        link(parent, node);
        if (!jobs[parent]) wanted.push(parent);
      }
    }
    const found = await describeJobs(wanted);
    Object.assign(jobs, found);
    up = Object.keys(found);
  }
  let down = [root];
  while (down.length && Object.keys(jobs).length < MAX_NODES) {
    const node = down.shift();
    const found = new Set(await dependents(node));
    const array = jobs[node]?.arrayProperties;
    if (array?.size !== undefined && Object.values(array.statusSummary || {}).some(Boolean)) { // children exist
      for (const id of await dependents(`${node}:0`).catch(() => [])) found.add(id);
    }
    const wanted = [...new Set([...found].map(jobLevel))].filter((c) => c !== node);
    for (const child of wanted) link(node, child);
    const fresh = await describeJobs(wanted.filter((c) => !jobs[c]));
    Object.assign(jobs, fresh);
    down.push(...Object.keys(fresh));
  }
  return { root, jobs, edges: [...edges].map((e) => e.split('\n')).filter(([a, b]) => jobs[a] && jobs[b]) };
}

export function draw(graph) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 48, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const id of Object.keys(graph.jobs)) g.setNode(id, { width: NODE_W, height: NODE_H });
  for (const [a, b] of graph.edges) g.setEdge(a, b);
  dagre.layout(g);
  const { width, height } = g.graph();
  const svg = h('svg:svg', { viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`, width: Math.ceil(width),
    height: Math.ceil(height), role: 'group', 'aria-label': 'Dependency graph', class: 'dag' });
  svg.append(h('svg:defs', {}, h('svg:marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, h('svg:path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
  for (const e of g.edges()) {
    const pts = g.edge(e).points;
    const cond = conditionOf(graph, e.v, e.w);
    svg.append(h('svg:path', { class: cond ? `edge cond ${cond.toLowerCase()}` : 'edge', 'marker-end': 'url(#arrow)',
      d: pts.map((p, i) => `${i ? 'L' : 'M'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ') },
      cond ? h('svg:title', {}, `${cond}: runs ${CONDITIONS[cond]}`) : null));
    if (cond) {
      const mid = pts[Math.floor(pts.length / 2)];
      svg.append(h('svg:text', { x: mid.x, y: mid.y - 4, class: 'edge-label' }, cond));
    }
  }
  for (const id of g.nodes()) {
    const n = g.node(id);
    const job = graph.jobs[id];
    const size = job.arrayProperties?.size;
    const sum = job.arrayProperties?.statusSummary || {};
    const sub = size !== undefined ? `${job.status} · ${(sum.SUCCEEDED || 0) + (sum.FAILED || 0)}/${size}` : `${job.status} · ${short(id)}`;
    const name = job.jobName.length > 24 ? `${job.jobName.slice(0, 23)}…` : job.jobName;
    const a = h('svg:a', { href: jobHref(id), class: `node s-${job.status.toLowerCase()}${id === graph.root ? ' root' : ''}`,
      'aria-label': `${job.jobName}, ${job.status}` },
      h('svg:title', {}, `${job.jobName} (${id}) ${job.status}`),
      h('svg:rect', { x: n.x - NODE_W / 2, y: n.y - NODE_H / 2, width: NODE_W, height: NODE_H, rx: 6 }),
      h('svg:text', { x: n.x, y: n.y - 4, class: 'name' }, name),
      h('svg:text', { x: n.x, y: n.y + 13, class: 'sub' }, sub));
    svg.append(a);
  }
  return svg;
}
