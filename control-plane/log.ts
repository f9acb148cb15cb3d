/** The control plane logs through the shared pino factory (io/log.ts). */
export { createLogger, effectiveLevel, logBug, silentLogger, type Logger, type LogLevel } from '../io/log.ts';
