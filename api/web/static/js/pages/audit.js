// Audit log (administrators): who did what to what, when, from where. The filter lives in the
// hash query (#/audit?actor=…&action=…&from=…), so a filtered view can be linked; its from/to
// are wall-clock times in the lab's time zone, turned into RFC 3339 for GET /api/audit.
import { api } from '../api.js';
import { h, fill, table, fmtAgo, labTime, labInstant, errorBox, notice, busy, section, hashQuery, hashHref } from '../dom.js';
import { auditActions, auditActionLabel } from '../model.js';

// Rows per page, and the most the API gives in one answer.
const pageSize = 100;
const maxRows = 500;

// The filter fields of the hash query.
const filterKeys = ['actor', 'action', 'subject', 'from', 'to'];

function filterForm(q, tz) {
  const input = (name, attrs) => h('input', { id: `audit-f-${name}`, name, value: q.get(name) || '', ...attrs });
  const actor = input('actor', { type: 'text', autocomplete: 'off', placeholder: 'anyone', inputmode: 'email' });
  const action = h('select', { id: 'audit-f-action', name: 'action' }, h('option', { value: '' }, 'any action'),
    auditActions.map((a) => h('option', { value: a, selected: a === q.get('action') }, auditActionLabel(a))));
  const subject = input('subject', { type: 'text', autocomplete: 'off', placeholder: 'anything' });
  const from = input('from', { type: 'datetime-local' });
  const to = input('to', { type: 'datetime-local' });
  const labelled = (label, el, hint) => h('div', { class: 'field' }, h('label', { for: el.id }, label), el,
    hint ? h('small', { class: 'hint' }, hint) : null);
  const f = h('form', { class: 'filters inline-form', 'aria-label': 'Filter the audit log', novalidate: true },
    labelled('Who (e-mail)', actor),
    labelled('What', action),
    labelled('Subject', subject, 'exactly: a session or schedule id, an enclosure name, an e-mail'),
    labelled(`From (${tz})`, from),
    labelled(`To (${tz})`, to),
    h('button', { type: 'submit', class: 'btn btn-secondary', id: 'audit-f-apply' }, 'Filter'),
    h('a', { href: '#/audit', class: 'btn-link', id: 'audit-f-clear' }, 'Clear'));
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = hashHref('/audit', { actor: actor.value.trim(), action: action.value, subject: subject.value.trim(), from: from.value, to: to.value });
  });
  return f;
}

/** GET /api/audit's query for the hash query q: from/to read in the lab's time zone. */
function auditQuery(q, tz, limit) {
  const p = new URLSearchParams({ limit: String(limit) });
  for (const k of ['actor', 'action', 'subject']) if (q.get(k)) p.set(k, q.get(k));
  for (const [k, param] of [['from', 'since'], ['to', 'until']]) {
    // An unreadable value goes as it is: the API names the problem.
    if (q.get(k)) p.set(param, labInstant(q.get(k), tz) || q.get(k));
  }
  return p;
}

/**
 * What the page links subjects to: enclosures by name (subjects name them so; retired ones
 * too) and users by id (a reset's or a settings change's subject).
 */
async function lookups() {
  const [fleet, retired, users] = await Promise.all([
    api('GET', '/api/device').catch(() => []),
    api('GET', '/api/device?retired=true').catch(() => []), // the retired ones only
    api('GET', '/api/user').catch(() => []),
  ]);
  return { devices: new Map([...retired, ...fleet].map((d) => [d.name, d.id])), users: new Map(users.map((u) => [String(u.id), u.email])),
    emails: new Set(users.map((u) => u.email.toLowerCase())) };
}

/**
 * The subject of a row, with links to what it names. Subjects are what the writers of the
 * rows put there (api/*.go s.audit and s.audited): a session id, "<session id>/<enclosure>",
 * "session N enclosure E file F", an enclosure name, a schedule or alert id, "template/<id>", an
 * e-mail or a user id.
 */
