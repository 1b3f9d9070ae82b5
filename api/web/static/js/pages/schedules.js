// Schedules: sessions at a later time or recurring (Temporal Schedules). The list with each
// one's next run, pause/resume/trigger/delete, and the form with the three kinds; a
// schedule's page lists its next runs, what each fire did and the sessions it created. Every
// time is the lab's (GET /api/info time_zone), and the page says so.
import { api } from '../api.js';
import { h, fill, table, badge, errorBox, notice, section, busy, field, showErrors, labTime } from '../dom.js';

const dayNames = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** What a schedule's spec says, in a few words. */
export function whenText(spec) {
  const limit = [spec.end_at ? `until ${spec.end_at.replace('T', ' ')}` : '', spec.count ? `${spec.count} times` : ''].filter(Boolean).join(', ');
  let s;
  switch (spec.kind) {
    case 'once': s = `once at ${(spec.at || '').replace('T', ' ')}`; break;
    case 'calendar': s = `${spec.days_of_week?.length ? spec.days_of_week.map((d) => dayNames[d]).join(', ') : 'every day'} at ${spec.time_of_day}`; break;
    default: s = `every ${spec.every >= 60 && spec.every % 60 === 0 ? `${spec.every / 60} min` : `${spec.every} s`}`;
  }
  return limit ? `${s} (${limit})` : s;
}

const busyLabels = { skip_enclosure: 'leave busy or DOWN enclosures out', skip_run: 'skip the run', wait: 'wait, then leave them out' };

/** The buttons of one schedule; after an action, done(message) redraws. */
function actions(x, done, flash) {
  const act = (label, path, method = 'POST', body) => {
    const b = h('button', { type: 'button', class: 'btn btn-small btn-secondary', 'data-action': path || 'delete', 'data-schedule': String(x.id) }, label);
    b.addEventListener('click', async () => {
      if (!path && !confirm(`Delete schedule “${x.name}”? The sessions it created stay.`)) return;
      try {
        await busy(b, () => api(method, `/api/schedules/${x.id}${path ? `/${path}` : ''}`, body?.()));
        await done(`Schedule “${x.name}”: ${path ? `${path} done` : 'deleted'}.`, !path);
      } catch (err) {
        fill(flash, errorBox(err));
      }
    });
    return b;
  };
  return h('span', { class: 'actions-inline' },
    x.paused ? act('Resume', 'resume') : act('Pause', 'pause', 'POST', () => ({ note: prompt('Why pause it? (optional)') || '' })),
    act('Run now', 'trigger'),
    act('Delete', '', 'DELETE'));
}

export async function scheduleList(main, _params, ctx) {
  const [info, devices, templates] = await Promise.all([api('GET', '/api/info'), api('GET', '/api/device'), api('GET', '/api/templates')]);
  const tz = info.time_zone || 'UTC';
  const names = new Map(templates.map((t) => [t.id, t.name]));
  const flash = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const refresh = async () => {
    const schedules = await api('GET', '/api/schedules');
    fill(list, table([
      { label: 'Name', cell: (x) => h('a', { href: `#/schedules/${x.id}` }, x.name) },
      { label: 'When', cell: (x) => whenText(x.spec) },
      { label: 'Each session', cell: (x) => sessionText(x, names) },
      { label: 'Next run', cell: (x) => (x.paused ? '–' : labTime(x.next_runs[0], tz)) },
      { label: 'State', cell: (x) => h('span', {}, badge(x.paused ? 'PAUSED' : 'ACTIVE'), x.note ? ` ${x.note}` : '', x.temporal_error ? ` (${x.temporal_error})` : '') },
      { label: 'Owner', cell: (x) => x.owner || '–' },
      { label: '', sort: false, cell: (x) => actions(x, async (msg) => { fill(flash, notice(msg, 'success')); await refresh(); }, flash) },
    ], schedules.map((x) => ({ ...x, _rowClass: `schedule-row${x.paused ? ' row-paused' : ''}` })), 'No schedule yet.'));
  };
  fill(main, h('h1', {}, 'Schedules'),
    h('p', { class: 'muted', id: 'schedule-tz' }, `Times are in the lab's time zone, ${tz}.`),
    flash, section('Schedules', list), newScheduleForm(devices, templates, tz, async (x) => { fill(flash, notice(`Schedule “${x.name}” created.`, 'success')); await refresh(); }));
  await ctx.every(5000, refresh);
}

