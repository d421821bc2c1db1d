//! The docs, run: every ```sh block of the tutorial and of the how-to pages that act on
//! its stack runs, in page order, in one `bash -e -o pipefail` session (like a reader's
//! terminal: variables and the working directory carry from block to block) against one
//! fresh controller, and the test fails when a block fails or when its output misses a
//! line the page shows. The convention (```sh runs, ```text right after it is its
//! expected output, `<!-- docs-test: skip REASON -->`, `<!-- docs-test: last -->`) is
//! documented in docs/README.md.
//!
//! The session runs in a temporary directory that looks like a checkout of the project
//! (a symlink to each top-level entry, except `target/`, which holds only `charms/`, laid
//! out as scripts/build-charms.sh lays it out, from the charm binaries this test crate
//! builds), with `ward` (the test-built binary) first on PATH, `WARD_HOME` in the
//! temporary directory and a free `WARD_PORT`. Dropping the session destroys the
//! controller and removes the directory, also when the test failed half-way. WARD_KEEP=1
//! keeps the directory; `WARD_BIN` picks another `ward` binary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ward_e2e::{free_port, project, ward_bin};

/// The pages run, in this order: the tutorial builds the stack, the how-tos act on it;
/// blocks marked `last` (the tutorial's clean-up) run after all of them.
const PAGES: &[&str] = &[
    "tutorial/getting-started.md",
    "how-to/manage-passwords.md",
    "how-to/scale.md",
    "how-to/integrate-a-client.md",
    "how-to/enable-tls.md",
    "how-to/troubleshoot.md",
    "how-to/refresh.md",
];

/// How-to pages not run, and why; they must not have ```sh blocks.
const NOT_RUN: &[(&str, &str)] = &[(
    "how-to/write-a-charm.md",
    "it shows Rust code, not commands",
)];

/// The longest a block may take (`ward wait --timeout 5m` is the longest command).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(6 * 60);

// ---------------------------------------------------------------------------------------
// Pages

/// What the test does with a ```sh block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// In page order.
    Now,
    /// After every page (clean-up that the later pages' stack still needs).
    Last,
    /// Not at all, for this reason.
    Skip(String),
}

/// One ```sh block of a page.
#[derive(Debug, Clone)]
struct Block {
    page: String,
    /// 1-based line of the opening fence.
    line: usize,
    code: String,
    run: Run,
    /// The ```text block right after it: lines its standard output must show.
    expect: Option<String>,
}

impl Block {
    fn at(&self) -> String {
        format!("docs/{}:{}", self.page, self.line)
    }
}

/// The ```sh blocks of a page, with their markers and expected output. Fails on a marker
/// that is not right before a ```sh block, on a skip without a reason, and on a `$ `
/// prompt in any block: commands belong in ```sh blocks, where they are run.
fn parse(page: &str, text: &str) -> Result<Vec<Block>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut marker: Option<(usize, Run)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if let Some(m) = line
            .trim_start()
            .strip_prefix("<!-- docs-test:")
            .and_then(|m| m.strip_suffix("-->"))
        {
            let m = m.trim();
            let run = if m == "last" {
                Run::Last
            } else if let Some(reason) = m.strip_prefix("skip") {
                let reason = reason.trim();
                ensure!(
                    !reason.is_empty(),
                    "docs/{page}:{}: a skip needs a reason",
                    i + 1
                );
                Run::Skip(reason.to_string())
            } else {
                bail!("docs/{page}:{}: unknown docs-test marker {m:?}", i + 1);
            };
            ensure!(
                marker.is_none(),
                "docs/{page}:{}: two markers in a row",
                i + 1
            );
            marker = Some((i + 1, run));
            i += 1;
            continue;
        }
        let Some(info) = line.trim_start().strip_prefix("```") else {
            if let Some((at, _)) = &marker {
                ensure!(
                    line.trim().is_empty(),
                    "docs/{page}:{at}: a docs-test marker must be right before a ```sh block"
                );
            }
            i += 1;
            continue;
        };
        let start = i + 1;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        ensure!(i < lines.len(), "docs/{page}:{start}: unclosed code block");
        i += 1;
        if let Some(l) = body.lines().find(|l| l.trim_start().starts_with("$ ")) {
            bail!(
                "docs/{page}:{start}: {l:?}: write commands in a ```sh block, without \
                 the prompt, so that tests/tests/docs.rs runs them"
            );
        }
        let info = info.trim();
        if info == "sh" {
            let run = marker.take().map_or(Run::Now, |(_, r)| r);
            blocks.push(Block {
                page: page.to_string(),
                line: start,
                code: body,
                run,
                expect: None,
            });
            // A ```text block after only blank lines is this block's output.
            let mut j = i;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            if j < lines.len() && lines[j].trim() == "```text" {
                let mut out = String::new();
                j += 1;
                while j < lines.len() && !lines[j].trim_start().starts_with("```") {
                    out.push_str(lines[j]);
                    out.push('\n');
                    j += 1;
                }
                blocks.last_mut().expect("just pushed").expect = Some(out);
            }
        } else if let Some((at, _)) = marker.take() {
            bail!("docs/{page}:{at}: a docs-test marker before a ```{info} block, not ```sh");
        }
    }
    if let Some((at, _)) = marker {
        bail!("docs/{page}:{at}: a docs-test marker at the end of the page");
    }
    Ok(blocks)
}

