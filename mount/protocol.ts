/**
 * The control socket's wire format: one JSON message per line. Buffers travel as
 * `{"$b64": "…"}`; MiqErrors keep their code (toJSON / fromJSON).
 *
 *   request   {"id": 1, "op": "profile.switch", "args": {...}}
 *   event     {"id": 1, "event": {...}}            (progress, zero or more)
 *   reply     {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {code, message, details}}
 */
export const SOCKET_NAME = 'miq.sock';
export const PROTOCOL_VERSION = 1;

export interface Request { id: number; op: string; args: unknown }
export type Reply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string; details?: Record<string, unknown> } }
  | { id: number; event: unknown };

export function encode(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { $b64: v.toString('base64') };
  if (v instanceof Uint8Array) return { $b64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map(encode);
  if (v instanceof Map || v instanceof Set || typeof v === 'function') return undefined;
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined && typeof x !== 'function') o[k] = encode(x);
    return o;
  }
  return v;
}

export function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.$b64 === 'string' && Object.keys(o).length === 1) return Buffer.from(o.$b64, 'base64');
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = decode(x);
    return out;
  }
  return v;
}

export const line = (m: Request | Reply): string => `${JSON.stringify(encode(m))}\n`;

/** Splits a byte stream into decoded JSON messages. */
export function lineReader(onMessage: (m: unknown) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const l = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (l.trim()) onMessage(decode(JSON.parse(l)));
    }
  };
}
