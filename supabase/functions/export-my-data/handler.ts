// The HTTP face of the GDPR export (right of access): the caller's own document from
// public.export_my_data(), run as the caller. Small documents are answered inline; above the
// threshold the document goes to the caller's folder in the private exports bucket and the
// answer is a signed URL that expires (edge function responses are not meant for big bodies,
// and a phone on a bad network would rather download a file it can resume).

import { bearerToken, unverifiedClaims } from "../_shared/auth.ts";
import { HttpError, json, requireMethod, serveJson } from "../_shared/http.ts";
import { corsHeaders } from "../_shared/cors.ts";
import type { ExportSource, ExportStorage } from "./ports.ts";

export interface HandlerOptions {
  source: ExportSource;
  storage: ExportStorage;
  now: () => Date;
  /** Documents up to this size (bytes of JSON) are answered inline. */
  inlineMaxBytes: number;
  /** How long a signed URL to a stored export works. */
  urlTtlSeconds: number;
}

export const DEFAULT_INLINE_MAX_BYTES = 1_000_000;
export const DEFAULT_URL_TTL_SECONDS = 3600;

/** Accepts no body, or a JSON object (supabase-js sends `{}`); anything else is a 400. */
async function checkBody(request: Request): Promise<void> {
  const text = await request.text();
  if (!text.trim()) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "body must be empty or a JSON object");
  }
}

export function makeHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  return serveJson(async (request) => {
    requireMethod(request, "POST");
    const jwt = bearerToken(request);
    unverifiedClaims(jwt); // a token that is not even a JWT is refused before any I/O
    await checkBody(request);
    const document = await options.source.exportAs(jwt);
    const bytes = new TextEncoder().encode(JSON.stringify(document));
    if (bytes.length <= options.inlineMaxBytes) {
      return new Response(bytes, {
        status: 200,
        headers: { ...corsHeaders, "content-type": "application/json" },
      });
    }
    // The user id comes from the document, i.e. from auth.uid() as the database saw the
    // token, never from an unverified claim.
    const userId = String(document.user_id);
    const stamp = options.now().toISOString().replace(/[:.]/g, "-");
    const stored = await options.storage.store(
      jwt,
      `${userId}/export-${stamp}.json`,
      bytes,
      options.urlTtlSeconds,
    );
    const expiresAt = new Date(options.now().getTime() + options.urlTtlSeconds * 1000);
    return json(200, {
      user_id: userId,
      bytes: bytes.length,
      bucket: stored.bucket,
      path: stored.path,
      signed_url: stored.signedUrl,
      expires_at: expiresAt.toISOString(),
    });
  });
}
