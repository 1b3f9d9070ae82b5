// Recording sessions: active and archived lists, and one session's detail and actions.
import { api } from '../api.js';
import { h, fill, table, badge, progress, fmtTime, fmtDuration, fmtBytes, errorBox, notice, section, busy, hashQuery } from '../dom.js';
import { countBy, deviceProgress, recordedSeconds, sessionProgress } from '../model.js';
import { liveButton } from '../live.js';

export async function sessionList(main, _params, ctx) {
  const archived = hashQuery().get('archived') === 'true';
  const counts = h('div', { class: 'chips', 'aria-live': 'polite' });
  const list = h('div');
  const tab = (on, href, text) => h('a', { href, class: on ? 'tab tab-on' : 'tab', 'aria-current': on ? 'page' : false }, text);
  fill(main, h('div', { class: 'title-row' }, h('h1', {}, archived ? 'Archived sessions' : 'Sessions'), h('span', { class: 'spacer' }),
    h('a', { href: '#/sessions/new', class: 'btn' }, 'New session')),
  h('nav', { class: 'tabs', 'aria-label': 'Session lists' }, tab(!archived, '#/sessions', 'Active'), tab(archived, '#/sessions?archived=true', 'Archived')),
  counts, list);

  await ctx.every(5000, async () => {
    let sessions;
    try {
      sessions = await api('GET', `/api/recording-session?archived=${archived}`);
    } catch (err) {
      fill(list, errorBox(err));
      return;
    }
    const c = countBy(sessions, 'status');
    fill(counts, Object.keys(c).sort().map((s) => h('span', { class: 'chip' }, badge(s), ` ${c[s]}`)));
    fill(list, table([
      { label: '#', class: 'num', cell: (s) => String(s.id) },
      { label: 'Name', cell: (s) => h('a', { href: `#/sessions/${s.id}` }, s.name) },
      { label: 'Status', cell: (s) => badge(s.status) },
      { label: 'Created', cell: (s) => fmtTime(s.creation_time) },
      { label: 'Duration', cell: (s) => fmtDuration(s.duration) },
      { label: 'Enclosures', class: 'num', cell: (s) => String(s.device_statuses.length) },
      { label: 'Progress', cell: (s) => progress(sessionProgress(s), `progress of ${s.name}`) },
    ], sessions, archived ? 'No archived session.' : 'No session yet. Start one with “New session”.'));
  });
}

const kindLabels = {
  started: 'started', resumed: 'resumed after reboot', reset: 'rebooted', silent: 'went silent', returned: 'returned',
  failed: 'failed', canceled: 'canceled', removed: 'removed', complete: 'complete', ended: 'ended',
  'file-uploaded': 'file uploaded', 'file-verified': 'file verified', 'file-missing': 'file missing',
  'file-corrupt': 'file corrupt', 'file-reupload': 'file asked for again', 'files-verified': 'all files verified',
  'files-incomplete': 'files incomplete',
};

