// Small DOM helpers shared by every page. Text always goes in as text nodes (never innerHTML),
// so names and messages from enclosures cannot inject markup.

/**
 * h('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', child...) builds an element.
 * Attributes named on* become listeners; false/null/undefined attributes and children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the contents of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- formatting ----

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  let s = Math.max(0, Math.round(seconds));
  const parts = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['min', 60]]) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)} ${unit}`);
      s %= n;
    }
  }
  if (s || !parts.length) parts.push(`${s} s`);
  return parts.slice(0, 2).join(' ');
}

export function fmtTime(iso, seconds = false) {
  if (!iso) return '–';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: seconds ? 'medium' : 'short' });
}

/** A time in the lab's time zone tz (GET /api/info time_zone), with the zone's short name. */
export function labTime(iso, tz, seconds = false) {
  if (!iso) return '–';
  // dateStyle/timeStyle cannot be combined with timeZoneName: the fields one by one.
  return new Date(iso).toLocaleString(undefined, { timeZone: tz, year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined, timeZoneName: 'short' });
}

/**
 * The RFC 3339 UTC time of a datetime-local value (2026-12-01T08:30) read as a wall clock in
 * time zone tz, or null for an empty or malformed value. Intl gives the zone's offset at a
 * moment; it is taken twice because the offset at the first guess may not be the one in force
 * at the answer (a daylight-saving change between them).
 */
export function labInstant(local, tz) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?$/.exec(local || '');
  if (!m) return null;
  const wall = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric',
    day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
  const offset = (t) => {
    const p = Object.fromEntries(parts.formatToParts(new Date(t)).map((x) => [x.type, Number(x.value)]));
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - t;
  };
  const first = wall - offset(wall);
  return new Date(wall - offset(first)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function fmtAgo(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  return s < 5 ? 'just now' : `${fmtDuration(s)} ago`;
}

/** Disk sizes arrive in MB (PROTOCOL.md). */
export function fmtMB(mb) {
  if (mb === null || mb === undefined) return '–';
  return mb >= 1000 ? `${(mb / 1000).toFixed(mb >= 100000 ? 0 : 1)} GB` : `${mb} MB`;
}

export function fmtBytes(b) {
  if (b === null || b === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtNumber(n, digits = 1) {
  return n === null || n === undefined ? '–' : Number(n).toFixed(digits);
}

// ---- building blocks ----

/** A coloured state/status label; the text says it, the colour only helps. */
export function badge(word) {
  return h('span', { class: `badge badge-${String(word).toLowerCase()}` }, String(word).replace(/_/g, ' '));
}

/** A progress bar with its percentage as text (and for screen readers). */
export function progress(fraction, label = '') {
  const pct = Math.round(Math.min(1, Math.max(0, fraction || 0)) * 100);
  const fillEl = h('div', { class: 'progress-fill' });
  // CSSOM, not a style attribute: the CSP allows no inline styles, and this is not one.
  fillEl.style.width = `${pct}%`;
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': pct, 'aria-label': label || 'progress' }, fillEl);
  return h('div', { class: 'progress-wrap' }, bar, h('span', { class: 'progress-text' }, `${pct}%`));
}

/**
 * A table: columns are {label, cell: row => node or text, class?}. An empty list shows the
 * empty message instead.
 */
// Natural order: NV2 before NV10, case and accents aside.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Compares two sort keys: numbers as numbers, text in natural order, empty last. */
export function naturalCompare(a, b) {
  const blank = (v) => v === null || v === undefined || v === '' || v === '–';
  if (blank(a) || blank(b)) return blank(a) - blank(b);
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return collator.compare(String(a), String(b));
}

// The sort a person chose, per page and table (the lists redraw every few seconds).
const sortChoices = new Map();

/**
 * A table of rows, each column {label, cell(row), class, sort(row)}: clicking a header sorts by
 * that column (again: the other way), by its sort key or else by the cell's text, in natural
 * order; the choice survives the page's refreshes. Columns with sort: false do not sort.
 */
export function table(columns, rows, empty = 'Nothing to show.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  const key = `${location.hash.split('?')[0]}|${columns.map((c) => c.label).join('|')}`;
  const cells = rows.map((r) => ({ r, tds: columns.map((c) => h('td', { class: c.class }, c.cell(r))) }));
  const tbody = h('tbody');
  const heads = columns.map((c, i) => {
    if (c.sort === false) return h('th', { scope: 'col', class: c.class }, c.label);
    const button = h('button', { type: 'button', class: 'sort', onclick: () => {
      const was = sortChoices.get(key);
      sortChoices.set(key, { col: i, dir: was?.col === i ? -was.dir : 1 });
      draw();
    } }, c.label);
    return h('th', { scope: 'col', class: c.class }, button);
  });
  const sortKey = (c, x, i) => (c.sort ? c.sort(x.r) : x.tds[i].textContent.trim());
  function draw() {
    const choice = sortChoices.get(key);
    let list = cells;
    if (choice && columns[choice.col]) {
      const c = columns[choice.col];
      list = [...cells].sort((x, y) => choice.dir * naturalCompare(sortKey(c, x, choice.col), sortKey(c, y, choice.col)));
    }
    heads.forEach((th, i) => {
      if (columns[i].sort !== false) th.setAttribute('aria-sort', choice?.col === i ? (choice.dir > 0 ? 'ascending' : 'descending') : 'none');
    });
    fill(tbody, list.map((x) => h('tr', { class: x.r._rowClass }, x.tds)));
  }
  draw();
  return h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, heads)), tbody));
}

