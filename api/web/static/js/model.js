// What the pages derive from API objects: progress of a recording, and the alerts that need a
// person. Kept apart from rendering so every page computes them the same way.
import { fmtTime } from './dom.js';

/** Seconds recorded by one enclosure of a session, including its running segment. */
export function recordedSeconds(ds) {
  const cam = ds.device?.sensor_status?.camera;
  const live = ds.status === 'RECORDING' && ds.device?.session_id === ds.session_id && cam?.recording ? cam.duration || 0 : 0;
  return Math.max(ds.recording_time || 0, live);
}

/** 0..1: how far one enclosure is through the session's duration. */
export function deviceProgress(ds, session) {
  if (ds.status === 'COMPLETE') return 1;
  return session.duration > 0 ? Math.min(1, recordedSeconds(ds) / session.duration) : 0;
}

/** 0..1: the mean progress of the session's enclosures. */
export function sessionProgress(session) {
  const list = session.device_statuses || [];
  if (!list.length) return 0;
  return list.reduce((sum, ds) => sum + deviceProgress(ds, session), 0) / list.length;
}

/**
 * When session is planned to end (a Date): its duration after its first enclosure started
 * recording (after its creation while none has), so a change of duration moves it.
 */
export function plannedEnd(session) {
  const starts = (session.device_statuses || []).map((ds) => ds.started_at).filter(Boolean).map((t) => Date.parse(t));
  const from = starts.length ? Math.min(...starts) : Date.parse(session.creation_time);
  return new Date(from + session.duration * 1000);
}

/** {STATUS: n} over items by key. */
export function countBy(items, key) {
  const counts = {};
  for (const it of items) counts[it[key]] = (counts[it[key]] || 0) + 1;
  return counts;
}

/**
 * The camera as it is now: a DOWN enclosure's last heartbeat says nothing about the present, so
 * it has no recording, fps or live view until it reports again.
 */
export function currentCamera(device) {
  return device.state === 'DOWN' ? {} : device.sensor_status?.camera || {};
}

/** Free disk under 10% of the total (or under 10 GB when the total is unknown). */
export function lowDisk(device) {
  const si = device.system_info || {};
  if (si.free_disk === null || si.free_disk === undefined) return false;
  return si.total_disk ? si.free_disk < si.total_disk * 0.1 : si.free_disk < 10000;
}

/**
 * Alerts that need a person, most severe first: {level: 'error'|'warning', text, href}.
 * Sessions are the non-archived ones; archiving a session acknowledges its alerts.
 */
export function alerts(devices, sessions) {
  const out = [];
  for (const d of devices) {
    const href = `#/enclosures/${d.id}`;
    if (d.state === 'DOWN') {
      out.push({ level: d.session_id ? 'error' : 'warning', href,
        text: `${d.name} is DOWN (silent since ${d.last_update ? fmtTime(d.last_update) : 'ever'})${d.session_id ? ` while in session ${d.session_id}` : ''}` });
    }
    if (lowDisk(d)) out.push({ level: 'warning', href, text: `${d.name} is low on disk: ${d.system_info.free_disk} MB free` });
    if (d.clock_skew_flagged) out.push({ level: 'warning', href, text: `${d.name}'s clock is off by ${Math.round((d.clock_skew_ms || 0) / 1000)} s` });
  }
  const stateOf = new Map(devices.map((d) => [d.id, d.state]));
  for (const s of sessions) {
    const href = `#/sessions/${s.id}`;
    if (s.status === 'FAILED') out.push({ level: 'error', href, text: `Session “${s.name}” failed: no enclosure recorded` });
    const open = (s.device_statuses || []).filter((ds) => ds.status === 'PENDING' || ds.status === 'RECORDING');
    if (s.status === 'IN_PROGRESS' && open.length && open.every((ds) => (stateOf.get(ds.device.id) ?? ds.device.state) === 'DOWN')) {
      out.push({ level: 'error', href, text: `Session “${s.name}”: all ${open.length} of its enclosures still recording are DOWN` });
    }
    for (const ds of s.device_statuses || []) {
      if (ds.status === 'FAILED') out.push({ level: 'error', href, text: `${ds.device.name} failed in session “${s.name}”: ${ds.message || 'no reason given'}` });
      const fs = ds.files_summary;
      if (fs?.missing) out.push({ level: 'error', href, text: `${ds.device.name}: ${fs.missing} file(s) missing in session “${s.name}”` });
      if (fs?.corrupt) out.push({ level: 'error', href, text: `${ds.device.name}: ${fs.corrupt} file(s) corrupt in session “${s.name}”` });
    }
  }
  return out.sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1));
}

