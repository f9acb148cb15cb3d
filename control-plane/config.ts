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
 *
 * The file's shape is {@link ControlPlaneConfigSchema} (TypeBox, the one validation kit; JSON
 * Schema in schemas/control-plane-config.schema.json); `Config` is derived from it.
 */
import { Type, type ObjectOptions, type Static, type TProperties } from '@sinclair/typebox';
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTrust, type Trust } from '../protocol/schema.ts';
import { compile, compileDefaults } from '../protocol/validate.ts';
import { Enum, Nullable } from '../protocol/vocab.ts';
import { readIssuanceCaFacts } from '../pki/x509.ts';
import type { IssuerPins } from './middleware.ts';

const Strict = <P extends TProperties>(props: P, opts: ObjectOptions = {}) => Type.Object(props, { additionalProperties: false, ...opts });
const NonEmpty = (description?: string) => Type.String({ minLength: 1, ...(description === undefined ? {} : { description }) });
const HttpUrl = () => Type.String({ minLength: 1, pattern: '^https?://', errorMessage: 'must be an http:// or https:// URL' });
/** git arguments: never an option (`--upload-pack=…`). */
const GitArg = (dflt?: string) => Type.String({ minLength: 1, pattern: '^[^-]', errorMessage: 'must not start with "-"', ...(dflt === undefined ? {} : { default: dflt }) });

/** Where the signed release files come from (SPEC §2.4, §5). */
export const SourceConfigSchema = Type.Union([
  /** `DIR/fleet.resolved.json{,.sig}`, `DIR/revocations.json{,.sig}`. */
  Strict({ type: Type.Literal('dir'), dir: NonEmpty() }, { description: 'DIR/fleet.resolved.json{,.sig}, DIR/revocations.json{,.sig}.' }),
  /** HTTP(S) URLs; the signature is `<url>.sig` unless given. `caFile`: extra CA for HTTPS. */
  Strict(
    {
      type: Type.Literal('url'),
      fleetUrl: HttpUrl(),
      fleetSigUrl: Type.Optional(HttpUrl()),
      revocationsUrl: Type.Optional(HttpUrl()),
      revocationsSigUrl: Type.Optional(HttpUrl()),
      caFile: Type.Optional(NonEmpty('Extra CA for HTTPS.')),
    },
    { description: 'HTTP(S) URLs; the signature is <url>.sig unless given.' },
  ),
  /** A git remote and ref, files under `path` (default `releases`), fetched with real `git`. */
  Strict({ type: Type.Literal('git'), remote: GitArg(), ref: GitArg('main'), path: Type.String({ minLength: 1, default: 'releases' }) }, { description: 'A git remote and ref, files under path, fetched with real git.' }),
]);
export type SourceConfig = Static<typeof SourceConfigSchema>;

/** A PostgreSQL server (several control planes share one; see control-plane/README.md). */
const PostgresTlsSchema = Strict(
  {
    caFile: Type.Optional(NonEmpty('PEM CA the server certificate must chain to (default: the system CAs).')),
    certFile: Type.Optional(NonEmpty('PEM client certificate (certificate authentication).')),
    keyFile: Type.Optional(NonEmpty('PEM key of certFile.')),
  },
  { description: 'Connect with TLS, verifying the server certificate.' },
);
const PostgresCommon = {
  passwordFile: Type.Optional(NonEmpty('File holding the password (never in the configuration or the store).')),
  tls: Type.Optional(PostgresTlsSchema),
  poolSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Connections per control plane (default 10).' })),
};
export const PostgresConfigSchema = Type.Union([
  Strict({ url: Type.String({ minLength: 1, pattern: '^postgres(ql)?://', errorMessage: 'must be a postgres:// URL' }), ...PostgresCommon }, { description: 'A libpq-style URL (put the password in passwordFile, not here).' }),
  Strict(
    {
      host: NonEmpty('Host name, address, or the directory of a unix socket.'),
      port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Default 5432.' })),
      database: NonEmpty(),
      user: NonEmpty(),
      ...PostgresCommon,
    },
    { description: 'Connection parameters.' },
  ),
]);
export type PostgresConfig = Static<typeof PostgresConfigSchema>;

