from django.core.management.base import BaseCommand, CommandError

from ledger.bulk_load import BulkLoadError, bulk_load


class Command(BaseCommand):
    help = ("Benchmark data (PostgreSQL only): add N customers and about M consistent ledger entries over 18 "
            "months with COPY, e.g. --customers 200000 --entries 5000000. Never on a real database.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, required=True)
        parser.add_argument("--entries", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--topup", type=int, default=0,
                            help="End every account with at least this balance (minor units), for benchmarks.")
        parser.add_argument("--workers", type=int, default=None,
                            help="Generator processes (default: 0 below 400,000 entries, else CPUs - 1, max 3).")
        parser.add_argument("--skip-fk-checks", action="store_true",
                            help="Superuser only: skip foreign-key triggers in the loader's own transactions "
                                 "(SET LOCAL session_replication_role = replica), about 40%% faster.")
        parser.add_argument("--verify", action="store_true", help="Run verify_ledger() afterwards.")

    def handle(self, *args, customers, entries, seed, topup, workers, skip_fk_checks, verify, **options):
        log = self.stdout.write if options["verbosity"] >= 2 else None
        try:
            result = bulk_load(customers=customers, entries=entries, seed=seed, topup=topup, workers=workers,
                               fk_checks=not skip_fk_checks, log=log)
        except BulkLoadError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Loaded {result['customers']:,} customers, {result['entries']:,} entries, {result['lots']:,} lots, "
            f"{result['consumptions']:,} consumptions in {result['seconds']:.1f}s "
            f"(generate + COPY {result['load_s']:.1f}s, sequences + ANALYZE {result['finish_s']:.1f}s; "
            f"{result['workers']} generator processes, {result['copy_connections']} COPY connections)."))
        if verify:
            from ledger.selectors import verify_ledger

            problems = verify_ledger()
            if problems:
                for problem in problems:
                    self.stderr.write(problem)
                raise CommandError(f"{len(problems)} ledger invariant breach(es).")
            self.stdout.write(self.style.SUCCESS("Ledger verified: every invariant holds."))
