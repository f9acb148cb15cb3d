/**
 * The control plane's one configuration module (STYLE §8): a `Config` type, frozen `DEFAULTS`,
 * `resolveConfig(partial)` that validates the shape once at start-up (pure), and
 * `loadStartupMaterial(config)` that reads the TLS material and the trust file and refuses to
 * start (SPEC §5) when
 *  - mutual-TLS material is missing or unreadable (server certificate, its key, the fleet CA
 *    certificate that client certificates must chain to);
 *  - any configured file holds a private key that can authorise something: the fleet CA key (in the
 *    CA file, or as the server key), a release signing key (in place of trust.json or the server
 *    key), or a server certificate that is itself a CA.
 * The server's own TLS key is the only private key the CP may hold; it must match the server
 * certificate, which must not be a CA.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTrust, type Trust } from '../protocol/schema.ts';

/** Where the signed release files come from (SPEC §2.4, §5). */
export type SourceConfig =
  /** `DIR/fleet.resolved.json{,.sig}`, `DIR/revocations.json{,.sig}`. */
  | { type: 'dir'; dir: string }
  /** HTTP(S) URLs; the signature is `<url>.sig` unless given. `caFile`: extra CA for HTTPS. */
  | {
      type: 'url';
      fleetUrl: string;
      fleetSigUrl?: string;
      revocationsUrl?: string;
      revocationsSigUrl?: string;
      caFile?: string;
    }
  /** A git remote and ref, files under `path` (default `releases`), fetched with real `git`. */
  | { type: 'git'; remote: string; ref: string; path: string };

export type Config = {
  listenHost: string;
  listenPort: number;
  /** PEM server certificate and key (the CP's only private key). */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** PEM fleet CA certificate(s): client certificates must chain to it. No key. */
  clientCaFile: string;
  /** trust.json (§2.3); re-read on change. */
  trustFile: string;
  source: SourceConfig;
  /** Require a signed revocations file before becoming ready, and enforce it. */
  revocations: boolean;
  dbPath: string;
  /** Where the git source keeps its clone; default `<dbPath>.git-cache`. */
  cacheDir: string | null;
  pollIntervalSecs: number;
  reconcileIntervalSecs: number;
  /** Coalescing delay for the reconcile that relevant check-ins request. */
  reconcileDebounceMs: number;
  confirmDeadlineSecs: number;
  /** `nextCheckinSecs` sent to agents. */
  agentPollIntervalSecs: number;
  /**
   * Idle keep-alive before the server closes an agent's connection. Each idle mTLS connection holds
   * ≈ 45 KiB of native memory (docs/performance.md): with a keep-alive longer than the agents' poll
   * interval every agent stays connected (≈ 450 MB at 10,000 hosts); shorter, each poll pays a TLS
   * handshake (resumed when the agent kept the session).
   */
  keepAliveSecs: number;
  /** A host not seen for this long is offline (SPEC §4; default 3 × agent poll interval). */
  offlineAfterSecs: number;
  /** Offline hosts stop blocking their wave after this grace. */
  offlineGraceSecs: number;
  maxBodyBytes: number;
  maxArtifactBytes: number;
  retryAfterSecs: number;
  /** Per-fetch timeout for URL and git sources. */
  fetchTimeoutMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
};

export const DEFAULTS: Readonly<Omit<Config, 'tlsCertFile' | 'tlsKeyFile' | 'clientCaFile' | 'trustFile' | 'source' | 'dbPath'>> =
  Object.freeze({
    listenHost: '127.0.0.1',
    listenPort: 8443,
    revocations: false,
    cacheDir: null,
    pollIntervalSecs: 60,
    reconcileIntervalSecs: 10,
    reconcileDebounceMs: 1000,
    confirmDeadlineSecs: 120,
    agentPollIntervalSecs: 60,
    keepAliveSecs: 10,
    offlineAfterSecs: 180,
    offlineGraceSecs: 1800,
    maxBodyBytes: 64 * 1024,
    maxArtifactBytes: 16 * 1024 * 1024,
    retryAfterSecs: 5,
    fetchTimeoutMs: 30_000,
    logLevel: 'info' as const,
  });

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' | 'MTLS_MISSING' | 'PRIVATE_KEY_REFUSED' | 'TRUST_INVALID';
export type ConfigError = { code: ConfigErrorCode; message: string };

