// What push dispatch needs from the outside world, as interfaces: the database (PushStore),
// the push providers, HTTP (fetch) and the clock. index.ts wires the real ones; the tests
// wire fake providers and, for the integration test, the real database.

export interface Notification {
  id: string;
  recipient_id: string;
  type: string;
  /** The preference category governing push for this type (a generated column). */
  category: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
}

export interface Device {
  id: string;
  platform: "ios" | "android" | "web";
  push_token: string;
}

export type Delivery = { sentAt: Date } | { failedAt: Date; reason: string };

/** The database side, always as the service role (the push worker). */
export interface PushStore {
  notification(id: string): Promise<Notification | null>;
  /** A category without a preference row counts as enabled (see the devices migration). */
  categoryEnabled(userId: string, category: string): Promise<boolean>;
  /** The recipient's devices that have a push token. */
  devices(userId: string): Promise<Device[]>;
  /**
   * Inserts the delivery row of (notification, device) unless it exists; true when this call
   * made it. The unique key is the ledger that makes a second invocation send nothing twice.
   */
  claim(notificationId: string, deviceId: string): Promise<boolean>;
  record(notificationId: string, deviceId: string, delivery: Delivery): Promise<void>;
  /** Clears the device's token if it is still `token` (a new registration wins). */
  pruneToken(deviceId: string, token: string): Promise<void>;
}

export interface PushMessage {
  notificationId: string;
  type: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
}

export type SendOutcome =
  | { kind: "sent" }
  /** The provider says the token will never work again (FCM UNREGISTERED, APNs 410). */
  | { kind: "invalid_token"; reason: string }
  /** Worth retrying (429, 5xx, network): after `retryAfterSeconds` when the provider said. */
  | { kind: "transient"; reason: string; retryAfterSeconds?: number }
  | { kind: "failed"; reason: string };

export interface PushProvider {
  send(device: Device, message: PushMessage): Promise<SendOutcome>;
}

export interface Clock {
  now(): Date;
  sleep(milliseconds: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds)),
};

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
