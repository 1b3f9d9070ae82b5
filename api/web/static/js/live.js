// The live view: while open it keeps asking the API to keep the enclosure's stream going
// (each request keeps STREAM on its heartbeats for the keep-alive window) and shows where the
// enclosure publishes it.
import { api } from './api.js';
import { h, fill, errorBox, fmtTime } from './dom.js';

/** A button that opens and closes the live view of device (id or name) in panel. */
export function liveButton(device, ctx, label = device) {
  const panel = h('div', { class: 'live-panel', 'aria-live': 'polite' });
  let timer = null;
  const button = h('button', { type: 'button', class: 'btn btn-secondary', 'aria-expanded': 'false', id: `live-${device}` }, 'Live view');
  const stop = () => {
    clearTimeout(timer);
    timer = null;
    button.textContent = 'Live view';
    button.setAttribute('aria-expanded', 'false');
    fill(panel);
  };
  const keepAlive = async () => {
    try {
      const r = await api('GET', `/api/device/stream/${encodeURIComponent(device)}`);
      const where = r.stream_url
        ? h('a', { href: r.stream_url }, r.stream_url)
        : h('code', {}, `<RTMP server set on the enclosure>/${r.stream_name}`);
      fill(panel, h('p', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), `Streaming ${r.device} live. Open this in a video player (e.g. VLC, ffplay): `, where),
        h('p', { class: 'muted' }, `Kept alive while this view is open (until ${fmtTime(r.streaming_until)} unless renewed).`));
    } catch (err) {
      fill(panel, errorBox(err));
    }
    if (timer !== null) timer = setTimeout(keepAlive, 4000);
  };
  button.addEventListener('click', () => {
    if (timer !== null) return stop();
    button.textContent = 'Close live view';
    button.setAttribute('aria-expanded', 'true');
    fill(panel, h('p', { class: 'muted' }, `Asking ${label} to stream…`));
    timer = 0;
    keepAlive();
  });
  ctx.onLeave(stop);
  return { button, panel, stop };
}
