/**
 * The PKI part of the command table (cli/commands.ts lists it in its place): the fleet CA, the
 * host-issuance intermediate and bootstrap tokens (issue 16), and the certificates minted by hand.
 * All offline, on the operator's machine.
 */
import type { CommandSpec, FlagSpec } from './framework.ts';
import { lazy } from './lazy.ts';
import { SETTINGS } from './settings.ts';

const pki = () => import('./cmd-pki.ts');
const enrolCmd = () => import('./cmd-enrol.ts');

const PKI_DIR: FlagSpec = {
  name: 'pki-dir',
  type: 'string',
  placeholder: 'DIR',
  description: SETTINGS.pkiDir.description,
  setting: 'pkiDir',
  required: true,
};

const MINT_FLAGS: FlagSpec[] = [
  PKI_DIR,
  { name: 'out-dir', type: 'string', placeholder: 'DIR', default: '.', description: 'Where to write NAME.pem and NAME.key (mode 0600).' },
  { name: 'validity-days', type: 'int', placeholder: 'N', default: 365, description: 'Days of validity from --not-before.' },
  { name: 'not-before', type: 'string', placeholder: 'TIME', description: 'Start of validity, RFC 3339 (default now).' },
  { name: 'force', type: 'boolean', description: 'Replace existing NAME.pem / NAME.key.' },
];

export const PKI_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'pki init',
    summary: 'Create the fleet CA (ca.pem, ca.key) in the PKI directory; refuses to overwrite one',
    description:
      'The CA key stays on the operator machine: the control plane and the agents get only ca.pem.\nAn existing CA is never replaced (every certificate it issued would stop working).',
    args: [],
    flags: [
      PKI_DIR,
      { name: 'name', type: 'string', placeholder: 'CN', default: 'nixfleet fleet CA', description: 'Subject CN of the CA.' },
      { name: 'validity-days', type: 'int', placeholder: 'N', default: 3650, description: 'Days of validity.' },
    ],
    examples: ['nixfleet pki init --pki-dir ~/.config/nixfleet/pki'],
    online: false,
    handler: lazy(pki, 'pkiInit'),
  },
  {
    name: 'pki init-issuance',
    summary: 'Create the host-issuance intermediate (issuance.pem, issuance.key) for the control plane, signed by the fleet CA',
    description:
      'The intermediate can only issue O=nixfleet, OU=host client certificates (name constraints, extKeyUsage clientAuth, pathLen 0): give it to the control plane (enrolment.issuerCertFile / issuerKeyFile) so hosts enrol and renew on their own. The fleet CA key stays in the PKI directory.',
    args: [],
    flags: [
      PKI_DIR,
      { name: 'out-dir', type: 'string', placeholder: 'DIR', default: '.', description: 'Where to write issuance.pem and issuance.key (mode 0600).' },
      { name: 'validity-days', type: 'int', placeholder: 'N', default: 365, description: 'Days of validity of the intermediate.' },
      { name: 'force', type: 'boolean', description: 'Replace existing files.' },
    ],
    examples: ['nixfleet pki init-issuance --pki-dir ~/.config/nixfleet/pki --out-dir ./cp'],
    online: false,
    handler: lazy(enrolCmd, 'pkiInitIssuance'),
  },
  {
    name: 'enroll token',
    summary: 'Mint a one-time bootstrap token for a host whose SSH host key the fleet does not declare yet',
    description:
      "Signed by the org key the control planes trust (trust.json orgRootKey); bound to --host, expiring after --ttl, single use (the control plane keeps used tokens outside its database). Put it in the agent's enrol.tokenFile.",
    args: [],
    flags: [
      { name: 'host', type: 'string', placeholder: 'HOST', required: true, description: 'The host name exactly as in the fleet.' },
      { name: 'ttl', type: 'string', placeholder: 'DURATION', default: '1h', description: 'Lifetime: 60s to 30d (e.g. 30m, 1h, 2d); the control plane caps it (enrolment.maxTokenTtlSecs).' },
      { name: 'org-key', type: 'string', placeholder: 'FILE', required: true, description: 'The org private key (PKCS#8 PEM, e.g. from nixfleet-release keygen).' },
      { name: 'by', type: 'string', placeholder: 'NAME', description: 'Who minted it (in the token and the audit log; default $USER).' },
      { name: 'out', type: 'string', placeholder: 'FILE', description: 'Write the token to FILE (0600, never overwritten) instead of stdout.' },
    ],
    examples: ['nixfleet enroll token --host web7 --ttl 1h --org-key ~/.config/nixfleet/org.key --out web7.token'],
    online: false,
    handler: lazy(enrolCmd, 'enrollToken'),
  },
  {
    name: 'mint-host-cert',
    summary: 'Mint an agent client certificate (CN = HOSTNAME, OU host) signed by the fleet CA',
    args: [{ name: 'HOSTNAME', description: 'The host name exactly as in the fleet (the CP compares it with the CN).' }],
    flags: MINT_FLAGS,
    examples: ['nixfleet mint-host-cert web1 --pki-dir ~/.config/nixfleet/pki --out-dir ./certs'],
    online: false,
    handler: lazy(pki, 'mintHost'),
  },
  {
    name: 'mint-operator-cert',
    summary: 'Mint an operator client certificate (CN = NAME, OU operator) for this CLI',
    args: [{ name: 'NAME', description: 'Operator name (shown as operator:NAME in the audit log).' }],
    flags: MINT_FLAGS,
    examples: ['nixfleet mint-operator-cert alice --pki-dir ~/.config/nixfleet/pki --out-dir ~/.config/nixfleet'],
    online: false,
    handler: lazy(pki, 'mintOperator'),
  },
  {
    name: 'mint-server-cert',
    summary: 'Mint the control plane server certificate (serverAuth; SAN always has localhost, 127.0.0.1)',
    args: [],
    flags: [
      { name: 'hostnames', type: 'string', placeholder: 'LIST', description: 'Comma-separated DNS names / IPs the CP is reached by.' },
      ...MINT_FLAGS,
    ],
    examples: ['nixfleet mint-server-cert --hostnames cp.example.org,10.0.0.5 --pki-dir ~/.config/nixfleet/pki --out-dir ./cp'],
    online: false,
    handler: lazy(pki, 'mintServer'),
  },
];