/** What each fire of schedule x creates: a template version (names: id -> name), or its own settings. */
function sessionText(x, names) {
  const t = x.spec.template;
  if (t) return h('span', { class: 'schedule-template' }, 'template ', h('a', { href: `#/templates/${t.id}` }, names.get(t.id) || `#${t.id}`), ` v${t.version}`);
  const s = x.session || {};
  return `${Math.round((s.duration || 0) / 60)} min at ${s.target_fps || '?'} fps, ${(s.device_spec || []).length} enclosures`;
}

/** The form of a new schedule: the three kinds, the end, the busy policy, and the session each
 * fire creates: its own settings, or a template (pinned to the version latest now). */
function newScheduleForm(devices, templates, tz, created) {
  const name = h('input', { type: 'text', maxlength: 200, required: true });
  const kind = h('select', {}, [['interval', 'Repeat every …'], ['calendar', 'Every day at …'], ['once', 'Once, later']].map(([v, l]) => h('option', { value: v }, l)));
  const at = h('input', { type: 'datetime-local' });
  const timeOfDay = h('input', { type: 'time', value: '18:00' });
  const everyMin = h('input', { type: 'number', min: 1, value: 120, inputmode: 'numeric' });
  const endAt = h('input', { type: 'datetime-local' });
  const count = h('input', { type: 'number', min: 0, value: 0, inputmode: 'numeric' });
  const busyPolicy = h('select', {}, Object.entries(busyLabels).map(([v, l]) => h('option', { value: v }, l)));
  const waitMin = h('input', { type: 'number', min: 1, value: 15, inputmode: 'numeric' });
  const minutes = h('input', { type: 'number', min: 1, value: 10, inputmode: 'numeric' });
  const fps = h('input', { type: 'number', min: 1, value: 30, inputmode: 'numeric' });
  const picks = devices.map((d) => ({ d, box: h('input', { type: 'checkbox', id: `sched-pick-${d.id}` }) }));
  const from = h('select', { id: 'f-session-from' }, h('option', { value: '' }, 'the settings below'),
    templates.filter((t) => !t.archived).map((t) => h('option', { value: String(t.id), 'data-version': String(t.latest_version) }, `template ${t.name} (v${t.latest_version})`)));
  const own = h('div', {},
    field('Duration (minutes)', minutes, 'session.duration'), field('Frame rate (fps)', fps, 'session.target_fps'),
    h('div', { class: 'checks' }, picks.map(({ d, box }) => h('label', {}, box, ` ${d.name}`))),
    h('span', { class: 'field-error', 'data-error-for': 'session.device_spec' }));
  const fromHint = h('p', { class: 'muted', id: 'session-from-hint' });
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Create schedule');
  const parts = { once: field(`At (${tz})`, at, 'at'), calendar: field(`Time of day (${tz})`, timeOfDay, 'time_of_day'),
    interval: field('Every (minutes)', everyMin, 'every') };
  const wait = field('Wait at most (minutes)', waitMin, 'wait_limit');
  const show = () => {
    Object.entries(parts).forEach(([k, el]) => { el.hidden = k !== kind.value; });
    wait.hidden = busyPolicy.value !== 'wait';
    own.hidden = from.value !== '';
    const opt = from.selectedOptions[0];
    fromHint.textContent = from.value ? `Each fire runs version ${opt.dataset.version} of the template, its enclosures and prefixes; a later edit of the template makes a new version and does not change this schedule.` : '';
  };
  from.addEventListener('input', show);
  kind.addEventListener('change', show);
  busyPolicy.addEventListener('change', show);
  const num = (el) => Number.parseInt(el.value || '0', 10) || 0;
  const form = h('form', { novalidate: true, id: 'new-schedule' },
    h('div', { class: 'form-error' }),
    field('Name', name, 'name'),
    field('Kind', kind, 'kind'), parts.once, parts.calendar, parts.interval,
    field(`End (${tz}, optional)`, endAt, 'end_at'), field('At most this many runs (0: no limit)', count, 'count'),
    field('When an enclosure is busy or DOWN', busyPolicy, 'busy_policy'), wait,
    h('fieldset', {}, h('legend', {}, 'Each session'),
      field('Settings from', from, 'template'), fromHint, own),
    h('div', { class: 'actions' }, submit));
  show();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(form);
    const body = {
      name: name.value.trim(), kind: kind.value, busy_policy: busyPolicy.value,
      end_at: endAt.value || undefined, count: num(count) || undefined,
    };
    if (from.value) body.template = { id: Number(from.value), version: Number(from.selectedOptions[0].dataset.version) };
    else {
      body.session = { name: name.value.trim(), duration: num(minutes) * 60, target_fps: num(fps), fragment_hourly: true,
        device_spec: picks.filter((p) => p.box.checked).map(({ d }) => ({ device_id: d.id, filename_prefix: d.name.toLowerCase() })) };
    }
    if (kind.value === 'once') body.at = at.value;
    if (kind.value === 'calendar') body.time_of_day = timeOfDay.value;
    if (kind.value === 'interval') body.every = num(everyMin) * 60;
    if (busyPolicy.value === 'wait') body.wait_limit = num(waitMin) * 60;
    try {
      const x = await busy(submit, () => api('POST', '/api/schedules', body), 'Creating…');
      name.value = '';
      await created(x);
    } catch (err) {
      showErrors(form, err);
    }
  });
  return section('New schedule', form);
}

