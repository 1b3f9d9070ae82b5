// The one way the UI talks to the service: the public REST API with a JWT access token.
// Tokens live in sessionStorage (gone when the tab closes); an expired access token is
// renewed once with the refresh token, and a failed renewal signs the user out.

const storageKey = 'mba.tokens';

/** An error reply of the API: status, message and, for 400s, field -> reason. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `request failed (${status})`);
    this.status = status;
    this.fields = (body && body.errors) || {};
  }
}

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(storageKey)) || {};
  } catch {
    return {};
  }
}

let tokens = load();

function save(t) {
  tokens = t;
  if (t.access) sessionStorage.setItem(storageKey, JSON.stringify(t));
  else sessionStorage.removeItem(storageKey);
}

/** The identity claim of the access token: {uid, email_address, admin}, or null. */
export function identity() {
  if (!tokens.access) return null;
  try {
    const part = tokens.access.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).identity || null;
  } catch {
    return null;
  }
}

async function send(method, path, body, token, extra = {}) {
  const headers = { ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { message: 'the service cannot be reached; check the connection' });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// One renewal at a time: parallel requests that all got a 401 share it.
let renewing = null;

async function renew() {
  if (!tokens.refresh) return false;
  // Our UI asks for rotation: each renewal spends the refresh token and returns the next one,
  // and a spent token presented again (a stolen copy) ends the whole sign-in.
  renewing ??= send('POST', '/api/auth/refresh?rotate=true', undefined, tokens.refresh)
    .then((r) => { save({ access: r.access, refresh: r.refresh || tokens.refresh }); return true; })
    .catch(() => false)
    .finally(() => { renewing = null; });
  return renewing;
}

/** Calls the API as the signed-in user; resolves to the JSON reply (null when empty). */
export async function api(method, path, body, headers) {
  try {
    return await send(method, path, body, tokens.access, headers);
  } catch (err) {
    if (err.status !== 401 || !tokens.refresh) throw err;
    if (!(await renew())) {
      save({});
      window.dispatchEvent(new Event('mba:signedout'));
      throw err;
    }
    return send(method, path, body, tokens.access, headers);
  }
}

/**
 * Saves what an authenticated route answers (a manifest) as filename: a plain link would carry
 * no token. An expired access token is renewed once, as api does.
 */
export async function download(path, filename) {
  const get = () => fetch(path, { headers: { Authorization: `Bearer ${tokens.access}` } }).catch(() => null);
  let res = await get();
  if (res?.status === 401 && (await renew())) res = await get();
  if (!res) throw new ApiError(0, { message: 'the service cannot be reached; check the connection' });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** A new Idempotency-Key: one per opening of a form, so a double click creates one thing. */
export function idempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `k-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Calls a route that needs no token (login, password reset). */
export function publicApi(method, path, body) {
  return send(method, path, body);
}

export async function login(email, password) {
  save(await send('POST', '/api/auth/login', { email_address: email, password }));
}

/** Revokes the refresh token and forgets both; signed out locally even if the call fails. */
export async function logout() {
  const refresh = tokens.refresh;
  save({});
  if (refresh) await send('POST', '/api/auth/logout', undefined, refresh).catch(() => {});
}
