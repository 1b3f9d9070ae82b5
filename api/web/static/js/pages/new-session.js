// The new-session form: settings, enclosures chosen with a filter, a file prefix for each
// (typed, or pasted in bulk), busy and DOWN enclosures flagged before submitting, and the
// server's validation messages next to the fields they are about.
import { api, idempotencyKey } from '../api.js';
import { h, fill, field, showErrors, busy, errorBox, notice, badge, fmtMB, section } from '../dom.js';
import { deviceFilter, fpsOf, admissionOf } from './enclosures.js';
import { lowDisk } from '../model.js';

export async function newSession(main) {
  const devices = await api('GET', '/api/device');
  const byId = new Map(devices.map((d) => [d.id, d]));
  const selected = []; // device ids in the order they were chosen: bulk prefixes follow it
  const prefixes = new Map(); // device id -> prefix input, kept while filtering

  const name = h('input', { type: 'text', required: true, maxlength: 200 });
  const days = h('input', { type: 'number', min: 0, value: 1, inputmode: 'numeric' });
  const hours = h('input', { type: 'number', min: 0, max: 23, value: 0, inputmode: 'numeric' });
  const minutes = h('input', { type: 'number', min: 0, max: 59, value: 0, inputmode: 'numeric' });
  const fps = h('input', { type: 'number', min: 1, value: 30, inputmode: 'numeric' });
  const hourly = h('input', { type: 'checkbox', checked: true });
  const filterOn = h('input', { type: 'checkbox' });
  const bulk = h('textarea', { rows: 4, placeholder: 'NV1 cage01\nNV2 cage02\n…or one prefix per line, in the order chosen' });
  const bulkResult = h('div', { 'aria-live': 'polite' });
  const rows = h('div');
  const chosen = h('p', { class: 'muted', 'aria-live': 'polite' });
  const flags = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Start session');
  // One key per opening of the form: a double click (or a retry after a lost reply) gets the
  // session the first submit created; a refused submit stored nothing, so the key stays good.
  const key = idempotencyKey();

  const prefixInput = (d) => {
    if (!prefixes.has(d.id)) {
      prefixes.set(d.id, h('input', { type: 'text', maxlength: 90, class: 'prefix', 'aria-label': `File prefix for ${d.name}`, value: d.name.toLowerCase() }));
    }
    return prefixes.get(d.id);
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
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, allBox), ['Enclosure', 'Location', 'State', 'Free disk', 'FPS', 'File prefix'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, shown.map((d) => {
        const on = selected.includes(d.id);
        const box = h('input', { type: 'checkbox', checked: on, id: `pick-${d.id}`, onchange: (e) => { toggle(d.id, e.target.checked); redraw(); } });
        const prefix = prefixInput(d);
        prefix.disabled = !on;
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
            at >= 0 ? h('span', { class: 'field-error', 'data-error-for': `device_spec[${at}].device_id`, id: `device-err-${d.id}` }) : null));
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

  const applyBulk = () => {
    const lines = bulk.value.split('\n').map((l) => l.trim()).filter(Boolean);
    const byName = new Map(devices.map((d) => [d.name.toLowerCase(), d]));
    let named = 0, ordered = 0;
    const unknown = [];
    lines.forEach((line) => {
      const [first, ...rest] = line.split(/\s+/);
      const d = byName.get(first.toLowerCase());
      if (d && rest.length) {
        toggle(d.id, true);
        prefixInput(d).value = rest.join(' ');
        named++;
      } else if (!rest.length) {
        const id = selected[ordered];
        if (id === undefined) unknown.push(line);
        else { prefixInput(byId.get(id)).value = line; ordered++; }
      } else {
        unknown.push(line);
      }
    });
    redraw();
    fill(bulkResult, notice(`Applied ${named + ordered} prefix${named + ordered === 1 ? '' : 'es'}.${unknown.length ? ` Not used (unknown enclosure or more prefixes than chosen enclosures): ${unknown.join(', ')}` : ''}`, unknown.length ? 'warning' : 'success'));
  };

  const num = (el) => Number.parseInt(el.value || '0', 10) || 0;
  const duration = h('div', { class: 'duration' },
    field('Days', days, 'duration-days'), field('Hours', hours, 'duration-hours'), field('Minutes', minutes, 'duration-minutes'));

  const form = h('form', { novalidate: true },
    h('h1', {}, 'New recording session'),
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
        h('button', { type: 'button', class: 'btn btn-secondary', onclick: applyBulk }, 'Apply prefixes'), bulkResult)),
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
      device_spec: selected.map((id) => ({ device_id: id, filename_prefix: prefixes.get(id).value.trim() })),
    };
    try {
      const s = await busy(submit, () => api('POST', '/api/recording-session', body, { 'Idempotency-Key': key }), 'Starting…');
      if (s.warnings?.length) sessionStorage.setItem(`mba.warnings.${s.id}`, JSON.stringify(s.warnings));
      location.hash = `#/sessions/${s.id}`;
    } catch (err) {
      showErrors(form, err);
      const first = form.querySelector('[aria-invalid], .field-error:not(:empty)');
      (first || form.querySelector('.form-error')).scrollIntoView({ block: 'center' });
    }
  });

  fill(main, form);
  redraw();
  if (!devices.length) main.prepend(errorBox({ message: 'No enclosure is known yet: they appear on their first heartbeat.' }));
  name.focus();
}
