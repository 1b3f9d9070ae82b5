// Users (administrators): invite, list, promote or demote, disable or enable.
import { api, identity } from '../api.js';
import { h, fill, table, field, showErrors, busy, notice, errorBox, section, fmtTime, badge } from '../dom.js';

export async function users(main, _params, ctx) {
  const me = identity();
  const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
  const admin = h('input', { type: 'checkbox' });
  const send = h('button', { type: 'submit', class: 'btn' }, 'Send invitation');
  const invite = h('form', { novalidate: true, class: 'inline-form' },
    h('div', { class: 'form-error' }), field('E-mail', email, 'email'),
    h('label', { class: 'check' }, admin, ' Administrator'), send);
  const list = h('div');
  const status = h('div', { 'aria-live': 'polite' });
  fill(main, h('h1', {}, 'Users'), section('Invite someone', invite), status, section('Everyone', list));

  invite.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(invite);
    try {
      // The e-mail links to <url>/<uid>/<token>: the set-password page (see app.js).
      await busy(send, () => api('POST', '/api/user/invite', { email: email.value.trim(), admin: admin.checked, url: `${location.origin}/reset` }), 'Sending…');
      fill(status, notice(`Invitation sent to ${email.value.trim()}.`, 'success'));
      email.value = '';
      admin.checked = false;
      await refresh();
    } catch (err) {
      showErrors(invite, err);
    }
  });

  const change = (u, patch, label) => {
    const id = `${Object.keys(patch)[0]}-${u.id}`; // stable across refreshes, for the focus
    const b = h('button', { type: 'button', class: 'btn btn-secondary btn-small', id }, label);
    b.addEventListener('click', async () => {
      try {
        await busy(b, () => api('PATCH', `/api/user/${u.id}`, patch));
        fill(status, notice(`${u.email}: ${label.toLowerCase()} done.`, 'success'));
        await refresh();
      } catch (err) {
        fill(status, errorBox(err));
      }
    });
    return b;
  };

  const refresh = async () => {
    try {
      const all = await api('GET', '/api/user');
      fill(list, table([
        { label: 'E-mail', cell: (u) => u.email },
        { label: 'Role', cell: (u) => (u.admin ? 'administrator' : 'user') },
        { label: 'State', cell: (u) => badge(u.disabled ? 'DISABLED' : 'ACTIVE') },
        { label: 'Since', cell: (u) => fmtTime(u.created_at) },
        { label: 'Actions', sort: false, cell: (u) => (u.id === me.uid ? h('span', { class: 'muted' }, 'you') : h('div', { class: 'row-actions' },
          change(u, { admin: !u.admin }, u.admin ? 'Demote' : 'Promote'),
          change(u, { disabled: !u.disabled }, u.disabled ? 'Enable' : 'Disable'))) },
      ], all, 'No users.'));
    } catch (err) {
      fill(list, errorBox(err));
    }
  };
  await ctx.every(15000, refresh);
}
