// Enclosures: a filterable list, and one enclosure's detail with plots and recent sessions.
import { api, identity } from '../api.js';
import { h, fill, table, naturalCompare, badge, fmtMB, fmtNumber, fmtAgo, fmtTime, fmtDuration, errorBox, section, hashQuery, field, busy } from '../dom.js';
import { lineChart } from '../chart.js';
import { liveButton } from '../live.js';
import { lowDisk, currentCamera } from '../model.js';

/** Filter inputs shared by the list and the new-session chooser: text and state. */
export function deviceFilter(onChange, initial = {}) {
  const text = h('input', { type: 'search', placeholder: 'name or location', value: initial.q || '' });
  const state = h('select', {}, ['', 'IDLE', 'BUSY', 'DOWN'].map((s) => h('option', { value: s, selected: s === (initial.state || '') }, s || 'any state')));
  text.addEventListener('input', onChange);
  state.addEventListener('change', onChange);
  const el = h('div', { class: 'filters' }, field('Filter', text, 'filter-q'), field('State', state, 'filter-state'));
  const matches = (d) => {
    const q = text.value.trim().toLowerCase();
    return (!state.value || d.state === state.value) &&
      (!q || d.name.toLowerCase().includes(q) || (d.location || '').toLowerCase().includes(q));
  };
  return { el, matches, values: () => ({ q: text.value, state: state.value }) };
}

export const fpsOf = (d) => fmtNumber(currentCamera(d).fps);

/** Why an enclosure is not in the fleet (retired, pending approval, rejected), or null. */
export function admissionOf(d) {
  if (d.retired_at) return 'RETIRED';
  return d.admission && d.admission !== 'approved' ? d.admission.toUpperCase() : null;
}

/** An administrator's action on enclosure d: a button that calls the API, then done(). */
function adminAction(d, label, method, path, body, confirmText, done, onError) {
  const b = h('button', { type: 'button', class: 'btn btn-secondary', id: `${label.toLowerCase().replace(/\W+/g, '-')}-${d.id}` }, label);
  b.addEventListener('click', async () => {
    if (confirmText && !confirm(confirmText)) return;
    try {
      await busy(b, () => api(method, `/api/device/${d.id}${path}`, body));
      await done();
    } catch (err) {
      onError(err);
    }
  });
  return b;
}

export async function enclosureList(main, _params, ctx) {
  const q = hashQuery();
  const retired = q.get('retired') === 'true';
  const admin = identity()?.admin;
  let devices = [];
  const status = h('div');
  const list = h('div', { 'aria-live': 'polite' });
  const draw = () => {
    // Keep the filter in the address so it survives reloads and can be linked (the dashboard does).
    const v = filter.values();
    const params = new URLSearchParams(Object.entries(v).filter(([, x]) => x));
    if (retired) params.set('retired', 'true');
    history.replaceState(null, '', `#/enclosures${params.size ? `?${params}` : ''}`);
    const shown = devices.filter(filter.matches).sort((a, b) => naturalCompare(a.name, b.name)); // NV2 before NV10
    // A new name waiting for approval: an administrator admits or refuses it here.
    const approval = (d) => (admin && d.admission === 'pending' && !d.retired_at
      ? h('span', { class: 'actions' },
        adminAction(d, 'Approve', 'POST', '/approve', undefined, null, load, (err) => fill(status, errorBox(err))),
        adminAction(d, 'Reject', 'POST', '/reject', undefined, `Refuse every heartbeat of ${d.name}?`, load, (err) => fill(status, errorBox(err))))
      : null);
    fill(list, h('p', { class: 'muted' }, `${shown.length} of ${devices.length} ${retired ? 'retired ' : ''}enclosures`), table([
      { label: 'Name', cell: (d) => h('a', { href: `#/enclosures/${d.id}` }, d.name) },
      { label: 'Location', cell: (d) => d.location || '–' },
      { label: 'State', cell: (d) => h('span', {}, badge(d.state), admissionOf(d) ? badge(admissionOf(d)) : null, approval(d)) },
      { label: 'Session', sort: (d) => d.session_id ?? null, cell: (d) => (d.session_id ? h('a', { href: `#/sessions/${d.session_id}` }, `#${d.session_id}`) : '–') },
      { label: 'Free disk', class: 'num', sort: (d) => d.system_info?.free_disk ?? null,
        cell: (d) => h('span', { class: lowDisk(d) ? 'warn-text' : '' }, fmtMB(d.system_info?.free_disk)) },
      { label: 'FPS', class: 'num', sort: (d) => currentCamera(d).fps ?? null, cell: fpsOf },
      { label: 'Last heartbeat', sort: (d) => (d.last_update ? -Date.parse(d.last_update) : null), cell: (d) => fmtAgo(d.last_update) },
    ], shown, devices.length ? 'No enclosure matches the filter.' : 'No enclosure has reported yet. Enclosures appear here on their first heartbeat.'));
  };
  const filter = deviceFilter(draw, { q: q.get('q'), state: q.get('state') });
  const tab = (on, href, text) => h('a', { href, class: on ? 'tab tab-on' : 'tab', 'aria-current': on ? 'page' : false }, text);
  fill(main, h('div', { class: 'title-row' }, h('h1', {}, retired ? 'Retired enclosures' : 'Enclosures'), h('span', { class: 'spacer' }),
    tab(!retired, '#/enclosures', 'Fleet'), tab(retired, '#/enclosures?retired=true', 'Retired')), filter.el, status, list);
  const load = async () => {
    try {
      devices = await api('GET', `/api/device${retired ? '?retired=true' : ''}`);
      fill(status);
      draw();
    } catch (err) {
      fill(status, errorBox(err));
    }
  };
  await ctx.every(5000, load);
}

