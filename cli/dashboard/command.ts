/**
 * The `dashboard` entry of the command table (commands.ts). Only the spec lives here: the server,
 * Hono and the pages load on first use, never for `--help` (issue 18).
 */
import type { CommandSpec } from '../framework.ts';

export const DASHBOARD_COMMAND: CommandSpec = {
  name: 'dashboard',
  summary: 'Serve a read-only web view of the fleet on loopback (hosts, rollouts, release, audit chain)',
  description:
    'A local server, like `kubectl proxy`: it reads the control plane with your operator certificate (GET only,\nnever a write) and serves pages to a browser on this machine: fleet overview, each rollout with its waves and\nblocked hosts (updating live), each host (running vs declared, history, signed reports, evidence), the release\nin force and the audit chain state. No CDN or external request; pages work without JavaScript.\nListens on loopback only, unless --allow-remote. Runs until Ctrl-C. See docs/dashboard.md.',
  args: [],
  flags: [
    { name: 'listen', type: 'string', placeholder: 'HOST:PORT', default: '127.0.0.1:8087', description: 'Address to serve on; PORT 0 picks a free port.' },
    { name: 'allow-remote', type: 'boolean', description: 'Allow a --listen address that is not loopback (anyone reaching it sees the fleet as you).' },
    { name: 'refresh-secs', type: 'int', placeholder: 'N', default: 2, description: 'How often open pages refresh themselves.' },
  ],
  examples: ['nixfleet dashboard', 'nixfleet dashboard --listen 127.0.0.1:0 --json'],
  online: true,
  json: {
    shape: 'one line once it listens: `{url, port, controlPlane, readOnly}`:',
    fields: [
      { name: 'url', description: 'Where to point the browser, e.g. http://127.0.0.1:8087/.' },
      { name: 'port', description: 'The port it listens on (useful with PORT 0).' },
      { name: 'controlPlane', description: 'The control plane URL it reads.' },
      { name: 'readOnly', description: 'Always true: the dashboard only reads.' },
    ],
  },
  handler: async (ctx) => (await import('./cmd.ts')).dashboard(ctx),
};
