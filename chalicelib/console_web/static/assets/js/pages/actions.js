// Cancel / terminate with a confirmation dialog: the same API calls as the CLI (CancelJob, TerminateJob).
import { batch } from '../api.js';
import { h } from '../dom.js';

// Asks for confirmation and a reason; resolves to the reason, or null when the user backs out.
export function confirmAction(verb, what) {
  return new Promise((resolve) => {
    const reason = h('input', { id: 'action-reason', type: 'text', required: true, value: verb === 'Terminate' ? 'Terminated from the console' : 'Cancelled from the console', size: 40 });
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, `${verb} ${what}?`),
        h('p', {}, verb === 'Terminate'
          ? 'Terminating stops running jobs and fails jobs that have not started.'
          : 'Cancelling fails jobs that have not started yet; running jobs are not stopped.'),
        h('label', { for: 'action-reason' }, 'Reason'), ' ', reason,
        h('div', { class: 'buttons' },
          h('button', { type: 'submit', value: 'back' }, 'Back'),
          h('button', { type: 'submit', value: 'confirm', class: 'danger' }, verb))));
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm' ? reason.value || `${verb} from the console` : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    reason.select();
  });
}

// Runs the action on each job; resolves to a list of error strings (empty when all went through).
export async function act(verb, ids, reason) {
  const op = verb === 'Terminate' ? 'TerminateJob' : 'CancelJob';
  const errors = [];
  await Promise.all(ids.map((jobId) => batch(op, { jobId, reason }).catch((e) => errors.push(`${jobId}: ${e.type}: ${e.message}`))));
  return errors;
}
