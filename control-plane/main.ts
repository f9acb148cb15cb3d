/**
 * `nixfleet-control-plane` (SPEC §5): `serve [--config FILE] [flags]`, `check-config [--config FILE] [flags]`
 * (every setting a first control plane needs is a flag: control-plane/flags.ts).
 *
 * Exit codes: 0 ok (clean shutdown on SIGTERM/SIGINT), 1 invalid or refused configuration
 * (including "points at a private key" and "mTLS material missing"), 2 usage error (as for every
 * nixfleet binary but nixfleet-release, whose codes SPEC §3 fixes) or runtime I/O failure.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCertificate } from '../pki/check.ts';
import { parseProgramArgs } from '../io/program-args.ts';
import { versionLine } from '../io/version.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { createApp, createOpenApp } from './app.ts';
import { loadStartupMaterial, resolveConfig, storeConfig, type Config } from './config.ts';
import { createLogger, effectiveLevel } from './log.ts';
import { CP_FLAGS, cpFlagsHelp, mergeCpFlags } from './flags.ts';
import { tlsFailureHandler } from './tls-failures.ts';
import { X509Certificate } from 'node:crypto';
import { listenHttp, listenHttps, type ListeningServer } from './server.ts';
import { createEnrolApp } from './routes-enrol.ts';
import { ControlPlane } from './service.ts';
import { createSource } from './sources.ts';
import { PostgresStore } from './store/postgres.ts';
import { SqliteStore } from './store/sqlite.ts';
import type { Store } from './store/types.ts';

const HELP = `nixfleet-control-plane — the keyless control plane (Hono over mutual TLS, SQLite)

Usage:
  nixfleet-control-plane serve [--config FILE] [flags]
  nixfleet-control-plane check-config [--config FILE] [flags]
  nixfleet-control-plane --help | --version

Commands:
  serve          verify the signed fleet from the artefact source and serve agents and operators
  check-config   validate the configuration and the TLS / trust material, then exit: the server
                 certificate must be for serverAuth, valid now, match tlsKeyFile and be issued
                 by the fleet CA (clientCaFile); serve refuses to start otherwise

Flags (each overrides its setting in the config file; [required]: unless the file has it):
  --config FILE          JSON configuration: every setting (see control-plane/README.md)
${cpFlagsHelp()}
  -h, --help             this help
  -V, --version          print the version

Example (the files of \`nixfleet pki init\`, \`mint-server-cert\` and \`nixfleet-release init\`):
  nixfleet-control-plane serve --tls-cert cp.pem --tls-key cp.key --client-ca pki/ca.pem \\
    --trust-file fleet/trust.json --source-dir releases --db cp.sqlite

The control plane holds no signing key. It refuses to start when a configured file holds the
fleet CA key or a release signing key, or when mTLS material is missing.

Logs: one JSON object per line on stderr: event names and fields in docs/operations.md.
Metrics: /metrics (mTLS), and with metricsListen {host, port} also over plain HTTP on that
(loopback) address with /healthz and /readyz, for Prometheus and load balancers.

Exit codes: 0 ok, 1 invalid or refused configuration, 2 usage error (an unknown, bad or missing
flag) or I/O failure.
`;

type Parsed = { command: 'serve' | 'check-config' | 'help' | 'version'; flags: Record<string, string> };

const FLAGS = ['config', ...CP_FLAGS.map((f) => f.flag)] as const;

/** The binaries' shared convention (io/program-args.ts); a usage error is exit 2, as for `nixfleet`. */
function parseArgs(argv: string[]): Parsed | string {
  const p = parseProgramArgs('nixfleet-control-plane', argv, ['serve', 'check-config'] as const, Object.fromEntries(FLAGS.map((f) => [f, { type: 'string' as const }])));
  if (p.kind === 'usage') return p.message;
  if (p.kind === 'help' || p.kind === 'version') return { command: p.kind, flags: {} };
  const flags: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.values)) if (typeof v === 'string') flags[`--${k}`] = v;
  return { command: p.command, flags };
}

