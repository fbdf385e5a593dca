// The console's shell: a router over history (every page its own /console/... URL), polling timers per page, and the
// sign-in state. Pages are modules exporting `mount(main, ctx)`; they draw into `main` and register live refreshes
// with ctx.every(ms, fn), which the shell stops when the user leaves the page or hides the tab.
import { credentials, signOut } from './api.js';
import { h, replace, errorBox } from './dom.js';
import * as dashboard from './pages/dashboard.js';
import * as jobs from './pages/jobs.js';
import * as job from './pages/job.js';
import * as resources from './pages/resources.js';
import * as submit from './pages/submit.js';
import * as login from './pages/login.js';

const ROUTES = [
  [/^\/console\/?$/, dashboard.mount, 'Dashboard'],
  [/^\/console\/jobs\/?$/, jobs.mount, 'Jobs'],
  [/^\/console\/jobs\/([^/]+)\/?$/, job.mount, 'Job'],
  [/^\/console\/queues\/?$/, resources.queues, 'Queues'],
  [/^\/console\/queues\/([^/]+)\/?$/, resources.queue, 'Queue'],
  [/^\/console\/compute-environments\/?$/, resources.computeEnvironments, 'Compute environments'],
  [/^\/console\/job-definitions\/?$/, resources.definitions, 'Job definitions'],
  [/^\/console\/job-definitions\/([^/]+)\/?$/, resources.definition, 'Job definition'],
  [/^\/console\/scheduling-policies\/?$/, resources.policies, 'Scheduling policies'],
  [/^\/console\/submit\/?$/, submit.mount, 'Submit job'],
  [/^\/console\/login\/?$/, login.mount, 'Sign in'],
];

let generation = 0;
let timers = [];

function stopTimers() {
  for (const t of timers) t.stop();
  timers = [];
}

function context(gen) {
  const ctx = {
    query: new URLSearchParams(location.search),
    alive: () => gen === generation,
    navigate,
    // Run fn now and then every ms while this page is shown (never two at once; paused while the tab is hidden).
    every(ms, fn) {
      let handle = null;
      let stopped = false;
      let running = false;
      const tick = async () => {
        if (stopped || running || !ctx.alive()) return;
        running = true;
        if (!document.hidden) {
          try {
            await fn();
            updated(null);
          } catch (e) {
            updated(e);
          }
        }
        running = false;
        if (!stopped && ctx.alive()) handle = setTimeout(tick, ms);
      };
      const timer = { stop() { stopped = true; clearTimeout(handle); }, now() { clearTimeout(handle); tick(); } };
      timers.push(timer);
      tick();
      return timer;
    },
  };
  return ctx;
}

function updated(err) {
  const el = document.getElementById('updated');
  if (!err) {
    el.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    el.className = '';
    banner(null);
  } else {
    el.textContent = `Refresh failed: ${err.type || 'Error'}: ${err.message}`;
    el.className = 'error';
    if (err.auth) banner(err);
  }
}

function banner(err) {
  const el = document.getElementById('banner');
  if (!err) { el.replaceChildren(); return; }
  replace(el, h('p', { class: 'error' },
    `The API refused the request (${err.type}: ${err.message}). `,
    h('a', { href: `/console/login?next=${encodeURIComponent(location.pathname + location.search)}` }, 'Sign in'),
    ' with an access key.'));
}

function who() {
  const creds = credentials();
  const el = document.getElementById('who');
  if (creds) {
    replace(el, h('span', { class: 'muted' }, `Signed in as ${creds.accessKeyId} (${creds.region}) `),
      h('button', { type: 'button', class: 'link', onclick: () => { signOut(); who(); navigate(location.href, true); } }, 'Sign out'));
  } else {
    replace(el, h('a', { href: '/console/login' }, 'Sign in'));
  }
}

async function render() {
  stopTimers();
  const gen = ++generation;
  const main = document.getElementById('main');
  const path = location.pathname;
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll('header nav a')) {
    const href = a.getAttribute('href');
    const current = href === '/console/' ? path === '/console/' : path.startsWith(href);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  who();
  if (!route) {
    document.title = 'Not found · batchplane';
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No console page has this address. '), h('a', { href: '/console/' }, 'Dashboard'));
    return;
  }
  const [re, mount, title] = route;
  const params = re.exec(path).slice(1).map(decodeURIComponent);
  document.title = `${title} · batchplane`;
  main.replaceChildren();
  const ctx = context(gen);
  ctx.params = params;
  ctx.title = (text) => { document.title = `${text} · batchplane`; };
  try {
    await mount(main, ctx);
  } catch (e) {
    if (gen !== generation) return;
    main.append(errorBox(e));
    if (e.auth) banner(e);
  }
}

export function navigate(url, replaceState = false) {
  const target = new URL(url, location.href);
  if (replaceState) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  render().then(() => {
    if (!replaceState) document.getElementById('main').focus({ preventScroll: false });
  });
}

document.addEventListener('click', (event) => {
  const a = event.target.closest && event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/console') || a.target) return;
  event.preventDefault();
  if (url.href !== location.href) navigate(url.href);
});
window.addEventListener('popstate', () => render());
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) for (const t of timers) t.now();
});
render();
