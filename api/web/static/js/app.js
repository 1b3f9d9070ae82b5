// The single-page app: a hash router (#/sessions/12), the navigation bar, and the polling
// that keeps the visible page current without reloads.
import { identity, logout } from './api.js';
import { h, fill, errorBox } from './dom.js';
import * as auth from './pages/auth.js';
import { dashboard } from './pages/dashboard.js';
import { enclosureList, enclosureDetail } from './pages/enclosures.js';
import { sessionList, sessionDetail } from './pages/sessions.js';
import { newSession } from './pages/new-session.js';
import { users } from './pages/users.js';
import { alertsPage } from './pages/alerts.js';
import { scheduleList, scheduleDetail } from './pages/schedules.js';
import { auditPage } from './pages/audit.js';
import { templateList, templateDetail } from './pages/templates.js';

// [pattern, page, who]: who is 'public' (signed out is fine), 'user' or 'admin'.
const routes = [
  ['/login', auth.login, 'public'],
  ['/forgot', auth.forgot, 'public'],
  ['/reset/:uid/:token', auth.reset, 'public'],
  ['/', dashboard, 'user'],
  ['/enclosures', enclosureList, 'user'],
  ['/enclosures/:id', enclosureDetail, 'user'],
  ['/sessions', sessionList, 'user'],
  ['/sessions/new', newSession, 'user'],
  ['/sessions/:id', sessionDetail, 'user'],
  ['/alerts', alertsPage, 'user'],
  ['/schedules', scheduleList, 'user'],
  ['/schedules/:id', scheduleDetail, 'user'],
  ['/templates', templateList, 'user'],
  ['/templates/:id', templateDetail, 'user'],
  ['/users', users, 'admin'],
  // Administrators' too, but the API says so: a non-admin (or a token whose role is stale) sees its 403.
  ['/audit', auditPage, 'user'],
  ['/account', auth.account, 'user'],
];

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, page, who] of routes) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (want.every((w, i) => (w.startsWith(':') ? ((params[w.slice(1)] = decodeURIComponent(parts[i])), true) : w === parts[i]))) {
      return { page, who, params };
    }
  }
  return null;
}

const main = document.getElementById('main');
let current = null;

/**
 * A page's context: every(ms, fn) runs fn now and again ms after each run ends while the page
 * is shown and the tab visible; onLeave(fn) runs when the user navigates away.
 */
/**
 * How to find the focused element again after a refresh redraws it: its id, or a link's
 * href. Keyboard users keep their place while a page polls.
 */
function focusKey() {
  const el = document.activeElement;
  if (!el || el === main || !main.contains(el)) return null;
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.tagName === 'A') return `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
  return null;
}

function newContext() {
  const ctx = {
    alive: true,
    leaveFns: [],
    timers: new Set(),
    onLeave(fn) { ctx.leaveFns.push(fn); },
    // every runs fn now and then every ms while the page is shown. The first run's error is the
    // page's (render shows it instead of a blank page); a later one is logged and retried.
    every(ms, fn) {
      let first = true;
      const run = async () => {
        if (!ctx.alive) return;
        if (!document.hidden) {
          const key = focusKey();
          try { await fn(); } catch (err) { if (first) throw err; console.error(err); } finally { first = false; }
          if (key && ctx.alive && !main.contains(document.activeElement)) main.querySelector(key)?.focus();
        }
        if (ctx.alive) ctx.timers.add(setTimeout(run, ms));
      };
      return run();
    },
    leave() {
      ctx.alive = false;
      ctx.timers.forEach(clearTimeout);
      ctx.leaveFns.forEach((f) => f());
    },
  };
  return ctx;
}

export function navigate(path) {
  location.hash = `#${path}`;
}

function renderNav(me) {
  const nav = document.getElementById('nav');
  if (!me) return fill(nav);
  const path = location.hash.slice(1).split('?')[0] || '/';
  const link = (href, text) => h('a', { href: `#${href}`, 'aria-current': (href === '/' ? path === '/' : path.startsWith(href)) ? 'page' : false }, text);
  fill(nav,
    link('/', 'Dashboard'),
    link('/enclosures', 'Enclosures'),
    link('/sessions', 'Sessions'),
    link('/schedules', 'Schedules'),
    link('/alerts', 'Alerts'),
    link('/templates', 'Templates'),
    h('a', { href: '#/sessions/new', class: 'btn btn-small', 'aria-current': path === '/sessions/new' ? 'page' : false }, 'New session'),
    me.admin ? link('/users', 'Users') : null,
    me.admin ? link('/audit', 'Audit log') : null,
    h('span', { class: 'spacer' }),
    h('a', { href: '/api/', id: 'api-docs', target: '_blank', rel: 'noopener', title: 'The REST API (OpenAPI, Swagger UI)' }, 'API docs'),
    link('/account', me.email_address),
    h('button', { type: 'button', class: 'btn-link', id: 'logout', onclick: async () => { await logout(); navigate('/login'); } }, 'Log out'));
  // Links for the current section are marked in-place; New session is not also "Sessions".
  if (path === '/sessions/new') nav.querySelector('a[href="#/sessions"]').removeAttribute('aria-current');
}

async function render() {
  if (current) current.leave();
  const [path, query = ''] = (location.hash.slice(1) || '/').split('?');
  const me = identity();
  const m = match(path);
  renderNav(me);
  if (!m) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no page here. ', h('a', { href: '#/' }, 'Go to the dashboard.')));
    return;
  }
  if (m.who !== 'public' && !me) {
    navigate(`/login?next=${encodeURIComponent(path + (query ? `?${query}` : ''))}`);
    return;
  }
  if (m.who === 'admin' && !me.admin) {
    fill(main, h('h1', {}, 'Administrators only'), h('p', {}, 'Ask an administrator if you need this page.'));
    return;
  }
  current = newContext();
  fill(main);
  try {
    await m.page(main, m.params, current);
  } catch (err) {
    fill(main, errorBox(err));
  }
  // The tab title names the page, for history, bookmarks and screen readers.
  document.title = `${main.querySelector('h1')?.textContent || 'MBA'} · MBA control`;
  main.focus({ preventScroll: true });
}

// A link from an e-mail (or a bookmark) may be a plain path: /reset/<uid>/<token>. The server
// answers it with this page; move it into the hash where the router looks.
if (location.pathname !== '/' && !location.hash) {
  history.replaceState(null, '', `/#${location.pathname}${location.search}`);
}
window.addEventListener('hashchange', render);
window.addEventListener('mba:signedout', () => navigate('/login'));
document.querySelector('.skip').addEventListener('click', (e) => { e.preventDefault(); main.focus(); });
render();
