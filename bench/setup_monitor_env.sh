#!/usr/bin/env bash
# The environment bench_monitor.py runs Evidently in: its own venv, because Evidently 0.7.23
# does not import with pandas 3 (its metadata allows it; pin pandas<3). modeltap's side runs
# in the project's .venv.
#   bash bench/setup_monitor_env.sh [VENV]      # default /tmp/modeltap-bench/venv-evidently
set -euo pipefail
VENV=${1:-/tmp/modeltap-bench/venv-evidently}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "evidently==0.7.23" "pandas<3" "numpy==2.4.6" "scipy==1.17.1" "pyarrow==26.0.1"
"$VENV/bin/python" -c "import evidently, pandas; print('evidently', evidently.__version__, 'pandas', pandas.__version__)"
