// The caller's credentials: the bearer token of the Authorization header, its claims, and a
// constant-time comparison for shared secrets.

import { HttpError } from "./http.ts";
import { base64UrlDecode, verifyHs256 } from "./jwt.ts";

/** The bearer token of `request`; 401 when there is none. */
export function bearerToken(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new HttpError(401, "missing bearer token (Authorization: Bearer <jwt>)");
  return match[1];
}

export type Claims = Record<string, unknown> & { sub?: string; role?: string; exp?: number };

/** The claims of a JWT, unverified (for tokens someone upstream verified); 401 if malformed. */
export function unverifiedClaims(token: string): Claims {
  const parts = token.split(".");
  if (parts.length !== 3) throw new HttpError(401, "the bearer token is not a JWT");
  try {
    const claims = JSON.parse(new TextDecoder().decode(base64UrlDecode(parts[1])));
    if (typeof claims !== "object" || claims === null) throw new Error("not an object");
    return claims as Claims;
  } catch {
    throw new HttpError(401, "the bearer token is not a JWT");
  }
}

/**
 * The claims of an HS256 token signed with `secret` and not expired at `nowSeconds`; 401
 * otherwise. Used where no gateway verified the token first (local serving, tests).
 */
export async function verifiedClaims(
  token: string,
  secret: string,
  nowSeconds: number,
): Promise<Claims> {
  const claims = unverifiedClaims(token);
  if (!(await verifyHs256(token, secret))) throw new HttpError(401, "invalid JWT signature");
  if (typeof claims.exp === "number" && claims.exp <= nowSeconds) {
    throw new HttpError(401, "JWT expired");
  }
  return claims;
}

/** Compares in time independent of where the strings differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  }
  return diff === 0;
}