const ranges = { '1h': 3600, '24h': 86400, '7d': 7 * 86400 };

export async function enclosureDetail(main, { id }, ctx) {
  const admin = identity()?.admin;
  const head = h('div');
  const flash = h('div', { 'aria-live': 'polite' });
  const facts = h('div');
  const admission = h('div');
  const charts = h('div', { class: 'charts' });
  const recent = h('div');
  const range = h('select', {}, Object.keys(ranges).map((r) => h('option', { value: r, selected: r === '24h' }, `last ${r}`)));
  const live = liveButton(id, ctx, `enclosure ${id}`);
  let lastPlot = 0;
  let wasDown = false;
  range.addEventListener('change', () => { lastPlot = 0; refresh(); });
  fill(main, head, flash, facts, admission, live.panel,
    section('Over time', field('Range', range, 'range'), charts),
    section('Recent sessions', recent));

  const plot = async (d) => {
    const since = new Date(Date.now() - ranges[range.value] * 1000).toISOString();
    const t = await api('GET', `/api/device/${d.id}/telemetry?since=${encodeURIComponent(since)}`);
    const pts = t.points.map((p) => ({ ...p, t: new Date(p.at).getTime() }));
    // The longest time between two heartbeats in each sample's bucket: silences and network
    // trouble show as spikes above the enclosure's heartbeat interval.
    const gaps = pts.map((p) => ({ t: p.t, v: p.max_gap_ms == null ? null : p.max_gap_ms / 1000 }));
    // An outage still going on has no sample yet (samples come with heartbeats): its gap so far.
    if (d.state === 'DOWN' && d.last_update) {
      const since = new Date(d.last_update).getTime();
      gaps.push({ t: since, v: 0 }, { t: Date.now(), v: (Date.now() - since) / 1000 });
    }
    fill(charts,
      lineChart({ title: 'Frame rate', unit: 'fps', min: 0, points: pts.map((p) => ({ t: p.t, v: p.fps })) }),
      lineChart({ title: 'Free disk', unit: 'GB', min: 0, points: pts.map((p) => ({ t: p.t, v: p.free_disk === null ? null : p.free_disk / 1000 })) }),
      lineChart({ title: 'Load (1 min)', min: 0, points: pts.map((p) => ({ t: p.t, v: p.load })) }),
      lineChart({ title: 'Heartbeat gaps', unit: 's', min: 0, points: gaps }));
  };

  const sessionsOf = async (d) => {
    const [active, archived] = await Promise.all([api('GET', '/api/recording-session?archived=false'), api('GET', '/api/recording-session?archived=true')]);
    const mine = [...active, ...archived]
      .map((s) => ({ s, ds: s.device_statuses.find((x) => x.device.id === d.id) }))
      .filter((x) => x.ds)
      .sort((a, b) => b.s.id - a.s.id)
      .slice(0, 10);
    fill(recent, table([
      { label: 'Session', cell: (x) => h('a', { href: `#/sessions/${x.s.id}` }, x.s.name) },
      { label: 'Created', cell: (x) => fmtTime(x.s.creation_time) },
      { label: 'Prefix', cell: (x) => x.ds.filename_prefix || '–' },
      { label: 'Status', cell: (x) => badge(x.ds.status) },
      { label: 'Recorded', cell: (x) => fmtDuration(x.ds.recording_time) },
      { label: 'Reason', cell: (x) => x.ds.message || '' },
    ], mine, 'This enclosure has not been in a session yet.'));
  };

  const refresh = async () => {
    let d;
    try {
      d = await api('GET', `/api/device/${encodeURIComponent(id)}`);
    } catch (err) {
      fill(head, h('h1', {}, `Enclosure ${id}`), errorBox(err));
      return;
    }
    const cam = currentCamera(d);
    const si = d.system_info || {};
    const down = d.state === 'DOWN';
    fill(head, h('div', { class: 'title-row' }, h('h1', {}, d.name), badge(d.state), admissionOf(d) ? badge(admissionOf(d)) : null,
      down ? h('span', { class: 'down-since' }, `since ${d.last_update ? fmtTime(d.last_update) : 'ever'} (${fmtAgo(d.last_update)})`) : null,
      cam.recording ? badge('RECORDING') : null, h('span', { class: 'spacer' }), cam.recording ? live.button : null));
    fill(admission, section('Admission', h('dl', { class: 'facts' },
      fact('Admission', d.retired_at ? `retired ${fmtTime(d.retired_at)}` : d.admission),
      fact('Heartbeats', d.relayed ? 'through its relay, with its token' : 'tokenless from the lab\'s networks (or with its token)'),
      fact('Token', d.has_token ? 'set' : 'none'),
      fact('Bound to', d.bound_address || 'any allowed address'),
      fact('Registered from', d.registered_from || '–')),
    admin ? adminActions(d) : null));
    if (!cam.recording) live.stop();
    if (down !== wasDown) lastPlot = 0; // the outage shows on the plot at once
    wasDown = down;
    fill(facts, h('dl', { class: 'facts' },
      fact('Location', d.location || '–'),
      fact('Last heartbeat', `${fmtAgo(d.last_update)} (${fmtTime(d.last_update)})`),
      fact('Session', d.session_id ? h('a', { href: `#/sessions/${d.session_id}` }, `#${d.session_id}`) : 'none'),
      fact('Recording', cam.recording ? `${fmtDuration(cam.duration)} at ${fmtNumber(cam.fps)} fps` : down ? 'unknown (DOWN)' : 'no'),
      fact('Free disk', `${fmtMB(si.free_disk)} of ${fmtMB(si.total_disk)}`),
      fact('Load', fmtNumber(si.load, 2)),
      fact('Free RAM', si.free_ram === null || si.free_ram === undefined ? '–' : `${Math.round(si.free_ram / 1000)} MB of ${Math.round(si.total_ram / 1000)} MB`),
      fact('Uptime', fmtDuration(si.uptime)),
      fact('Clock skew', d.clock_skew_ms === null || d.clock_skew_ms === undefined ? '–' : h('span', { class: d.clock_skew_flagged ? 'warn-text' : '' }, `${(d.clock_skew_ms / 1000).toFixed(1)} s`)),
      fact('Release', si.release || '–')));
    // Plots and sessions change slowly: every 30 s is plenty.
    if (Date.now() - lastPlot > 30000) {
      lastPlot = Date.now();
      await Promise.all([plot(d).catch((err) => fill(charts, errorBox(err))), sessionsOf(d).catch((err) => fill(recent, errorBox(err)))]);
    }
  };
  // What an administrator can change: admission, the relay requirement, the bound address, retirement.
  const adminActions = (d) => {
    const done = () => { lastPlot = 0; return refresh(); };
    const oops = (err) => fill(flash, errorBox(err));
    const acts = [];
    if (d.retired_at || d.admission !== 'approved') acts.push(adminAction(d, 'Approve', 'POST', '/approve', undefined, null, done, oops));
    if (!d.retired_at && d.admission !== 'rejected') {
      acts.push(adminAction(d, 'Reject', 'POST', '/reject', undefined, `Refuse every heartbeat of ${d.name}?`, done, oops));
    }
    if (d.has_token) {
      acts.push(adminAction(d, d.relayed ? 'Allow tokenless' : 'Require relay', 'PATCH', '', { relayed: !d.relayed },
        d.relayed ? null : `From now on only heartbeats through ${d.name}'s relay (with its token) are accepted. Is its relay running?`, done, oops));
    }
    acts.push(d.bound_address
      ? adminAction(d, 'Unbind address', 'PATCH', '', { bound_address: '' }, null, done, oops)
      : adminAction(d, 'Bind to registered address', 'PATCH', '', { bound_address: 'registered' }, null, done, oops));
    if (!d.retired_at) {
      acts.push(adminAction(d, 'Retire', 'DELETE', '', undefined,
        `Retire ${d.name}? Its heartbeats are refused from now on; the sessions it recorded keep their history.`,
        () => { location.hash = '#/enclosures'; }, oops));
    }
    return h('div', { class: 'actions' }, ...acts);
  };
  await ctx.every(5000, refresh);
}

function fact(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}
