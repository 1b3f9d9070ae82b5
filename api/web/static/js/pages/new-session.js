// The new-session form: settings, enclosures chosen with a filter, a file prefix for each
// (typed, or pasted in bulk), busy and DOWN enclosures flagged before submitting, and the
// server's validation messages next to the fields they are about. Subjects (id and strain) per
// enclosure, typed or pasted in bulk. ?template=ID starts from a template's latest version (its
// prefix pattern fills the prefixes left empty); ?clone=ID pre-fills from a past session.
import { api, idempotencyKey } from '../api.js';
import { h, fill, field, showErrors, busy, errorBox, notice, badge, fmtMB, section, hashQuery } from '../dom.js';
import { deviceFilter, fpsOf, admissionOf } from './enclosures.js';
import { lowDisk } from '../model.js';

export async function newSession(main) {
  const devices = await api('GET', '/api/device');
  const byId = new Map(devices.map((d) => [d.id, d]));
  const selected = []; // device ids in the order they were chosen: bulk prefixes follow it
  const prefixes = new Map(); // device id -> prefix input, kept while filtering
  const subjects = new Map(); // device id -> {ids, strain} inputs, and the rest of a cloned subject
  const q = hashQuery();
  const draft = q.get('clone') ? await api('GET', `/api/recording-session/${encodeURIComponent(q.get('clone'))}/clone`) : null;
  const templateId = draft?.from_template?.id ?? q.get('template');
  const template = templateId ? await api('GET', `/api/templates/${encodeURIComponent(templateId)}`) : null;
  const version = template && (template.versions.find((v) => v.version === draft?.from_template?.version) || template.versions[0]);

  const name = h('input', { type: 'text', required: true, maxlength: 200 });
  const days = h('input', { type: 'number', min: 0, value: 1, inputmode: 'numeric' });
  const hours = h('input', { type: 'number', min: 0, max: 23, value: 0, inputmode: 'numeric' });
  const minutes = h('input', { type: 'number', min: 0, max: 59, value: 0, inputmode: 'numeric' });
  const fps = h('input', { type: 'number', min: 1, value: 30, inputmode: 'numeric' });
  const hourly = h('input', { type: 'checkbox', checked: true });
  const filterOn = h('input', { type: 'checkbox' });
  const bulk = h('textarea', { rows: 4, placeholder: 'NV1 cage01\nNV2 cage02\n…or one prefix per line, in the order chosen' });
  const bulkResult = h('div', { 'aria-live': 'polite' });
  const bulkSubjects = h('textarea', { rows: 4, placeholder: 'NV1 M1 C57BL/6J\nNV2 M2 C57BL/6J\n…or “subject strain” per line, in the order chosen' });
  const bulkSubjectsResult = h('div', { 'aria-live': 'polite' });
  const rows = h('div');
  const chosen = h('p', { class: 'muted', 'aria-live': 'polite' });
  const flags = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Start session');
  // One key per opening of the form: a double click (or a retry after a lost reply) gets the
  // session the first submit created; a refused submit stored nothing, so the key stays good.
  const key = idempotencyKey();

  const prefixInput = (d) => {
    if (!prefixes.has(d.id)) {
      prefixes.set(d.id, h('input', { type: 'text', maxlength: 90, class: 'prefix', 'aria-label': `File prefix for ${d.name}`,
        value: version ? '' : d.name.toLowerCase(), placeholder: version ? version.prefix_pattern : '' }));
    }
    return prefixes.get(d.id);
  };

  const subjectInputs = (d) => {
    if (!subjects.has(d.id)) {
      subjects.set(d.id, {
        ids: h('input', { type: 'text', maxlength: 200, class: 'subject-ids', id: `subject-${d.id}`, 'aria-label': `Subject id(s) in ${d.name}, comma-separated`, placeholder: 'subject id(s)' }),
        strain: h('input', { type: 'text', maxlength: 100, class: 'subject-strain', id: `strain-${d.id}`, 'aria-label': `Strain in ${d.name}`, placeholder: 'strain' }),
        rest: {},
      });
    }
    return subjects.get(d.id);
  };

  // subjectOf is the device_spec subject of an enclosure, or undefined when none is typed.
  const subjectOf = (id) => {
    const sub = subjects.get(id);
    if (!sub) return undefined;
    const ids = sub.ids.value.split(',').map((x) => x.trim()).filter(Boolean);
    const strain = sub.strain.value.trim();
    if (!ids.length && !strain && !Object.keys(sub.rest).length) return undefined;
    return { ...sub.rest, subject_ids: ids, strain };
  };

  const toggle = (id, on) => {
    const i = selected.indexOf(id);
    if (on && i < 0) selected.push(id);
    if (!on && i >= 0) selected.splice(i, 1);
  };

  const drawRows = () => {
    const shown = devices.filter(filter.matches);
    const all = shown.length > 0 && shown.every((d) => selected.includes(d.id));
    const allBox = h('input', { type: 'checkbox', checked: all, 'aria-label': 'Choose every enclosure shown', onchange: (e) => {
      shown.forEach((d) => toggle(d.id, e.target.checked));
      redraw();
    } });
    fill(rows, shown.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'chooser' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, allBox), ['Enclosure', 'Location', 'State', 'Free disk', 'FPS', 'File prefix', 'Subject'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, shown.map((d) => {
        const on = selected.includes(d.id);
        const box = h('input', { type: 'checkbox', checked: on, id: `pick-${d.id}`, onchange: (e) => { toggle(d.id, e.target.checked); redraw(); } });
        const prefix = prefixInput(d);
        prefix.disabled = !on;
        const sub = subjectInputs(d);
        sub.ids.disabled = !on;
        sub.strain.disabled = !on;
        if (on) prefix.setAttribute('aria-describedby', `prefix-err-${d.id}`);
        // The server names the i-th entry of device_spec; the slot follows the selection order.
        const at = selected.indexOf(d.id);
        return h('tr', { class: on ? 'row-selected' : '' },
          h('td', {}, box),
          h('td', {}, h('label', { for: box.id }, d.name)),
          h('td', {}, d.location || '–'),
          h('td', {}, badge(d.state)),
          h('td', { class: 'num' }, h('span', { class: lowDisk(d) ? 'warn-text' : '' }, fmtMB(d.system_info?.free_disk))),
          h('td', { class: 'num' }, fpsOf(d)),
          h('td', {}, prefix, at >= 0 ? h('span', { class: 'field-error', 'data-error-for': `device_spec[${at}].filename_prefix`, id: `prefix-err-${d.id}` }) : null,
            at >= 0 ? h('span', { class: 'field-error', 'data-error-for': `device_spec[${at}].device_id`, id: `device-err-${d.id}` }) : null),
          h('td', { class: 'subject' }, sub.ids, sub.strain,
            at >= 0 ? h('span', { class: 'field-error', 'data-error-for': `device_spec[${at}].subject.subject_ids`, id: `subject-err-${d.id}` }) : null,
            at >= 0 ? h('span', { class: 'field-error', 'data-error-for': `device_spec[${at}].subject.strain`, id: `strain-err-${d.id}` }) : null));
      })))) : h('p', { class: 'empty' }, devices.length ? 'No enclosure matches the filter.' : 'No enclosure has reported yet.'));
  };

  const drawFlags = () => {
    const picked = selected.map((id) => byId.get(id));
    chosen.textContent = `${picked.length} enclosure${picked.length === 1 ? '' : 's'} chosen`;
    const busyOnes = picked.filter((d) => d.state === 'BUSY');
    const down = picked.filter((d) => d.state === 'DOWN');
    const low = picked.filter(lowDisk);
    const unadmitted = picked.filter(admissionOf);
    fill(flags,
      unadmitted.length ? notice(`Not admitted, the session will be refused: ${unadmitted.map((d) => `${d.name} (${admissionOf(d).toLowerCase()})`).join(', ')}`, 'error') : null,
      busyOnes.length ? notice(`Busy in another session (they will be listed FAILED): ${busyOnes.map((d) => d.name).join(', ')}`, 'warning') : null,
      down.length ? notice(`DOWN (they start when they come back): ${down.map((d) => d.name).join(', ')}`, 'warning') : null,
      low.length ? notice(`Low on disk: ${low.map((d) => d.name).join(', ')}`, 'warning') : null);
  };

  const redraw = () => { drawRows(); drawFlags(); };
  const filter = deviceFilter(drawRows);

  // A bulk paste: each line “NAME values…” (chooses that enclosure) or just the values, given
  // to the chosen enclosures in the order chosen; apply(d, values) says whether it took them;
  // what is the thing applied, singular and plural.
  const applyLines = (text, apply, what, result) => {
    const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
    const byName = new Map(devices.map((d) => [d.name.toLowerCase(), d]));
    let named = 0, ordered = 0;
    const unknown = [];
    lines.forEach((line) => {
      const words = line.split(/\s+/);
      const d = byName.get(words[0].toLowerCase());
      if (d && words.length > 1) {
        toggle(d.id, true);
        if (apply(d, words.slice(1))) named++;
        else unknown.push(line);
        return;
      }
      const id = selected[ordered];
      if (id !== undefined && apply(byId.get(id), words)) ordered++;
      else unknown.push(line);
    });
    redraw();
    const n = named + ordered;
    fill(result, notice(`Applied ${n} ${n === 1 ? what[0] : what[1]}.${unknown.length ? ` Not used (unknown enclosure or more lines than chosen enclosures): ${unknown.join(', ')}` : ''}`, unknown.length ? 'warning' : 'success'));
  };
  const applyBulk = () => applyLines(bulk.value, (d, words) => {
    if (words.length !== 1) return false; // a prefix has no spaces
    prefixInput(d).value = words[0];
    return true;
  }, ['prefix', 'prefixes'], bulkResult);
  const applyBulkSubjects = () => applyLines(bulkSubjects.value, (d, words) => {
    const sub = subjectInputs(d);
    sub.ids.value = words[0];
    sub.strain.value = words.slice(1).join(' ');
    return true;
  }, ['subject', 'subjects'], bulkSubjectsResult);

  const num = (el) => Number.parseInt(el.value || '0', 10) || 0;
  const duration = h('div', { class: 'duration' },
    field('Days', days, 'duration-days'), field('Hours', hours, 'duration-hours'), field('Minutes', minutes, 'duration-minutes'));

  const form = h('form', { novalidate: true },
    h('h1', {}, 'New recording session'),
    version ? notice(`From template “${template.name}” version ${version.version}: file prefixes left empty follow its pattern ${version.prefix_pattern}`, 'info') : null,
    draft ? notice(`Pre-filled from session ${draft.cloned_from}.${draft.warnings.length ? ` ${draft.warnings.join(' ')}` : ''}`, draft.warnings.length ? 'warning' : 'info') : null,
    h('div', { class: 'form-error' }),
    section('Settings',
      field('Name', name, 'name'),
      h('fieldset', {}, h('legend', {}, 'Duration'), duration, h('span', { class: 'field-error', 'data-error-for': 'duration', id: 'duration-err' })),
      field('Frame rate (fps)', fps, 'target_fps'),
      h('div', { class: 'checks' }, h('label', {}, hourly, ' Split into hourly files'), h('label', {}, filterOn, ' Apply filter'))),
    section('Enclosures',
      filter.el, chosen, h('span', { class: 'field-error', 'data-error-for': 'device_spec', id: 'device_spec-err' }), rows,
      h('details', { class: 'bulk' }, h('summary', {}, 'Paste many prefixes at once'),
        field('Prefixes', bulk, 'bulk', 'One line each: “NAME prefix” (chooses that enclosure), or just the prefix, applied to the chosen enclosures in the order you chose them.'),
        h('button', { type: 'button', class: 'btn btn-secondary', onclick: applyBulk }, 'Apply prefixes'), bulkResult),
      h('details', { class: 'bulk', id: 'bulk-subjects' }, h('summary', {}, 'Paste many subjects at once'),
        field('Subjects', bulkSubjects, 'bulk-subjects', 'One line each: “NAME subject strain” (chooses that enclosure), or “subject strain”, applied to the chosen enclosures in the order you chose them. Sex, date of birth, cage and notes are edited on the session page.'),
        h('button', { type: 'button', class: 'btn btn-secondary', id: 'apply-subjects', onclick: applyBulkSubjects }, 'Apply subjects'), bulkSubjectsResult)),
    flags,
    h('div', { class: 'actions' }, submit));
  duration.setAttribute('aria-describedby', 'duration-err');

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showErrors(form);
    const body = {
      name: name.value.trim(),
      duration: num(days) * 86400 + num(hours) * 3600 + num(minutes) * 60,
      target_fps: num(fps),
      fragment_hourly: hourly.checked,
      apply_filter: filterOn.checked,
      device_spec: selected.map((id) => ({ device_id: id, filename_prefix: prefixes.get(id).value.trim(), subject: subjectOf(id) })),
    };
    if (version) body.version = version.version;
    const path = version ? `/api/templates/${template.id}/sessions` : '/api/recording-session';
    try {
      const s = await busy(submit, () => api('POST', path, body, { 'Idempotency-Key': key }), 'Starting…');
      if (s.warnings?.length) sessionStorage.setItem(`mba.warnings.${s.id}`, JSON.stringify(s.warnings));
      location.hash = `#/sessions/${s.id}`;
    } catch (err) {
      showErrors(form, err);
      const first = form.querySelector('[aria-invalid], .field-error:not(:empty)');
      (first || form.querySelector('.form-error')).scrollIntoView({ block: 'center' });
    }
  });

  // Pre-fill: a clone's draft, or the template's version.
  const from = draft || (version && { name: '', ...version, device_spec: version.device_ids.map((d) => ({ device_id: d })) });
  if (from) {
    name.value = from.name;
    days.value = Math.floor(from.duration / 86400);
    hours.value = Math.floor((from.duration % 86400) / 3600);
    minutes.value = Math.floor((from.duration % 3600) / 60);
    fps.value = from.target_fps;
    hourly.checked = from.fragment_hourly;
    filterOn.checked = from.apply_filter;
    for (const ds of from.device_spec) {
      const d = byId.get(ds.device_id);
      if (!d) continue;
      toggle(d.id, true);
      if (draft) prefixInput(d).value = ds.filename_prefix || '';
      if (ds.subject) {
        const { subject_ids: ids, strain, ...rest } = ds.subject;
        const sub = subjectInputs(d);
        sub.ids.value = ids.join(', ');
        sub.strain.value = strain;
        sub.rest = rest;
      }
    }
  }

  fill(main, form);
  redraw();
  if (!devices.length) main.prepend(errorBox({ message: 'No enclosure is known yet: they appear on their first heartbeat.' }));
  name.focus();
}
