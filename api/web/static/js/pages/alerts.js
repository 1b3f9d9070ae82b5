// Alerts: the alert workflows' records, by tab (open, taken, resolved) and filter; a person
// acknowledges or silences one with a note, and opens its timeline. Administrators also see
// whether the notification channels work.
import { api, identity } from '../api.js';
import { h, fill, table, badge, fmtTime, fmtAgo, errorBox, notice, section, busy, hashQuery, hashHref } from '../dom.js';
import { alertKinds, alertKindLabel, alertTabs } from '../model.js';

// Silence durations offered, in minutes (the API allows up to 7 days).
const silenceChoices = [[30, '30 min'], [60, '1 hour'], [240, '4 hours'], [720, '12 hours'], [1440, '1 day'], [10080, '7 days']];

/** The link to the alerts page with query q (null/empty values left out). */
export function alertsHref(q) {
  return hashHref('/alerts', q);
}

function filterForm(q, devices) {
  const session = h('input', { type: 'number', min: 1, id: 'alert-f-session', value: q.get('session') || '', placeholder: 'any' });
  const device = h('select', { id: 'alert-f-device' }, h('option', { value: '' }, 'any enclosure'),
    devices.map((d) => h('option', { value: String(d.id), selected: String(d.id) === q.get('device') }, d.name)));
  const kind = h('select', { id: 'alert-f-kind' }, h('option', { value: '' }, 'any kind'),
    alertKinds.map((k) => h('option', { value: k, selected: k === q.get('kind') }, alertKindLabel(k))));
  const f = h('form', { class: 'filters inline-form', 'aria-label': 'Filter alerts' },
    h('div', { class: 'field' }, h('label', { for: session.id }, 'Session'), session),
    h('div', { class: 'field' }, h('label', { for: device.id }, 'Enclosure'), device),
    h('div', { class: 'field' }, h('label', { for: kind.id }, 'Kind'), kind),
    h('button', { type: 'submit', class: 'btn btn-secondary', id: 'alert-f-apply' }, 'Filter'));
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = alertsHref({ tab: q.get('tab'), session: session.value.trim(), device: device.value, kind: kind.value });
  });
  return f;
}

/**
 * The controls of one alert, kept across refreshes (the list redraws every few seconds; a
 * half-typed note or an open timeline must survive it).
 */
function controls(a, refresh, flash) {
  const note = h('input', { type: 'text', id: `alert-note-${a.id}`, maxlength: 2000, placeholder: 'note (optional)', 'aria-label': `note for alert ${a.id}` });
  const minutes = h('select', { id: `alert-minutes-${a.id}`, 'aria-label': `silence alert ${a.id} for` },
    silenceChoices.map(([m, label]) => h('option', { value: String(m), selected: m === 60 }, label)));
  const error = h('div', { 'aria-live': 'polite' });
  const timeline = h('ol', { class: 'timeline', hidden: true, id: `alert-events-${a.id}` });
  const act = (button, path, body, done) => button.addEventListener('click', async () => {
    fill(error);
    flash(null);
    try {
      await busy(button, () => api('POST', `/api/alerts/${a.id}/${path}`, body()));
      note.value = '';
      // The row may leave this tab (an acknowledged alert is no longer open): say it above the list.
      flash(notice(`Alert ${a.id} (${a.summary}): ${done}`, 'success'));
      if (!timeline.hidden) await showEvents(a.id, timeline, error);
      await refresh();
    } catch (err) {
      fill(error, errorBox(err));
    }
  });
  const ack = h('button', { type: 'button', class: 'btn btn-small', id: `alert-ack-${a.id}` }, 'Acknowledge');
  act(ack, 'acknowledge', () => ({ note: note.value }), 'Acknowledged.');
  const silence = h('button', { type: 'button', class: 'btn btn-secondary btn-small', id: `alert-silence-${a.id}` }, 'Silence');
  act(silence, 'silence', () => ({ minutes: Number(minutes.value), note: note.value }), 'Silenced.');
  const events = h('button', { type: 'button', class: 'btn-link', id: `alert-timeline-${a.id}`, 'aria-expanded': 'false',
    'aria-controls': timeline.id }, 'Timeline');
  events.addEventListener('click', async () => {
    const open = timeline.hidden;
    events.setAttribute('aria-expanded', String(open));
    timeline.hidden = !open;
    if (open) await showEvents(a.id, timeline, error);
  });
  return { note, minutes, error, timeline, ack, silence, events };
}

async function showEvents(id, timeline, error) {
  try {
    const d = await api('GET', `/api/alerts/${id}`);
    fill(timeline, d.events.length
      ? [...d.events].reverse().map((e) => h('li', { class: `ev ev-alert-${e.state}` }, h('time', { datetime: e.at }, fmtTime(e.at, true)), ' ',
        badge(e.state), e.actor ? ` by ${e.actor}` : '', e.note ? h('span', {}, ' — ', h('q', {}, e.note)) : ''))
      : h('li', { class: 'empty' }, 'No events recorded yet.'));
  } catch (err) {
    fill(error, errorBox(err));
  }
}