type Issue = string;

const REQUIRED_STRINGS = ['tlsCertFile', 'tlsKeyFile', 'clientCaFile', 'trustFile', 'dbPath'] as const;
const POSITIVE_INTS = [
  'listenPort',
  'pollIntervalSecs',
  'reconcileIntervalSecs',
  'confirmDeadlineSecs',
  'agentPollIntervalSecs',
  'keepAliveSecs',
  'offlineAfterSecs',
  'maxBodyBytes',
  'maxArtifactBytes',
  'retryAfterSecs',
  'fetchTimeoutMs',
] as const;
const NON_NEGATIVE_INTS = ['reconcileDebounceMs', 'offlineGraceSecs'] as const;
const KNOWN_KEYS = new Set<string>([...REQUIRED_STRINGS, ...POSITIVE_INTS, ...NON_NEGATIVE_INTS, 'listenHost', 'source', 'revocations', 'cacheDir', 'logLevel']);

function isRecord(u: unknown): u is Record<string, unknown> {
  return typeof u === 'object' && u !== null && !Array.isArray(u);
}

function parseSource(u: unknown, issues: Issue[]): SourceConfig | null {
  if (!isRecord(u)) {
    issues.push('source: required object {type: "dir" | "url" | "git", …}');
    return null;
  }
  const str = (k: string, required: boolean): string | undefined => {
    const v = u[k];
    if (v === undefined) {
      if (required) issues.push(`source.${k}: required string`);
      return undefined;
    }
    if (typeof v !== 'string' || v.length === 0) {
      issues.push(`source.${k}: must be a non-empty string`);
      return undefined;
    }
    return v;
  };
  const allowed = (keys: string[]): void => {
    for (const k of Object.keys(u)) if (!keys.includes(k)) issues.push(`source.${k}: unknown key for source type ${String(u['type'])}`);
  };
  switch (u['type']) {
    case 'dir': {
      allowed(['type', 'dir']);
      const dir = str('dir', true);
      return dir === undefined ? null : { type: 'dir', dir };
    }
    case 'url': {
      allowed(['type', 'fleetUrl', 'fleetSigUrl', 'revocationsUrl', 'revocationsSigUrl', 'caFile']);
      const fleetUrl = str('fleetUrl', true);
      const out: SourceConfig = { type: 'url', fleetUrl: fleetUrl ?? '' };
      for (const k of ['fleetSigUrl', 'revocationsUrl', 'revocationsSigUrl', 'caFile'] as const) {
        const v = str(k, false);
        if (v !== undefined) out[k] = v;
      }
      for (const k of ['fleetUrl', 'fleetSigUrl', 'revocationsUrl', 'revocationsSigUrl'] as const) {
        const v = out[k];
        if (v !== undefined && v !== '' && !/^https?:\/\//.test(v)) issues.push(`source.${k}: must be an http:// or https:// URL`);
      }
      return fleetUrl === undefined ? null : out;
    }
    case 'git': {
      allowed(['type', 'remote', 'ref', 'path']);
      const remote = str('remote', true);
      const ref = str('ref', false) ?? 'main';
      const path = str('path', false) ?? 'releases';
      if (ref.startsWith('-') || remote?.startsWith('-')) issues.push('source: remote and ref must not start with "-"');
      return remote === undefined ? null : { type: 'git', remote, ref, path };
    }
    default:
      issues.push('source.type: must be "dir", "url" or "git"');
      return null;
  }
}

/**
 * Validate a partial configuration (parsed JSON file merged with flags) and fill the defaults.
 * Reports every bad field at once. Pure: touches no file.
 */
export function resolveConfig(partial: unknown): Result<Config, ConfigError> {
  if (!isRecord(partial)) return err({ code: 'CONFIG_INVALID', message: 'configuration must be a JSON object' });
  const issues: Issue[] = [];
  for (const k of Object.keys(partial)) {
    if (!KNOWN_KEYS.has(k)) {
      const hint = /key|secret|sign/i.test(k) ? ' (the control plane holds no signing or CA key)' : '';
      issues.push(`${k}: unknown setting${hint}`);
    }
  }
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const k of REQUIRED_STRINGS) {
    const v = partial[k];
    if (typeof v !== 'string' || v.length === 0) issues.push(`${k}: required non-empty string`);
    else out[k] = v;
  }
  for (const k of POSITIVE_INTS) {
    const v = partial[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) issues.push(`${k}: must be a positive integer`);
    else out[k] = v;
  }
  for (const k of NON_NEGATIVE_INTS) {
    const v = partial[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) issues.push(`${k}: must be a non-negative integer`);
    else out[k] = v;
  }
  if (partial['listenPort'] !== undefined && typeof partial['listenPort'] === 'number' && partial['listenPort'] > 65535) {
    issues.push('listenPort: must be ≤ 65535');
  }
  // Port 0 (ephemeral) is useful for tests.
  if (partial['listenPort'] === 0) {
    issues.splice(issues.indexOf('listenPort: must be a positive integer'), 1);
    out['listenPort'] = 0;
  }
  if (partial['listenHost'] !== undefined) {
    if (typeof partial['listenHost'] !== 'string' || partial['listenHost'].length === 0) issues.push('listenHost: must be a non-empty string');
    else out['listenHost'] = partial['listenHost'];
  }
  if (partial['revocations'] !== undefined) {
    if (typeof partial['revocations'] !== 'boolean') issues.push('revocations: must be a boolean');
    else out['revocations'] = partial['revocations'];
  }
  if (partial['cacheDir'] !== undefined && partial['cacheDir'] !== null) {
    if (typeof partial['cacheDir'] !== 'string' || partial['cacheDir'].length === 0) issues.push('cacheDir: must be a non-empty string');
    else out['cacheDir'] = partial['cacheDir'];
  }
  if (partial['logLevel'] !== undefined) {
    if (!['debug', 'info', 'warn', 'error'].includes(partial['logLevel'] as string)) issues.push('logLevel: must be debug, info, warn or error');
    else out['logLevel'] = partial['logLevel'];
  }
  const source = parseSource(partial['source'], issues);
  if (source !== null) out['source'] = source;
  if (source?.type === 'url' && out['revocations'] === true && source.revocationsUrl === undefined) {
    issues.push('source.revocationsUrl: required when revocations is true');
  }
  if (issues.length > 0) return err({ code: 'CONFIG_INVALID', message: `invalid configuration:\n  ${issues.join('\n  ')}` });
  return ok(out as Config);
}

