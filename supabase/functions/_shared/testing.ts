// Test support shared by the functions' tests (not shipped: no function imports it).

import { base64UrlEncode } from "./jwt.ts";

export function assertEquals(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}\nexpected ${e}\n     got ${a}`);
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** A PKCS#8 PEM of a freshly generated private key, and its public key for verifying. */
export async function generatePem(
  algorithm: RsaHashedKeyGenParams | EcKeyGenParams,
): Promise<{ pem: string; publicKey: CryptoKey }> {
  const pair = await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = base64UrlEncode(der).replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64.padEnd(Math.ceil(b64.length / 4) * 4, "=");
  const lines = padded.match(/.{1,64}/g)!.join("\n");
  return {
    pem: `-----BEGIN PRIVATE KEY-----\n${lines}\n-----END PRIVATE KEY-----\n`,
    publicKey: pair.publicKey,
  };
}

/** A clock the test moves: `sleep` records the wait and advances time by it. */
export class FakeClock {
  slept: number[] = [];
  constructor(public current = new Date("2026-12-02T12:00:00Z")) {}
  now = (): Date => new Date(this.current);
  sleep = (milliseconds: number): Promise<void> => {
    this.slept.push(milliseconds);
    this.current = new Date(this.current.getTime() + milliseconds);
    return Promise.resolve();
  };
  advance(milliseconds: number): void {
    this.current = new Date(this.current.getTime() + milliseconds);
  }
}

export interface Captured {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

/**
 * A fetch that records every request and answers with `answer(request)` (status 200 and `{}`
 * when it returns nothing), for request-level tests of the supabase-js calls.
 */
export function recordingFetch(
  answer: (call: Captured) => { status?: number; body?: unknown } | undefined = () => undefined,
) {
  const captured: Captured[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const call: Captured = {
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(request.headers),
      body: request.method === "GET" || request.method === "HEAD" ? "" : await request.text(),
    };
    captured.push(call);
    const reply = answer(call) ?? {};
    return new Response(JSON.stringify(reply.body ?? {}), {
      status: reply.status ?? 200,
      headers: { "content-type": "application/json" },
    });
  };
  return { fetch, captured };
}
