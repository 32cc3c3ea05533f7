// Providers and retry policy from the function's secrets. A provider whose secrets are all
// absent is left out (its devices get "<provider> is not configured" as their failure); one
// half configured is a deployment error, said when the function starts.

import type { Env } from "../_shared/supabase.ts";
import { ApnsProvider, DEFAULT_APNS_BASE_URL } from "./apns.ts";
import type { Providers } from "./dispatch.ts";
import {
  DEFAULT_FCM_BASE_URL,
  DEFAULT_GOOGLE_TOKEN_URL,
  FcmProvider,
  parseServiceAccount,
} from "./fcm.ts";
import type { Clock, Fetch } from "./ports.ts";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry.ts";

const APNS_SECRETS = ["APNS_KEY_ID", "APNS_TEAM_ID", "APNS_PRIVATE_KEY", "APNS_TOPIC"] as const;

export function providersFromEnv(env: Env, fetch: Fetch, clock: Clock): Providers {
  const providers: Providers = {};
  const account = env("FCM_SERVICE_ACCOUNT");
  if (account) {
    const serviceAccount = parseServiceAccount(account);
    providers.fcm = new FcmProvider(
      {
        serviceAccount,
        baseUrl: env("FCM_BASE_URL") || DEFAULT_FCM_BASE_URL,
        tokenUrl: env("FCM_TOKEN_URL") || serviceAccount.token_uri || DEFAULT_GOOGLE_TOKEN_URL,
      },
      fetch,
      clock,
    );
  }
  const present = APNS_SECRETS.filter((name) => env(name));
  if (present.length === APNS_SECRETS.length) {
    providers.apns = new ApnsProvider(
      {
        keyId: env("APNS_KEY_ID")!,
        teamId: env("APNS_TEAM_ID")!,
        privateKey: env("APNS_PRIVATE_KEY")!,
        topic: env("APNS_TOPIC")!,
        baseUrl: env("APNS_BASE_URL") || DEFAULT_APNS_BASE_URL,
      },
      fetch,
      clock,
    );
  } else if (present.length > 0) {
    const missing = APNS_SECRETS.filter((name) => !env(name));
    throw new Error(`APNs is half configured: ${missing.join(", ")} not set`);
  }
  return providers;
}

function positive(env: Env, name: string, fallback: number): number {
  const text = env(name);
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0`);
  return value;
}

export function retryFromEnv(env: Env): RetryPolicy {
  return {
    attempts: Math.max(1, Math.floor(positive(env, "PUSH_MAX_ATTEMPTS", DEFAULT_RETRY.attempts))),
    baseDelayMs: DEFAULT_RETRY.baseDelayMs,
    maxDelayMs: positive(env, "PUSH_MAX_RETRY_DELAY_SECONDS", DEFAULT_RETRY.maxDelayMs / 1000) *
      1000,
  };
}