export function errorBox(err) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, err.message || String(err));
}

export function notice(text, kind = 'info') {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A labelled form field with a slot for the server's message about it (data-error-for). */
export function field(label, input, name, hint) {
  const id = input.id || `f-${name.replace(/[^a-z0-9]/gi, '-')}`;
  input.id = id;
  input.name ||= name;
  const err = h('span', { class: 'field-error', 'data-error-for': name, id: `${id}-err`, 'aria-live': 'polite' });
  input.setAttribute('aria-describedby', `${id}-err`);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', { class: 'hint' }, hint) : null, err);
}

/**
 * Shows an ApiError's field messages next to the fields of form (data-error-for) and the rest
 * in the form's .form-error box. Returns the messages that had no field.
 */
export function showErrors(form, err) {
  for (const el of form.querySelectorAll('[data-error-for]')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const box = form.querySelector('.form-error');
  if (!err) {
    if (box) fill(box);
    return;
  }
  const unplaced = [];
  for (const [name, reason] of Object.entries(err.fields || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      slot.textContent = reason;
      const input = form.querySelector(`[aria-describedby="${slot.id}"]`);
      if (input) input.setAttribute('aria-invalid', 'true');
    } else {
      unplaced.push(`${name}: ${reason}`);
    }
  }
  // With field reasons the message repeats them (for front ends that show only message): the
  // box keeps to those no field shows.
  const placed = Object.keys(err.fields || {}).length > unplaced.length;
  const summary = !Object.keys(err.fields || {}).length ? [err.message] : unplaced.length ? unplaced : [];
  if (placed) summary.unshift('Check the fields marked below.');
  if (box) fill(box, errorBox({ message: summary.join(' · ') }));
}

/**
 * Runs action while button shows it is working (disabled, aria-busy, its label changed), so
 * a long action gives feedback and cannot be clicked twice.
 */
export async function busy(button, action, label = 'Working…') {
  const text = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = label;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = text;
  }
}

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

/** The link to the hash route path with query q (null/empty values left out): #/path?x=1. */
export function hashHref(path, q) {
  const p = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== null && v !== undefined && v !== ''));
  const s = p.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

/** Query parameters of the hash route (#/path?x=1). */
export function hashQuery() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}