function subjectCell(e, look) {
  const s = e.subject;
  if (!s) return '–';
  const session = (id) => h('a', { href: `#/sessions/${id}` }, `session ${id}`);
  const enclosure = (name) => (look.devices.has(name) ? h('a', { href: `#/enclosures/${look.devices.get(name)}` }, name) : name);
  const user = (email) => (look.emails.has(email.toLowerCase()) ? h('a', { href: '#/users' }, email) : email);
  const numeric = /^\d+$/.test(s);
  switch (e.action.split('.')[0]) {
    case 'session': {
      if (numeric) return session(s);
      const slash = s.indexOf('/'); // session.remove_device: <session id>/<enclosure name>
      return slash > 0 && /^\d+$/.test(s.slice(0, slash)) ? [session(s.slice(0, slash)), ' · ', enclosure(s.slice(slash + 1))] : s;
    }
    case 'upload': {
      const m = /^session (\d+) enclosure (.+?) file (.+)$/.exec(s);
      return m ? [session(m[1]), ' · ', enclosure(m[2]), ' · file ', h('code', {}, m[3])] : s;
    }
    case 'device': return enclosure(s);
    case 'schedule': return numeric ? h('a', { href: `#/schedules/${s}` }, `schedule ${s}`) : s;
    case 'alert': return numeric ? `alert ${s}` : s;
    case 'template': { // "template/<id>", or the id the store names on creation
      const m = /^(?:template\/)?(\d+)$/.exec(s);
      return m ? h('a', { href: `#/templates/${m[1]}` }, `template ${m[1]}`) : s;
    }
    default: // sign-ins, passwords, users: an e-mail, or a user id
      if (numeric) return look.users.has(s) ? h('a', { href: '#/users' }, look.users.get(s)) : `user ${s}`;
      return user(s);
  }
}

function whoCell(e) {
  return h('div', {}, e.actor_email || h('span', { class: 'muted' }, e.actor_id ? `user ${e.actor_id}` : 'nobody signed in'),
    e.client_ip ? h('small', { class: 'hint' }, `from ${e.client_ip}`) : null);
}

function retentionText(days) {
  return days > 0 ? `Rows older than ${days} days are deleted (the audit retention setting).`
    : 'Rows are kept forever (the audit retention setting is 0).';
}

export async function auditPage(main, _params) {
  const q = hashQuery();
  let limit = Math.min(maxRows, Math.max(pageSize, Number.parseInt(q.get('limit') || '', 10) || pageSize));
  const info = await api('GET', '/api/info');
  const tz = info.time_zone || 'UTC';
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const more = h('div', { id: 'audit-more' });

  let rows;
  let look;
  try {
    [rows, look] = await Promise.all([api('GET', `/api/audit?${auditQuery(q, tz, limit)}`), lookups()]);
  } catch (err) {
    // Not an administrator (the API decides: a token's role may be stale): its message alone.
    if (err.status === 403) {
      fill(main, h('h1', {}, 'Audit log'), errorBox(err));
      return;
    }
    look = { devices: new Map(), users: new Map(), emails: new Set() };
    fill(status, errorBox(err));
  }
  fill(main, h('h1', {}, 'Audit log'),
    h('p', { class: 'muted', id: 'audit-about' }, `Who did what, newest first. From and To are in the lab's time zone, ${tz}; so are the times below. `,
      h('span', { id: 'audit-retention' }, retentionText(info.audit_retention_days))),
    filterForm(q, tz), status, section('Entries', list, more));

  const show = () => {
    fill(list, table([
      { label: 'When', cell: (e) => h('time', { datetime: e.at, title: new Date(e.at).toISOString() }, labTime(e.at, tz, true), h('br'), h('small', { class: 'hint' }, fmtAgo(e.at))) },
      { label: 'Who', cell: whoCell },
      { label: 'What', cell: (e) => h('span', { title: e.action }, auditActionLabel(e.action)) },
      { label: 'Subject', cell: (e) => subjectCell(e, look) },
      { label: 'Detail', cell: (e) => e.detail || '–' },
    ], rows.map((e) => ({ ...e, _rowClass: 'audit-row' })), 'No audit row matches the filter.'));
    if (rows.length < limit) {
      fill(more, rows.length ? h('p', { class: 'muted' }, rows.length === 1 ? '1 row.' : `${rows.length} rows.`) : null);
    } else if (limit < maxRows) {
      const button = h('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-load-more' }, 'Load more');
      button.addEventListener('click', () => busy(button, load, 'Loading…'));
      fill(more, h('p', { class: 'muted' }, `Showing the newest ${rows.length} rows. `), button);
    } else {
      fill(more, notice(`Showing the newest ${rows.length} rows, the most one search gives; narrow the filter (an earlier “To” reaches older rows).`, 'warning'));
    }
  };
  // Load more asks again for more rows (the API pages by limit only); the hash keeps the
  // limit for a link without a reload.
  const load = async () => {
    const next = Math.min(maxRows, limit + pageSize);
    try {
      rows = await api('GET', `/api/audit?${auditQuery(q, tz, next)}`);
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    limit = next;
    fill(status);
    history.replaceState(null, '', hashHref('/audit', { ...Object.fromEntries(filterKeys.map((k) => [k, q.get(k)])), limit }));
    show();
  };
  if (rows) show();
}
