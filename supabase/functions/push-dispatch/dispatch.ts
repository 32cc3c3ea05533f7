// Dispatching one notification: to every device of its recipient that has a token, unless
// the recipient turned the notification's category off. Each device's delivery is claimed in
// the ledger (push_deliveries, unique per notification and device) before anything is sent,
// so a second invocation — a webhook retry, a manual re-run, two workers — sends nothing
// twice. The trade-off: a worker that dies between claim and send leaves that device unsent
// (at most once, never twice), visible as a row with neither sent_at nor failed_at.

import type { Clock, Device, Notification, PushProvider, PushStore } from "./ports.ts";
import { type RetryPolicy, sendWithRetry } from "./retry.ts";

export interface Providers {
  /** Android and web tokens; absent when FCM is not configured. */
  fcm?: PushProvider;
  /** ios tokens; absent when APNs is not configured. */
  apns?: PushProvider;
}

export interface DispatchPorts {
  store: PushStore;
  providers: Providers;
  clock: Clock;
  retry: RetryPolicy;
}

export interface DeviceResult {
  device_id: string;
  platform: Device["platform"];
  status: "sent" | "failed" | "already_claimed";
  reason?: string;
  attempts?: number;
  token_pruned?: boolean;
}

export interface DispatchSummary {
  notification_id: string;
  /** Why nothing was sent, when nothing was tried (category turned off, no devices). */
  skipped?: string;
  deliveries: DeviceResult[];
}

function providerFor(providers: Providers, device: Device): [string, PushProvider | undefined] {
  return device.platform === "ios" ? ["apns", providers.apns] : ["fcm", providers.fcm];
}

async function deliver(
  ports: DispatchPorts,
  notification: Notification,
  device: Device,
): Promise<DeviceResult> {
  const base = { device_id: device.id, platform: device.platform };
  if (!(await ports.store.claim(notification.id, device.id))) {
    return { ...base, status: "already_claimed" };
  }
  const [name, provider] = providerFor(ports.providers, device);
  if (!provider) {
    const reason = `${name} is not configured`;
    await ports.store.record(notification.id, device.id, { failedAt: ports.clock.now(), reason });
    return { ...base, status: "failed", reason };
  }
  const message = {
    notificationId: notification.id,
    type: notification.type,
    title: notification.title,
    body: notification.body,
    data: notification.data,
  };
  const { outcome, attempts } = await sendWithRetry(
    provider,
    device,
    message,
    ports.clock,
    ports.retry,
  );
  if (outcome.kind === "sent") {
    await ports.store.record(notification.id, device.id, { sentAt: ports.clock.now() });
    return { ...base, status: "sent", attempts };
  }
  await ports.store.record(notification.id, device.id, {
    failedAt: ports.clock.now(),
    reason: outcome.reason,
  });
  const pruned = outcome.kind === "invalid_token";
  if (pruned) await ports.store.pruneToken(device.id, device.push_token);
  return { ...base, status: "failed", reason: outcome.reason, attempts, token_pruned: pruned };
}

/** Sends notification `id`; null when there is no such notification. */
export async function dispatch(id: string, ports: DispatchPorts): Promise<DispatchSummary | null> {
  const notification = await ports.store.notification(id);
  if (!notification) return null;
  const summary: DispatchSummary = { notification_id: id, deliveries: [] };
  if (!(await ports.store.categoryEnabled(notification.recipient_id, notification.category))) {
    return { ...summary, skipped: `category ${notification.category} is turned off` };
  }
  const devices = await ports.store.devices(notification.recipient_id);
  if (devices.length === 0) return { ...summary, skipped: "no device with a push token" };
  summary.deliveries = await Promise.all(
    devices.map((device) => deliver(ports, notification, device)),
  );
  return summary;
}
