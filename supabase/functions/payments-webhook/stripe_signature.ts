// Verifies Stripe's `Stripe-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`, where
// the HMAC is over `<t>.<raw body>` with the endpoint's signing secret. A signature older than
// the tolerance is refused, so a captured request cannot be replayed later.

export class SignatureError extends Error {}

export const DEFAULT_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares in time independent of where the strings differ. */
function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export async function sign(secret: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestamp}.${body}`)));
}

/** Throws SignatureError unless `header` signs `body` with `secret`, recently enough. */
export async function verifySignature(
  body: string,
  header: string | null,
  secret: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): Promise<void> {
  if (!header) throw new SignatureError("missing Stripe-Signature header");
  const parts = header.split(",").map((part) => part.split("=", 2) as [string, string]);
  const timestamp = Number(parts.find(([k]) => k === "t")?.[1]);
  const signatures = parts.filter(([k]) => k === "v1").map(([, v]) => v);
  if (!Number.isInteger(timestamp) || signatures.length === 0) {
    throw new SignatureError("malformed Stripe-Signature header");
  }
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) {
    throw new SignatureError("signature timestamp outside the tolerance");
  }
  const expected = await sign(secret, timestamp, body);
  if (!signatures.some((candidate) => timingSafeEqual(candidate, expected))) {
    throw new SignatureError("signature does not match");
  }
}
