// Sign in: an access key for a batchplane started with --auth. Kept in sessionStorage (this tab only, gone when
// it closes); every call is then signed in the browser with SigV4 (api.js).
import { batch, signIn, signOut } from '../api.js';
import { h, replace } from '../dom.js';

export async function mount(main, ctx) {
  const id = h('input', { id: 'access-key-id', required: true, autocomplete: 'username', size: 30 });
  const secret = h('input', { id: 'secret-access-key', type: 'password', required: true, autocomplete: 'current-password', size: 40 });
  const token = h('input', { id: 'session-token', type: 'password', autocomplete: 'off', size: 40 });
  const region = h('input', { id: 'region', required: true, value: 'us-east-1', size: 16 });
  const out = h('div', { 'aria-live': 'polite' });
  const field = (input, label) => h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
  const form = h('form', { class: 'submit', 'aria-label': 'Sign in' },
    field(id, 'Access key id'), field(secret, 'Secret access key'), field(token, 'Session token (optional)'), field(region, 'Region'),
    h('p', { class: 'muted' }, 'Kept in this tab’s session storage only; requests are signed in the browser (SigV4).'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    signIn({ accessKeyId: id.value.trim(), secretAccessKey: secret.value, sessionToken: token.value.trim() || undefined, region: region.value.trim() });
    try {
      await batch('DescribeJobQueues', { maxResults: 1 });
    } catch (err) {
      signOut();
      replace(out, h('p', { class: 'error', role: 'alert' }, `${err.type}: ${err.message}`));
      return;
    }
    const next = ctx.query.get('next');
    ctx.navigate(next && next.startsWith('/console/') ? next : '/console/');
  });
  main.append(h('h1', {}, 'Sign in'), form);
  id.focus();
}
