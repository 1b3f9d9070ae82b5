// The fleet at a glance: enclosures by state, sessions in progress, alerts that need a person.
import { api } from '../api.js';
import { h, fill, progress, errorBox, section, badge, fmtTime } from '../dom.js';
import { alerts, alertRecordItems, countBy, openAlertStates, sessionProgress } from '../model.js';

export async function dashboard(main, _params, ctx) {
  const tiles = h('div', { class: 'tiles', 'aria-live': 'polite' });
  const running = h('div');
  const alertList = h('div');
  const status = h('div');
  fill(main, h('h1', {}, 'Fleet'), status, tiles,
    h('div', { class: 'columns' }, section('Sessions in progress', running), section('Needs attention', alertList)));

  // The list has no file details; the detail of each recent session has (file verification).
  // They change slowly, so they are read every 30 s, at most 20 sessions.
  let details = [];
  let detailsAt = 0;
  const sessionDetails = async (sessions) => {
    if (Date.now() - detailsAt < 30000) return;
    detailsAt = Date.now();
    const recent = [...sessions].sort((a, b) => b.id - a.id).slice(0, 20);
    details = await Promise.all(recent.map((s) => api('GET', `/api/recording-session/${s.id}`).catch(() => s)));
  };

  await ctx.every(5000, async () => {
    let devices, sessions, records;
    try {
      // The alert records are the workflows' word; the page's own derivations stay beside them
      // (they see what no alert condition covers yet). Without the records the rest still shows.
      [devices, sessions, records] = await Promise.all([api('GET', '/api/device'), api('GET', '/api/recording-session?archived=false'),
        api('GET', `/api/alerts?state=${openAlertStates.join(',')}&limit=50`).catch(() => [])]);
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    fill(status);
    await sessionDetails(sessions);
    const files = new Map(details.flatMap((d) => d.device_statuses.map((ds) => [`${d.id}/${ds.device.id}`, ds.files_summary])));
    for (const s of sessions) {
      for (const ds of s.device_statuses) ds.files_summary ??= files.get(`${s.id}/${ds.device.id}`);
    }
    const counts = countBy(devices, 'state');
    fill(tiles, ['IDLE', 'BUSY', 'DOWN'].map((state) => h('a', { class: `tile tile-${state.toLowerCase()}`, href: `#/enclosures?state=${state}` },
      h('span', { class: 'tile-count' }, String(counts[state] || 0)), h('span', { class: 'tile-label' }, state))),
    h('a', { class: 'tile', href: '#/enclosures' }, h('span', { class: 'tile-count' }, String(devices.length)), h('span', { class: 'tile-label' }, 'enclosures')));

    const inProgress = sessions.filter((s) => s.status === 'IN_PROGRESS');
    fill(running, inProgress.length
      ? h('ul', { class: 'plain-list' }, inProgress.map((s) => h('li', {},
        h('a', { href: `#/sessions/${s.id}` }, s.name), ' ', badge(s.status),
        h('small', { class: 'muted' }, ` ${s.device_statuses.length} enclosures · started ${fmtTime(s.creation_time)}`),
        progress(sessionProgress(s), `progress of ${s.name}`))))
      : h('p', { class: 'empty' }, 'No session is recording. ', h('a', { href: '#/sessions/new' }, 'Start one.')));

    const list = [...alertRecordItems(records), ...alerts(devices, sessions)]
      .sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1));
    fill(alertList, list.length
      ? [h('ul', { class: 'alerts' }, list.map((a) => h('li', { class: `alert-item alert-${a.level}`, 'data-alert': a.record }, h('a', { href: a.href }, a.text)))),
        records.length ? h('p', {}, h('a', { href: '#/alerts' }, `All ${records.length} open alert${records.length === 1 ? '' : 's'} →`)) : null]
      : h('p', { class: 'empty' }, devices.length ? 'All clear: nothing needs a person.' : 'No enclosure has reported yet.'));
  });
}
