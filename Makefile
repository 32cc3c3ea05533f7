# The two commands a newcomer needs (see README.md):
#   make demo  — set up, start the embedded database, push migrations and policies, seed
#                (supabase/seed.sql, then the development world), print who to log in as,
#                then tell the offline-sync story (`pysync sync demo`)
#   make test  — the same set-up plus pgTAP, pgbouncer, pg_cron, Deno and PostgreSQL 17, then
#                every check and test, and the SQL suites again on PostgreSQL 17
.PHONY: demo test bootstrap lint clean

VENV := .venv
BIN := $(VENV)/bin

demo: bootstrap
	$(BIN)/pysync up
	$(BIN)/pysync seed dev
	$(BIN)/pysync sync demo

test:
	./scripts/bootstrap.sh --pgtap --pgbouncer --cron --deno --pg17
	$(BIN)/ruff check pysync tests scripts
	$(BIN)/ruff format --check pysync tests scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest
	PYSYNC_PG_MAJOR=17 $(BIN)/python -m pytest -m sql_suite
	./scripts/deno.sh

bootstrap:
	./scripts/bootstrap.sh

lint: bootstrap
	$(BIN)/pysync db lint

clean:
	-$(BIN)/pysync db stop
	rm -rf .pysync
