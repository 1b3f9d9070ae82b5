// Recording sessions: active and archived lists, and one session's detail and actions.
import { api, download } from '../api.js';
import { h, fill, table, badge, progress, fmtTime, fmtDuration, fmtBytes, errorBox, notice, section, busy, hashQuery, field, showErrors } from '../dom.js';
import { countBy, deviceProgress, plannedEnd, recordedSeconds, sessionProgress } from '../model.js';
import { liveButton } from '../live.js';

export async function sessionList(main, _params, ctx) {
  const q = hashQuery();
  const archived = q.get('archived') === 'true';
  // The search (name, subject, template) lives in the address, so a refresh or a bookmark keeps it.
  const search = new URLSearchParams();
  for (const k of ['q', 'subject', 'template']) if (q.get(k)) search.set(k, q.get(k));
  const counts = h('div', { class: 'chips', 'aria-live': 'polite' });
  const list = h('div');
  const tab = (on, href, text) => h('a', { href, class: on ? 'tab tab-on' : 'tab', 'aria-current': on ? 'page' : false }, text);
  const templates = await api('GET', '/api/templates').catch(() => []);
  fill(main, h('div', { class: 'title-row' }, h('h1', {}, archived ? 'Archived sessions' : 'Sessions'), h('span', { class: 'spacer' }),
    h('a', { href: '#/sessions/new', class: 'btn' }, 'New session')),
  h('nav', { class: 'tabs', 'aria-label': 'Session lists' }, tab(!archived, '#/sessions', 'Active'), tab(archived, '#/sessions?archived=true', 'Archived')),
  searchForm(search, templates, archived), counts, list);

  await ctx.every(5000, async () => {
    let sessions;
    const params = new URLSearchParams(search);
    params.set('archived', archived);
    try {
      sessions = await api('GET', `/api/recording-session?${params}`);
    } catch (err) {
      fill(list, errorBox(err));
      return;
    }
    const c = countBy(sessions, 'status');
    fill(counts, Object.keys(c).sort().map((s) => h('span', { class: 'chip' }, badge(s), ` ${c[s]}`)));
    const none = search.size ? 'No session matches the search.' : archived ? 'No archived session.' : 'No session yet. Start one with “New session”.';
    fill(list, table([
      { label: '#', class: 'num', cell: (s) => String(s.id) },
      { label: 'Name', cell: (s) => h('a', { href: `#/sessions/${s.id}` }, s.name) },
      { label: 'Status', cell: (s) => badge(s.status) },
      { label: 'Created', cell: (s) => fmtTime(s.creation_time) },
      { label: 'Duration', cell: (s) => fmtDuration(s.duration) },
      { label: 'Ends', cell: (s) => (s.status === 'IN_PROGRESS' ? h('span', { class: 'planned-end' }, fmtTime(plannedEnd(s).toISOString())) : '–') },
      { label: 'Template', cell: (s) => (s.template ? h('a', { href: `#/templates/${s.template.id}` }, `${s.template.name} v${s.template.version}`) : '–') },
      { label: 'Enclosures', class: 'num', cell: (s) => String(s.device_statuses.length) },
      { label: 'Progress', cell: (s) => progress(sessionProgress(s), `progress of ${s.name}`) },
    ], sessions.map((s) => ({ ...s, _rowClass: 'session-row' })), none));
  });
}