/** Where the control plane keeps its state: SQLite (the default: `dbPath`) or PostgreSQL (several replicas). */
export const StoreConfigSchema = Type.Union([
  Strict({ sqlite: Strict({ path: NonEmpty('SQLite database file.') }) }, { description: 'One control plane, one SQLite file.' }),
  Strict({ postgres: PostgresConfigSchema }, { description: 'PostgreSQL: any number of control plane replicas share it.' }),
]);
export type StoreConfig = Static<typeof StoreConfigSchema>;

/**
 * Issue 16: enrolment and renewal. The CP holds the host-issuance intermediate (`nixfleet pki
 * init-issuance`), which can only issue `O=nixfleet, OU=host` client certificates; never the
 * fleet root CA key (refused at start-up, like the release key).
 */
export const EnrolmentConfigSchema = Strict(
  {
    issuerCertFile: NonEmpty('PEM certificate of the host-issuance intermediate (signed by the fleet CA, name-constrained to O=nixfleet, OU=host).'),
    issuerKeyFile: NonEmpty('Its private key (0600). The fleet root CA key is refused here.'),
    listenHost: Type.Optional(NonEmpty('The enrolment listener (HTTPS without client certificates); default listenHost.')),
    listenPort: Type.Integer({ minimum: 0, maximum: 65535, description: 'Port of the enrolment listener (0: ephemeral, tests).' }),
    certValiditySecs: Type.Integer({ minimum: 60, maximum: 366 * 86_400, default: 30 * 86_400, description: 'Lifetime of the certificates it issues (default 30 days); agents renew at half-life.' }),
    usedTokensFile: NonEmpty('Signed ledger of used bootstrap-token nonces, kept outside the database so that a wiped database does not reopen a used token.'),
    maxTokenTtlSecs: Type.Integer({ minimum: 60, maximum: 30 * 86_400, default: 86_400, description: 'Longest bootstrap-token lifetime accepted.' }),
    refusalAuditWindowSecs: Type.Integer({ minimum: 0, maximum: 86_400, default: 60, description: 'A refused enrolment (no client certificate) is audited once per this window per source address and code; the rest are counted (nixfleet_enrol_refusals_unaudited_total). 0: audit every one.' }),
  },
  { description: 'Hosts enrol (SSH host key or bootstrap token) and renew their certificates (issue 16).' },
);
export type EnrolmentConfig = Static<typeof EnrolmentConfigSchema>;

/** Issue 16: exactly the issuers accepted per role (PEM certificate files); null: the defaults. */
export const ClientIssuersSchema = Strict(
  {
    host: Type.Array(NonEmpty(), { minItems: 1, description: 'Default: the certificates of clientCaFile and the enrolment issuer.' }),
    operator: Type.Array(NonEmpty(), { minItems: 1, description: 'Default: the certificates of clientCaFile.' }),
  },
  { description: 'Client certificates must be issued directly by one of these, per role.' },
);

export const DEFAULTS = Object.freeze({
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
  quietCheckins: true,
  offlineGraceSecs: 1800,
  complianceStaleAfterSecs: 86_400,
  maxBodyBytes: 64 * 1024,
  maxArtifactBytes: 16 * 1024 * 1024,
  retryAfterSecs: 5,
  fetchTimeoutMs: 30_000,
  leaseSecs: 10,
  retentionDays: 90,
  retentionIntervalSecs: 3600,
  store: null,
  enrolment: null,
  clientIssuers: null,
  logLevel: 'info' as const,
  metricsListen: null,
  reportQuotaPerHour: 120,
});

const Positive = (k: keyof typeof DEFAULTS, description: string) => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: DEFAULTS[k], description });
const NonNegative = (k: keyof typeof DEFAULTS, description: string) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: DEFAULTS[k], description });

