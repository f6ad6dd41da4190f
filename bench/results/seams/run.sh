#!/bin/bash
# how bench/results/seams/ was produced (2026-12-05): base = 606635c (before issue 15), head = this branch at 8a7498f
# alternate base (606635c, before issue 15) and head; same machine, same run
set -x
for i in 1 2; do
  (cd /work/bench-base && PYTHONPATH=/work/bench-base timeout 1200 .venv/bin/python -m bench rest --rounds 3 --output /tmp/bench/rest-base-$i.json > /tmp/bench/rest-base-$i.log 2>&1)
  (cd /work/main && PYTHONPATH=/work/main timeout 1200 .venv/bin/python -m bench rest --rounds 3 --output /tmp/bench/rest-head-$i.json > /tmp/bench/rest-head-$i.log 2>&1)
  (cd /work/bench-base && PYTHONPATH=/work/bench-base timeout 1200 .venv/bin/python -m bench bundles --rounds 3 --output /tmp/bench/bundles-base-$i.json > /tmp/bench/bundles-base-$i.log 2>&1)
  (cd /work/main && PYTHONPATH=/work/main timeout 1200 .venv/bin/python -m bench bundles --rounds 3 --output /tmp/bench/bundles-head-$i.json > /tmp/bench/bundles-head-$i.log 2>&1)
done
echo done
