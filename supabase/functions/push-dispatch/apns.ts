// Apple Push Notification service (ios tokens), token-based authentication: a provider token
// (JWT, ES256 with the .p8 key, signed with Web Crypto) reused for 50 minutes (Apple refuses
// tokens older than an hour and refreshing more often than every 20 minutes).

import { ecPrivateKey, signJwt } from "../_shared/jwt.ts";
import type { Clock, Device, Fetch, PushMessage, PushProvider, SendOutcome } from "./ports.ts";
import { parseRetryAfter } from "./retry.ts";

export interface ApnsConfig {
  keyId: string;
  teamId: string;
  /** The contents of the AuthKey_<key id>.p8 file (PKCS#8 PEM). */
  privateKey: string;
  /** The app's bundle id (the apns-topic header). */
  topic: string;
  /** https://api.push.apple.com, or https://api.sandbox.push.apple.com for development builds. */
  baseUrl: string;
}

export const DEFAULT_APNS_BASE_URL = "https://api.push.apple.com";
const TOKEN_LIFETIME_MS = 50 * 60 * 1000;

export class ApnsProvider implements PushProvider {
  #token: { value: string; issuedAt: number } | null = null;
  #key: Promise<CryptoKey> | null = null;

  constructor(
    private readonly config: ApnsConfig,
    private readonly fetch: Fetch,
    private readonly clock: Clock,
  ) {}

  async providerToken(): Promise<string> {
    const now = this.clock.now().getTime();
    if (this.#token && now - this.#token.issuedAt < TOKEN_LIFETIME_MS) return this.#token.value;
    this.#key ??= ecPrivateKey(this.config.privateKey);
    const value = await signJwt(
      "ES256",
      await this.#key,
      { iss: this.config.teamId, iat: Math.floor(now / 1000) },
      { kid: this.config.keyId },
    );
    // Concurrent sends may both sign; keep the first, so every send reuses one token.
    if (!this.#token || this.#token.issuedAt !== now) this.#token = { value, issuedAt: now };
    return this.#token.value;
  }

  async send(device: Device, message: PushMessage): Promise<SendOutcome> {
    const url = `${this.config.baseUrl.replace(/\/$/, "")}/3/device/${
      encodeURIComponent(device.push_token)
    }`;
    const response = await this.fetch(url, {
      method: "POST",
      headers: {
        authorization: `bearer ${await this.providerToken()}`,
        "apns-topic": this.config.topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        aps: { alert: { title: message.title, body: message.body }, sound: "default" },
        notification_id: message.notificationId,
        type: message.type,
        data: message.data,
      }),
    });
    if (response.status === 200) {
      await response.body?.cancel();
      return { kind: "sent" };
    }
    const body: { reason?: string } = await response.json().catch(() => ({}));
    const reason = `apns ${response.status} ${body.reason ?? response.statusText}`.slice(0, 500);
    if (response.status === 410) return { kind: "invalid_token", reason };
    if (response.status === 403 && body.reason === "ExpiredProviderToken") {
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
