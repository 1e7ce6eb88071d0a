from django.core.management.base import BaseCommand, CommandError

from ledger.selectors import verify_ledger


class Command(BaseCommand):
    help = "Check every ledger invariant; exits non-zero on any breach."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=20, help="Rows to report per broken invariant.")

    def handle(self, *args, limit, **options):
        problems = verify_ledger(limit=limit)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(problems)} ledger invariant breach(es).")
        self.stdout.write(self.style.SUCCESS("Ledger verified: every invariant holds."))
