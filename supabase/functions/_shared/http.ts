// JSON responses and errors shared by every function: a caller always gets a JSON body with
// an `error` message and the right status, never a stack trace (the trace goes to the log).

import { corsHeaders } from "./cors.ts";

/** An error meant for the caller: its message and status are answered as they are. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: HeadersInit = {}) {
    super(message);
  }
}

export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, "content-type": "application/json", ...headers },
  });
}

export function jsonError(status: number, message: string, headers: HeadersInit = {}): Response {
  return json(status, { error: message }, headers);
}

/** Refuses any method but `allowed` (405 with an `Allow` header). */
export function requireMethod(request: Request, allowed: string): void {
  if (request.method !== allowed) {
    throw new HttpError(405, `${allowed} only`, { allow: `${allowed}, OPTIONS` });
  }
}

/** The request's body as a JSON object; 400 for anything else (not JSON, an array, empty). */
export async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/**
 * Wraps a handler: answers CORS preflights, turns HttpError into its JSON error and anything
 * else into a bare 500 (logged with its stack, which the caller never sees).
 */
export function serveJson(
  handler: (request: Request) => Promise<Response>,
): (request: Request) => Promise<Response> {
  return async (request: Request): Promise<Response> => {
    if (request.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: corsHeaders });
    }
    try {
      return await handler(request);
    } catch (error) {
      if (error instanceof HttpError) return jsonError(error.status, error.message, error.headers);
      console.error(error);
      return jsonError(500, "internal error");
    }
  };
}
