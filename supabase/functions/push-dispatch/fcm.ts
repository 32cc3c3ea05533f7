// Firebase Cloud Messaging, HTTP v1 API (android and web tokens). Authenticates with an
// OAuth access token obtained from the service account: a JWT assertion signed RS256 with
// Web Crypto, exchanged at the token endpoint, cached until shortly before it expires.

import { rsaPrivateKey, signJwt } from "../_shared/jwt.ts";
import type { Clock, Device, Fetch, PushMessage, PushProvider, SendOutcome } from "./ports.ts";
import { parseRetryAfter } from "./retry.ts";

export interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri?: string;
}

export interface FcmConfig {
  serviceAccount: ServiceAccount;
  /** https://fcm.googleapis.com unless overridden (tests, proxies). */
  baseUrl: string;
  /** The OAuth token endpoint; the service account's token_uri by default. */
  tokenUrl: string;
}

const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
export const DEFAULT_FCM_BASE_URL = "https://fcm.googleapis.com";
export const DEFAULT_GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

export function parseServiceAccount(text: string): ServiceAccount {
  let parsed: Partial<ServiceAccount>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error("FCM_SERVICE_ACCOUNT is not JSON (paste the service account key file)");
  }
  for (const field of ["project_id", "client_email", "private_key"] as const) {
    if (typeof parsed[field] !== "string" || !parsed[field]) {
      throw new Error(`FCM_SERVICE_ACCOUNT has no ${field}`);
    }
  }
  return parsed as ServiceAccount;
}

/** FCM wants string values in `data`. */
function stringData(message: PushMessage): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(message.data)) {
    data[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  data.notification_id = message.notificationId;
  data.type = message.type;
  return data;
}

interface FcmErrorBody {
  error?: {
    status?: string;
    message?: string;
    details?: { "@type"?: string; errorCode?: string }[];
  };
}

export class FcmProvider implements PushProvider {
  #token: { value: string; expiresAt: number } | null = null;
  /** The token request in flight, shared by concurrent sends (one request, not one each). */
  #pending: Promise<string> | null = null;

  constructor(
    private readonly config: FcmConfig,
    private readonly fetch: Fetch,
    private readonly clock: Clock,
  ) {}

  accessToken(): Promise<string> {
    const now = this.clock.now().getTime();
    if (this.#token && this.#token.expiresAt - 60_000 > now) {
      return Promise.resolve(this.#token.value);
    }
    this.#pending ??= this.requestToken(now).finally(() => {
      this.#pending = null;
    });
    return this.#pending;
  }

  private async requestToken(now: number): Promise<string> {
    const account = this.config.serviceAccount;
    const issuedAt = Math.floor(now / 1000);
    const assertion = await signJwt("RS256", await rsaPrivateKey(account.private_key), {
      iss: account.client_email,
      scope: SCOPE,
      aud: this.config.tokenUrl,
      iat: issuedAt,
      exp: issuedAt + 3600,
    });
    const response = await this.fetch(this.config.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion,
      }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.access_token !== "string") {
      throw new Error(
        `FCM OAuth token request failed: ${response.status} ${body.error ?? ""}`.trim(),
      );
    }
    this.#token = {
      value: body.access_token,
      expiresAt: now + (Number(body.expires_in) || 3600) * 1000,
    };
    return this.#token.value;
  }

  async send(device: Device, message: PushMessage): Promise<SendOutcome> {
    const projectId = this.config.serviceAccount.project_id;
    const response = await this.fetch(
      `${this.config.baseUrl.replace(/\/$/, "")}/v1/projects/${projectId}/messages:send`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${await this.accessToken()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          message: {
            token: device.push_token,
            notification: { title: message.title, body: message.body },
            data: stringData(message),
          },
        }),
      },
    );
    if (response.ok) {
      await response.body?.cancel();
      return { kind: "sent" };
    }
    const body: FcmErrorBody = await response.json().catch(() => ({}));
    const code = body.error?.details?.find((d) => d.errorCode)?.errorCode ?? body.error?.status ??
      "";
    const reason = `fcm ${response.status} ${code}: ${body.error?.message ?? response.statusText}`
      .slice(0, 500);
    if (code === "UNREGISTERED") return { kind: "invalid_token", reason };
    if (response.status === 401) {
      // The cached access token was revoked or expired early: fetch a new one and retry.
      this.#token = null;
      return { kind: "transient", reason };
    }
    if (response.status === 429 || response.status >= 500) {
      return {
        kind: "transient",
        reason,
        retryAfterSeconds: parseRetryAfter(response.headers.get("retry-after"), this.clock.now()),
      };
    }
    return { kind: "failed", reason };
  }
}