// The alert kinds of the service (recording.AlertKinds), as people read them.
const kindLabels = {
  enclosure_down: 'enclosure DOWN',
  enclosure_lost: 'enclosure lost',
  device_failed: 'enclosure failed',
  low_disk: 'disk running out',
  low_fps: 'frame rate low',
  clock_skew: 'clock off',
  file_bad: 'file missing or corrupt',
  upload_backlog: 'upload backlog',
  channel_broken: 'notification channel broken',
  time_lost: 'recorded time lost',
  session_finished: 'session finished',
  schedule_skipped: 'schedule skipped',
};

export const alertKinds = Object.keys(kindLabels);

export function alertKindLabel(kind) {
  return kindLabels[kind] || String(kind).replace(/_/g, ' ');
}

/** The alert states that still need a person (the dashboard and the Open tab). */
export const openAlertStates = ['open', 'notified', 'escalated'];

/** The Alerts page's tabs: which states each lists. */
export const alertTabs = [
  { id: 'open', label: 'Open', states: openAlertStates, empty: 'No open alert: nothing needs a person.' },
  { id: 'taken', label: 'Acknowledged or silenced', states: ['acknowledged', 'silenced'], empty: 'No alert is acknowledged or silenced.' },
  { id: 'resolved', label: 'Resolved', states: ['resolved'], empty: 'No alert was resolved yet.' },
];

/**
 * Open alert records as items of "Needs attention": escalated ones and session alerts are
 * errors, fleet alerts warnings.
 */
export function alertRecordItems(records) {
  return records.map((a) => ({
    level: a.state === 'escalated' || a.session_id ? 'error' : 'warning',
    href: `#/alerts?${new URLSearchParams({ kind: a.kind, ...(a.device_id ? { device: String(a.device_id) } : {}) })}`,
    text: `${alertKindLabel(a.kind)}: ${a.summary}${a.state === 'escalated' ? ` (escalated, tier ${a.tier})` : ''} · since ${fmtTime(a.opened_at)}`,
    record: a.id,
  }));
}

// The audit log's actions (recording.AuditActions), as people read them, in the service's order.
const auditLabels = {
  'login': 'signed in',
  'login.failed': 'sign-in failed',
  'refresh.reused': 'spent sign-in token used again (all sign-ins ended)',
  'logout': 'signed out',
  'password.change': 'changed their password',
  'password.change_failed': 'password change refused (wrong current password)',
  'password.reset_requested': 'password reset asked for',
  'password.reset': 'password set by reset link',
  'user.invite': 'invited a user',
  'user.update': 'changed a user',
  'user.notification_prefs': 'changed notification settings',
  'device.token.set': 'set an enclosure token',
  'device.token.delete': 'removed an enclosure token',
  'device.update': 'changed an enclosure',
  'device.approve': 'admitted an enclosure',
  'device.reject': 'rejected an enclosure',
  'device.retire': 'retired an enclosure',
  'device.delete': 'deleted an enclosure',
  'device.heartbeat.wrong_address': 'enclosure heard from a wrong address',
  'session.create': 'created a session',
  'session.cancel': 'cancelled a session',
  'session.archive': 'archived a session',
  'session.unarchive': 'unarchived a session',
  'session.remove_device': 'removed an enclosure from a session',
  'session.add_devices': 'added enclosures to a running session',
  'session.retry_device': 'retried a failed enclosure of a session',
  'session.duration': 'changed how long a running session records',
  'session.edit': "changed a session's name or notes",
  'upload.refused_verified': 'upload refused: other bytes under a verified file',
  'alert.acknowledge': 'acknowledged an alert',
  'alert.silence': 'silenced an alert',
  'schedule.create': 'created a schedule',
  'schedule.update': 'changed a schedule',
  'schedule.pause': 'paused a schedule',
  'schedule.resume': 'resumed a schedule',
  'schedule.trigger': 'ran a schedule now',
  'schedule.delete': 'deleted a schedule',
  'session.subject': "changed an enclosure's subject",
  'template.create': 'created a template',
  'template.version': 'changed a template (a new version)',
  'template.archive': 'archived a template',
};

export const auditActions = Object.keys(auditLabels);

export function auditActionLabel(action) {
  return auditLabels[action] || String(action);
}