/** Everything read from disk at start-up. `trust` is re-read later by the artefact poller. */
export type StartupMaterial = {
  tls: { cert: string; key: string; ca: string };
  trust: Trust;
};

const PRIVATE_PEM = /-----BEGIN (?:RSA |EC |DSA |ENCRYPTED |OPENSSH )?PRIVATE KEY-----/;

/** Does this file content look like a private key in any format we or nixfleet-release write? */
export function looksLikePrivateKey(text: string): boolean {
  if (PRIVATE_PEM.test(text)) return true;
  // nixfleet-release keygen output and similar JSON key files: a secret field.
  const parsed = parseJsonStrict(text, { maxBytes: 1024 * 1024 });
  if (parsed.ok && isRecord(parsed.value)) {
    return Object.keys(parsed.value).some((k) => /^(secret|secretKey|privateKey|private|seed|d)$/i.test(k));
  }
  return false;
}

function readText(path: string, what: string, missingCode: ConfigErrorCode): Result<string, ConfigError> {
  try {
    return ok(readFileSync(path, 'utf8'));
  } catch (e) {
    return err({ code: missingCode, message: `${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
  }
}

function splitPemCerts(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  const ea = a.export({ type: 'spki', format: 'der' });
  const eb = b.export({ type: 'spki', format: 'der' });
  return Buffer.compare(ea, eb) === 0;
}

/** Read and check the mTLS material and the trust file; refuse anything that can sign. */
export function loadStartupMaterial(config: Config): Result<StartupMaterial, ConfigError> {
  const caText = readText(config.clientCaFile, 'fleet CA certificate (clientCaFile)', 'MTLS_MISSING');
  if (!caText.ok) return caText;
  if (looksLikePrivateKey(caText.value)) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `clientCaFile ${config.clientCaFile} contains a private key: the fleet CA key must stay with the operator, never on the control plane` });
  }
  const caPems = splitPemCerts(caText.value);
  if (caPems.length === 0) return err({ code: 'MTLS_MISSING', message: `clientCaFile ${config.clientCaFile}: no PEM certificate found` });
  const caCerts: X509Certificate[] = [];
  for (const pem of caPems) {
    try {
      const c = new X509Certificate(pem);
      if (!c.ca) return err({ code: 'MTLS_MISSING', message: `clientCaFile ${config.clientCaFile}: ${c.subject.replace(/\n/g, ', ')} is not a CA certificate` });
      caCerts.push(c);
    } catch (e) {
      return err({ code: 'MTLS_MISSING', message: `clientCaFile ${config.clientCaFile}: unreadable certificate (${String(e)})` });
    }
  }

  const certText = readText(config.tlsCertFile, 'server certificate (tlsCertFile)', 'MTLS_MISSING');
  if (!certText.ok) return certText;
  if (looksLikePrivateKey(certText.value)) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `tlsCertFile ${config.tlsCertFile} contains a private key; give the certificate and key as separate files` });
  }
  let serverCert: X509Certificate;
  try {
    serverCert = new X509Certificate(certText.value);
  } catch (e) {
    return err({ code: 'MTLS_MISSING', message: `tlsCertFile ${config.tlsCertFile}: not a PEM certificate (${String(e)})` });
  }
  if (serverCert.ca) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `tlsCertFile ${config.tlsCertFile} is a CA certificate: the control plane must not hold a CA key; mint a server certificate with \`nixfleet pki\`` });
  }

  const keyText = readText(config.tlsKeyFile, 'server key (tlsKeyFile)', 'MTLS_MISSING');
  if (!keyText.ok) return keyText;
  let serverKey: KeyObject;
  try {
    serverKey = createPrivateKey(keyText.value);
  } catch {
    const hint = looksLikePrivateKey(keyText.value) ? ' (it looks like a signing key, not a TLS key)' : '';
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `tlsKeyFile ${config.tlsKeyFile}: not a PEM TLS private key${hint}` });
  }
  const serverPub = createPublicKey(serverKey);
  for (const ca of caCerts) {
    if (samePublicKey(serverPub, ca.publicKey)) {
      return err({ code: 'PRIVATE_KEY_REFUSED', message: `tlsKeyFile ${config.tlsKeyFile} is the fleet CA's private key: the CA key must never be on the control plane` });
    }
  }
  if (!samePublicKey(serverPub, serverCert.publicKey)) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `tlsKeyFile ${config.tlsKeyFile} does not belong to the server certificate ${config.tlsCertFile} (is it a release or CA key?)` });
  }

  const trust = loadTrust(config.trustFile);
  if (!trust.ok) return trust;
  return ok({ tls: { cert: certText.value, key: keyText.value, ca: caText.value }, trust: trust.value });
}

/** Read and parse trust.json; refuse a private key given in its place. */
export function loadTrust(path: string): Result<Trust, ConfigError> {
  const text = readText(path, 'trust file (trustFile)', 'CONFIG_UNREADABLE');
  if (!text.ok) return text;
  if (looksLikePrivateKey(text.value)) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `trustFile ${path} holds a private key: the control plane takes only public keys (trust.json); keep the release key with CI` });
  }
  const parsed = parseJsonStrict(text.value, { maxBytes: 1024 * 1024 });
  if (!parsed.ok) return err({ code: 'TRUST_INVALID', message: `trustFile ${path}: ${parsed.error.message}` });
  const trust = parseTrust(parsed.value);
  if (!trust.ok) {
    const detail = trust.error.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    return err({ code: 'TRUST_INVALID', message: `trustFile ${path}: ${detail}` });
  }
  return ok(trust.value);
}
