// The AWS Batch API and the CloudWatch Logs API on this console's own origin (batchplane up, or the signing proxy of
// `batchplane console`). Signed in the browser with SigV4 (aws4fetch) when the user has signed in; unsigned otherwise.
import { AwsClient } from '../vendor/aws4fetch.esm.mjs';

const KEY = 'batchplane.credentials';

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
  get auth() { return this.status === 401 || this.status === 403; }
}

export function credentials() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}
export function signIn(creds) { sessionStorage.setItem(KEY, JSON.stringify(creds)); }
export function signOut() { sessionStorage.removeItem(KEY); }

async function send(path, headers, body, service) {
  const creds = credentials();
  const url = new URL(path, location.origin).href;
  const init = { method: 'POST', headers, body };
  let resp;
  try {
    if (creds) {
      const client = new AwsClient({
        accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey,
        sessionToken: creds.sessionToken || undefined, service, region: creds.region || 'us-east-1', retries: 0,
      });
      resp = await client.fetch(url, init);
    } else {
      // The server refuses an unsigned change without X-Amz-Date: a page on another site cannot send that header
      // without a CORS preflight, which it never grants (chalicelib/runtime/origin_guard.py).
      const now = new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
      resp = await fetch(url, { ...init, headers: { ...headers, 'X-Amz-Date': now } });
    }
  } catch (e) {
    throw new ApiError(0, 'NetworkError', `cannot reach the API: ${e.message}`);
  }
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!resp.ok) {
    const type = String(data.__type || resp.headers.get('x-amzn-ErrorType') || `HTTP ${resp.status}`).split('#').pop();
    throw new ApiError(resp.status, type, data.message || data.Message || text || resp.statusText);
  }
  return data;
}

export function batch(operation, body = {}) {
  return send(`/v1/${operation.toLowerCase()}`, { 'Content-Type': 'application/json' }, JSON.stringify(body), 'batch');
}

export function logs(operation, body) {
  const headers = { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `Logs_20140328.${operation}` };
  return send('/', headers, JSON.stringify(body), 'logs');
}

// Every page of a list operation, up to `cap` items.
export async function all(operation, body, key, cap = 2000) {
  const items = [];
  let token;
  do {
    const page = await batch(operation, token ? { ...body, nextToken: token } : body);
    items.push(...(page[key] || []));
    token = page.nextToken;
  } while (token && items.length < cap);
  return items;
}

export async function describeJobs(ids) {
  const found = {};
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += 100) {
    const { jobs } = await batch('DescribeJobs', { jobs: unique.slice(i, i + 100) });
    for (const job of jobs) found[job.jobId] = job;
  }
  return found;
}

export const queues = () => all('DescribeJobQueues', {}, 'jobQueues');
export const definitions = (body = { status: 'ACTIVE' }) => all('DescribeJobDefinitions', body, 'jobDefinitions', 5000);