/** The control plane's configuration file (merged with flags). `Config` is derived from it. */
export const ControlPlaneConfigSchema = Strict(
  {
    listenHost: Type.String({ minLength: 1, default: DEFAULTS.listenHost }),
    listenPort: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULTS.listenPort, description: '0: an ephemeral port (tests).' }),
    tlsCertFile: NonEmpty("PEM server certificate (the CP's only private key is its key)."),
    tlsKeyFile: NonEmpty('PEM server key.'),
    clientCaFile: NonEmpty('PEM fleet CA certificate(s): client certificates must chain to it. No key.'),
    trustFile: NonEmpty('trust.json (SPEC §2.3); re-read on change.'),
    source: SourceConfigSchema,
    revocations: Type.Boolean({ default: DEFAULTS.revocations, description: 'Require a signed revocations file before becoming ready, and enforce it.' }),
    dbPath: NonEmpty('SQLite database (the store unless `store` says otherwise); <dbPath>.git-cache holds the git clone.'),
    store: Nullable(StoreConfigSchema, { default: DEFAULTS.store, description: 'null: SQLite at dbPath (one control plane). See control-plane/README.md, "Backends and replicas".' }),
    cacheDir: Nullable(NonEmpty(), { default: DEFAULTS.cacheDir, description: 'Where the git source keeps its clone; null: <dbPath>.git-cache.' }),
    pollIntervalSecs: Positive('pollIntervalSecs', 'Artefact source poll interval.'),
    reconcileIntervalSecs: Positive('reconcileIntervalSecs', 'Reconcile loop interval.'),
    reconcileDebounceMs: NonNegative('reconcileDebounceMs', 'Coalescing delay for the reconcile that relevant check-ins request.'),
    confirmDeadlineSecs: Positive('confirmDeadlineSecs', 'From dispatch; expiry marks the host Reverted.'),
    agentPollIntervalSecs: Positive('agentPollIntervalSecs', 'nextCheckinSecs sent to agents.'),
    keepAliveSecs: Positive(
      'keepAliveSecs',
      "Idle keep-alive before the server closes an agent's connection. Each idle mTLS connection holds ≈ 45 KiB of native memory (docs/performance.md): longer than the agents' poll interval keeps every agent connected; shorter, each poll pays a (resumed) TLS handshake.",
    ),
    offlineAfterSecs: Positive('offlineAfterSecs', 'A host not seen for this long is offline (SPEC §4; default 3 × agent poll interval).'),
    quietCheckins: Type.Boolean({
      default: DEFAULTS.quietCheckins,
      description:
        'Issue 19: a check-in that changes nothing the CP decides on is answered without a new decision, and its check-in time is written in batches (at most 2 s later; a crash loses at most those). false: every check-in is decided and written before its answer. A store shared by replicas always decides in full. control-plane/README.md, "Quiet check-ins".',
    }),
    offlineGraceSecs: NonNegative('offlineGraceSecs', 'Offline hosts stop blocking their wave after this grace.'),
    complianceStaleAfterSecs: Positive('complianceStaleAfterSecs', 'Issue 15: evidence older than this shows as stale in the compliance view (agents re-check every complianceIntervalSecs, default 6 h).'),
    maxBodyBytes: Positive('maxBodyBytes', 'Request body size limit.'),
    maxArtifactBytes: Positive('maxArtifactBytes', 'Signed artefact size limit.'),
    retryAfterSecs: Positive('retryAfterSecs', 'Retry-After of 503 answers while not ready.'),
    fetchTimeoutMs: Positive('fetchTimeoutMs', 'Per-fetch timeout for URL and git sources.'),
    leaseSecs: Positive(
      'leaseSecs',
      'Several replicas on PostgreSQL: the leader lease. The leader renews it every leaseSecs/3; when it dies another replica takes over within leaseSecs + leaseSecs/3.',
    ),
    retentionDays: NonNegative(
      'retentionDays',
      'Reports and signed evidence, finished rollouts (not the newest of a channel) with their controls, audit entries and witnessed audit heads older than this are pruned; the audit chain keeps its anchor (control-plane/README.md, "Retention"). 0: keep everything.',
    ),
    retentionIntervalSecs: Positive('retentionIntervalSecs', 'How often the leader prunes (retentionDays).'),
    logLevel: Enum(['debug', 'info', 'warn', 'error'] as const, { default: DEFAULTS.logLevel, description: 'JSON log lines on stderr at this level and above (NIXFLEET_LOG_LEVEL overrides).' }),
    metricsListen: Nullable(
      Strict({
        host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Loopback by default; another address exposes /metrics without TLS there.' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, description: '0: an ephemeral port (tests).' }),
      }),
      {
        default: DEFAULTS.metricsListen,
        description: 'A second, plain-HTTP listener serving only /healthz, /readyz and /metrics (for Prometheus and load balancers without a fleet certificate); null: none.',
      },
    ),
    reportQuotaPerHour: Positive(
      'reportQuotaPerHour',
      'Reports stored per host per rolling hour; more are refused (429 REPORT_QUOTA, counted in nixfleet_report_refusals_total, audited once per burst).',
    ),
    enrolment: Nullable(EnrolmentConfigSchema, { default: DEFAULTS.enrolment, description: 'null: no enrolment; certificates are minted by an operator.' }),
    clientIssuers: Nullable(ClientIssuersSchema, { default: DEFAULTS.clientIssuers }),
  },
  { title: 'nixfleet-control-plane configuration' },
);
export type Config = Static<typeof ControlPlaneConfigSchema>;

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' | 'MTLS_MISSING' | 'PRIVATE_KEY_REFUSED' | 'TRUST_INVALID';
export type ConfigError = { code: ConfigErrorCode; message: string };

