# Source this: makes (once) and activates the CI virtualenv at target/ci-venv, installing
# the pip packages named as arguments if missing.
VENV="${VENV:-$PWD/target/ci-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ "$#" -gt 0 ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "$@"
fi
export PATH="$VENV/bin:$PATH"
