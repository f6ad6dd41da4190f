"""``python -m bench [NAME|all] [options]``: the benchmarks behind ``make bench``.

  rest    single-resource REST throughput beside the raw store (bench/results/rest.json)
  search  common searches at 100,000 resources beside a full scan (bench/results/search.json)
  bundles Synthea batch/transaction ingest beside parse+validate alone (bench/results/bundles.json)
  ingest  records/s per adapter format beside raw parsing of the same input (bench/results/ingest.json)
  matching  patient-matching accuracy and cost per record on a synthetic population (bench/results/matching.json)
  match   Patient/$match latency at 10,000 and 100,000 people (bench/results/match.json)
  consent the same searches with consent enforced and not, and one decision's latency (bench/results/consent.json)
  backfill  a backlog through the priority queue beside arrival order (bench/results/backfill.json, .png)
  validation  base bindings + invariants per resource beside R4B model validation (bench/results/validation.json)
  profiles  the city profile check per claimed adapter resource beside the base checks and R4B validation
          (bench/results/profile-validation.json)
  summary Patient/$summary at 50, 500 and 5,000 resources beside plain searches for them (bench/results/summary.json)
  all     all eleven, one after the other (the default)

``python -m bench rest --help`` (or ``search --help``) lists each one's options.
"""

import sys

from bench import (
    backfill,
    bundles,
    consent,
    ingest,
    match,
    matching,
    profile_validation,
    rest,
    search,
    summary,
    validation,
)

_COMMANDS = {"rest": rest.main, "search": search.main, "bundles": bundles.main, "ingest": ingest.main,
             "matching": matching.main, "match": match.main, "consent": consent.main, "backfill": backfill.main,
             "validation": validation.main, "profiles": profile_validation.main,
             "summary": summary.main}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if not argv or argv[0] == "all":
        return max(command([]) for command in _COMMANDS.values())
    command = _COMMANDS.get(argv[0])
    if command is None:
        print(f"unknown benchmark {argv[0]!r}; choose rest, search, bundles, ingest, matching, match, consent, "
              "backfill, validation, profiles, summary or all", file=sys.stderr)
        return 2
    return command(argv[1:])


if __name__ == "__main__":  # not when a validation worker process imports the main module again
    raise SystemExit(main(sys.argv[1:]))
