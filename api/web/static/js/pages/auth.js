// Signing in and out, and passwords: forgot, reset (the link invite and reset e-mails
// contain), change.
import { api, publicApi, login as signIn, identity } from '../api.js';
import { h, fill, field, showErrors, busy, notice, hashQuery, errorBox } from '../dom.js';
import { alertKinds, alertKindLabel } from '../model.js';

function form(title, fields, submitLabel, onSubmit, ...after) {
  const button = h('button', { type: 'submit', class: 'btn' }, submitLabel);
  const f = h('form', { class: 'card narrow', novalidate: true },
    h('h1', {}, title), h('div', { class: 'form-error' }), ...fields, h('div', { class: 'actions' }, button), ...after);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(f);
    try {
      await busy(button, () => onSubmit(f));
    } catch (err) {
      showErrors(f, err);
    }
  });
  return f;
}

const input = (type, autocomplete, attrs = {}) => h('input', { type, autocomplete, required: true, ...attrs });

export function login(main) {
  const email = input('email', 'username');
  const password = input('password', 'current-password');
  const f = form('Log in', [field('E-mail', email, 'email_address'), field('Password', password, 'password')], 'Log in', async () => {
    await signIn(email.value.trim(), password.value);
    const next = hashQuery().get('next');
    location.hash = `#${next && next.startsWith('/') ? next : '/'}`;
  }, h('p', {}, h('a', { href: '#/forgot' }, 'Forgot your password?')));
  fill(main, f);
  email.focus();
}

export function forgot(main) {
  const email = input('email', 'email');
  const f = form('Forgot password', [h('p', {}, 'We e-mail you a link to choose a new password.'), field('E-mail', email, 'email')], 'Send link', async () => {
    const r = await publicApi('POST', '/api/user/send_pw_reset', { email: email.value.trim(), url: `${location.origin}/reset` });
    fill(f, h('h1', {}, 'Check your e-mail'), notice(r?.message || 'If the account exists, a link is on its way.', 'success'),
      h('p', {}, h('a', { href: '#/login' }, 'Back to log in')));
  }, h('p', {}, h('a', { href: '#/login' }, 'Back to log in')));
  fill(main, f);
  email.focus();
}

/** Sets a password from an invite or reset link: #/reset/<uid>/<token>. */
export function reset(main, { uid, token }) {
  const password = input('password', 'new-password', { minlength: 8 });
  const again = input('password', 'new-password', { minlength: 8 });
  const f = form('Choose your password', [
    field('New password', password, 'password', 'At least 8 characters.'),
    field('Repeat it', again, 'again'),
  ], 'Set password', async () => {
    if (password.value !== again.value) {
      throw Object.assign(new Error('The passwords differ.'), { fields: { again: 'does not match the first' } });
    }
    await publicApi('POST', `/api/user/${encodeURIComponent(uid)}/reset_password/${encodeURIComponent(token)}`, { password: password.value });
    fill(f, h('h1', {}, 'Password set'), notice('You can log in with it now.', 'success'), h('p', {}, h('a', { href: '#/login', class: 'btn' }, 'Log in')));
  });
  fill(main, f);
  password.focus();
}

export function account(main) {
  const me = identity();
  const old = input('password', 'current-password');
  const pw = input('password', 'new-password', { minlength: 8 });
  const f = form('Change password', [
    h('p', {}, `Signed in as ${me.email_address}${me.admin ? ' (administrator)' : ''}.`),
    field('Current password', old, 'old_password'),
    field('New password', pw, 'new_password', 'At least 8 characters.'),
  ], 'Change password', async () => {
    await api('PUT', `/api/user/${me.uid}/change_password`, { old_password: old.value, new_password: pw.value });
    old.value = pw.value = '';
    f.querySelector('.form-error').replaceChildren(notice('Password changed. Other devices signed in with the old one must log in again.', 'success'));
  });
  const prefs = h('div', { class: 'card narrow' }, h('p', { class: 'muted' }, 'Loading notification settings…'));
  fill(main, f, prefs);
  return notificationSettings(prefs);
}

/** The signed-in user's notification preferences: which alerts, by which channel, and when not. */
async function notificationSettings(box) {
  let p;
  try {
    p = await api('GET', '/api/users/me/notification-prefs');
  } catch (err) {
    fill(box, errorBox(err));
    return;
  }
  const kinds = alertKinds.map((k) => h('input', { type: 'checkbox', value: k, checked: p.kinds.includes(k), id: `pref-kind-${k}` }));
  const channel = h('select', { id: 'pref-channel' }, [['email', 'e-mail'], ['none', 'none (only this UI)']]
    .map(([v, label]) => h('option', { value: v, selected: v === p.channel }, label)));
  const start = h('input', { type: 'time', id: 'pref-quiet-start', value: p.quiet_start });
  const end = h('input', { type: 'time', id: 'pref-quiet-end', value: p.quiet_end });
  const tz = h('input', { type: 'text', id: 'pref-tz', value: p.time_zone, autocomplete: 'off', list: 'pref-tz-list' });
  // null: the service's default (on for administrators, and for creators of sessions that had alerts).
  const digestChoices = [['', 'the default (administrators; creators of sessions with alerts)'], ['true', 'yes'], ['false', 'no']];
  const digest = h('select', { id: 'pref-digest' }, digestChoices
    .map(([v, label]) => h('option', { value: v, selected: v === (p.digest === null || p.digest === undefined ? '' : String(p.digest)) }, label)));
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const f = form('Notifications', [
    h('fieldset', { class: 'checks' }, h('legend', {}, 'Alerts to tell me about (none ticked: all of them)'),
      kinds.map((c) => h('label', { class: 'check' }, c, ` ${alertKindLabel(c.value)}`)),
      h('span', { class: 'field-error', 'data-error-for': 'kinds', id: 'pref-kinds-err' })),
    field('Channel', channel, 'channel'),
    h('div', { class: 'duration' }, field('Quiet from', start, 'quiet_start'), field('until', end, 'quiet_end')),
    h('small', { class: 'hint' }, 'No notification during quiet hours; the same time twice: none.'),
    field('Time zone', tz, 'time_zone', `Of the quiet hours, e.g. ${Intl.DateTimeFormat().resolvedOptions().timeZone || 'Europe/Berlin'}.`),
    h('datalist', { id: 'pref-tz-list' }, zones.map((z) => h('option', { value: z }))),
    field('Digest by e-mail', digest, 'digest', 'A summary of what happened, mailed once a day.'),
  ], 'Save notification settings', async () => {
    await api('PUT', '/api/users/me/notification-prefs', { kinds: kinds.filter((c) => c.checked).map((c) => c.value),
      channel: channel.value, quiet_start: start.value || '00:00', quiet_end: end.value || '00:00', time_zone: tz.value.trim(),
      digest: digest.value === '' ? null : digest.value === 'true' });
    f.querySelector('.form-error').replaceChildren(notice('Notification settings saved.', 'success'));
  });
  // The page has one h1 (the tab title names it); this form is a section of it.
  const title = f.querySelector('h1');
  title.replaceWith(h('h2', {}, title.textContent));
  f.id = 'notification-settings';
  box.replaceWith(f);
}
