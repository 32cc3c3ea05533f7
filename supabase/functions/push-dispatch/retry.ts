// Retrying transient provider failures: exponential backoff, or exactly what the provider's
// Retry-After asks when it says, and giving up (recorded as a failure) when the wait would
// outlast what an edge function invocation may spend.

import type { Clock, Device, PushMessage, PushProvider, SendOutcome } from "./ports.ts";

export interface RetryPolicy {
  /** Sends per device, the first included. */
  attempts: number;
  baseDelayMs: number;
  /** The longest single wait; a longer Retry-After ends the retries. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), if any. */
export function parseRetryAfter(header: string | null, now: Date): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

export interface Attempted {
  outcome: SendOutcome;
  attempts: number;
}

export async function sendWithRetry(
  provider: PushProvider,
  device: Device,
  message: PushMessage,
  clock: Clock,
  policy: RetryPolicy,
): Promise<Attempted> {
  for (let attempt = 1;; attempt++) {
    let outcome: SendOutcome;
    try {
      outcome = await provider.send(device, message);
    } catch (error) {
      // fetch rejects on connection failures: as transient as a 503.
      outcome = { kind: "transient", reason: `request failed: ${(error as Error).message}` };
    }
    if (outcome.kind !== "transient" || attempt >= policy.attempts) {
      return { outcome, attempts: attempt };
    }
    const delay = outcome.retryAfterSeconds !== undefined
      ? outcome.retryAfterSeconds * 1000
      : policy.baseDelayMs * 2 ** (attempt - 1);
    if (delay > policy.maxDelayMs) {
      return {
        outcome: {
          ...outcome,
          reason: `${outcome.reason} (retry after ${delay / 1000}s: gave up)`,
        },
        attempts: attempt,
      };
    }
    await clock.sleep(delay);
  }
}