const validator = compile(ControlPlaneConfigSchema, { unknownField: 'unknown setting' });
const withDefaults = compileDefaults(ControlPlaneConfigSchema);

/**
 * Validate a partial configuration (parsed JSON file merged with flags) and fill the defaults.
 * Reports every bad field at once. Pure: touches no file.
 */
export function resolveConfig(partial: unknown): Result<Config, ConfigError> {
  if (typeof partial !== 'object' || partial === null || Array.isArray(partial)) return err({ code: 'CONFIG_INVALID', message: 'configuration must be a JSON object' });
  const c = withDefaults(partial);
  const issues = validator.check(c)
    ? []
    : validator.issues(c).map((i) => {
        const key = i.path.slice(2);
        // SPEC §5: the CP holds no key that can authorise anything; say so to whoever tries.
        return i.message === 'unknown setting' && /key|secret|sign/i.test(key) ? { ...i, message: `${i.message} (the control plane holds no signing or CA key)` } : i;
      });
  const source = (c as { source?: { type?: unknown; revocationsUrl?: unknown } }).source;
  if ((c as { revocations?: unknown }).revocations === true && source?.type === 'url' && source.revocationsUrl === undefined) {
    issues.push({ path: '$.source.revocationsUrl', message: 'required when revocations is true' });
  }
  if (issues.length > 0 || !validator.check(c)) return err({ code: 'CONFIG_INVALID', message: `invalid configuration:\n  ${issues.map((i) => `${i.path}: ${i.message}`).join('\n  ')}` });
  return ok(c);
}

/** The store the configuration selects: `store`, or SQLite at `dbPath` (the default). */
export function storeConfig(c: Config): StoreConfig {
  return c.store ?? { sqlite: { path: c.dbPath } };
}

/** Everything read from disk at start-up. `trust` is re-read later by the artefact poller. */
export type StartupMaterial = {
  tls: { cert: string; key: string; ca: string };
  trust: Trust;
  /** Issue 16: the host-issuance intermediate, when enrolment is configured. */
  issuer: { certPem: string; keyPem: string } | null;
  /** Issue 16: the issuers each role accepts. */
  pins: IssuerPins;
};

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);

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

  const issuer = config.enrolment === null ? ok(null) : loadIssuer(config.enrolment, caCerts);
  if (!issuer.ok) return issuer;
  const pins = issuerPins(config, caCerts, issuer.value);
  if (!pins.ok) return pins;

  const trust = loadTrust(config.trustFile);
  if (!trust.ok) return trust;
  // OpenSSL must find the intermediates to verify what they issued: the trust store gets them too.
  const ca = [caText.value, ...(issuer.value === null ? [] : [issuer.value.certPem]), ...pins.value.extraPems].join('\n');
  return ok({ tls: { cert: certText.value, key: keyText.value, ca }, trust: trust.value, issuer: issuer.value, pins: pins.value.pins });
}

/**
 * The host-issuance intermediate: a CA certificate issued by the fleet CA, with pathLen 0, EKU
 * clientAuth only and the critical name constraint O=nixfleet, OU=host (pki/x509.ts), and its
 * key — which must not be the fleet CA's key.
 */