/** The file (when given) with the flags over it; a string is the message, with its exit code. */
function buildConfig(flags: Record<string, string>): Config | { exit: 1 | 2; message: string } {
  const path = flags['--config'];
  let file: Record<string, unknown> | null = null;
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      // A --config that cannot be read is a bad flag value or an I/O failure (exit 2, as for the agent and nixfleet).
      return { exit: 2, message: `cannot read --config ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
    }
    const parsed = parseJsonStrict(text, { maxBytes: 1024 * 1024 });
    if (!parsed.ok) return { exit: 1, message: `${path}: ${parsed.error.message}` };
    if (typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) return { exit: 1, message: `${path}: must be a JSON object` };
    file = parsed.value as Record<string, unknown>;
  }
  const merged = mergeCpFlags(file, Object.fromEntries(Object.entries(flags).map(([k, v]) => [k.slice(2), v])));
  if (!merged.ok) return { exit: 2, message: `${merged.error.message} (see: nixfleet-control-plane --help)` };
  const r = resolveConfig(merged.value);
  return r.ok ? r.value : { exit: 1, message: r.error.message };
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`nixfleet-control-plane: ${args}\n`);
    return 2;
  }
  if (args.command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.command === 'version') {
    process.stdout.write(versionLine('nixfleet-control-plane'));
    return 0;
  }
  const config = buildConfig(args.flags);
  if ('exit' in config) {
    process.stderr.write(`nixfleet-control-plane: ${config.message}\n`);
    return config.exit;
  }
  const material = loadStartupMaterial(config);
  if (!material.ok) {
    process.stderr.write(`nixfleet-control-plane: refusing to start (${material.error.code}): ${material.error.message}\n`);
    return 1;
  }
  // The server certificate must be fit for serving now: serverAuth, in validity, its key, the fleet CA.
  const serverCert = checkCertificate({
    what: `tlsCertFile ${config.tlsCertFile}`,
    certPem: material.value.tls.cert,
    keyPem: material.value.tls.key,
    keyWhat: `tlsKeyFile ${config.tlsKeyFile}`,
    caPem: material.value.tls.ca,
    purpose: 'serverAuth',
    nowMs: Date.now(),
  });
  if (serverCert.problems.length > 0) {
    for (const p of serverCert.problems) process.stderr.write(`nixfleet-control-plane: refusing to start (${p.code}): ${p.message}\n`);
    return 1;
  }
  if (args.command === 'check-config') {
    const until = serverCert.notAfterMs === null ? '' : `, valid until ${new Date(serverCert.notAfterMs).toISOString()}`;
    process.stdout.write(`configuration ok\nserver certificate ${serverCert.subject ?? ''}: serverAuth, key matches, issued by the fleet CA${until}\n`);
    return 0;
  }

  const log = createLogger({ program: 'nixfleet-control-plane', level: effectiveLevel(config.logLevel) });
  const storeConf = storeConfig(config);
  const storeName = 'sqlite' in storeConf ? storeConf.sqlite.path : `postgres ${'url' in storeConf.postgres ? redactUrl(storeConf.postgres.url) : `${storeConf.postgres.host}:${storeConf.postgres.port}/${storeConf.postgres.database}`}`;
  let store: Store;
  try {
    store = 'sqlite' in storeConf ? new SqliteStore(storeConf.sqlite.path) : await PostgresStore.open(storeConf.postgres);
  } catch (e) {
    process.stderr.write(`nixfleet-control-plane: cannot open the database ${storeName}: ${e instanceof Error ? e.message : String(e)}\n`);
    log.error('cp.store-failed', { store: storeName, error: e instanceof Error ? e.message : String(e) });
    return 2;
  }
  const source = createSource(config.source, {
    maxBytes: config.maxArtifactBytes,
    timeoutMs: config.fetchTimeoutMs,
    cacheDir: config.cacheDir ?? join(`${config.dbPath}.git-cache`),
  });
  const cp = new ControlPlane({ config, store, source, trust: material.value.trust, issuer: material.value.issuer, log, processMetrics: true });
  if (serverCert.notAfterMs !== null) cp.metrics.setCertificateExpiry('server', serverCert.notAfterMs);
  const caNotAfter = certNotAfterMs(material.value.tls.ca);
  if (caNotAfter !== null) cp.metrics.setCertificateExpiry('ca', caNotAfter);
  const app = createApp({ service: cp.api, maxBodyBytes: config.maxBodyBytes, retryAfterSecs: config.retryAfterSecs, log, pins: material.value.pins });
  const onTlsClientError = tlsFailureHandler({ log, count: (reason) => cp.metrics.tlsFailure(reason) });
  let server;
  try {
    // Listen first: /healthz answers and /v1/* says 503 + Retry-After while the source is read.
    server = await listenHttps(app, material.value.tls, config.listenHost, config.listenPort, { keepAliveSecs: config.keepAliveSecs, onTlsConnection: (s) => cp.metrics.tlsConnection(s), onTlsClientError });
  } catch (e) {
    process.stderr.write(`nixfleet-control-plane: cannot listen on ${config.listenHost}:${config.listenPort}: ${e instanceof Error ? e.message : String(e)}\n`);
    log.error('cp.listen-failed', { host: config.listenHost, port: config.listenPort, error: e instanceof Error ? e.message : String(e) });
    await store.close();
    return 2;
  }
  log.info('cp.listening', { host: server.host, port: server.port, source: source.describe, db: storeName });
  // Issue 16: the enrolment listener (HTTPS without client certificates, POST /v1/enroll only).
  let enrolServer: ListeningServer | null = null;
  const enrol = cp.enrolment();
  if (config.enrolment !== null && enrol !== null) {
    const host = config.enrolment.listenHost ?? config.listenHost;
    try {
      const enrolApp = createEnrolApp({ api: enrol, readiness: () => cp.readiness(), maxBodyBytes: config.maxBodyBytes, retryAfterSecs: config.retryAfterSecs, log, observeRequest: (r, st) => cp.api.observeRequest?.(r, st) });
      enrolServer = await listenHttps(enrolApp, material.value.tls, host, config.enrolment.listenPort, { clientCerts: false });
    } catch (e) {
      process.stderr.write(`nixfleet-control-plane: cannot listen on ${host}:${config.enrolment.listenPort} (enrolment): ${e instanceof Error ? e.message : String(e)}\n`);
      log.error('cp.listen-failed', { host, port: config.enrolment.listenPort, error: e instanceof Error ? e.message : String(e) });
      await server.close();
      await store.close();
      return 2;
    }
    log.info('cp.enrol-listening', { host: enrolServer.host, port: enrolServer.port });
  }
  let metricsServer: ListeningServer | null = null;
  if (config.metricsListen !== null) {
    try {
      metricsServer = await listenHttp(createOpenApp(cp.api), config.metricsListen.host, config.metricsListen.port);
    } catch (e) {
      process.stderr.write(`nixfleet-control-plane: cannot listen on ${config.metricsListen.host}:${config.metricsListen.port} (metricsListen): ${e instanceof Error ? e.message : String(e)}\n`);
      await enrolServer?.close();
      await server.close();
      await store.close();
      return 2;
    }
    log.info('cp.metrics-listening', { host: metricsServer.host, port: metricsServer.port });
  }
  await cp.start();
  const ready = cp.readiness();
  log.info(ready.ready ? 'cp.ready' : 'cp.not-ready', { reasons: ready.reasons, fleet: ready.fleet });

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('cp.stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await server.close();
  await enrolServer?.close();
  await metricsServer?.close();
  await cp.stop();
  await store.close();
  return 0;
}

process.exitCode = await main(process.argv.slice(2)).catch((e: unknown) => {
  // A bug: one line for the user, the stack only when asked for (the JSON log has it at debug).
  process.stderr.write(`nixfleet-control-plane: internal error: ${e instanceof Error ? e.message : String(e)} (NIXFLEET_DEBUG=1 shows details)\n`);
  if (process.env['NIXFLEET_DEBUG'] === '1' && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
  return 2;
});

/** notAfter of the first certificate in a PEM bundle, or null when it does not parse. */
function certNotAfterMs(pem: string): number | null {
  try {
    const ms = Date.parse(new X509Certificate(pem).validTo);
    return Number.isFinite(ms) ? ms : null;
  } catch {
    return null;
  }
}

/** A postgres:// URL without its password, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}