/** The sessions' search: part of the name, a subject id, a template; the API's search. */
function searchForm(search, templates, archived) {
  const name = h('input', { type: 'search', id: 'search-q', maxlength: 100, value: search.get('q') || '', placeholder: 'part of the name' });
  const subject = h('input', { type: 'search', id: 'search-subject', maxlength: 100, value: search.get('subject') || '', placeholder: 'subject id' });
  const template = h('select', { id: 'search-template' }, h('option', { value: '' }, 'any template'),
    templates.map((t) => h('option', { value: String(t.id), selected: search.get('template') === String(t.id) }, t.name)));
  const form = h('form', { class: 'inline-form', id: 'session-search', role: 'search', 'aria-label': 'Search sessions' },
    h('div', { class: 'form-error' }),
    field('Name', name, 'q'), field('Subject', subject, 'subject'), field('Template', template, 'template'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Search'),
      search.size ? h('a', { href: archived ? '#/sessions?archived=true' : '#/sessions', id: 'search-clear' }, 'Clear') : null));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (archived) next.set('archived', 'true');
    if (name.value.trim()) next.set('q', name.value.trim());
    if (subject.value.trim()) next.set('subject', subject.value.trim());
    if (template.value) next.set('template', template.value);
    location.hash = `#/sessions${next.size ? `?${next}` : ''}`;
  });
  return form;
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
  // The subject editor sits outside the enclosures' table, which every refresh redraws.
  const subjectPanel = h('div', { id: 'subject-panel' });
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
  fill(main, head, flash, facts, changes, livePanels, section('Enclosures', devices, subjectPanel), section('Timeline', timeline));

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
        h('a', { href: `#/sessions/new?clone=${s.id}`, class: 'btn btn-secondary', id: 'clone-session' }, 'Clone'),
        manifestButton(s, 'json', flash), manifestButton(s, 'csv', flash),
        running ? act('cancel-session', 'Cancel session', `Cancel session “${s.name}”? Every enclosure still recording stops.`, () => api('DELETE', path)) : null,
        !running && !s.archived ? act('archive', 'Archive', null, () => api('DELETE', `${path}?archive=true`)) : null,
        s.archived ? act('unarchive', 'Unarchive', null, () => api('POST', `${path}/unarchive`)) : null)),
    running ? progress(sessionProgress(s), 'session progress') : null);
    const counts = countBy(s.device_statuses, 'status');
    fill(facts, h('dl', { class: 'facts' },
      fact('Duration', fmtDuration(s.duration)), fact('Frame rate', `${s.target_fps} fps`),
      fact('Hourly fragments', s.fragment_hourly ? 'yes' : 'no'), fact('Filter', s.apply_filter ? 'on' : 'off'),
      fact('Created', `${fmtTime(s.creation_time)}${s.created_by ? ` by ${s.created_by}` : ''}`),
      running ? fact('Planned end', h('span', { id: 'planned-end' }, `${fmtTime(plannedEnd(s).toISOString())} (${fmtDuration(Math.max(0, Math.round((plannedEnd(s) - Date.now()) / 1000)))} left)`)) : null,
      fact('Ended', s.ended_at ? fmtTime(s.ended_at) : running ? 'running' : '–'),
      s.canceled_by ? fact('Canceled by', s.canceled_by) : null,
      s.template ? fact('Template', h('a', { href: `#/templates/${s.template.id}` }, `${s.template.name} v${s.template.version}`)) : null,
      fact('Enclosures', Object.keys(counts).sort().map((k) => h('span', { class: 'chip' }, badge(k), ` ${counts[k]} `)))));

    fill(devices, table([
      { label: 'Enclosure', cell: (ds) => h('a', { href: `#/enclosures/${ds.device.id}` }, ds.device.name) },
      { label: 'Prefix', cell: (ds) => ds.filename_prefix || '–' },
      { label: 'Status', cell: (ds) => h('span', {}, badge(ds.status), ds.device.state === 'DOWN' && ['PENDING', 'RECORDING'].includes(ds.status) ? badge('DOWN') : null) },
      { label: 'Progress', cell: (ds) => progress(deviceProgress(ds, s), `progress of ${ds.device.name}`) },
      { label: 'Recorded', cell: (ds) => `${fmtDuration(recordedSeconds(ds))}${ds.segments > 1 ? ` in ${ds.segments} segments` : ''}` },
      { label: 'Subject', cell: (ds) => subjectCell(ds, () => editSubject(ds, path, subjectPanel, refresh)) },
      { label: 'Reason', cell: (ds) => ds.message || '' },
      s.device_statuses.some((ds) => ds.files_summary) ? { label: 'Files', cell: filesSummary } : null,
      { label: 'Actions', sort: false, cell: (ds) => deviceActions({ ...ds, session_running: running }, path) },
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

/** A download of the session's manifest as it is now (fmt: json or csv). */
function manifestButton(s, fmt, flash) {
  const b = h('button', { type: 'button', class: 'btn btn-secondary', id: `manifest-${fmt}` }, `Manifest (${fmt.toUpperCase()})`);
  b.addEventListener('click', async () => {
    try {
      await busy(b, () => download(`/api/recording-session/${s.id}/manifest.${fmt}`, `session-${s.id}-manifest.${fmt}`));
    } catch (err) {
      fill(flash, errorBox(err));
    }
  });
  return b;
}

/** An enclosure's subject in a few words, and the button that edits it. */
function subjectCell(ds, onEdit) {
  const sub = ds.subject;
  const text = sub ? [sub.subject_ids.join(', '), sub.strain, sub.sex, sub.cage && `cage ${sub.cage}`].filter(Boolean).join(' · ') : '';
  return h('span', { class: 'subject', id: `subject-text-${ds.device.id}` }, text || '–', ' ',
    h('button', { type: 'button', class: 'btn btn-small btn-secondary', id: `subject-edit-${ds.device.id}`, onclick: onEdit }, 'Edit'));
}

/** The form that edits an enclosure's subject (PATCH), during the run or after it. */
function editSubject(ds, path, panel, refresh) {
  const sub = ds.subject || {};
  const ids = h('input', { type: 'text', maxlength: 200, value: (sub.subject_ids || []).join(', ') });
  const strain = h('input', { type: 'text', maxlength: 100, value: sub.strain || '' });
  const sex = h('select', {}, ['', 'female', 'male', 'unknown'].map((v) => h('option', { value: v, selected: (sub.sex || '') === v }, v || 'not stated')));
  const born = h('input', { type: 'date', value: sub.date_of_birth || '' });
  const cage = h('input', { type: 'text', maxlength: 100, value: sub.cage || '' });
  const notes = h('textarea', { rows: 2 }, sub.notes || '');
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Save subject');
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => fill(panel) }, 'Cancel');
  const form = h('form', { novalidate: true, id: 'subject-form', 'aria-label': `Subject in ${ds.device.name}` },
    h('h3', {}, `Subject in ${ds.device.name}`), h('div', { class: 'form-error' }),
    field('Subject id(s), comma-separated', ids, 'subject_ids'), field('Strain', strain, 'strain'), field('Sex', sex, 'sex'),
    field('Date of birth', born, 'date_of_birth'), field('Cage', cage, 'cage'), field('Notes', notes, 'notes'),
    h('div', { class: 'actions' }, submit, cancel));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(form);
    const body = { subject_ids: ids.value.split(',').map((x) => x.trim()).filter(Boolean), strain: strain.value.trim(),
      sex: sex.value, date_of_birth: born.value, cage: cage.value.trim(), notes: notes.value };
    try {
      await busy(submit, () => api('PATCH', `${path}/device-status/${ds.device.id}/subject`, body), 'Saving…');
      fill(panel, notice(`Subject in ${ds.device.name} saved.`, 'success'));
      await refresh();
    } catch (err) {
      showErrors(form, err);
    }
  });
  fill(panel, form);
  ids.focus();
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
