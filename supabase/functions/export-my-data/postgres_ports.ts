// The export's ports without the hosted API (`pysync functions serve`, the integration
// test): the token is verified here with the project's JWT secret (PostgREST would), then
// export_my_data() runs as the caller over Postgres; a stored export is a storage.objects row
// written as the caller (the bucket's policies decide, as Storage's would) and a file under a
// local directory, signed the way Supabase Storage signs URLs (HS256, {url, iat, exp}).

import { type Claims, verifiedClaims } from "../_shared/auth.ts";
import { HttpError } from "../_shared/http.ts";
import { hmacKey, signJwt } from "../_shared/jwt.ts";
import { asCaller, type RequestContext, type Sql } from "../_shared/postgres.ts";
import {
  EXPORTS_BUCKET,
  type ExportSource,
  type ExportStorage,
  type StoredExport,
} from "./ports.ts";

const API_ROLES = ["anon", "authenticated", "service_role"] as const;

async function callerContext(
  jwt: string,
  secret: string,
  now: () => Date,
  path: string,
  extra: Partial<RequestContext> = {},
): Promise<RequestContext & { claims: Claims }> {
  const claims = await verifiedClaims(jwt, secret, Math.floor(now().getTime() / 1000));
  const role = API_ROLES.find((r) => r === claims.role);
  if (!role) throw new HttpError(401, `JWT role ${String(claims.role)} is not an API role`);
  return { role, claims, path, ...extra };
}

function isInsufficientPrivilege(error: unknown): boolean {
  return (error as { code?: string }).code === "42501";
}

export class PostgresExportSource implements ExportSource {
  constructor(
    private readonly sql: Sql,
    private readonly jwtSecret: string,
    private readonly now: () => Date,
  ) {}

  async exportAs(jwt: string): Promise<Record<string, unknown>> {
    // As PostgREST calls a stable function: read only, after the db-pre-request hook.
    const context = await callerContext(jwt, this.jwtSecret, this.now, "/rpc/export_my_data", {
      preRequest: "private.check_request",
      readOnly: true,
    });
    try {
      const rows = await asCaller(
        this.sql,
        context,
        (tx) => tx`select public.export_my_data() as document`,
      );
      return rows[0].document as Record<string, unknown>;
    } catch (error) {
      if (isInsufficientPrivilege(error)) {
        throw new HttpError(401, `not signed in: ${(error as Error).message}`);
      }
      throw error;
    }
  }
}

export class LocalExportStorage implements ExportStorage {
  constructor(
    private readonly sql: Sql,
    private readonly jwtSecret: string,
    private readonly now: () => Date,
    /** Where the files go: <dir>/<bucket>/<path>. */
    private readonly dir: string,
    /** The base URL signed URLs point at (the local functions server). */
    private readonly publicUrl: string,
  ) {}

  async store(
    jwt: string,
    path: string,
    bytes: Uint8Array,
    ttlSeconds: number,
  ): Promise<StoredExport> {
    const context = await callerContext(jwt, this.jwtSecret, this.now, `/object/${EXPORTS_BUCKET}`);
    const owner = String(context.claims.sub ?? "");
    const folder = path.split("/")[0];
    const replaced = await asCaller(this.sql, context, async (tx) => {
      // As the Storage API deletes: it lifts storage.protect_delete() for its own query.
      await tx`select set_config('storage.allow_delete_query', 'true', true)`;
      const gone = await tx`delete from storage.objects
        where bucket_id = ${EXPORTS_BUCKET} and (storage.foldername(name))[1] = ${folder}
        returning name`;
      await tx`insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
        values (${EXPORTS_BUCKET}, ${path}, ${owner || null}, ${owner || null},
                ${tx.json({ size: bytes.length, mimetype: "application/json" })})`;
      return gone.map((row) => String(row.name));
    });
    for (const name of replaced) {
      await Deno.remove(`${this.dir}/${EXPORTS_BUCKET}/${name}`).catch(() => {});
    }
    await Deno.mkdir(`${this.dir}/${EXPORTS_BUCKET}/${folder}`, { recursive: true });
    await Deno.writeFile(`${this.dir}/${EXPORTS_BUCKET}/${path}`, bytes);
    const issuedAt = Math.floor(this.now().getTime() / 1000);
    const token = await signJwt("HS256", await hmacKey(this.jwtSecret), {
      url: `${EXPORTS_BUCKET}/${path}`,
      iat: issuedAt,
      exp: issuedAt + ttlSeconds,
    });
    const signedUrl = `${
      this.publicUrl.replace(/\/$/, "")
    }/storage/v1/object/sign/${EXPORTS_BUCKET}/${
      path.split("/").map(encodeURIComponent).join("/")
    }?token=${token}`;
    return { bucket: EXPORTS_BUCKET, path, signedUrl };
  }
}
