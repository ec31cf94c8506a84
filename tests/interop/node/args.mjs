// The command line both SDK servers take: `--name value` pairs (parsed by
// node's own util.parseArgs), with `--mode` checked against the modes a server
// knows and `--port` (0: any free port).
import { parseArgs } from 'node:util';

export function serverArgs(modes, defaultMode, extra = {}) {
  const { values } = parseArgs({
    options: { mode: { type: 'string' }, port: { type: 'string' }, ...extra },
    strict: true,
  });
  const mode = values.mode ?? defaultMode;
  if (!modes.includes(mode)) {
    console.error(`unknown mode ${mode}; one of ${modes.join(', ')}`);
    process.exit(2);
  }
  return { ...values, mode, port: Number(values.port ?? 0) };
}