export async function sessionDetail(main, { id }, ctx) {
  const head = h('div');
  const flash = h('div');
  const facts = h('div');
  const devices = h('div');
  const livePanels = h('div');
  const timeline = h('ol', { class: 'timeline' });
  const lives = new Map(); // device id -> live view, kept across refreshes so an open one stays open
  const filesOpen = new Map(); // device id -> the user opened (true) or closed (false) its files
  let info = null;
  // Changes of a running session: built once, so a refresh never wipes what the user types.
  const newDuration = h('input', { type: 'number', id: 'new-duration', min: 1, 'aria-label': 'new duration in seconds' });
  const addDevice = h('select', { id: 'add-device', 'aria-label': 'enclosure to add' });
  const addPrefix = h('input', { type: 'text', id: 'add-prefix', maxlength: 90, 'aria-label': 'file prefix', placeholder: 'file prefix' });
  const change = (key, label, fn) => {
    const b = h('button', { type: 'button', class: 'btn btn-secondary', id: key }, label);
    b.addEventListener('click', async () => {
      try {
        await busy(b, fn);
        flash.replaceChildren();
        await refresh();
      } catch (err) {
        fill(flash, errorBox(err));
      }
    });
    return b;
  };
  const changes = h('details', { class: 'card changes', id: 'session-changes', hidden: true,
    ontoggle: async (e) => {
      if (!e.target.open) return;
      try {
        const all = await api('GET', '/api/device');
        fill(addDevice, all.filter((d) => d.state !== 'RETIRED').map((d) => h('option', { value: d.id }, `${d.name} (${d.state})`)));
      } catch (err) {
        fill(flash, errorBox(err));
      }
    } },
  h('summary', {}, 'Change this running session'),
  h('div', { class: 'row-actions' }, h('label', {}, 'Duration (s) ', newDuration),
    change('extend', 'Extend', () => api('PUT', `/api/recording-session/${id}/duration`, { duration: Number(newDuration.value) }))),
  h('div', { class: 'row-actions' }, addDevice, addPrefix,
    change('add-devices', 'Add enclosures', () => api('POST', `/api/recording-session/${id}/devices`,
      { device_spec: [{ device_id: Number(addDevice.value), filename_prefix: addPrefix.value }] }))));
  fill(main, head, flash, facts, changes, livePanels, section('Enclosures', devices), section('Timeline', timeline));

  const warnings = sessionStorage.getItem(`mba.warnings.${id}`);
  if (warnings) {
    sessionStorage.removeItem(`mba.warnings.${id}`);
    fill(flash, notice(`Created with warnings: ${JSON.parse(warnings).join('; ')}`, 'warning'));
  }

  // key: the button's id. Refreshes redraw the buttons; the id brings a keyboard user's focus back.
  const act = (key, label, confirmText, fn) => {
    const b = h('button', { type: 'button', class: 'btn btn-secondary', id: key }, label);
    b.addEventListener('click', async () => {
      if (confirmText && !confirm(confirmText)) return;
      try {
        await busy(b, fn);
        await refresh();
        // The button may be gone (Archive becomes Unarchive): keep the keyboard in the page.
        if (!main.contains(document.activeElement)) (document.getElementById(key) || main).focus();
      } catch (err) {
        fill(flash, errorBox(err));
      }
    });
    return b;
  };

  const refresh = async () => {
    let s, events;
    try {
      [s, events] = await Promise.all([api('GET', `/api/recording-session/${id}`), api('GET', `/api/recording-session/${id}/events`)]);
      info ??= await api('GET', '/api/info').catch(() => ({}));
    } catch (err) {
      fill(head, h('h1', {}, `Session ${id}`), errorBox(err));
      return;
    }
    const path = `/api/recording-session/${s.id}`;
    const running = s.status === 'IN_PROGRESS';
    changes.hidden = !running;
    if (running && !newDuration.value) newDuration.value = s.duration;
    const workflow = info.temporal_ui_url
      ? h('a', { href: `${info.temporal_ui_url}/namespaces/${encodeURIComponent(info.temporal_namespace)}/workflows/recording-session-${s.id}`, target: '_blank', rel: 'noopener' }, 'Workflow in Temporal')
      : null;
    fill(head, h('div', { class: 'title-row' }, h('h1', {}, s.name), badge(s.status), lostChip(s), s.archived ? badge('ARCHIVED') : null, h('span', { class: 'spacer' }),
      h('div', { class: 'actions' }, workflow,
        running ? act('cancel-session', 'Cancel session', `Cancel session “${s.name}”? Every enclosure still recording stops.`, () => api('DELETE', path)) : null,
        !running && !s.archived ? act('archive', 'Archive', null, () => api('DELETE', `${path}?archive=true`)) : null,
        s.archived ? act('unarchive', 'Unarchive', null, () => api('POST', `${path}/unarchive`)) : null)),
    running ? progress(sessionProgress(s), 'session progress') : null);
    const counts = countBy(s.device_statuses, 'status');
    fill(facts, h('dl', { class: 'facts' },
      fact('Duration', fmtDuration(s.duration)), fact('Frame rate', `${s.target_fps} fps`),
      fact('Hourly fragments', s.fragment_hourly ? 'yes' : 'no'), fact('Filter', s.apply_filter ? 'on' : 'off'),
      fact('Created', `${fmtTime(s.creation_time)}${s.created_by ? ` by ${s.created_by}` : ''}`),
      fact('Ended', s.ended_at ? fmtTime(s.ended_at) : running ? 'running' : '–'),
      s.canceled_by ? fact('Canceled by', s.canceled_by) : null,
      fact('Enclosures', Object.keys(counts).sort().map((k) => h('span', { class: 'chip' }, badge(k), ` ${counts[k]} `)))));

    fill(devices, table([
      { label: 'Enclosure', cell: (ds) => h('a', { href: `#/enclosures/${ds.device.id}` }, ds.device.name) },
      { label: 'Prefix', cell: (ds) => ds.filename_prefix || '–' },
      { label: 'Status', cell: (ds) => h('span', {}, badge(ds.status), ds.device.state === 'DOWN' && ['PENDING', 'RECORDING'].includes(ds.status) ? badge('DOWN') : null) },
      { label: 'Progress', cell: (ds) => progress(deviceProgress(ds, s), `progress of ${ds.device.name}`) },
      { label: 'Recorded', cell: (ds) => `${fmtDuration(recordedSeconds(ds))}${ds.segments > 1 ? ` in ${ds.segments} segments` : ''}` },
      { label: 'Reason', cell: (ds) => ds.message || '' },
      s.device_statuses.some((ds) => ds.files_summary) ? { label: 'Files', cell: filesSummary } : null,
      { label: 'Actions', cell: (ds) => deviceActions({ ...ds, session_running: running }, path) },
    ].filter(Boolean), s.device_statuses.map((ds) => ({ ...ds, _rowClass: `row-${ds.status.toLowerCase()}` }))), fileTables(s, filesOpen));

    // A live view stays open across refreshes, and closes when its enclosure stops recording.
    for (const [deviceId, live] of lives) {
      if (!s.device_statuses.some((ds) => ds.device.id === deviceId && ds.status === 'RECORDING')) {
        live.stop();
        lives.delete(deviceId);
      }
    }
    fill(livePanels, [...lives.values()].map((l) => l.panel));

    fill(timeline, events.length
      ? [...events].reverse().map((e) => h('li', { class: `ev ev-${e.kind} ${/^FAILED/.test(e.message) ? 'ev-failed' : ''}` }, h('time', { datetime: e.at }, fmtTime(e.at, true)), ' ',
        h('strong', {}, e.device || 'session'), ' ', kindLabels[e.kind] || e.kind, e.message ? ` — ${e.message}` : ''))
      : h('li', { class: 'empty' }, 'Nothing has happened yet.'));
  };

  const deviceActions = (ds, path) => {
    const out = [];
    if (ds.status === 'RECORDING') {
      if (!lives.has(ds.device.id)) lives.set(ds.device.id, liveButton(ds.device.id, ctx, ds.device.name));
      const live = lives.get(ds.device.id);
      out.push(live.button);
    }
    if (['PENDING', 'RECORDING'].includes(ds.status)) {
      out.push(act(`remove-${ds.device.id}`, 'Remove', `Stop ${ds.device.name} and remove it from this session?`, () => api('DELETE', `${path}/device-status/${ds.device.id}`)));
    }
    if (ds.status === 'FAILED' && path && ds.session_running) {
      out.push(act(`retry-${ds.device.id}`, 'Retry', null, () => api('POST', `${path}/device-status/${ds.device.id}/retry`)));
    }
    return h('div', { class: 'row-actions' }, out);
  };

  await ctx.every(3000, refresh);
}