function subject(a) {
  return h('div', {}, h('strong', {}, a.summary || alertKindLabel(a.kind)), h('br'),
    h('small', { class: 'muted' }, alertKindLabel(a.kind),
      a.device_id ? [' · ', h('a', { href: `#/enclosures/${a.device_id}` }, a.device_name || `enclosure ${a.device_id}`)] : '',
      a.subject ? [' · ', a.subject] : '',
      a.session_id ? [' · ', h('a', { href: `#/sessions/${a.session_id}` }, `session ${a.session_id}`)] : ' · fleet'));
}

function taken(a) {
  if (a.state === 'silenced') {
    return h('div', {}, `silenced by ${a.acked_by || '?'} until ${fmtTime(a.silenced_until)}`, a.ack_note ? h('div', { class: 'alert-note' }, h('q', {}, a.ack_note)) : '');
  }
  if (!a.acked_by) return h('span', { class: 'muted' }, 'nobody yet');
  return h('div', {}, `${a.acked_by}, ${fmtAgo(a.acked_at)}`, a.ack_note ? h('div', { class: 'alert-note' }, h('q', {}, a.ack_note)) : '');
}

// A broken channel (its last alerts channel-failures deliveries failed: the channel_broken
// condition's rule) says so plainly, with since when; otherwise the last attempt's outcome.
function channelState(c) {
  if (c.broken) {
    return [badge('BROKEN'), ' ',
      h('time', { datetime: c.failing_since, title: fmtAgo(c.failing_since) }, `since ${fmtTime(c.failing_since)}`),
      h('br'), h('small', { class: 'muted' }, `${c.failing} failed in a row`)];
  }
  return [badge(c.last_outcome === 'sent' ? 'SENT' : 'FAILED'), ' ', fmtAgo(c.last_at)];
}

function channelTable(list) {
  return table([
    { label: 'Channel', cell: (c) => c.channel },
    { label: 'Target', cell: (c) => c.target },
    { label: 'Attempts', class: 'num', cell: (c) => String(c.attempts) },
    { label: 'Failures', class: 'num', cell: (c) => (c.failures ? h('span', { class: 'bad-text' }, String(c.failures)) : '0') },
    { label: 'State', cell: channelState },
    { label: 'Last error', cell: (c) => c.last_error || '–' },
  ], list.map((c) => ({ ...c, _rowClass: c.last_outcome === 'sent' ? '' : 'row-failed' })),
  'No notification was sent in the last 7 days.');
}

export async function alertsPage(main, _params, ctx) {
  const q = hashQuery();
  const tab = alertTabs.find((t) => t.id === q.get('tab')) || alertTabs[0];
  const filters = h('div');
  const status = h('div', { 'aria-live': 'polite' });
  const flashBox = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const channels = h('div');
  const tabLink = (t) => h('a', { href: alertsHref({ tab: t.id, session: q.get('session'), device: q.get('device'), kind: q.get('kind') }),
    class: t === tab ? 'tab tab-on' : 'tab', 'aria-current': t === tab ? 'page' : false }, t.label);
  fill(main, h('h1', {}, 'Alerts'), h('nav', { class: 'tabs', 'aria-label': 'Alert lists' }, alertTabs.map(tabLink)),
    filters, flashBox, status, list, identity()?.admin ? section('Channel health', channels) : null);

  // The enclosure filter names enclosures; without the list it still filters by id.
  const devices = await api('GET', '/api/device').catch(() => []);
  fill(filters, filterForm(q, devices));

  const query = new URLSearchParams({ state: tab.states.join(','), limit: '200' });
  for (const k of ['session', 'device', 'kind']) if (q.get(k)) query.set(k, q.get(k));
  const kept = new Map(); // alert id -> its controls

  const refresh = async () => {
    let alerts;
    try {
      alerts = await api('GET', `/api/alerts?${query}`);
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    fill(status);
    for (const a of alerts) if (!kept.has(a.id)) kept.set(a.id, controls(a, refresh, (node) => fill(flashBox, node)));
    fill(list, table([
      { label: 'Alert', cell: subject },
      { label: 'State', cell: (a) => badge(a.state) },
      { label: 'Since', cell: (a) => h('time', { datetime: a.opened_at, title: fmtTime(a.opened_at, true) }, fmtAgo(a.opened_at)) },
      { label: 'Tier', class: 'num', cell: (a) => String(a.tier) },
      { label: tab.id === 'resolved' ? 'Taken by' : 'Acknowledged', cell: taken },
      { label: tab.id === 'resolved' ? 'Resolved' : 'Actions', cell: (a) => {
        const c = kept.get(a.id);
        const acts = a.state === 'resolved'
          ? [fmtTime(a.resolved_at)]
          : [c.note, a.state === 'acknowledged' ? null : c.ack, c.minutes, c.silence];
        return h('div', { class: 'alert-actions', 'data-alert': a.id }, h('div', { class: 'row-actions' }, acts, c.events), c.error, c.timeline);
      } },
    ], alerts.map((a) => ({ ...a, _rowClass: `row-alert-${a.state}` })), tab.empty));
  };
  const channelHealth = async () => {
    try {
      fill(channels, channelTable(await api('GET', '/api/alerts/channels')));
    } catch (err) {
      fill(channels, errorBox(err));
    }
  };
  await ctx.every(5000, refresh);
  if (identity()?.admin) await ctx.every(30000, channelHealth);
}