/// Whether `line` shows `pattern`: `…` stands for any text (the spaces around it
/// included, so that it may stand for an empty table cell), a run of spaces for any run
/// of spaces, and leading and trailing spaces do not count.
fn shows(line: &str, pattern: &str) -> bool {
    fn squeeze(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    let rule = |s: &str| !s.trim().is_empty() && s.chars().all(|c| "-+ ".contains(c));
    if rule(pattern) {
        // A table's rule: its widths follow the values.
        return rule(line);
    }
    let pattern = squeeze(pattern).replace(" …", "…").replace("… ", "…");
    let line: Vec<char> = squeeze(line).chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // Wildcard matching with one backtrack point: the last `…` seen.
    let (mut l, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while l < line.len() {
        if p < pattern.len() && pattern[p] == '…' {
            star = Some((p, l));
            p += 1;
        } else if p < pattern.len() && pattern[p] == line[l] {
            l += 1;
            p += 1;
        } else if let Some((sp, sl)) = star {
            p = sp + 1;
            l = sl + 1;
            star = Some((sp, sl + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '…')
}

/// The expected lines `output` misses: each non-blank line of `expect` must be shown by
/// a line of `output`, in order.
fn missing(expect: &str, output: &str) -> Vec<String> {
    let mut actual = output.lines();
    let mut missed = Vec::new();
    for want in expect.lines().filter(|l| !l.trim().is_empty()) {
        let mut rest = actual.clone();
        if rest.any(|l| shows(l, want)) {
            actual = rest;
        } else {
            missed.push(want.to_string());
        }
    }
    missed
}

/// Output as it may be printed: a password's value (`password: …`, `PGPASSWORD=…`)
/// and a URI's (`scheme://user:…@host`) redacted, to the end of the line.
fn redact(text: &str) -> String {
    text.lines()
        .map(|l| {
            let lower = l.to_ascii_lowercase();
            let keyed = lower.match_indices("password").find_map(|(at, w)| {
                let after = lower[at + w.len()..].trim_start_matches(['"', '\'']);
                (after.starts_with(':') || after.starts_with('=')).then_some(at + w.len())
            });
            if let Some(end) = keyed {
                return format!("{}<redacted>\n", &l[..end]);
            }
            match (l.find("://"), l.find('@')) {
                (Some(s), Some(at)) if s < at => match l[s + 3..at].find(':') {
                    Some(c) => format!("{}:<redacted>{}\n", &l[..s + 3 + c], &l[at..]),
                    None => format!("{l}\n"),
                },
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The reader's session

/// A reader's terminal: one `bash -e -o pipefail` reading blocks from its stdin, each
/// block `source`d with its output in `<blocks>/<n>.out` and `.err`. A failing command
/// ends the shell (`-e`), and with it the block. Dropping it kills the shell's process
/// group.
struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines the shell prints on its standard output: one per finished block.
    done: Receiver<String>,
    blocks: PathBuf,
    run: usize,
}

/// A block's outcome.
struct Ran {
    stdout: String,
    stderr: String,
    /// Whether the block finished (every command succeeded).
    ok: bool,
}

impl Shell {
    fn start(cwd: &Path, blocks: &Path, env: &[(String, String)]) -> Result<Shell> {
        std::fs::create_dir_all(blocks)?;
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-e", "-o", "pipefail", "-s"])
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("WARD_SUBSTRATE")
            .env_remove("WARD_CHARMS")
            .env_remove("WARD_ROCKS")
            .envs(env.iter().map(|(k, v)| (k, v)));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().context("starting bash")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("bash's stdout")?;
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Shell {
            child,
            stdin,
            done,
            blocks: blocks.to_path_buf(),
            run: 0,
        })
    }

    /// Runs `code` in the session, for up to `timeout`.
    fn run(&mut self, code: &str, timeout: Duration) -> Result<Ran> {
        let n = self.run;
        self.run += 1;
        let file = |ext: &str| self.blocks.join(format!("{n:02}.{ext}"));
        let (script, out, err) = (file("sh"), file("out"), file("err"));
        std::fs::write(&script, code)?;
        let line = format!(
            "source {} >{} 2>{} </dev/null\necho done {n}\n",
            script.display(),
            out.display(),
            err.display()
        );
        let stdin = self.stdin.as_mut().context("the shell has ended")?;
        stdin.write_all(line.as_bytes())?;
        stdin.flush()?;
        let answer = self.done.recv_timeout(timeout);
        let ran = |ok| Ran {
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
            ok,
        };
        match answer {
            Ok(l) if l == format!("done {n}") => Ok(ran(true)),
            Ok(l) => bail!("unexpected line from the shell: {l:?}"),
            Err(RecvTimeoutError::Timeout) => bail!("still running after {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                self.stdin = None;
                let _ = self.child.wait();
                Ok(ran(false))
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stdin = None;
        // The shell and anything it left running in its process group (its pid is the
        // group's id). Written `kill -s KILL -- -<pgid>`: procps' `kill -KILL -<n>`
        // takes `-<n>` for an option and signals process group 9 instead.
        let pgid = self.child.id();
        if pgid > 1 {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader's session: a shell in a checkout-like directory, on its own controller.
/// Dropping it ends the shell, destroys the controller and removes the directory.
struct Session {
    /// Declared first: dropped (the shell ended) before the directory goes.
    shell: Option<Shell>,
    dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl Session {
    fn start() -> Result<Session> {
        let dir = tempfile::Builder::new()
            .prefix("warddocs")
            .disable_cleanup(std::env::var_os("WARD_KEEP").is_some())
            .tempdir_in("/tmp")?;
        let root = dir.path().join("ward");
        let home = dir.path().join("home");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin)?;
        std::os::unix::fs::symlink(ward_bin()?, bin.join("ward"))?;

        // The checkout: the project's entries, and target/charms/ as build-charms.sh
        // lays it out.
        std::fs::create_dir_all(&root)?;
        for e in std::fs::read_dir(project())?.flatten() {
            let name = e.file_name();
            if name != "target" && name != ".git" {
                std::os::unix::fs::symlink(e.path(), root.join(&name))?;
            }
        }
        for (name, exe) in [
            ("postgresql", env!("CARGO_BIN_EXE_postgresql-charm")),
            ("pgbouncer", env!("CARGO_BIN_EXE_pgbouncer-charm")),
            ("self-signed-certificates", env!("CARGO_BIN_EXE_ssc-charm")),
        ] {
            let to = root.join("target/charms").join(name);
            ward_e2e::copy_dir(&project().join("metadata").join(name), &to)?;
            std::fs::copy(exe, to.join("dispatch"))?;
        }

        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env: Vec<(String, String)> = [
            ("PATH", path),
            ("WARD_HOME", home.display().to_string()),
            ("WARD_PORT", free_port().to_string()),
            ("WARD_PEBBLE", env!("CARGO_BIN_EXE_e2e-pebble").into()),
            (
                "WARD_HOOK_RUNNER",
                env!("CARGO_BIN_EXE_e2e-hook-runner").into(),
            ),
            ("WARD_JUJUC", env!("CARGO_BIN_EXE_e2e-jujuc").into()),
            ("WARD_RETRY_BASE_MS", "300".into()),
            ("PGCONNECT_TIMEOUT", "10".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let shell = Shell::start(&root, &dir.path().join("blocks"), &env)?;
        Ok(Session {
            shell: Some(shell),
            dir,
            root,
            home,
            env,
        })
    }

    /// Runs one block; its output is printed (redacted). Returns the standard output.
    fn run(&mut self, block: &Block) -> Result<String> {
        let started = Instant::now();
        eprintln!("\n== {}\n{}", block.at(), block.code);
        let shell = self.shell.as_mut().context("no shell")?;
        let ran = shell
            .run(&block.code, BLOCK_TIMEOUT)
            .with_context(|| block.at())?;
        eprint!("{}{}", redact(&ran.stdout), redact(&ran.stderr));
        eprintln!("-- {:.1}s", started.elapsed().as_secs_f64());
        ensure!(
            ran.ok,
            "{}: the block failed:\n{}--- its stderr:\n{}\n{}",
            block.at(),
            block.code,
            redact(&ran.stderr),
            self.logs()
        );
        Ok(ran.stdout)
    }

    /// What a page's skipped steps would have done, where later blocks depend on it.
    fn before(&self, page: &str) -> Result<()> {
        if page == "how-to/refresh.md" {
            // Stands for `./scripts/build-charms.sh postgresql` after a change: a new
            // archive, so a new revision.
            std::fs::write(
                self.root.join("target/charms/postgresql/REBUILT"),
                "a new archive, so a new revision\n",
            )?;
        }
        Ok(())
    }

    /// The controller's log and the tails of the units' logs, for failure messages.
    fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let mut s = format!(
            "--- controller.log\n{}\n",
            tail(std::fs::read_to_string(self.home.join("controller.log")).unwrap_or_default())
        );
        if let Ok(rd) = std::fs::read_dir(self.home.join("logs")) {
            for e in rd.flatten() {
                s.push_str(&format!("--- {}\n", e.path().display()));
                s.push_str(&tail(std::fs::read_to_string(e.path()).unwrap_or_default()));
                s.push('\n');
            }
        }
        redact(&s)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let started = Instant::now();
        self.shell = None;
        if !self.home.exists() {
            return;
        }
        let destroyed = Command::new(self.dir.path().join("bin/ward"))
            .args(["destroy", "--yes"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !destroyed {
            let pid = std::fs::read_to_string(self.home.join("controller.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .filter(|p| *p > 1);
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", &pid.to_string()])
                    .status();
            }
            controller::sandbox::stop_all(&self.home.join("units"));
        }
        eprintln!(
            "== cleaned up after a failure in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The test

fn read_page(page: &str) -> Result<String> {
    let path = project().join("docs").join(page);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[test]
fn every_how_to_page_is_run_or_says_why_not() -> Result<()> {
    for e in std::fs::read_dir(project().join("docs/how-to"))?.flatten() {
        let page = format!("how-to/{}", e.file_name().to_string_lossy());
        let not_run = NOT_RUN.iter().find(|(p, _)| *p == page);
        ensure!(
            PAGES.contains(&page.as_str()) || not_run.is_some(),
            "docs/{page} is neither in docs.rs's PAGES nor in NOT_RUN"
        );
        if not_run.is_some() {
            let blocks = parse(&page, &read_page(&page)?)?;
            ensure!(
                blocks.is_empty(),
                "docs/{page} has ```sh blocks but is not run"
            );
        }
    }
    Ok(())
}

/// The `ward` command lines of the CLI reference (`$ ward …` in its console blocks,
/// which show other models than the tutorial's and are not run): each must parse, verb
/// and flags, which `ward <args> --help` checks without running it.
#[test]
fn the_cli_reference_examples_parse() -> Result<()> {
    let page = read_page("reference/cli.md")?;
    let ward = ward_bin()?;
    let mut checked = 0;
    for (n, line) in page.lines().enumerate() {
        let Some(cmd) = line.strip_prefix("$ ") else {
            continue;
        };
        let cmd = cmd.split(" #").next().unwrap_or_default();
        // `VAR=value ward …`: the variables are not what is checked.
        let mut words = cmd
            .split_whitespace()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'));
        if words.next() != Some("ward") {
            continue;
        }
        let args: Vec<&str> = words.collect();
        let out = Command::new(&ward)
            .args(&args)
            .arg("--help")
            .env("WARD_HOME", "/nonexistent/ward-docs-test")
            .output()?;
        ensure!(
            out.status.success(),
            "docs/reference/cli.md:{}: `{cmd}` does not parse:\n{}",
            n + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    ensure!(
        checked >= 20,
        "only {checked} examples found in docs/reference/cli.md"
    );
    Ok(())
}

#[test]
fn the_docs_run_as_written_against_one_controller() -> Result<()> {
    let mut blocks = Vec::new();
    for page in PAGES {
        let found = parse(page, &read_page(page)?)?;
        ensure!(!found.is_empty(), "docs/{page} has no ```sh block");
        blocks.extend(found);
    }
    let order: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.run == Run::Now)
        .chain(blocks.iter().filter(|b| b.run == Run::Last))
        .collect();
    let skipped: Vec<&Block> = blocks
        .iter()
        .filter(|b| matches!(b.run, Run::Skip(_)))
        .collect();

    let started = Instant::now();
    let mut session = Session::start()?;
    eprintln!(
        "== the session is ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let mut page = "";
    for block in &order {
        if block.page != page {
            page = &block.page;
            session.before(page)?;
        }
        let stdout = session.run(block)?;
        if let Some(expect) = &block.expect {
            let missed = missing(expect, &stdout);
            ensure!(
                missed.is_empty(),
                "{}: the output misses these lines the page shows:\n{}\n--- output:\n{}",
                block.at(),
                missed.join("\n"),
                redact(&stdout)
            );
        }
    }
    ensure!(
        !session.home.exists(),
        "the docs end with `ward destroy --yes`, which removes WARD_HOME"
    );
    eprintln!(
        "\n== {} blocks run in {:.0}s; {} skipped:",
        order.len(),
        started.elapsed().as_secs_f64(),
        skipped.len()
    );
    for b in &skipped {
        if let Run::Skip(reason) = &b.run {
            eprintln!("   {}: {reason}", b.at());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_expected_output_are_read() {
        let page = "intro\n\n<!-- docs-test: skip needs a real Kubernetes -->\n```sh\n\
                    juju deploy x\n```\n\n```sh\nward status\n```\n\n```text\nApp …\n```\n\
                    <!-- docs-test: last -->\n```sh\nward destroy --yes\n```\n\
                    ```console\nward status\n```\n";
        let b = parse("p.md", page).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].run, Run::Skip("needs a real Kubernetes".into()));
        assert_eq!(b[1].run, Run::Now);
        assert_eq!(b[1].expect.as_deref(), Some("App …\n"));
        assert_eq!(b[2].run, Run::Last);
        assert_eq!(b[2].code, "ward destroy --yes\n");
    }

    #[test]
    fn prompts_skips_without_reason_and_stray_markers_are_refused() {
        assert!(parse("p.md", "```console\n$ ward status\n```\n").is_err());
        assert!(parse("p.md", "<!-- docs-test: skip -->\n```sh\nx\n```\n").is_err());
        assert!(parse("p.md", "<!-- docs-test: last -->\ntext\n```sh\nx\n```\n").is_err());
        assert!(parse("p.md", "<!-- docs-test: last -->\n```text\nx\n```\n").is_err());
        assert!(parse("p.md", "<!-- docs-test: later -->\n```sh\nx\n```\n").is_err());
    }

    #[test]
    fn expected_lines_match_with_ellipses_and_any_spacing_in_order() {
        assert!(shows("password: abc123", "password: …"));
        assert!(shows(
            "postgresql/0*   active  idle  127.9.0.1   Primary",
            "postgresql/0* active idle 127.… Primary"
        ));
        assert!(!shows("postgresql/0* blocked", "postgresql/0* active"));
        assert!(!shows("xpassword: a", "password: …"));
        assert!(shows("a b c", "…b…"));
        assert!(shows(
            "pg active 5 pg local 2 no",
            "pg … active … pg local 2 no …"
        ));
        assert!(!shows(
            "pg active 5 pg local 1 no",
            "pg … active … pg local 2 no …"
        ));
        assert!(shows("x ab ab c", "x …ab c"));
        assert!(shows("---+----", "------+--"));
        assert!(!shows("t | x", "---+---"));
        assert_eq!(
            missing("one\ntwo\n", "zero\none\ntwo\n"),
            Vec::<String>::new()
        );
        assert_eq!(missing("two\none\n", "one\ntwo\n"), vec!["one".to_string()]);
    }

    #[test]
    fn a_failing_command_fails_its_block_and_variables_carry() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let timeout = Duration::from_secs(10);
        let mut shell = Shell::start(dir.path(), &dir.path().join("blocks"), &[])?;
        let ran = shell.run("greeting=hello\ncd /\n", timeout)?;
        assert!(ran.ok);
        let ran = shell.run("echo \"$greeting from $PWD\"\n", timeout)?;
        assert!(ran.ok);
        assert_eq!(ran.stdout, "hello from /\n");
        let ran = shell.run("false | cat\necho not reached\n", timeout)?;
        assert!(!ran.ok, "pipefail");
        assert_eq!(ran.stdout, "");
        assert!(shell.run("true\n", timeout).is_err(), "the shell has ended");

        let mut shell = Shell::start(dir.path(), &dir.path().join("more"), &[])?;
        let ran = shell.run("x=$(false)\necho not reached\n", timeout)?;
        assert!(!ran.ok, "a failing command substitution");
        let mut shell = Shell::start(dir.path(), &dir.path().join("slow"), &[])?;
        assert!(shell.run("sleep 5\n", Duration::from_millis(200)).is_err());
        Ok(())
    }

    #[test]
    fn passwords_are_redacted() {
        let r = redact(
            "password: s3cret\nuris: postgresql://u:s3cret@h:6432/db\nok\n\
             PGPASSWORD=s3cret psql\n  \"password\": \"s3cret\"\n",
        );
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("ok"));
        let failed = "FATAL:  password authentication failed for user \"operator\"";
        assert_eq!(redact(failed), format!("{failed}\n"));
    }
}