function fact(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

/** files_summary (file verification, when the service has it): verified of expected, problems. */
function filesSummary(ds) {
  const f = ds.files_summary;
  if (!f) return '–';
  return h('span', {}, `${f.verified}/${f.expected} verified`, f.pending ? ` · ${f.pending} waiting` : null,
    f.missing ? h('span', { class: 'bad-text' }, ` · ${f.missing} missing`) : null,
    f.corrupt ? h('span', { class: 'bad-text' }, ` · ${f.corrupt} corrupt`) : null);
}

/**
 * One table of files per enclosure that has any; missing and corrupt rows highlighted. A table
 * with problems starts open; what the user opens or closes stays so across refreshes (open).
 */
function fileTables(s, open) {
  const withFiles = s.device_statuses.filter((ds) => ds.files?.length);
  if (!withFiles.length) return null;
  return withFiles.map((ds) => h('details', {
    class: 'files',
    open: open.get(ds.device.id) ?? ds.files.some((f) => ['MISSING', 'CORRUPT'].includes(f.state)),
    ontoggle: (e) => open.set(ds.device.id, e.target.open),
  },
    h('summary', { id: `files-${ds.device.id}` }, `Files of ${ds.device.name} (${ds.files.length})`),
    table([
      { label: 'File', cell: (f) => (f.download_url ? h('a', { href: f.download_url, download: f.name }, f.name) : f.name) },
      { label: 'Size', class: 'num', cell: (f) => fmtBytes(f.size) },
      { label: 'State', cell: (f) => badge(f.state) },
      { label: 'SHA-256', cell: (f) => (f.sha256 ? h('code', { title: f.sha256 }, f.sha256.slice(0, 12)) : '–') },
      { label: 'Reason', cell: (f) => f.reason || '' },
    ], ds.files.map((f) => ({ ...f, _rowClass: ['MISSING', 'CORRUPT'].includes(f.state) ? 'row-failed' : '' })))));
}

// lostChip says what reboots and client restarts cost the session (its enclosures' gaps), beside its status.
function lostChip(s) {
  if (!(s.seconds_lost > 0)) return null;
  return h('span', { class: 'chip', title: 'not recorded between segments (reboots, client restarts)' },
    `${fmtDuration(s.seconds_lost)} lost`);
}