function loadIssuer(e: EnrolmentConfig, caCerts: X509Certificate[]): Result<{ certPem: string; keyPem: string }, ConfigError> {
  const certText = readText(e.issuerCertFile, 'enrolment issuer certificate (enrolment.issuerCertFile)', 'MTLS_MISSING');
  if (!certText.ok) return certText;
  const pems = splitPemCerts(certText.value);
  if (pems.length !== 1 || looksLikePrivateKey(certText.value)) return err({ code: 'CONFIG_INVALID', message: `enrolment.issuerCertFile ${e.issuerCertFile}: must hold exactly one PEM certificate and no key` });
  const certPem = pems[0]!;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (x) {
    return err({ code: 'CONFIG_INVALID', message: `enrolment.issuerCertFile ${e.issuerCertFile}: unreadable certificate (${String(x)})` });
  }
  const keyText = readText(e.issuerKeyFile, 'enrolment issuer key (enrolment.issuerKeyFile)', 'MTLS_MISSING');
  if (!keyText.ok) return keyText;
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText.value);
  } catch {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `enrolment.issuerKeyFile ${e.issuerKeyFile}: not a PEM private key (a release signing key is never accepted here)` });
  }
  const pub = createPublicKey(key);
  if (caCerts.some((ca) => samePublicKey(pub, ca.publicKey))) {
    return err({ code: 'PRIVATE_KEY_REFUSED', message: `enrolment.issuerKeyFile ${e.issuerKeyFile} is the fleet root CA's key: it must stay offline; give the control plane a host-issuance intermediate (nixfleet pki init-issuance)` });
  }
  if (!samePublicKey(pub, cert.publicKey)) return err({ code: 'PRIVATE_KEY_REFUSED', message: `enrolment.issuerKeyFile ${e.issuerKeyFile} does not belong to ${e.issuerCertFile}` });
  const facts = readIssuanceCaFacts(certPem);
  if (facts === null || !facts.isCa || facts.pathLength !== 0 || !facts.clientAuthOnly || !facts.hostNameConstrained) {
    return err({
      code: 'PRIVATE_KEY_REFUSED',
      message: `enrolment.issuerCertFile ${e.issuerCertFile} is not a constrained host-issuance intermediate (needs cA with pathLen 0, extKeyUsage clientAuth only, critical nameConstraints O=nixfleet, OU=host): the control plane may hold no key that can issue anything else`,
    });
  }
  if (!caCerts.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    return err({ code: 'CONFIG_INVALID', message: `enrolment.issuerCertFile ${e.issuerCertFile} was not issued by the fleet CA (clientCaFile)` });
  }
  return ok({ certPem, keyPem: keyText.value });
}

/** Fingerprints of the issuers per role, and the PEM of configured issuers not already trusted. */
function issuerPins(config: Config, caCerts: X509Certificate[], issuer: { certPem: string } | null): Result<{ pins: IssuerPins; extraPems: string[] }, ConfigError> {
  const ci = config.clientIssuers;
  const defaults = { host: [...caCerts, ...(issuer === null ? [] : [new X509Certificate(issuer.certPem)])], operator: caCerts };
  if (ci === null) return ok({ pins: { host: new Set(defaults.host.map((c) => c.fingerprint256)), operator: new Set(defaults.operator.map((c) => c.fingerprint256)) }, extraPems: [] });
  const known = new Set(defaults.host.map((c) => c.fingerprint256));
  const extraPems: string[] = [];
  const read = (role: 'host' | 'operator'): Result<Set<string>, ConfigError> => {
    const out = new Set<string>();
    for (const file of ci[role]) {
      const text = readText(file, `clientIssuers.${role}`, 'MTLS_MISSING');
      if (!text.ok) return text;
      if (looksLikePrivateKey(text.value)) return err({ code: 'PRIVATE_KEY_REFUSED', message: `clientIssuers.${role} ${file} holds a private key` });
      const pems = splitPemCerts(text.value);
      if (pems.length === 0) return err({ code: 'MTLS_MISSING', message: `clientIssuers.${role} ${file}: no PEM certificate` });
      for (const pem of pems) {
        let c: X509Certificate;
        try {
          c = new X509Certificate(pem);
        } catch (x) {
          return err({ code: 'MTLS_MISSING', message: `clientIssuers.${role} ${file}: unreadable certificate (${String(x)})` });
        }
        if (!c.ca) return err({ code: 'CONFIG_INVALID', message: `clientIssuers.${role} ${file}: ${c.subject.replace(/\n/g, ', ')} is not a CA certificate` });
        out.add(c.fingerprint256);
        if (!known.has(c.fingerprint256)) {
          known.add(c.fingerprint256);
          extraPems.push(pem);
        }
      }
    }
    return ok(out);
  };
  const host = read('host');
  if (!host.ok) return host;
  const operator = read('operator');
  if (!operator.ok) return operator;
  return ok({ pins: { host: host.value, operator: operator.value }, extraPems });
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
