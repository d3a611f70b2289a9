// Shared harness for the interop peer scripts in test/interop/.
//
// Contract with the Go tests that run these scripts as subprocesses:
//   - success: exactly ONE line of JSON on stdout, exit 0;
//   - failure: the error on stderr, exit 1 (2 for bad usage);
//   - hard timeout: "timeout after Ns" on stderr, exit 3. N comes from
//     `--timeout=N` anywhere on the command line, else $INTEROP_TIMEOUT_SEC,
//     else 30.
// The appium loggers write to stderr (npmlog default), never to stdout; console.log
// and console.info are redirected to stderr here as well so that nothing but the
// result line can reach stdout.

import { writeSync } from 'node:fs';

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;
export const EXIT_TIMEOUT = 3;

console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

let finished = false;
const timeoutHooks = [];

/** `--name=value` options from the command line (other than --timeout), by name. */
export const flags = {};

// The hard deadline is armed when this module is evaluated, so it also covers the
// time spent loading the (large) peer packages: every script imports this module
// FIRST. The timer is unref'd: it never keeps the process alive by itself. It is a
// JS timer: while the event loop is blocked (synchronous module loading, slow on a
// CPU-starved machine) it cannot fire, so it may fire late — give the Go side's own
// kill deadline a margin of several seconds over N.
const deadlineSec = (() => {
  let sec = Number(process.env.INTEROP_TIMEOUT_SEC || 30);
  for (const a of process.argv.slice(2)) {
    const m = /^--timeout=(.*)$/.exec(a);
    if (m) {
      sec = Number(m[1]);
    }
  }
  return sec;
})();
if (Number.isFinite(deadlineSec) && deadlineSec > 0) {
  setTimeout(() => {
    if (finished) {
      return;
    }
    finished = true;
    writeSync(2, `timeout after ${deadlineSec}s\n`);
    for (const hook of timeoutHooks) {
      try {
        hook();
      } catch {
        // exiting anyway
      }
    }
    process.exit(EXIT_TIMEOUT);
  }, deadlineSec * 1000).unref();
}

/**
 * Registers fn to run (synchronously) when the hard timeout fires, before the exit.
 * process.exit() joins libuv's thread pool, so native work blocked in it (the
 * TunnelForwarder's TLS connect/handshake, up to 15 s) must be woken first: see
 * lib/cdtunnel.mjs, which tears down its loopback bridge here.
 */
export function onTimeout(fn) {
  timeoutHooks.push(fn);
}

/**
 * Splits argv into positional args and `--name=value` flags (into `flags`).
 * @param {string} usage one-line usage text, printed on a usage error
 * @param {number} minArgs number of required positional args
 * @returns {string[]} positional args
 */
export function start(usage, minArgs) {
  const positional = [];
  for (const a of process.argv.slice(2)) {
    const m = /^--([A-Za-z][\w-]*)=(.*)$/.exec(a);
    if (!m) {
      positional.push(a);
    } else if (m[1] !== 'timeout') {
      flags[m[1]] = m[2];
    }
  }
  if (!Number.isFinite(deadlineSec) || deadlineSec <= 0) {
    usageError(usage, 'timeout must be a positive number of seconds');
  }
  if (positional.length < minArgs) {
    usageError(usage, `expected at least ${minArgs} arguments, got ${positional.length}`);
  }
  process.on('unhandledRejection', (err) => fail(err));
  process.on('uncaughtException', (err) => fail(err));
  return positional;
}

export function usageError(usage, msg) {
  process.stderr.write(`usage: ${usage}\nerror: ${msg}\n`);
  process.exit(EXIT_USAGE);
}

/** Prints one JSON line on stdout and exits 0. */
export function succeed(value) {
  if (finished) {
    return;
  }
  finished = true;
  const line = JSON.stringify(toJsonSafe(value)) + '\n';
  process.stdout.write(line, () => process.exit(EXIT_OK));
}

/** Prints the error on stderr and exits 1. */
export function fail(err) {
  if (finished) {
    return;
  }
  finished = true;
  const msg = err instanceof Error ? (err.stack || err.message) : String(err);
  let cause = '';
  if (err instanceof Error && err.cause) {
    const c = err.cause instanceof Error ? err.cause.message : String(err.cause);
    if (!err.message.includes(c)) {
      cause = `\ncaused by: ${c}`;
    }
  }
  process.stderr.write(`${msg}${cause}\n`);
  process.exit(EXIT_FAIL);
}

/** Runs main(args, flags) and maps its outcome onto the contract above. */
export function run(usage, minArgs, main) {
  const args = start(usage, minArgs);
  Promise.resolve()
    .then(() => main(args, flags))
    .then(succeed, fail);
}

/**
 * Makes plist/XPC values JSON-safe: Buffer/Uint8Array -> {"$data": base64},
 * bigint -> number when safe else decimal string, Date -> ISO string.
 */
export function toJsonSafe(v) {
  if (v === null || v === undefined) {
    return v ?? null;
  }
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    return { $data: Buffer.from(v).toString('base64') };
  }
  if (v instanceof Date) {
    return v.toISOString();
  }
  if (Array.isArray(v)) {
    return v.map(toJsonSafe);
  }
  if (typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJsonSafe(x)]));
  }
  return v;
}

/** Strips [brackets] from an IPv6 literal ("[::1]" -> "::1"); keeps a %zone. */
export function hostArg(h) {
  const m = /^\[(.*)\]$/.exec(h);
  return m ? m[1] : h;
}

/** Parses a TCP port argument. */
export function portArg(usage, p) {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    usageError(usage, `bad port ${JSON.stringify(p)}`);
  }
  return n;
}
