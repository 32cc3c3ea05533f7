// The export's ports over the hosted API, acting as the caller: PostgREST runs
// export_my_data() with the caller's JWT (it verifies the token), and Storage writes and
// signs with it too, so the object is owned by the user (public.delete_user() erases it).

import { HttpError } from "../_shared/http.ts";
import { callerClient, type Env, type Fetch } from "../_shared/supabase.ts";
import {
  EXPORTS_BUCKET,
  type ExportSource,
  type ExportStorage,
  type StoredExport,
} from "./ports.ts";

export class SupabaseExportSource implements ExportSource {
  constructor(private readonly env: Env, private readonly fetch?: Fetch) {}

  async exportAs(jwt: string): Promise<Record<string, unknown>> {
    const { data, error, status } = await callerClient(jwt, this.env, this.fetch).rpc(
      "export_my_data",
    );
    if (error) {
      // 401: PostgREST refused the token; 42501: it ran as anon (an API key, no user).
      if (status === 401 || error.code === "42501") {
        throw new HttpError(401, `not signed in: ${error.message}`);
      }
      throw new Error(`export_my_data: ${error.message}`);
    }
    return data as Record<string, unknown>;
  }
}

export class SupabaseExportStorage implements ExportStorage {
  constructor(private readonly env: Env, private readonly fetch?: Fetch) {}

  async store(
    jwt: string,
    path: string,
    bytes: Uint8Array,
    ttlSeconds: number,
  ): Promise<StoredExport> {
    const bucket = callerClient(jwt, this.env, this.fetch).storage.from(EXPORTS_BUCKET);
    const folder = path.split("/")[0];
    const earlier = await bucket.list(folder);
    if (earlier.error) throw new Error(`list exports: ${earlier.error.message}`);
    if (earlier.data.length) {
      const removed = await bucket.remove(earlier.data.map((item) => `${folder}/${item.name}`));
      if (removed.error) throw new Error(`remove earlier exports: ${removed.error.message}`);
    }
    const uploaded = await bucket.upload(path, bytes, { contentType: "application/json" });
    if (uploaded.error) throw new Error(`upload export: ${uploaded.error.message}`);
    const signed = await bucket.createSignedUrl(path, ttlSeconds, { download: true });
    if (signed.error) throw new Error(`sign export URL: ${signed.error.message}`);
    return { bucket: EXPORTS_BUCKET, path, signedUrl: signed.data.signedUrl };
  }
}
