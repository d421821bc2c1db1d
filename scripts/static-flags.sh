# Sourced by the build scripts: sets $host to the host's target triple and links what
# `cargo build --target "$host"` builds statically (glibc's crt-static). Giving the
# triple keeps build scripts and proc-macros dynamic, as they must be.
#
# Why static: every hook is the charm's process plus one process per hook tool it calls,
# and a Rust binary without the dynamic loader starts in about half the time (see
# docs/reference/benchmarks.md); a static charm binary also runs on any base.
host=$(rustc -vV | sed -n 's/^host: //p')
static_flags_var=CARGO_TARGET_$(echo "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
export "$static_flags_var=${!static_flags_var:-} -C target-feature=+crt-static"
