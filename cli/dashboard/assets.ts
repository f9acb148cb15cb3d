/**
 * The dashboard's only static files, served from memory at /assets/* (no CDN, no web font, no
 * external request). Colours keep a contrast ratio of at least 4.5:1 on their background (WCAG AA)
 * and every focusable element shows a visible focus ring.
 */

export const STYLE_CSS = `
:root { color-scheme: light; --fg: #1a1a1a; --bg: #ffffff; --muted: #4a4a4a; --line: #c8c8c8; --link: #0b4fb3; --focus: #b35c00;
  --ok: #0a6b2a; --ok-bg: #e3f4e8; --bad: #a3001b; --bad-bg: #fde7ea; --warn: #7a4a00; --warn-bg: #fff1d6; --progress: #1d4ed8; --progress-bg: #e4ecfd; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { background: #102a43; }
nav { display: flex; gap: 1.25rem; align-items: center; padding: .6rem 1.25rem; }
nav a { color: #ffffff; text-decoration: none; padding: .2rem .1rem; }
nav a:hover { text-decoration: underline; }
nav a.brand { font-weight: 700; margin-right: 1rem; }
main { padding: 1rem 1.25rem 2rem; max-width: 90rem; }
footer { padding: .5rem 1.25rem 1.5rem; color: var(--muted); font-size: .85rem; }
h1 { font-size: 1.6rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .6rem; }
a { color: var(--link); }
a:focus-visible, [tabindex]:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: .5rem; background: #ffffff; color: var(--link); padding: .4rem .8rem; }
.skip:focus { left: .5rem; z-index: 10; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
.break { word-break: break-all; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; color: var(--muted); }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem; border-bottom: 1px solid var(--line); }
thead th { background: #f2f4f7; font-weight: 600; }
tbody th { font-weight: 600; }
.tag { display: inline-block; padding: 0 .45rem; border-radius: .25rem; font-size: .9em; white-space: nowrap; }
.tone-ok { color: var(--ok); background: var(--ok-bg); }
.tone-bad { color: var(--bad); background: var(--bad-bg); }
.tone-warn { color: var(--warn); background: var(--warn-bg); }
.tone-progress { color: var(--progress); background: var(--progress-bg); }
.tone-wait, .tone-plain { color: var(--muted); background: #f2f4f7; }
dl.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 0 0 1rem; }
dl.cards > div { border: 1px solid var(--line); border-radius: .4rem; padding: .5rem .9rem; min-width: 9rem; }
dl.cards dt { color: var(--muted); font-size: .85rem; }
dl.cards dd { margin: 0; font-size: 1.5rem; font-weight: 700; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: 0 0 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
ol.waves { list-style: none; padding: 0; margin: 0; }
ol.waves li { margin: .3rem 0; }
ol.waves li.current .progress-label { font-weight: 700; }
.progress { display: flex; gap: .7rem; align-items: center; flex-wrap: wrap; }
.progress-label { min-width: 9rem; }
progress { width: 14rem; height: 1rem; accent-color: var(--ok); }
.progress-text { color: var(--muted); font-size: .9em; }
`;

/**
 * Live updates without a framework: every `data-refresh-ms` the page fetches itself and swaps the
 * `#live` region in place when it changed (no reload; the scroll position and the focused link
 * stay). Without JavaScript the same page is complete; it is just not refreshed.
 */
export const LIVE_JS = `(function () {
  'use strict';
  var ms = Number(document.body.getAttribute('data-refresh-ms')) || 2000;
  var status = document.getElementById('live-status');
  var busy = false;
  function say(text) { if (status && status.textContent !== text) status.textContent = text; }
  function tick() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(location.href, { headers: { accept: 'text/html' }, cache: 'no-store' })
      .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, status: r.status, text: t }; }); })
      .then(function (x) {
        var next = new DOMParser().parseFromString(x.text, 'text/html').getElementById('live');
        var cur = document.getElementById('live');
        if (next && cur && next.innerHTML !== cur.innerHTML) {
          // Keyboard users keep their place: the focused link is focused again after the swap.
          var a = document.activeElement;
          var href = a && a !== cur && cur.contains(a) ? a.getAttribute('href') : null;
          cur.innerHTML = next.innerHTML;
          if (href) {
            var again = cur.querySelector('a[href="' + CSS.escape(href) + '"]');
            if (again) again.focus();
          }
        }
        say(x.status >= 500 ? 'Control plane unavailable, retrying.' : '');
      })
      .catch(function () { say('Dashboard unreachable, retrying.'); })
      .then(function () { busy = false; });
  }
  setInterval(tick, ms);
})();
`;
