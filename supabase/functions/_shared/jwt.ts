// Compact JWS with Web Crypto only: HS256 (Supabase tokens and signed URLs), RS256 (Google
// service-account assertions for FCM) and ES256 (APNs provider tokens). No dependency.

const encoder = new TextEncoder();

export function base64UrlEncode(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = "";
  for (const byte of view) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function base64UrlDecode(text: string): Uint8Array<ArrayBuffer> {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(
    Math.ceil(text.length / 4) * 4,
    "=",
  );
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/** The DER bytes of a PEM block (`-----BEGIN PRIVATE KEY-----` …). */
export function pemToDer(pem: string): Uint8Array<ArrayBuffer> {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\\n/g, "").replace(
    /\s+/g,
    "",
  );
  if (!body) throw new Error("empty PEM key");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

export type Algorithm = "HS256" | "RS256" | "ES256";

const SIGN_PARAMS: Record<Algorithm, AlgorithmIdentifier | EcdsaParams> = {
  HS256: "HMAC",
  RS256: "RSASSA-PKCS1-v1_5",
  ES256: { name: "ECDSA", hash: "SHA-256" },
};

/** Signs `claims` as a compact JWS; ES256 signatures come out of Web Crypto as r||s already. */
export async function signJwt(
  alg: Algorithm,
  key: CryptoKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const head = base64UrlEncode(encoder.encode(JSON.stringify({ alg, typ: "JWT", ...header })));
  const body = base64UrlEncode(encoder.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign(
    SIGN_PARAMS[alg],
    key,
    encoder.encode(`${head}.${body}`),
  );
  return `${head}.${body}.${base64UrlEncode(signature)}`;
}

export function hmacKey(
  secret: string,
  usage: KeyUsage[] = ["sign", "verify"],
): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    usage,
  );
}

export function rsaPrivateKey(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "pkcs8",
    pemToDer(pem),
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

export function ecPrivateKey(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "pkcs8",
    pemToDer(pem),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    [
      "sign",
    ],
  );
}

/** Whether `token` carries a valid signature by `key` (algorithm given by the caller). */
export async function verifyJwt(alg: Algorithm, key: CryptoKey, token: string): Promise<boolean> {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  let header: { alg?: string };
  try {
    header = JSON.parse(new TextDecoder().decode(base64UrlDecode(parts[0])));
  } catch {
    return false;
  }
  if (header.alg !== alg) return false;
  let signature: Uint8Array<ArrayBuffer>;
  try {
    signature = base64UrlDecode(parts[2]);
  } catch {
    return false;
  }
  return await crypto.subtle.verify(
    SIGN_PARAMS[alg],
    key,
    signature,
    encoder.encode(`${parts[0]}.${parts[1]}`),
  );
}

export async function verifyHs256(token: string, secret: string): Promise<boolean> {
  return verifyJwt("HS256", await hmacKey(secret, ["verify"]), token);
}
