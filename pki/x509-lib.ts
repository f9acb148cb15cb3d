/**
 * The one entry point to @peculiar/x509 (issue 16): every module that needs it imports it from
 * here, never from the package. Two things must happen before its first use: `reflect-metadata`
 * must be loaded before the package (its tsyringe container needs the Reflect polyfill; ES
 * modules evaluate imports in order, so this file's first import does it), and its crypto
 * provider must be Node's WebCrypto.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1]);

export { x509 };
