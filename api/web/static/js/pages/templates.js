// Templates: named protocols, versioned. The list with a create form; one template's versions
// (and the sessions each ran), its edit form (saving makes the next version), archive, and
// "New session from template".
import { api } from '../api.js';
import { h, fill, table, badge, fmtTime, fmtDuration, errorBox, notice, section, field, showErrors, busy } from '../dom.js';

export const patternHint = 'Placeholders: {enclosure} (its name), {subject} (its first subject id), {date} (YYYYMMDD, UTC), {session} (the session number). Example: {subject}_{date}';

export async function templateList(main) {
  const [templates, devices] = await Promise.all([api('GET', '/api/templates'), api('GET', '/api/device')]);
  const form = templateForm(devices, null, 'Create template', async (body) => {
    const t = await api('POST', '/api/templates', body);
    location.hash = `#/templates/${t.id}`;
  });
  fill(main, h('h1', {}, 'Templates'),
    section('Saved protocols', table([
      { label: 'Name', cell: (t) => h('a', { href: `#/templates/${t.id}` }, t.name) },
      { label: 'Version', class: 'num', cell: (t) => `v${t.latest_version}` },
      { label: 'Duration', cell: (t) => fmtDuration(t.versions[0].duration) },
      { label: 'Frame rate', cell: (t) => `${t.versions[0].target_fps} fps` },
      { label: 'Prefix pattern', cell: (t) => h('code', {}, t.versions[0].prefix_pattern) },
      { label: 'Enclosures', class: 'num', cell: (t) => String(t.versions[0].device_ids.length) },
      { label: '', sort: false, cell: (t) => h('a', { href: `#/sessions/new?template=${t.id}`, class: 'btn btn-small', id: `tpl-start-${t.id}` }, 'New session') },
    ], templates, 'No template yet: save a protocol below.')),
    section('New template', form));
}

export async function templateDetail(main, { id }) {
  const [t, devices] = await Promise.all([api('GET', `/api/templates/${id}`), api('GET', '/api/device')]);
  const names = new Map(devices.map((d) => [d.id, d.name]));
  const flash = h('div');
  const latest = t.versions[0];
  const archive = h('button', { type: 'button', class: 'btn btn-secondary', id: 'archive-template' }, 'Archive');
  archive.addEventListener('click', async () => {
    if (!confirm(`Archive template “${t.name}”? Its versions stay for the sessions made from them.`)) return;
    try {
      await busy(archive, () => api('DELETE', `/api/templates/${t.id}`));
      location.hash = '#/templates';
    } catch (err) { fill(flash, errorBox(err)); }
  });
  const edit = templateForm(devices, { name: t.name, ...latest }, 'Save as a new version', async (body) => {
    const next = await api('POST', `/api/templates/${t.id}/versions`, body);
    sessionStorage.setItem('mba.template.saved', `Saved as version ${next.latest_version}.`);
    await templateDetail(main, { id });
  });
  const saved = sessionStorage.getItem('mba.template.saved');
  if (saved) { sessionStorage.removeItem('mba.template.saved'); fill(flash, notice(saved, 'success')); }
  fill(main,
    h('div', { class: 'title-row' }, h('h1', {}, t.name), badge(t.archived ? 'ARCHIVED' : `v${t.latest_version}`), h('span', { class: 'spacer' }),
      h('div', { class: 'actions' }, t.archived ? null : h('a', { href: `#/sessions/new?template=${t.id}`, class: 'btn', id: 'template-new-session' }, 'New session from template'),
        t.archived ? null : archive)),
    flash,
    section('Versions', table([
      { label: 'Version', cell: (v) => `v${v.version}` },
      { label: 'Saved', cell: (v) => `${fmtTime(v.created_at)}${v.created_by ? ` by ${v.created_by}` : ''}` },
      { label: 'Settings', cell: (v) => `${fmtDuration(v.duration)}, ${v.target_fps} fps${v.fragment_hourly ? ', hourly files' : ''}${v.apply_filter ? ', filter' : ''}` },
      { label: 'Prefix pattern', cell: (v) => h('code', {}, v.prefix_pattern) },
      { label: 'Enclosures', cell: (v) => v.device_ids.map((d) => names.get(d) || `#${d}`).join(', ') || '–' },
      { label: 'Sessions run', cell: (v) => (v.sessions.length ? h('ul', { class: 'plain' }, v.sessions.map((x) => h('li', {}, h('a', { href: `#/sessions/${x.id}` }, `#${x.id} ${x.name}`), ' ', badge(x.status)))) : 'none') },
    ], t.versions.map((v) => ({ ...v, _rowClass: `version-${v.version}` })))),
    t.archived ? null : section('Edit (saves a new version; running sessions keep theirs)', edit));
}

/** The settings of a template version; onSave gets the request body. */
function templateForm(devices, v, label, onSave) {
  const name = h('input', { type: 'text', maxlength: 200, value: v?.name || '' });
  const minutes = h('input', { type: 'number', min: 1, value: v ? Math.round(v.duration / 60) : 60, inputmode: 'numeric' });
  const fps = h('input', { type: 'number', min: 1, value: v?.target_fps || 30, inputmode: 'numeric' });
  const hourly = h('input', { type: 'checkbox', checked: v ? v.fragment_hourly : true });
  const filterOn = h('input', { type: 'checkbox', checked: v?.apply_filter });
  const pattern = h('input', { type: 'text', maxlength: 90, value: v?.prefix_pattern || '{enclosure}_{date}' });
  const timeouts = h('textarea', { rows: 2 }, v ? JSON.stringify(v.timeouts) : '{}');
  const notes = h('textarea', { rows: 3 }, v?.notes || '');
  const picked = new Set(v?.device_ids || []);
  const boxes = h('div', { class: 'checks' }, devices.map((d) => h('label', {}, h('input', { type: 'checkbox', class: 'tpl-device', value: d.id, checked: picked.has(d.id) }), ` ${d.name}`)));
  const submit = h('button', { type: 'submit', class: 'btn' }, label);
  const form = h('form', { novalidate: true, class: 'template-form' }, h('div', { class: 'form-error' }),
    field('Name', name, 'name'), field('Duration (minutes)', minutes, 'duration'), field('Frame rate (fps)', fps, 'target_fps'),
    h('div', { class: 'checks' }, h('label', {}, hourly, ' Split into hourly files'), h('label', {}, filterOn, ' Apply filter')),
    field('File prefix pattern', pattern, 'prefix_pattern', patternHint),
    h('fieldset', {}, h('legend', {}, 'Enclosures'), boxes, h('span', { class: 'field-error', 'data-error-for': 'device_ids', id: 'device_ids-err' })),
    field('Per-session timeouts (JSON)', timeouts, 'timeouts', 'As the session settings name them, e.g. {"start_deadline": "10m"}; {} for the server defaults.'),
    field('Notes', notes, 'notes'),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(form);
    let t;
    try { t = JSON.parse(timeouts.value || '{}'); } catch { showErrors(form, { fields: { timeouts: 'must be a JSON object' } }); return; }
    const body = { name: name.value.trim(), duration: (Number.parseInt(minutes.value, 10) || 0) * 60, target_fps: Number.parseInt(fps.value, 10) || 0,
      fragment_hourly: hourly.checked, apply_filter: filterOn.checked, prefix_pattern: pattern.value.trim(),
      device_ids: [...form.querySelectorAll('.tpl-device:checked')].map((b) => Number(b.value)), timeouts: t, notes: notes.value };
    try {
      await busy(submit, () => onSave(body), 'Saving…');
    } catch (err) {
      showErrors(form, err);
    }
  });
  return form;
}
