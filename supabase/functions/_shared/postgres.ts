// Direct Postgres for local serving and the integration tests, where no PostgREST runs: each
// unit of work is one transaction that first sets what PostgREST sets for a request (role,
// JWT claims, method, path, headers; the same settings as pysync's PostgresGateway), then
// calls the db-pre-request hook when one is configured. Policies, grants and triggers decide
// exactly as they would behind the API.

import postgres from "npm:postgres@3.4.7";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export interface RequestContext {
  role: "anon" | "authenticated" | "service_role";
  claims: Record<string, unknown>;
  method?: string;
  path?: string;
  /** `schema.function` of PostgREST's db-pre-request setting, e.g. `private.check_request`. */
  preRequest?: string;
  /** PostgREST runs GETs and calls of stable functions in a read-only transaction. */
  readOnly?: boolean;
}

export function connect(url: string): Sql {
  return postgres(url, { max: 4, prepare: false, onnotice: () => {}, idle_timeout: 5 });
}

/** Runs `work` in one transaction as the API caller described by `context`. */
export function asCaller<T>(
  sql: Sql,
  context: RequestContext,
  work: (tx: Tx) => Promise<T>,
): Promise<T> {
  return sql.begin(async (tx) => {
    if (context.readOnly) await tx`set transaction read only`;
    await tx`select
      set_config('search_path', 'public, extensions', true),
      set_config('role', ${context.role}, true),
      set_config('request.jwt.claims', ${JSON.stringify(context.claims)}, true),
      set_config('request.method', ${context.method ?? "POST"}, true),
      set_config('request.path', ${context.path ?? "/"}, true),
      set_config('request.headers', '{}', true),
      set_config('request.cookies', '{}', true)`;
    if (context.preRequest) {
      const [schema, name] = context.preRequest.includes(".")
        ? context.preRequest.split(".", 2)
        : ["public", context.preRequest];
      await tx`select ${tx(schema)}.${tx(name)}()`;
    }
    return await work(tx);
  }) as Promise<T>;
}

export const SERVICE_ROLE: RequestContext = {
  role: "service_role",
  claims: { role: "service_role" },
};
