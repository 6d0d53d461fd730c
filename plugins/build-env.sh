# Sourced by plugins/{c,js,python}/build.sh after they set `here` (their own folder): where the
# WIT package is and where the built components go (<target>/plugins/, honouring
# CARGO_TARGET_DIR like scripts/build-plugins.sh, a relative one taken from the caller's
# directory).
if [[ -n "${CARGO_TARGET_DIR:-}" && "${CARGO_TARGET_DIR}" != /* ]]; then
    CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# The newest contract; plugins/js/build.sh keeps 0.1 (see the reason there).
wit="$root/wit/v0.2"
out="$target_dir/plugins"