export async function scheduleDetail(main, { id }, ctx) {
  const [info, templates] = await Promise.all([api('GET', '/api/info'), api('GET', '/api/templates')]);
  const tz = info.time_zone || 'UTC';
  const names = new Map(templates.map((t) => [t.id, t.name]));
  const flash = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  fill(main, flash, body);
  const refresh = async () => {
    const x = await api('GET', `/api/schedules/${id}`);
    fill(body,
      h('h1', {}, x.name),
      h('p', {}, whenText(x.spec), ` — times in ${tz}. `, badge(x.paused ? 'PAUSED' : 'ACTIVE'), x.note ? ` ${x.note}` : '',
        ' ', actions(x, async (msg, deleted) => {
          if (deleted) { location.hash = '#/schedules'; return; }
          fill(flash, notice(msg, 'success'));
          await refresh();
        }, flash)),
      h('p', { class: 'muted', id: 'schedule-session' }, 'Each fire creates: ', sessionText(x, names)),
      h('p', { class: 'muted' }, `Owner ${x.owner || '–'} · busy or DOWN enclosures: ${busyLabels[x.spec.busy_policy] || x.spec.busy_policy}`,
        x.remaining_runs !== null ? ` · ${x.remaining_runs} runs left` : ''),
      x.temporal_error ? notice(x.temporal_error, 'warning') : null,
      section('Next runs', x.paused ? h('p', { class: 'empty' }, 'Paused: no run until it is resumed.')
        : x.next_runs.length ? h('ul', { id: 'next-runs' }, x.next_runs.slice(0, 5).map((t) => h('li', {}, labTime(t, tz)))) : h('p', { class: 'empty' }, 'No run ahead.')),
      section('Fires', table([
        { label: 'Fired', cell: (f) => labTime(f.fired_at, tz) },
        { label: 'Outcome', cell: (f) => badge(f.outcome.toUpperCase()) },
        { label: 'What happened', cell: (f) => f.message },
        { label: 'Session', cell: (f) => (f.session_id ? h('a', { href: `#/sessions/${f.session_id}` }, `#${f.session_id}`) : '–') },
      ], x.fires || [], 'No fire yet.')),
      section('Sessions it created', table([
        { label: 'Session', cell: (s) => h('a', { href: `#/sessions/${s.id}` }, `#${s.id} ${s.name}`) },
        { label: 'Status', cell: (s) => badge(s.status) },
        { label: 'Created', cell: (s) => labTime(s.creation_time, tz) },
      ], x.sessions || [], 'None yet.')));
  };
  await ctx.every(5000, refresh);
}
