#!/usr/bin/env node
// Thin launcher: registers tsx's ESM loader and runs the TypeScript entry point.
import { register } from 'tsx/esm/api';
register();
await import('../release/main.ts');
