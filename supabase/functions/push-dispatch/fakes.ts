// Fake FCM (OAuth token endpoint + HTTP v1 send) and APNs, answering as the real services do
// for success, an invalid token (FCM UNREGISTERED, APNs 410), 429 with Retry-After and 500.
// They verify what the real ones verify: the RS256 assertion of the service account and the
// ES256 provider token, with the public halves of the keys the test generated.

import { base64UrlDecode, verifyJwt } from "../_shared/jwt.ts";
import { generatePem } from "../_shared/testing.ts";
import type { ServiceAccount } from "./fcm.ts";
import type { Fetch } from "./ports.ts";

export type Answer = "success" | "invalid" | "rate_limited" | "server_error";

export const FCM_BASE = "https://fcm.test";
export const TOKEN_URL = "https://oauth.test/token";
export const APNS_BASE = "https://apns.test";
export const ACCESS_TOKEN = "ya29.fake-access-token";

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(base64UrlDecode(jwt.split(".")[1])));
}

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * The fake services. `script[token]` lists the answers for successive sends to that token
 * (the last one repeats); tokens without a script succeed. Every call is recorded.
 */
export class FakePush {
  calls: { service: "oauth" | "fcm" | "apns"; token?: string }[] = [];
  script: Record<string, Answer[]> = {};
  retryAfter = "7";
  /** Access tokens FCM no longer accepts (revoked before they expired). */
  revoked = new Set<string>();
  #issued = 0;

  private constructor(
    readonly serviceAccount: ServiceAccount,
    readonly apnsKeyPem: string,
    private readonly rsaPublic: CryptoKey,
    private readonly ecPublic: CryptoKey,
  ) {}

  static async create(): Promise<FakePush> {
    const rsa = await generatePem({
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    });
    const ec = await generatePem({ name: "ECDSA", namedCurve: "P-256" });
    return new FakePush(
      {
        project_id: "tutoring-test",
        client_email: "push@tutoring-test.iam.gserviceaccount.com",
        private_key: rsa.pem,
        token_uri: TOKEN_URL,
      },
      ec.pem,
      rsa.publicKey,
      ec.publicKey,
    );
  }

  count(service: "oauth" | "fcm" | "apns"): number {
    return this.calls.filter((call) => call.service === service).length;
  }

  private next(token: string): Answer {
    const answers = this.script[token] ?? ["success"];
    return answers.length > 1 ? answers.shift()! : answers[0];
  }

  fetch: Fetch = async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (request.url === TOKEN_URL) return await this.oauth(request);
    if (url.origin === FCM_BASE) return await this.fcm(request, url);
    if (url.origin === APNS_BASE) return await this.apns(request, url);
    return reply(599, { error: `unexpected request to ${request.url}` });
  };

  private async oauth(request: Request): Promise<Response> {
    this.calls.push({ service: "oauth" });
    const form = new URLSearchParams(await request.text());
    const assertion = form.get("assertion") ?? "";
    const claims = claimsOf(assertion);
    const valid = form.get("grant_type") === "urn:ietf:params:oauth:grant-type:jwt-bearer" &&
      await verifyJwt("RS256", this.rsaPublic, assertion) &&
      claims.iss === this.serviceAccount.client_email && claims.aud === TOKEN_URL &&
      claims.scope === "https://www.googleapis.com/auth/firebase.messaging";
    if (!valid) return reply(400, { error: "invalid_grant" });
    this.#issued++;
    return reply(200, {
      access_token: `${ACCESS_TOKEN}-${this.#issued}`,
      expires_in: 3599,
      token_type: "Bearer",
    });
  }

  private async fcm(request: Request, url: URL): Promise<Response> {
    const body = await request.json();
    const token = body.message?.token as string;
    this.calls.push({ service: "fcm", token });
    const bearer = (request.headers.get("authorization") ?? "").replace(/^Bearer /, "");
    if (!bearer.startsWith(ACCESS_TOKEN) || this.revoked.has(bearer)) {
      return reply(401, { error: { code: 401, status: "UNAUTHENTICATED", message: "bad token" } });
    }
    if (url.pathname !== `/v1/projects/${this.serviceAccount.project_id}/messages:send`) {
      return reply(404, { error: { code: 404, status: "NOT_FOUND", message: url.pathname } });
    }
    const fcmError = (status: number, code: string, errorCode: string, message: string) =>
      reply(status, {
        error: {
          code: status,
          status: code,
          message,
          details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }],
        },
      }, status === 429 ? { "retry-after": this.retryAfter } : {});
    switch (this.next(token)) {
      case "success":
        return reply(200, { name: `projects/tutoring-test/messages/${this.calls.length}` });
      case "invalid":
        return fcmError(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.");
      case "rate_limited":
        return fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.");
      case "server_error":
        return fcmError(500, "INTERNAL", "INTERNAL", "Internal error.");
    }
  }

  private async apns(request: Request, url: URL): Promise<Response> {
    const token = decodeURIComponent(url.pathname.replace("/3/device/", ""));
    this.calls.push({ service: "apns", token });
    await request.body?.cancel();
    const bearer = (request.headers.get("authorization") ?? "").replace(/^bearer /, "");
    const header = JSON.parse(
      new TextDecoder().decode(base64UrlDecode(bearer.split(".")[0] ?? "")),
    );
    const valid = await verifyJwt("ES256", this.ecPublic, bearer) && header.kid === "KEYID12345" &&
      claimsOf(bearer).iss === "TEAMID1234" && request.headers.get("apns-topic") === "app.tutoring";
    if (!valid) return reply(403, { reason: "InvalidProviderToken" });
    switch (this.next(token)) {
      case "success":
        return new Response(null, { status: 200, headers: { "apns-id": crypto.randomUUID() } });
      case "invalid":
        return reply(410, { reason: "Unregistered", timestamp: 1_790_000_000_000 });
      case "rate_limited":
        return reply(429, { reason: "TooManyRequests" }, { "retry-after": this.retryAfter });
      case "server_error":
        return reply(500, { reason: "InternalServerError" });
    }
  }

  /** The environment index.ts would read, pointing at these fakes. */
  env(): Record<string, string> {
    return {
      FCM_SERVICE_ACCOUNT: JSON.stringify(this.serviceAccount),
      FCM_BASE_URL: FCM_BASE,
      APNS_KEY_ID: "KEYID12345",
      APNS_TEAM_ID: "TEAMID1234",
      APNS_PRIVATE_KEY: this.apnsKeyPem,
      APNS_TOPIC: "app.tutoring",
      APNS_BASE_URL: APNS_BASE,
    };
  }
}
